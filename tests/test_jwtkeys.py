"""Minted JWTs are real JWS: they verify with the published key."""

import base64
import json
import random
import stat

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from upsproxy import jwtkeys
from upsproxy.errors import StartupError
from upsproxy.jwtkeys import KEY_FILE, key_bits_for, load_signer
from upsproxy.shapes import JwtShape, Minter, shape_from_mapping


def b64d(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def public_key(jwk):
    n, e = (int.from_bytes(b64d(jwk[k]), "big") for k in ("n", "e"))
    return rsa.RSAPublicNumbers(e, n).public_key()


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(jwtkeys, "_cache", {})


@pytest.mark.parametrize(("alg", "digest"), [("RS256", hashes.SHA256), ("RS384", hashes.SHA384),
                                             ("RS512", hashes.SHA512)])
def test_rs_tokens_verify_with_the_jwks_key_named_by_kid(alg, digest):
    signer = load_signer(None, 2048)
    shape = JwtShape({"kid": "<<random:36>>", "alg": alg}, {"iat": 0, "exp": 0}, 342)
    token = Minter(random.Random(1), signer).jwt(shape, now_s=100, ttl_s=50, client_id="C")
    header, payload, signature = token.split(".")
    assert json.loads(b64d(header)) == {"kid": signer.kid, "alg": alg}
    assert json.loads(b64d(payload)) == {"iat": 100, "exp": 150}
    jwk, = signer.jwks((alg,))["keys"]
    assert jwk["kid"] == signer.kid and jwk["alg"] == alg and len(signer.kid) == 36
    public_key(jwk).verify(b64d(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(),
                           digest())
    forged = f"{header}.{payload[:-2]}AA"
    with pytest.raises(InvalidSignature):
        public_key(jwk).verify(b64d(signature), forged.encode(), padding.PKCS1v15(), digest())


def test_hs_tokens_are_hmac_of_the_sandbox_secret():
    signer = load_signer(None, 2048)
    shape = JwtShape({"alg": "HS256", "typ": "JWT"}, {"iat": 0}, 342)
    one = Minter(random.Random(1), signer).jwt(shape, now_s=1, ttl_s=1, client_id="C")
    two = Minter(random.Random(1), signer).jwt(shape, now_s=1, ttl_s=1, client_id="C")
    assert one == two and len(one.split(".")[2]) == 43  # 32 bytes of HMAC-SHA256


def test_key_size_follows_the_recorded_signature_length():
    assert (key_bits_for(342), key_bits_for(512), key_bits_for(683), key_bits_for(100)) == \
        (2048, 3072, 4096, 2048)


def test_the_key_is_kept_in_the_confdir_0600_and_reused(tmp_path):
    first = load_signer(tmp_path, 2048)
    path = tmp_path / KEY_FILE
    assert oct(stat.S_IMODE(path.stat().st_mode)) == "0o600"
    assert "PRIVATE KEY" in path.read_text()
    jwtkeys._cache.clear()  # as a new process would
    assert load_signer(tmp_path, 2048).kid == first.kid
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_an_unusable_key_file_is_a_clear_error(tmp_path):
    (tmp_path / KEY_FILE).write_text("not a key")
    with pytest.raises(StartupError, match=f"{KEY_FILE} is not an unencrypted PEM private key"):
        load_signer(tmp_path, 2048)


def test_a_cassette_with_an_unsupported_alg_is_refused():
    for alg in ("none", "ES256", None):
        with pytest.raises(ValueError, match=r"jwt\.header\.alg must be one of RS256"):
            shape_from_mapping({"jwt": {"header": {"alg": alg}, "claims": {}}})
