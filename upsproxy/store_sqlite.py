"""A state store in one SQLite file: codes and tokens survive a restart.

``upsproxy replay --state PATH`` uses it, so an app that saved a refresh token
yesterday can still use it after the sandbox restarts (once: then it rotates).
It implements ``store.StateStore`` like ``MemoryStore``; the differences:

- exactly-once across threads *and processes*: a grant is consumed by one
  ``UPDATE ... SET used = 1 WHERE key = ? AND used = 0``; SQLite serializes
  writers, so of N racers exactly one sees ``rowcount == 1``. The check of the
  grant (client, redirect_uri, PKCE) runs before, on the row read; a failed
  check consumes nothing, as in memory;
- the file is checked when opened: a file that is not SQLite, a damaged one,
  or a SQLite database that is not an upsproxy state file (no ``meta`` table
  naming the format and version) raises ``StateFileError`` naming the file.
  Nothing is ever overwritten or silently started afresh;
- WAL journal: readers do not block the writer; ``synchronous=NORMAL`` keeps
  every committed grant through a crash of the process (not of the machine);
- the file is created 0600 (it holds live tokens: that is its point) and the
  sandbox clock's offset is kept in ``meta`` too.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from upsproxy.errors import StateFileError
from upsproxy.store import (
    SNAPSHOT_LIMIT,
    AccessGrant,
    Check,
    CodeGrant,
    PendingLogin,
    RefreshGrant,
    Snapshot,
    fingerprint,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "SqliteStore"]

FORMAT = "upsproxy-state"
FORMAT_VERSION = 1
SWEEP_EVERY = 1024
_DAY_MS = 86_400_000

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE logins (txn TEXT PRIMARY KEY, client_id TEXT NOT NULL, redirect_uri TEXT NOT NULL,
    state TEXT, scope TEXT, challenge TEXT, expires_ms INTEGER NOT NULL);
CREATE TABLE codes (code TEXT PRIMARY KEY, client_id TEXT NOT NULL, redirect_uri TEXT NOT NULL,
    challenge TEXT, scope TEXT, expires_ms INTEGER NOT NULL, used INTEGER NOT NULL DEFAULT 0);
CREATE TABLE refresh (token TEXT PRIMARY KEY, client_id TEXT NOT NULL, scope TEXT,
    issued_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, refresh_count INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0);
CREATE TABLE access (token TEXT PRIMARY KEY, client_id TEXT NOT NULL, scope TEXT,
    expires_ms INTEGER NOT NULL);
"""
_TABLES = {"meta", "logins", "codes", "refresh", "access"}


