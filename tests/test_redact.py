"""Unit tests of upsproxy.redact: placeholders by structure, identity everywhere."""

import base64
import os
import stat

import pytest

from upsproxy import fingerprint, keyfiles
from upsproxy.errors import StartupError
from upsproxy.fingerprint import FINGERPRINT_HEX, KEY_FILE, Fingerprinter, load_recording_key
from upsproxy.redact import Redactor, encodings
from upsproxy.redact_rules import RedactRules, parse_rules


def test_the_same_value_is_one_placeholder_in_every_place():
    red = Redactor()
    url = red.url("https://x.test/cb?code=abc%2B%2F%3D123&state=s%20t+12")
    assert url == "https://x.test/cb?code=<<code:1>>&state=<<state:1>>"
    assert red.form({"code": "abc+/=123"}) == {"code": "<<code:1>>"}
    assert red.substitute("echo: s t 12 and abc%2b%2f%3d123") == "echo: <<state:1>> and <<code:1>>"


def test_other_query_parameters_keep_their_spelling():
    red = Redactor()
    url = "https://u.test/a?redirect_uri=https%3A%2F%2Fapp%2Fcb&scope=read&client_id=C1"
    assert red.url(url) == ("https://u.test/a?redirect_uri=https%3A%2F%2Fapp%2Fcb&scope=read"
                            "&client_id=<<client_id:1>>")
    assert red.url("https://u.test/cb#code=XYZ123&state=q") == \
        "https://u.test/cb#code=<<code:1>>&state=<<state:1>>"


def test_headers_are_case_insensitive_and_basic_is_decoded():
    red = Redactor()
    token = base64.b64encode(b"MYCLIENT:my secret").decode()
    out = red.headers([("AUTHORIZATION", f"Basic {token}"), ("Cookie", "a=1; b=two"),
                       ("set-cookie", "sid=xyz789; Path=/; HttpOnly"),
                       ("Set-Cookie", "other=abc; Secure"), ("transId", "t-1")])
    assert out == {"authorization": "Basic <<basic:1>>", "cookie": "a=<<cookie:1>>; b=<<cookie:2>>",
                   "set-cookie": "sid=<<cookie:3>>; Path=/; HttpOnly, other=<<cookie:4>>; Secure",
                   "transid": "<<txn:1>>"}
    assert red.secrets()["MYCLIENT"] == "client_id"
    assert red.secrets()["my secret"] == "client_secret"
    assert red.header("authorization", "Bearer tok123456") == "Bearer <<access_token:1>>"
    assert red.header("accountnumber", "A1B2C3") == "<<personal:1>>"
    assert red.header("content-type", "application/json") == "application/json"


def test_json_oauth_members_and_personal_fields():
    red = Redactor()
    body = {"access_token": "AT-123456", "code": "10400", "status": "approved",
            "shipTo": {"Name": "Jane", "Phone": {"Number": "555"}, "AddressLine": ["1 Main"],
                       "city": "X"},
            "note": "mail jane@example.com please"}
    out = red.json(body, oauth=True)
    assert out == {"access_token": "<<access_token:1>>", "code": "10400", "status": "approved",
                   "shipTo": {"Name": "<<personal:1>>", "Phone": {"Number": "<<personal:2>>"},
                              "AddressLine": ["<<personal:3>>"], "city": "X"},
                   "note": "mail <<personal:4>> please"}
    # In an API body, access_token is just a field name: only OAuth answers use it.
    assert Redactor().json({"access_token": "x"}, oauth=False) == {"access_token": "x"}


def test_login_forms_redact_every_unknown_field():
    red = Redactor()
    assert red.form({"loginId": "jroe", "pw": "hunter2", "decision": "approve"},
                    login=True) == {"loginId": "<<personal:1>>", "pw": "<<personal:2>>",
                                    "decision": "approve"}


def test_rules_from_the_config_extend_and_relax():
    rules = parse_rules({"fields": ["ref_code"], "keep": ["Name"], "paths": ["a[*].b"],
                         "patterns": [r"\bID-\d+\b"]})
    red = Redactor(rules)
    out = red.json({"refCode": "R1", "name": "Jane", "a": [{"b": 7}], "t": "see ID-42"},
                   oauth=False)
    assert out == {"refCode": "<<personal:1>>", "name": "Jane", "a": [{"b": "<<personal:2>>"}],
                   "t": "see <<personal:3>>"}
    assert RedactRules().personal_field("address_line_2")


def test_numbering_continues_after_a_start():
    red = Redactor(start={"code": 4})
    assert red.placeholder("code", "new-code-value") == "<<code:5>>"
    assert red.placeholder("state", "s1") == "<<state:1>>"
    assert red.placeholder("code", "<<code:2>>") == "<<code:2>>"  # already a placeholder


def test_encodings_cover_url_form_json_and_base64():
    spelled = encodings('a b/"é')
    assert {"a%20b%2F%22%C3%A9", "a+b%2F%22%C3%A9", "a%20b%2f%22%c3%a9", 'a b/\\"\\u00e9',
            'a b/\\"é', base64.b64encode('a b/"é'.encode()).decode()} <= set(spelled)


def test_a_json_request_to_an_oauth_endpoint_is_redacted_like_a_form():
    red = Redactor()
    body = {"grant_type": "authorization_code", "code": "the-code-1", "state": "st-1"}
    assert red.json(body, oauth=True, request=True) == {
        "grant_type": "authorization_code", "code": "<<code:1>>", "state": "<<state:1>>"}
    assert red.json({"code": "10400"}, oauth=True) == {"code": "10400"}  # an answer's code


