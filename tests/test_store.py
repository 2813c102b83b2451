"""Exactly-once redemption and rotation under real threads."""

from concurrent.futures import ThreadPoolExecutor

from upsproxy.store import AccessGrant, CodeGrant, MemoryStore, RefreshGrant

FAR = 10**13


def test_one_code_redeemed_by_20_threads_wins_once():
    store = MemoryStore()
    store.put_code("c", CodeGrant("C", "https://cb", None, None, FAR), 0)
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda _: store.redeem_code("c", 0, lambda g: None), range(20)))
    assert sum(1 for grant, _ in results if grant is not None) == 1
    assert {failure for grant, failure in results if grant is None} == {"reused"}


def test_one_refresh_token_rotated_by_20_threads_wins_once():
    store = MemoryStore()
    store.put_tokens("a", AccessGrant("C", None, FAR), "r", RefreshGrant("C", None, 0, FAR, 0))
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda _: store.rotate_refresh("r", 0, lambda g: None), range(20)))
    assert sum(1 for grant, _ in results if grant is not None) == 1


def test_failed_check_keeps_the_grant():
    store = MemoryStore()
    store.put_code("c", CodeGrant("C", "https://cb", None, None, FAR), 0)
    assert store.redeem_code("c", 0, lambda g: "nope") == (None, "nope")
    grant, failure = store.redeem_code("c", 0, lambda g: None)
    assert grant is not None and failure is None


def test_expiry_and_unknown():
    store = MemoryStore()
    store.put_code("c", CodeGrant("C", "https://cb", None, None, 100), 0)
    assert store.redeem_code("c", 100, lambda g: None) == (None, "expired")
    assert store.redeem_code("x", 0, lambda g: None) == (None, "unknown")
    store.put_tokens("a", AccessGrant("C", None, 100), "r", RefreshGrant("C", None, 0, 100, 0))
    assert store.get_access("a", 99) is not None and store.get_access("a", 100) is None


def test_a_flood_of_unredeemed_logins_and_codes_is_swept():
    store = MemoryStore()
    day = 86_400_000
    for n in range(MemoryStore.SWEEP_EVERY):
        store.put_code(f"old{n}", CodeGrant("C", "https://cb", None, None, 600_000), 0)
    assert store.counts()["codes"] == MemoryStore.SWEEP_EVERY
    # Only puts happen (nobody redeems); the clock two days later is enough to sweep.
    for n in range(MemoryStore.SWEEP_EVERY):
        store.put_code(f"new{n}", CodeGrant("C", "https://cb", None, None, 3 * day), 2 * day)
    assert store.counts()["codes"] == MemoryStore.SWEEP_EVERY


def _login(expires_ms):
    from upsproxy.store import PendingLogin

    return PendingLogin("C", "https://cb", "s", None, None, expires_ms)


def test_expired_sign_ins_are_swept_without_a_day_of_grace():
    store = MemoryStore()
    for n in range(MemoryStore.SWEEP_EVERY - 1):
        store.put_login(f"t{n}", _login(600_000), 0)
    # Two hours later: every earlier sign-in (10 minutes) is dead and goes at the sweep.
    store.put_login("late", _login(7_800_000), 7_200_000)
    assert store.counts()["logins"] == 1
    assert store.get_login("late", 7_200_000) is not None


def test_unfinished_sign_ins_are_capped_oldest_first(monkeypatch):
    monkeypatch.setattr(MemoryStore, "MAX_PENDING_LOGINS", 50)
    store = MemoryStore()
    for n in range(120):
        store.put_login(f"t{n}", _login(FAR), 0)
    assert store.counts()["logins"] == 50
    assert store.get_login("t0", 0) is None and store.get_login("t119", 0) is not None


def test_snapshot_lists_live_grants_by_fingerprint():
    from upsproxy.store import fingerprint

    store = MemoryStore()
    store.put_code("live", CodeGrant("C", "https://cb", None, None, FAR), 0)
    store.put_code("spent", CodeGrant("C", "https://cb", None, None, FAR), 0)
    store.redeem_code("spent", 0, lambda g: None)
    store.put_tokens("a", AccessGrant("C", None, 100), "r", RefreshGrant("C", None, 0, FAR, 0))
    snap = store.snapshot(100)
    assert [key for key, _ in snap.codes] == [fingerprint("live")]
    assert snap.access == [] and len(snap.refresh) == 1  # the access token expired at 100
    assert "live" not in fingerprint("live") and fingerprint("live").endswith("len=4")
