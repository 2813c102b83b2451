import textwrap

import pytest

from upsproxy.cassette import load_cassette, parse_cassette
from upsproxy.errors import CassetteError
from upsproxy.profile import profile_from_cassette
from upsproxy.sandbox import default_cassette_path
from upsproxy.shapes import JwtShape, TokenShape

GOOD = """\
version: 1
meta: {how: synthesized}
shapes:
  code: {alphabet: base64, length: 132, padding: 2}
interactions:
  - kind: token
    request:
      method: POST
      url: https://wwwcie.ups.com/security/v1/oauth/token
      body: {form: {grant_type: authorization_code, code: <<code:1>>}}
    response:
      status: 200
      body: {json: {token_type: Bearer, expires_in: "3599", access_token: <<access_token:1>>}}
"""


def problem(text: str) -> CassetteError:
    with pytest.raises(CassetteError) as err:
        parse_cassette(textwrap.dedent(text), "c.yaml")
    return err.value


def test_bundled_cassette_loads_and_is_labelled_synthesized():
    cassette = load_cassette(default_cassette_path())
    assert cassette.meta["how"] == "synthesized"
    profile = profile_from_cassette(cassette)
    assert [k for k, _ in profile.token_fields] == [
        "refresh_token_expires_in", "refresh_token_status", "token_type", "issued_at",
        "client_id", "access_token", "refresh_token", "refresh_token_issued_at", "expires_in",
        "status"]
    assert (profile.access_ttl_s, profile.refresh_ttl_s) == (14399, 5183999)
    assert profile.code_shape == TokenShape("base64", 132, 2)
    assert isinstance(profile.access_shape, JwtShape)
    assert {"invalid_client", "invalid_refresh_token", "rate_limited"} <= set(profile.errors)


def test_a_cassette_decides_fields_and_lifetimes():
    profile = profile_from_cassette(parse_cassette(GOOD))
    assert profile.token_fields == (("token_type", "Bearer"), ("expires_in", None),
                                    ("access_token", None))
    assert profile.access_ttl_s == 3599


def test_yaml_syntax_error_names_file_and_line():
    err = problem("version: 1\ninteractions:\n  - kind: token\n    request: [unclosed\n")
    assert err.path == "c.yaml" and err.line is not None and err.line >= 4
    assert str(err).startswith("c.yaml:")


def test_unknown_version_names_its_line():
    err = problem("# comment\nversion: 2\ninteractions: []\n")
    assert err.line == 2 and "version 2" in str(err)


def test_missing_version_is_explained():
    assert "missing 'version'" in str(problem("interactions: []\n"))


def test_missing_response_names_the_interaction():
    err = problem("""\
        version: 1
        interactions:
          - kind: token
            request: {method: POST, url: https://wwwcie.ups.com/x}
        """)
    assert err.line == 3 and "interaction 1" in err.reason and "response" in err.reason


def test_bad_placeholder_names_its_line():
    err = problem(GOOD.replace("<<code:1>>", "<<cod:1>>"))
    assert err.line == 10 and "bad placeholder" in err.reason
    assert "<<cod:1>>" in err.reason


def test_bad_status_and_kind():
    assert "status" in problem(GOOD.replace("status: 200", "status: '200'")).reason
    assert "kind must be" in problem(GOOD.replace("kind: token", "kind: tokens")).reason


def test_bad_shape_is_reported_with_its_line():
    err = problem(GOOD.replace("length: 132", "length: 130"))
    assert err.line == 4 and "multiple of 4" in err.reason


def test_not_a_mapping_and_missing_file(tmp_path):
    assert "mapping" in problem("- a\n- b\n").reason
    with pytest.raises(CassetteError, match="no such file"):
        load_cassette(tmp_path / "nope.yaml")


def test_python_tags_are_refused():
    err = problem("version: 1\ninteractions: !!python/object/apply:os.system ['true']\n")
    assert "YAML" in err.reason


def test_yaml_aliases_are_refused_before_they_can_expand():
    bomb = ("version: 1\nmeta:\n  a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"  {chr(98 + n)}: &{chr(98 + n)} [*{chr(97 + n)}, *{chr(97 + n)},"
                      f" *{chr(97 + n)}, *{chr(97 + n)}]\n" for n in range(8))
            + "interactions: []\n")
    err = problem(bomb)
    assert "aliases" in err.reason and err.line == 4


def test_scalar_aliases_and_asterisks_in_text_are_fine():
    parse_cassette(GOOD.replace("how: synthesized", "how: &h x, y: *h"))
    parse_cassette(GOOD.replace("how: synthesized", "how: '*synthesized*'"))


def test_an_oversized_file_is_refused_without_reading_it_all(tmp_path, monkeypatch):
    from upsproxy import yamlfile

    monkeypatch.setattr(yamlfile, "MAX_FILE_BYTES", 100)
    path = tmp_path / "big.yaml"
    path.write_text(GOOD)
    with pytest.raises(CassetteError, match="larger than"):
        load_cassette(path)


def test_a_directory_is_named_as_such(tmp_path):
    with pytest.raises(CassetteError, match="is a directory"):
        load_cassette(tmp_path)


def test_jwt_claims_must_be_plain_json_so_minting_cannot_fail_later():
    text = GOOD.replace(
        "  code: {alphabet: base64, length: 132, padding: 2}\n",
        "  code: {alphabet: base64, length: 132, padding: 2}\n"
        "  access_token:\n    jwt: {header: {alg: RS384}, claims: {when: 2024-01-01}}\n")
    err = problem(text)
    assert "jwt.claims" in err.reason and err.line == 5


def test_a_header_with_a_line_break_is_refused():
    text = GOOD.replace("      status: 200\n",
                        '      status: 200\n      headers: {X-A: "a\\r\\nSet-Cookie: b"}\n')
    err = problem(text)
    assert "line break" in err.reason and err.line == 13


@pytest.mark.parametrize("value", ['"³"', '"0"', '"99999999999"', "-5"])
def test_odd_lifetimes_fall_back_to_the_defaults(value):
    profile = profile_from_cassette(parse_cassette(GOOD.replace('"3599"', value)))
    assert profile.access_ttl_s == profile_from_cassette(
        parse_cassette(GOOD.replace('expires_in: "3599", ', ""))).access_ttl_s


def test_a_key_given_twice_is_refused_with_its_line():
    err = problem(GOOD + "interactions: []\n")  # a bad merge: last one would win
    assert "given twice" in err.reason and err.line == 14


def test_version_must_be_the_integer_one():
    assert "unknown cassette version" in problem(GOOD.replace("version: 1", "version: true")).reason
    assert "unknown cassette version" in problem(GOOD.replace("version: 1", "version: '1'")).reason


def test_a_fifo_is_refused_instead_of_blocking(tmp_path):
    import os

    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)
    with pytest.raises(CassetteError, match="not a regular file"):
        load_cassette(fifo)
