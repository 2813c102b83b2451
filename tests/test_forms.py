import pytest

from upsproxy.forms import MAX_FORM_BYTES, FormError, parse_basic, parse_form

FORM = "application/x-www-form-urlencoded"


def test_charset_parameter_and_case_are_accepted():
    assert parse_form("Application/X-WWW-Form-Urlencoded; charset=UTF-8", b"a=1") == {"a": "1"}


@pytest.mark.parametrize(("content_type", "body", "reason"), [
    ("application/json", b'{"a":"1"}', "unsupported_media_type"),
    (None, b"a=1", "unsupported_media_type"),
    (FORM, b"a=1&a=2", "invalid_request"),
    (FORM, b"\xff\xfe=1", "invalid_body"),
    (FORM, b"a=%ff", "invalid_body"),
    (FORM, b"code=%zz", "invalid_body"),
    (FORM, b"code=abc%2", "invalid_body"),
    (FORM, b"justtext", "invalid_body"),
    (FORM, b"a=" + b"x" * MAX_FORM_BYTES, "body_too_large"),
])
def test_bad_forms_name_their_reason(content_type, body, reason):
    with pytest.raises(FormError) as err:
        parse_form(content_type, body)
    assert err.value.reason == reason


def test_empty_body_is_an_empty_form():
    assert parse_form(FORM, b"") == {}


def test_plus_and_percent_decode_like_a_browser():
    assert parse_form(FORM, b"s=a%2Fb%2Bc%3D%3D+x") == {"s": "a/b+c== x"}


def test_basic_splits_at_the_first_colon():
    import base64

    header = "Basic " + base64.b64encode(b"client:sec:ret").decode()
    creds = parse_basic(header)
    assert creds is not None
    assert (creds.client_id, creds.secret) == ("client", "sec:ret")
    assert "sec:ret" not in repr(creds)


@pytest.mark.parametrize("header", ["Bearer abc", "Basic", "Basic !!!", "Basic " + "bm9jb2xvbg=="])
def test_malformed_basic_is_none(header):
    assert parse_basic(header) is None


def test_a_plus_alone_is_a_space_and_valid_escapes_still_decode():
    assert parse_form(FORM, b"a=x+y&b=%41%2b") == {"a": "x y", "b": "A+"}
