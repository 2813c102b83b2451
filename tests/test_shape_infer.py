"""Unit tests of upsproxy.shape_infer: shapes that shapes.shape_from_mapping accepts."""

import base64
import json

from upsproxy.shape_infer import infer_jwt, infer_shape, infer_token
from upsproxy.shapes import JwtShape, shape_from_mapping


def b64url(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_opaque_tokens():
    assert infer_token(base64.b64encode(b"x" * 97).decode()) == {
        "alphabet": "base64", "length": 132, "padding": 2}
    assert infer_token("ab12" * 10) == {"alphabet": "hex", "length": 40}
    assert infer_token("Ab1-_x" * 5)["alphabet"] == "base64url"
    for raw in ("short", "with.dots.and~tilde+" * 3, "=" * 12, "A+/" * 5):
        shape_from_mapping(infer_token(raw))  # always a valid shape


def test_jwt_keeps_names_drops_personal_values():
    token = ".".join([b64url({"kid": "k-1", "alg": "RS384"}),
                      b64url({"iss": "https://apis.ups.com", "sub": "jane@example.com",
                              "clientid": "CID", "iat": 5, "exp": 9, "n": 3, "scope": "read"}),
                      "s" * 300])
    shape, personal = infer_jwt(token, {"CID"})
    assert shape["jwt"]["claims"] == {"iss": "https://apis.ups.com", "sub": "<<random:16>>",
                                      "clientid": "<<client_id>>", "iat": 0, "exp": 0, "n": 0,
                                      "scope": "read"}
    assert shape["jwt"]["header"] == {"kid": "<<random:3>>", "alg": "RS384"}
    assert set(personal) == {"jane@example.com", "k-1"}
    assert isinstance(shape_from_mapping(shape), JwtShape)
    assert infer_jwt("not.a.jwt", set()) is None
    assert "alphabet" in infer_shape("plain-token-value", set())[0]
