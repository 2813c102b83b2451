"""The SQLite state store: same contract as memory, plus files, processes, restarts."""

import multiprocessing
import sqlite3
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from upsproxy.errors import StateFileError
from upsproxy.store import AccessGrant, CodeGrant, PendingLogin, RefreshGrant
from upsproxy.store_sqlite import SqliteStore

FAR = 10**13


def code_grant(expires=FAR, challenge=None):
    return CodeGrant("C", "https://cb", challenge, "read", expires)


def test_grants_survive_reopening_and_are_consumed_once(tmp_path):
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    store.put_code("c", code_grant(challenge="x" * 43), 0)
    store.put_tokens("a", AccessGrant("C", "read", FAR), "r", RefreshGrant("C", "read", 5, FAR, 2))
    store.put_login("t", PendingLogin("C", "https://cb", "s", None, None, FAR), 0)
    store.save_clock_offset(3_600_000)
    store.close()
    store = SqliteStore(path)
    assert store.clock_offset() == 3_600_000
    assert store.get_login("t", 0) == PendingLogin("C", "https://cb", "s", None, None, FAR)
    assert store.take_login("t", 0) is not None and store.take_login("t", 0) is None
    assert store.get_access("a", 0) == AccessGrant("C", "read", FAR)
    assert store.redeem_code("c", 0, lambda g: None) == (code_grant(challenge="x" * 43), None)
    assert store.redeem_code("c", 0, lambda g: None) == (None, "reused")
    assert store.rotate_refresh("r", 0, lambda g: None) == (RefreshGrant("C", "read", 5, FAR, 2),
                                                            None)
    assert store.rotate_refresh("r", 0, lambda g: None) == (None, "rotated")
    assert oct(stat.S_IMODE(path.stat().st_mode)) == "0o600"


def test_failed_checks_expiry_and_unknown_keep_the_memory_semantics(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    store.put_code("c", code_grant(expires=100), 0)
    assert store.redeem_code("c", 0, lambda g: "client_mismatch") == (None, "client_mismatch")
    assert store.redeem_code("c", 100, lambda g: None) == (None, "expired")
    assert store.redeem_code("nope", 0, lambda g: None) == (None, "unknown")
    store.put_tokens("a", AccessGrant("C", None, 100), "r", RefreshGrant("C", None, 0, 100, 0))
    assert store.get_access("a", 99) is not None and store.get_access("a", 100) is None
    assert store.rotate_refresh("r", 100, lambda g: None) == (None, "expired")


def test_snapshot_shows_live_grants_by_fingerprint_only(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    store.put_code("secret-code-value", code_grant(), 0)
    store.put_code("spent", code_grant(), 0)
    store.redeem_code("spent", 0, lambda g: None)
    store.put_tokens("access-value", AccessGrant("C", None, FAR), "refresh-value",
                     RefreshGrant("C", None, 0, FAR, 0))
    snap = store.snapshot(0)
    assert len(snap.codes) == 1 and len(snap.access) == 1 and len(snap.refresh) == 1
    assert snap.counts == {"logins": 0, "codes": 2, "refresh_tokens": 1, "access_tokens": 1}
    text = repr(snap)
    assert "secret-code-value" not in text and "access-value" not in text
    assert snap.codes[0][0].startswith("sha256:") and snap.codes[0][0].endswith("len=17")
    store.reset()
    assert store.counts() == {"logins": 0, "codes": 0, "refresh_tokens": 0, "access_tokens": 0}


def test_twenty_threads_redeem_one_code_once(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    store.put_code("c", code_grant(), 0)
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda _: store.redeem_code("c", 0, lambda g: None), range(20)))
    assert sum(1 for grant, _ in results if grant is not None) == 1
    assert {failure for grant, failure in results if grant is None} == {"reused"}


def _race(path, kind, barrier, out):
    """A separate process with its own connection: redeem or rotate once."""
    store = SqliteStore(path)
    barrier.wait(timeout=30)
    if kind == "code":
        grant, _ = store.redeem_code("c", 0, lambda g: None)
    else:
        grant, _ = store.rotate_refresh("r", 0, lambda g: None)
    out.put(grant is not None)
    store.close()


@pytest.mark.parametrize("kind", ["code", "refresh"])
def test_processes_on_one_file_consume_a_grant_once(tmp_path, kind):
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    store.put_code("c", code_grant(), 0)
    store.put_tokens("a", AccessGrant("C", None, FAR), "r", RefreshGrant("C", None, 0, FAR, 0))
    store.close()
    ctx = multiprocessing.get_context("spawn")
    workers = 6
    barrier, out = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(path, kind, barrier, out)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    wins = [out.get(timeout=60) for _ in range(workers)]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    assert wins.count(True) == 1


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("my shopping list\n" * 100)
    with pytest.raises(StateFileError, match=r"notes\.txt: is not an upsproxy state file "
                                             r"\(not a SQLite database\)"):
        SqliteStore(path)
    assert path.read_text() == "my shopping list\n" * 100


def test_a_foreign_sqlite_database_is_refused_untouched(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
        db.execute("INSERT INTO users VALUES ('ann')")
    db.close()
    before = path.read_bytes()
    with pytest.raises(StateFileError, match=r"app\.db: is a SQLite database but not an upsproxy"):
        SqliteStore(path)
    assert path.read_bytes() == before


def test_another_format_version_is_refused(tmp_path):
    path = tmp_path / "s.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'version'")
    db.close()
    with pytest.raises(StateFileError, match="format version '99'; this upsproxy reads version 1"):
        SqliteStore(path)


@pytest.mark.parametrize("page", [1, 2, 3])
def test_a_damaged_state_file_is_refused(tmp_path, page):
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    for n in range(300):
        store.put_code(f"code{n}", code_grant(), 0)
    store.close()
    data = bytearray(path.read_bytes())
    assert len(data) > 8192
    data[4096 * page:4096 * (page + 1)] = b"\xff" * 4096  # a page of garbage
    path.write_bytes(bytes(data))
    with pytest.raises(StateFileError, match=r"s\.db: is damaged"):
        SqliteStore(path)


def test_a_directory_or_a_missing_parent_is_a_clear_error(tmp_path):
    with pytest.raises(StateFileError, match="is a directory"):
        SqliteStore(tmp_path)
    with pytest.raises(StateFileError, match="does not exist"):
        SqliteStore(tmp_path / "nope" / "s.db")
