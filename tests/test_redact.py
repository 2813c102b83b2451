"""Unit tests of upsproxy.redact: placeholders by structure, identity everywhere."""

import base64

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