class SqliteStore:
    """Codes, tokens, logins and the clock offset in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._puts = 0
        self._db = self._open()

    # -- opening and checking the file ------------------------------------------------
    def _problem(self, reason: str) -> StateFileError:
        return StateFileError(str(self.path), reason)

    def _open(self) -> sqlite3.Connection:
        path = self.path
        if path.is_dir():
            raise self._problem("is a directory; --state needs a file path")
        if not path.parent.is_dir():
            raise self._problem(f"its directory {path.parent} does not exist")
        new = not path.exists() or path.stat().st_size == 0
        if new:
            try:  # created 0600 before SQLite opens it; WAL files copy its mode
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            except OSError as exc:
                raise self._problem(f"cannot be created: {exc.strerror}") from None
        try:
            db = sqlite3.connect(str(path), timeout=10.0, isolation_level=None,
                                 check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._problem(f"cannot be opened as SQLite ({exc})") from None
        try:
            self._check_or_create(db, new)
        except BaseException:
            db.close()
            raise
        return db

    def _check_or_create(self, db: sqlite3.Connection, new: bool) -> None:
        try:
            tables = {row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError:
            raise self._problem("is not an upsproxy state file (not a SQLite database); "
                                "give --state a new path or the file upsproxy made") from None
        if new and not tables:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("BEGIN IMMEDIATE")  # another process may be creating it too
            try:
                if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'").fetchone():
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        db.execute(statement)
                    db.execute("INSERT INTO meta VALUES ('format', ?), ('version', ?)",
                               (FORMAT, str(FORMAT_VERSION)))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            tables = {row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        meta: dict[str, str] = {}
        if "meta" in tables:
            try:
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            except sqlite3.DatabaseError as exc:
                raise self._problem(f"is damaged: its meta table cannot be read ({exc}); "
                                    "upsproxy leaves it untouched") from None
        if meta.get("format") != FORMAT:
            raise self._problem("is a SQLite database but not an upsproxy state file "
                                "(no upsproxy format mark); upsproxy leaves it untouched: "
                                "give --state another path")
        if meta.get("version") != str(FORMAT_VERSION):
            raise self._problem(f"is an upsproxy state file of format version "
                                f"{meta.get('version')!r}; this upsproxy reads version "
                                f"{FORMAT_VERSION}")
        if missing := _TABLES - tables:
            raise self._problem("is an upsproxy state file with tables missing "
                                f"({', '.join(sorted(missing))}); it is damaged")
        try:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise self._problem(f"is damaged ({exc})") from None
        if verdict != "ok":
            raise self._problem("is damaged (SQLite quick_check: "
                                f"{' '.join(str(verdict).split())[:300]})")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=10000")

    # -- small helpers -------------------------------------------------------------------
    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def _one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._db.execute(sql, args).fetchone()
            return row

    def _count_put(self, now_ms: int) -> None:
        """Every SWEEP_EVERY writes, drop expired sign-ins and access tokens, and
        codes and refresh tokens (spent or not) that expired a day before ``now``:
        for that day a reuse is still logged as "reused", as in MemoryStore."""
        self._puts += 1
        if self._puts % SWEEP_EVERY:
            return
        with self._lock:
            for table, horizon in (("logins", now_ms), ("access", now_ms),
                                   ("codes", now_ms - _DAY_MS), ("refresh", now_ms - _DAY_MS)):
                self._db.execute(f"DELETE FROM {table} WHERE expires_ms <= ?",  # noqa: S608
                                 (horizon,))

    # -- login transactions ----------------------------------------------------------------
    def put_login(self, txn: str, login: PendingLogin, now_ms: int) -> None:
        self._run("INSERT OR REPLACE INTO logins VALUES (?, ?, ?, ?, ?, ?, ?)",
                  (txn, login.client_id, login.redirect_uri, login.state, login.scope,
                   login.challenge, login.expires_ms))
        self._count_put(now_ms)

    def get_login(self, txn: str, now_ms: int) -> PendingLogin | None:
        row = self._one("SELECT client_id, redirect_uri, state, scope, challenge, expires_ms "
                        "FROM logins WHERE txn = ? AND expires_ms > ?", (txn, now_ms))
        return PendingLogin(*row) if row is not None else None

    def take_login(self, txn: str, now_ms: int) -> PendingLogin | None:
        with self._lock:
            row = self._db.execute(
                "DELETE FROM logins WHERE txn = ? RETURNING client_id, redirect_uri, state, "
                "scope, challenge, expires_ms", (txn,)).fetchone()
        if row is None or row[5] <= now_ms:
            return None
        return PendingLogin(*row)

    # -- codes -----------------------------------------------------------------------------
    def put_code(self, code: str, grant: CodeGrant, now_ms: int) -> None:
        self._run("INSERT OR REPLACE INTO codes VALUES (?, ?, ?, ?, ?, ?, 0)",
                  (code, grant.client_id, grant.redirect_uri, grant.challenge, grant.scope,
                   grant.expires_ms))
        self._count_put(now_ms)

    def redeem_code(self, code: str, now_ms: int,
                    check: Check[CodeGrant]) -> tuple[CodeGrant | None, str | None]:
        row = self._one("SELECT client_id, redirect_uri, challenge, scope, expires_ms, used "
                        "FROM codes WHERE code = ?", (code,))
        if row is None:
            return None, "unknown"
        grant = CodeGrant(*row[:5])
        if row[5]:
            return None, "reused"
        if grant.expires_ms <= now_ms:
            return None, "expired"
        failure = check(grant)
        if failure is not None:
            return None, failure
        won = self._run("UPDATE codes SET used = 1 WHERE code = ? AND used = 0", (code,))
        return (grant, None) if won.rowcount == 1 else (None, "reused")

    # -- tokens ----------------------------------------------------------------------------
    def put_tokens(self, access: str, access_grant: AccessGrant, refresh: str,
                   refresh_grant: RefreshGrant) -> None:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("INSERT OR REPLACE INTO access VALUES (?, ?, ?, ?)",
                           (access, access_grant.client_id, access_grant.scope,
                            access_grant.expires_ms))
                db.execute("INSERT OR REPLACE INTO refresh VALUES (?, ?, ?, ?, ?, ?, 0)",
                           (refresh, refresh_grant.client_id, refresh_grant.scope,
                            refresh_grant.issued_ms, refresh_grant.expires_ms,
                            refresh_grant.refresh_count))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self._count_put(refresh_grant.issued_ms)

    def rotate_refresh(self, token: str, now_ms: int,
                       check: Check[RefreshGrant]) -> tuple[RefreshGrant | None, str | None]:
        row = self._one("SELECT client_id, scope, issued_ms, expires_ms, refresh_count, used "
                        "FROM refresh WHERE token = ?", (token,))
        if row is None:
            return None, "unknown"
        grant = RefreshGrant(*row[:5])
        if row[5]:
            return None, "rotated"
        if grant.expires_ms <= now_ms:
            return None, "expired"
        failure = check(grant)
        if failure is not None:
            return None, failure
        won = self._run("UPDATE refresh SET used = 1 WHERE token = ? AND used = 0", (token,))
        return (grant, None) if won.rowcount == 1 else (None, "rotated")

    def get_access(self, token: str, now_ms: int) -> AccessGrant | None:
        row = self._one("SELECT client_id, scope, expires_ms FROM access "
                        "WHERE token = ? AND expires_ms > ?", (token, now_ms))
        return AccessGrant(*row) if row is not None else None

    # -- control API ----------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            for table in ("logins", "codes", "refresh", "access"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            db.execute("COMMIT")

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {name: int(self._db.execute(
                f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
                for name, table in (("logins", "logins"), ("codes", "codes"),
                                    ("refresh_tokens", "refresh"),
                                    ("access_tokens", "access"))}

    def snapshot(self, now_ms: int, limit: int = SNAPSHOT_LIMIT) -> Snapshot:
        with self._lock:
            db = self._db
            codes = [(fingerprint(r[0]), CodeGrant(*r[1:])) for r in db.execute(
                "SELECT code, client_id, redirect_uri, challenge, scope, expires_ms FROM codes "
                "WHERE used = 0 AND expires_ms > ? ORDER BY rowid DESC LIMIT ?",
                (now_ms, limit))]
            access = [(fingerprint(r[0]), AccessGrant(*r[1:])) for r in db.execute(
                "SELECT token, client_id, scope, expires_ms FROM access WHERE expires_ms > ? "
                "ORDER BY rowid DESC LIMIT ?", (now_ms, limit))]
            refresh = [(fingerprint(r[0]), RefreshGrant(*r[1:])) for r in db.execute(
                "SELECT token, client_id, scope, issued_ms, expires_ms, refresh_count "
                "FROM refresh WHERE used = 0 AND expires_ms > ? ORDER BY rowid DESC LIMIT ?",
                (now_ms, limit))]
            logins = int(db.execute("SELECT COUNT(*) FROM logins WHERE expires_ms > ?",
                                    (now_ms,)).fetchone()[0])
        codes.reverse()
        access.reverse()
        refresh.reverse()
        return Snapshot(codes, access, refresh, logins, self.counts())

    def clock_offset(self) -> int | None:
        row = self._one("SELECT value FROM meta WHERE key = 'clock_offset_ms'", ())
        try:
            return int(row[0]) if row is not None else None
        except ValueError:
            return None

    def save_clock_offset(self, offset_ms: int) -> None:
        self._run("INSERT OR REPLACE INTO meta VALUES ('clock_offset_ms', ?)",
                  (str(int(offset_ms)),))

    def close(self) -> None:
        with self._lock:
            self._db.close()
