"""Shared fixtures; the sandbox fixtures themselves come from upsproxy's pytest plugin."""
