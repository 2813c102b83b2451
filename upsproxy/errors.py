"""User-facing failures: bad cassettes, bad config files, start-up problems.

    UpsproxyError
     ├── FileProblem          a file the user gave us is wrong (names file and line)
     │    ├── CassetteError
     │    ├── ConfigError
     │    ├── StateFileError   a --state file that is not SQLite, damaged, or foreign
     │    └── FaultRuleError   a fault rule file or --fault shorthand that cannot be used
     └── StartupError         the proxy could not start (port in use, ...)

Messages name the file, the line, the field and what to do; they never quote a
secret's value. UPS-shaped protocol errors are not exceptions: they are
answers, built by ``upsproxy.envelopes``.
"""

from __future__ import annotations

__all__ = ["CassetteError", "ConfigError", "FaultRuleError", "FileProblem", "StartupError",
           "StateFileError", "UpsproxyError"]


class UpsproxyError(Exception):
    """Base of every error upsproxy reports to a user."""


class FileProblem(UpsproxyError):
    """Something is wrong in a file the user supplied."""

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


class CassetteError(FileProblem):
    """A cassette cannot be loaded: syntax, version, schema or placeholder."""


class ConfigError(FileProblem):
    """A config file (app registry, error overrides) cannot be used."""


class FaultRuleError(FileProblem):
    """A fault rule file (or ``--fault`` shorthand) cannot be used."""


class StartupError(UpsproxyError):
    """mitmproxy could not bring up the listeners."""


class StateFileError(FileProblem):
    """A ``--state`` file that upsproxy will not use: not SQLite, damaged, or not its own."""
