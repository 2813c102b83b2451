"""Where the sandbox keeps its live codes and tokens.

``StateStore`` is the interface; ``MemoryStore`` the default. A persistent
store (SQLite) and a shared one (for several replicas) implement the same
methods. The two operations that must be exactly-once, code redemption and
refresh rotation, are single atomic store calls: they check the grant and
consume it under one lock, so of N concurrent requests exactly one wins.

Spent codes and rotated refresh tokens stay as tombstones until they would
have expired, so the log can say "reused" rather than "unknown".
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

__all__ = [
    "AccessGrant",
    "CodeGrant",
    "MemoryStore",
    "PendingLogin",
    "RefreshGrant",
    "Snapshot",
    "StateStore",
    "fingerprint",
]

SNAPSHOT_LIMIT = 200
"""Live grants listed per kind by ``snapshot`` (the counts are always complete)."""


def fingerprint(value: str) -> str:
    """A short, stable name for a secret that does not reveal it: the first 12
    hex digits of its SHA-256 and its length (an app can compute the same)."""
    return f"sha256:{hashlib.sha256(value.encode()).hexdigest()[:12]} len={len(value)}"



@dataclass(frozen=True)
class PendingLogin:
    """An authorize request waiting for the user at the login page."""

    client_id: str
    redirect_uri: str
    state: str | None
    scope: str | None
    challenge: str | None
    expires_ms: int


@dataclass(frozen=True)
class CodeGrant:
    client_id: str
    redirect_uri: str
    challenge: str | None
    scope: str | None
    expires_ms: int


@dataclass(frozen=True)
class RefreshGrant:
    client_id: str
    scope: str | None
    issued_ms: int
    expires_ms: int
    refresh_count: int


@dataclass(frozen=True)
class AccessGrant:
    client_id: str
    scope: str | None
    expires_ms: int


@dataclass
class Snapshot:
    """Live (unspent, unexpired) grants, keyed by ``fingerprint``, never by value."""

    codes: list[tuple[str, CodeGrant]] = field(default_factory=list)
    access: list[tuple[str, AccessGrant]] = field(default_factory=list)
    refresh: list[tuple[str, RefreshGrant]] = field(default_factory=list)
    logins: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    """Rows of each kind, including spent and expired ones not yet swept."""


G = TypeVar("G", CodeGrant, RefreshGrant)
Check = Callable[[G], str | None]
"""Returns None when the grant may be consumed, else the name of the failure."""


class StateStore(Protocol):
    def put_login(self, txn: str, login: PendingLogin, now_ms: int) -> None: ...
    def get_login(self, txn: str, now_ms: int) -> PendingLogin | None: ...
    def take_login(self, txn: str, now_ms: int) -> PendingLogin | None: ...
    def put_code(self, code: str, grant: CodeGrant, now_ms: int) -> None: ...
    def redeem_code(
        self, code: str, now_ms: int, check: Check[CodeGrant]
    ) -> tuple[CodeGrant | None, str | None]: ...
    def put_tokens(
        self, access: str, access_grant: AccessGrant, refresh: str, refresh_grant: RefreshGrant
    ) -> None: ...
    def rotate_refresh(
        self, token: str, now_ms: int, check: Check[RefreshGrant]
    ) -> tuple[RefreshGrant | None, str | None]: ...
    def get_access(self, token: str, now_ms: int) -> AccessGrant | None: ...
    def reset(self) -> None: ...
    def counts(self) -> dict[str, int]: ...
    def snapshot(self, now_ms: int, limit: int = SNAPSHOT_LIMIT) -> Snapshot: ...
    def clock_offset(self) -> int | None:
        """The sandbox clock's saved offset (ms), for a store that outlives the process."""
        ...
    def save_clock_offset(self, offset_ms: int) -> None: ...
    def close(self) -> None: ...


class _Spent(Generic[G]):
    """A tombstone: the grant was consumed and must not be honoured again."""

    __slots__ = ("grant",)

    def __init__(self, grant: G) -> None:
        self.grant: G = grant


