"""The compiled cassette cache: big cassettes parse once, and the cache is never trusted."""

import json

import pytest

from upsproxy import cassette_cache
from upsproxy.cassette import parse_cassette
from upsproxy.errors import CassetteError

HEAD = "version: 1\nmeta: {how: synthesized}\ninteractions:\n"
ONE = """  - kind: api
    request: {method: GET, url: "https://wwwcie.ups.com/api/track/v1/details/1Z%06d"}
    response: {status: 200, body: {json: {n: %d, who: "<<personal:%d>>"}}}
"""


def big_cassette(n: int = 3000) -> str:
    text = HEAD + "".join(ONE % (i, i, i + 1) for i in range(n))
    assert len(text) >= cassette_cache.MIN_CACHED_BYTES
    return text


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UPSPROXY_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def entries(cache):
    return sorted(cache.glob("*.json")) if cache.exists() else []


def test_a_big_cassette_is_cached_and_the_cache_gives_the_same_cassette(cache):
    text = big_cassette()
    first = parse_cassette(text, "big.yaml")
    assert len(entries(cache)) == 1
    second = parse_cassette(text, "big.yaml")
    assert second == first and len(second.interactions) == 3000


def test_an_edit_makes_a_new_entry(cache):
    text = big_cassette()
    parse_cassette(text, "big.yaml")
    parse_cassette(text.replace("1Z000001", "1Z999999"), "big.yaml")
    assert len(entries(cache)) == 2


def test_small_cassettes_and_a_disabled_cache_write_nothing(cache, monkeypatch):
    parse_cassette(HEAD + ONE % (1, 1, 1), "small.yaml")
    assert entries(cache) == []
    monkeypatch.setenv("UPSPROXY_CACHE_DIR", "off")
    parse_cassette(big_cassette(), "big.yaml")
    assert entries(cache) == []


def test_a_cached_entry_is_validated_like_yaml(cache):
    text = big_cassette()
    parse_cassette(text, "big.yaml")
    [entry] = entries(cache)
    data = json.loads(entry.read_text())
    data["interactions"][5]["response"]["body"]["json"]["who"] = "<<tokn:1>>"
    entry.write_text(json.dumps(data))
    with pytest.raises(CassetteError, match="bad placeholder"):
        parse_cassette(text, "big.yaml")


def test_a_torn_entry_falls_back_to_the_yaml(cache):
    text = big_cassette()
    parse_cassette(text, "big.yaml")
    [entry] = entries(cache)
    entry.write_bytes(entry.read_bytes()[:1000])
    assert len(parse_cassette(text, "big.yaml").interactions) == 3000


def test_data_json_cannot_hold_exactly_is_not_cached(cache):
    text = big_cassette().replace("meta: {how: synthesized}",
                                  "meta: {how: synthesized, recorded_at: 2024-06-01}")
    assert parse_cassette(text, "big.yaml").meta["recorded_at"].year == 2024
    assert entries(cache) == []
