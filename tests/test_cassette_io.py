"""Unit tests of upsproxy.cassette_io: deterministic text, atomic replacement."""

import os

import pytest

from upsproxy.cassette import parse_cassette
from upsproxy.cassette_io import dump_cassette, remove_stale_temps, write_atomic

DOC = {"version": 1, "meta": {"how": "recorded"}, "interactions": [
    {"kind": "api", "request": {"method": "GET", "url": "https://wwwcie.ups.com/api/x?a=<<txn:1>>"},
     "response": {"status": 200, "body": {"text": "line 1\nline 2\n"}}}]}


def test_dump_is_deterministic_readable_and_loads():
    text = dump_cassette(DOC)
    assert text == dump_cassette(DOC)
    assert "  - kind: api\n" in text and "        text: |\n          line 1\n" in text
    cassette = parse_cassette(text)
    assert cassette.interactions[0].response.body == {"text": "line 1\nline 2\n"}
    assert dump_cassette({"version": 1}).endswith("version: 1\ninteractions: []\n")


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "c.yaml"
    write_atomic(target, "one\n")
    write_atomic(target, "two\n")
    assert target.read_text() == "two\n" and os.listdir(target.parent) == ["c.yaml"]
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "c.yaml"
    write_atomic(target, "good\n")

    def broken(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        write_atomic(target, "new\n")
    assert target.read_text() == "good\n" and os.listdir(tmp_path) == ["c.yaml"]


def test_stale_temps_are_removed(tmp_path):
    (tmp_path / ".c.yaml.abc.tmp").write_text("half")
    (tmp_path / ".other.yaml.abc.tmp").write_text("not ours")
    assert remove_stale_temps(tmp_path / "c.yaml") == 1
    assert os.listdir(tmp_path) == [".other.yaml.abc.tmp"]