class MemoryStore:
    """Dictionaries behind one lock; expired entries are swept as new ones arrive."""

    SWEEP_EVERY = 1024
    MAX_PENDING_LOGINS = 10_000
    """Sign-ins nobody finished: an authorize flood must not grow memory without
    bound, so past this many the oldest is forgotten (its page says "expired")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logins: dict[str, PendingLogin] = {}
        self._codes: dict[str, CodeGrant | _Spent[CodeGrant]] = {}
        self._refresh: dict[str, RefreshGrant | _Spent[RefreshGrant]] = {}
        self._access: dict[str, AccessGrant] = {}
        self._puts = 0
        self._last_now_ms = 0
        self._clock_offset: int | None = None

    # -- login transactions -------------------------------------------------
    def put_login(self, txn: str, login: PendingLogin, now_ms: int) -> None:
        with self._lock:
            self._logins[txn] = login
            if len(self._logins) > self.MAX_PENDING_LOGINS:
                del self._logins[next(iter(self._logins))]  # dicts keep insertion order
            self._count_put(now_ms)

    def get_login(self, txn: str, now_ms: int) -> PendingLogin | None:
        login = self._logins.get(txn)
        return login if login is not None and login.expires_ms > now_ms else None

    def take_login(self, txn: str, now_ms: int) -> PendingLogin | None:
        with self._lock:
            login = self._logins.pop(txn, None)
        return login if login is not None and login.expires_ms > now_ms else None

    # -- codes ----------------------------------------------------------------
    def put_code(self, code: str, grant: CodeGrant, now_ms: int) -> None:
        with self._lock:
            self._codes[code] = grant
            self._count_put(now_ms)

    def redeem_code(
        self, code: str, now_ms: int, check: Check[CodeGrant]
    ) -> tuple[CodeGrant | None, str | None]:
        with self._lock:
            self._last_now_ms = max(self._last_now_ms, now_ms)
            entry = self._codes.get(code)
            if entry is None:
                return None, "unknown"
            if isinstance(entry, _Spent):
                return None, "reused"
            if entry.expires_ms <= now_ms:
                return None, "expired"
            failure = check(entry)
            if failure is not None:
                return None, failure
            self._codes[code] = _Spent(entry)
            return entry, None

    # -- tokens ---------------------------------------------------------------
    def put_tokens(
        self, access: str, access_grant: AccessGrant, refresh: str, refresh_grant: RefreshGrant
    ) -> None:
        with self._lock:
            self._access[access] = access_grant
            self._refresh[refresh] = refresh_grant
            self._count_put(refresh_grant.issued_ms)

    def rotate_refresh(
        self, token: str, now_ms: int, check: Check[RefreshGrant]
    ) -> tuple[RefreshGrant | None, str | None]:
        with self._lock:
            self._last_now_ms = max(self._last_now_ms, now_ms)
            entry = self._refresh.get(token)
            if entry is None:
                return None, "unknown"
            if isinstance(entry, _Spent):
                return None, "rotated"
            if entry.expires_ms <= now_ms:
                return None, "expired"
            failure = check(entry)
            if failure is not None:
                return None, failure
            self._refresh[token] = _Spent(entry)
            return entry, None

    def get_access(self, token: str, now_ms: int) -> AccessGrant | None:
        grant = self._access.get(token)
        return grant if grant is not None and grant.expires_ms > now_ms else None

    def reset(self) -> None:
        with self._lock:
            self._logins.clear()
            self._codes.clear()
            self._refresh.clear()
            self._access.clear()

    def counts(self) -> dict[str, int]:
        return {
            "logins": len(self._logins),
            "codes": len(self._codes),
            "refresh_tokens": len(self._refresh),
            "access_tokens": len(self._access),
        }

    def snapshot(self, now_ms: int, limit: int = SNAPSHOT_LIMIT) -> Snapshot:
        with self._lock:
            codes = [(fingerprint(k), v) for k, v in self._codes.items()
                     if not isinstance(v, _Spent) and v.expires_ms > now_ms]
            refresh = [(fingerprint(k), v) for k, v in self._refresh.items()
                       if not isinstance(v, _Spent) and v.expires_ms > now_ms]
            access = [(fingerprint(k), v) for k, v in self._access.items()
                      if v.expires_ms > now_ms]
            logins = sum(1 for v in self._logins.values() if v.expires_ms > now_ms)
            counts = self.counts()
        return Snapshot(codes[-limit:], access[-limit:], refresh[-limit:], logins, counts)

    def clock_offset(self) -> int | None:
        return self._clock_offset

    def save_clock_offset(self, offset_ms: int) -> None:
        self._clock_offset = offset_ms

    def close(self) -> None:
        """Nothing to release; the protocol has it for stores with files."""

    # -- housekeeping -----------------------------------------------------------
    def _count_put(self, now_ms: int) -> None:
        """Every SWEEP_EVERY writes, drop expired sign-ins and access tokens, and
        codes and refresh tokens (or their tombstones) that expired a day before
        the sandbox's latest "now" (lock held): for that day a reuse is still
        logged as "reused" rather than "unknown"."""
        self._last_now_ms = max(self._last_now_ms, now_ms)
        self._puts += 1
        if self._puts % self.SWEEP_EVERY:
            return
        now = self._last_now_ms
        for table in (self._logins, self._access):
            for key in [k for k, v in table.items() if v.expires_ms <= now]:
                del table[key]
        horizon = now - 86_400_000
        for spent_table in (self._codes, self._refresh):
            for key in [k for k, v in spent_table.items() if _expiry(v) < horizon]:
                del spent_table[key]


def _expiry(entry: CodeGrant | RefreshGrant | _Spent[CodeGrant] | _Spent[RefreshGrant]) -> int:
    return entry.grant.expires_ms if isinstance(entry, _Spent) else entry.expires_ms
