"""User-facing failures: bad cassettes, bad config files, start-up problems.

    UpsproxyError
     ├── FileProblem          a file the user gave us is wrong (names file and line)
     │    ├── CassetteError
     │    ├── ConfigError
     │    ├── StateFileError   a --state file that is not SQLite, damaged, or foreign
     │    ├── FaultRuleError   a fault rule file or --fault shorthand that cannot be used
     │    ├── LeakError        a cassette write would have put a secret on disk
     │    └── UnrecordableError  one exchange cannot be redacted (JSON nested too deep)
     └── StartupError         the proxy could not start (port in use, ...)

Messages name the file, the line, the field and what to do; they never quote a
secret's value. UPS-shaped protocol errors are not exceptions: they are
answers, built by ``upsproxy.envelopes``.
"""

from __future__ import annotations

__all__ = ["CassetteError", "ConfigError", "FaultRuleError", "FileProblem", "LeakError",
           "StartupError", "StateFileError", "UnrecordableError", "UpsproxyError"]


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


class LeakError(FileProblem):
    """The leak guard found a secret in a cassette about to be written; nothing was
    written. Names the secret's kind, its encoding and where it was, never its value."""

    def __init__(self, path: str, kind: str, encoding: str, where: str,
                 line: int | None = None) -> None:
        self.kind = kind
        self.encoding = encoding
        self.where = where
        super().__init__(path, f"leak guard: a {kind} value ({encoding}) would be written at "
                         f"{where}; nothing was written", line)


class UnrecordableError(FileProblem):
    """One exchange could not be redacted safely (a JSON body nested deeper than the
    redactor can walk): it is left out, the file keeps its last good content and
    later exchanges still record."""


class StartupError(UpsproxyError):
    """mitmproxy could not bring up the listeners."""


class StateFileError(FileProblem):
    """A ``--state`` file that upsproxy will not use: not SQLite, damaged, or not its own."""
