import base64
import json
import random

import pytest

from upsproxy.shapes import JwtShape, Minter, TokenShape, shape_from_mapping


def test_base64_codes_keep_length_padding_and_alphabet():
    minter = Minter(random.Random(1))
    shape = TokenShape("base64", 132, 2)
    values = {minter.token(shape) for _ in range(200)}
    assert len(values) == 200
    for value in values:
        assert len(value) == 132 and value.endswith("==") and not value.endswith("===")
        base64.b64decode(value, validate=True)
    # Standard base64: over 200 values, the reserved characters do appear.
    joined = "".join(values)
    assert "+" in joined and "/" in joined


@pytest.mark.parametrize(("alphabet", "length"), [("base64url", 43), ("hex", 41),
                                                   ("alnum", 20), ("base64", 164)])
def test_lengths_are_exact(alphabet, length):
    assert len(Minter().token(TokenShape(alphabet, length))) == length


def test_jwt_times_follow_the_clock_and_lifetime():
    shape = JwtShape({"alg": "RS384", "typ": "JWT"},
                     {"iss": "x", "clientid": "<<client_id>>", "jti": "<<random:10>>",
                      "iat": 0, "nbf": 0, "exp": 0}, 342)
    token = Minter(random.Random(2)).jwt(shape, now_s=1_000, ttl_s=14399, client_id="C1")
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert list(claims) == ["iss", "clientid", "jti", "iat", "nbf", "exp"]
    assert claims["iat"] == claims["nbf"] == 1000 and claims["exp"] == 1000 + 14399
    assert claims["clientid"] == "C1" and len(claims["jti"]) == 10
    assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["alg"] == "RS384"
    assert len(signature) == 342


@pytest.mark.parametrize("raw", [
    {"alphabet": "base32", "length": 10}, {"alphabet": "base64", "length": 130},
    {"alphabet": "hex", "length": 10, "padding": 1}, {"alphabet": "hex"}, [],
    {"jwt": {"header": {}}}, {"alphabet": "hex", "length": 10, "colour": "red"},
])
def test_bad_shapes_are_refused(raw):
    with pytest.raises(ValueError):
        shape_from_mapping(raw)


def test_only_a_whole_random_placeholder_is_filled():
    shape = JwtShape({"alg": "RS384"}, {"a": "<<random:6>>", "b": "<<random:6>>x",
                                        "c": "x<<random:6>>"}, 342)
    token = Minter(random.Random(3)).jwt(shape, now_s=0, ttl_s=1, client_id="C")
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert len(claims["a"]) == 6 and claims["a"].isalnum()
    assert (claims["b"], claims["c"]) == ("<<random:6>>x", "x<<random:6>>")