def test_a_secret_encoded_twice_is_substituted():
    from urllib.parse import quote

    red = Redactor()
    red.url("https://u.test/a?state=st%20%2B%2F%3D9")
    nested = "https://www.ups.com/lasso?returnto=" + quote("https://u.test/a?state="
                                                           + quote("st +/=9", safe=""), safe="")
    assert "<<state:1>>" in red.substitute(nested)


# -- keyed fingerprints: identity across recording sessions ------------------------------

KEY = bytes(range(32))


def test_a_fingerprinted_value_gets_its_earlier_placeholder_back():
    fingerprint = Fingerprinter(KEY)
    first = Redactor(fingerprint=fingerprint)
    assert first.placeholder("client_id", "CLIENT-ONE") == "<<client_id:1>>"
    assert first.placeholder("refresh_token", "rt-issued-in-session-1") == "<<refresh_token:1>>"
    known = dict(first.fingerprints)
    assert set(known) == {"<<client_id:1>>", "<<refresh_token:1>>"}

    second = Redactor(start={"client_id": 1, "refresh_token": 1}, fingerprint=fingerprint,
                      known=known)
    # The same values, in another place and even under another kind: the old placeholder.
    assert second.url("https://u.test/a?client_id=CLIENT-ONE") == \
        "https://u.test/a?client_id=<<client_id:1>>"
    assert second.form({"refresh_token": "rt-issued-in-session-1"}) == {
        "refresh_token": "<<refresh_token:1>>"}
    assert second.placeholder("personal", "CLIENT-ONE") == "<<client_id:1>>"
    assert second.secrets()["CLIENT-ONE"] == "client_id"  # still guarded, by its first kind
    assert "CLIENT-ONE" in second.client_ids
    # New values are numbered after the file's, and fingerprinted too.
    assert second.placeholder("client_id", "CLIENT-TWO") == "<<client_id:2>>"
    assert second.fingerprints == {**known, "<<client_id:2>>": fingerprint("CLIENT-TWO")}
    assert second.substitute("echo CLIENT-ONE") == "echo <<client_id:1>>"


def test_without_the_key_or_with_another_one_values_are_new():
    first = Redactor(fingerprint=Fingerprinter(KEY))
    first.placeholder("client_id", "CLIENT-ONE")
    other = Redactor(start={"client_id": 1}, fingerprint=Fingerprinter(b"\xff" * 32),
                     known=first.fingerprints)
    assert other.placeholder("client_id", "CLIENT-ONE") == "<<client_id:2>>"
    plain = Redactor(start={"client_id": 1}, known=first.fingerprints)
    assert plain.placeholder("client_id", "CLIENT-ONE") == "<<client_id:2>>"
    assert plain.fingerprints == first.fingerprints  # kept, not extended: no key


def test_a_forgotten_fingerprint_is_no_longer_stored_or_matched():
    red = Redactor(fingerprint=Fingerprinter(KEY))
    red.placeholder("personal", "123456")
    red.forget_fingerprint("<<personal:1>>")
    assert red.fingerprints == {}
    assert red.placeholder("personal", "123456") == "<<personal:1>>"  # in-session identity
    red.forget_fingerprint("<<personal:9>>")  # unknown: nothing happens


def test_fingerprints_are_keyed_short_hex_and_say_nothing_of_the_value():
    one, two = Fingerprinter(KEY), Fingerprinter(bytes(32))
    value = "Sx+/=:@ %\"\\q9999"
    digest = one(value)
    assert digest == one(value) and digest != two(value) and digest != one(value + "x")
    assert len(digest) == FINGERPRINT_HEX == 30 and set(digest) <= set("0123456789abcdef")
    assert not any(spelled in digest for spelled in encodings(value))
    assert one("\ud800 lone surrogate")  # JSON allows those; they are fingerprinted too
    assert one.key_id.startswith("key-") and one.key_id != two.key_id
    assert KEY.hex() not in repr(one) and one.key_id in repr(one)
    with pytest.raises(ValueError):
        Fingerprinter(b"short")


def test_the_recording_key_is_made_once_private_and_checked(tmp_path):
    confdir = tmp_path / "new" / "conf"
    key = load_recording_key(confdir)
    path = confdir / KEY_FILE
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(confdir.stat().st_mode) & 0o077 == 0
    assert load_recording_key(confdir) == key  # made once, then reused
    assert load_recording_key(str(confdir)) == key
    assert [p.name for p in confdir.iterdir()] == [KEY_FILE]  # no temp file left
    assert load_recording_key(tmp_path / "other") != key  # random per confdir
    path.write_bytes(b"truncated")
    with pytest.raises(StartupError, match="not a 32-byte upsproxy recording key"):
        load_recording_key(confdir)
    os.chmod(confdir, 0o500)
    try:
        if os.geteuid() != 0:  # root writes anyway
            with pytest.raises(StartupError, match="cannot write the recording key"):
                load_recording_key(confdir / "sub")
    finally:
        os.chmod(confdir, 0o700)


def test_a_key_made_meanwhile_by_another_process_wins(tmp_path, monkeypatch):
    theirs = b"t" * 32
    real_link = os.link

    def racing_link(src, dst):  # the other process links its key first
        (tmp_path / fingerprint.KEY_FILE).write_bytes(theirs)
        return real_link(src, dst)

    monkeypatch.setattr(keyfiles.os, "link", racing_link)
    assert fingerprint.load_recording_key(tmp_path) == theirs
    assert [p.name for p in tmp_path.iterdir()] == [fingerprint.KEY_FILE]
