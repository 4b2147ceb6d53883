"""The token verifier accepts exactly what PyJWT accepts for our own tokens."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from server.security import Keys, SigningKey, pkce_matches

ISS, AUD = "http://issuer.test", "http://issuer.test/userinfo"


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys([SigningKey.generate("ES256"), SigningKey.generate("RS256")])


def _claims(**changes: Any) -> dict[str, Any]:
    t = int(time.time())
    return {"iss": ISS, "aud": AUD, "sub": "u1", "iat": t, "exp": t + 60, "jti": "j", **changes}


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_valid_tokens_verify_like_pyjwt(keys: Keys, alg: str) -> None:
    token = keys.sign(_claims(), alg=alg)
    key = keys.by_alg[alg]
    expected = jwt.decode(token, key.public_key, algorithms=[alg], audience=AUD, issuer=ISS)
    assert keys.verify(token, ISS, AUD) == expected
    # Its header segment is now known: a second token with it skips parsing the header.
    again = keys.sign(_claims(sub="u2"), alg=alg)
    assert _segments(again)[0] == _segments(token)[0]
    assert keys.verify(again, ISS, AUD)["sub"] == "u2"
    assert jwt.get_unverified_header(token) == {"alg": alg, "kid": key.kid, "typ": "JWT"}


class _CountingPublicKey:
    """Wraps a public key and counts full signature verifications."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.verifications = inner, 0

    def verify(self, *args: Any) -> None:
        self.verifications += 1
        self.inner.verify(*args)


def test_es256_checks_its_own_tokens_by_signing_again() -> None:
    key = SigningKey.generate("ES256")
    keys = Keys([key])
    spy = _CountingPublicKey(key.public_key)
    key.__dict__["_public"] = spy
    claims = _claims()
    token = keys.sign(claims)
    assert keys.sign(claims) == token  # RFC 6979: the same claims give the same signature
    assert keys.verify(token, ISS, AUD) == claims
    assert spy.verifications == 0  # accepted by signing again, no ECDSA verification
    # A valid signature by the same key with a random nonce (PyJWT's) is not what signing
    # again gives: it is accepted by the full verification, as any ES256 verifier would.
    other = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": key.kid})
    assert other.split(".")[2] != token.split(".")[2]
    assert keys.verify(other, ISS, AUD) == claims
    assert spy.verifications == 1
    # A signature that is neither fails the full verification.
    forged = ".".join([*_segments(token)[:2], _segments(other)[2][::-1]])
    with pytest.raises(jwt.InvalidSignatureError):
        keys.verify(forged, ISS, AUD)
    assert spy.verifications == 2


def _segments(token: str) -> list[str]:
    return token.split(".")


def _b64(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k, t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"),  # signature
        lambda k, t: ".".join([*_segments(t)[:1], _b64(_claims(sub="admin")), _segments(t)[2]]),
        lambda k, t: k.sign(_claims(exp=int(time.time()) - 1)),
        lambda k, t: k.sign(_claims(iss="http://evil.test")),
        lambda k, t: k.sign(_claims(aud="someone-else")),
        lambda k, t: k.sign({key: v for key, v in _claims().items() if key != "sub"}),
        lambda k, t: ".".join([_b64({"alg": "none", "kid": "x"}), _segments(t)[1], ""]),
        lambda k, t: ".".join(
            [_b64({"alg": "RS256", "kid": k.by_alg["ES256"].kid}), *_segments(t)[1:]]
        ),
        lambda k, t: t.replace(".", ".+", 1),
        lambda k, t: t + ".extra",
        lambda k, t: "garbage",
        lambda k, t: "a.b.c",  # segments of impossible base64 length
        lambda k, t: ".".join([_b64([1]), *_segments(t)[1:]]),
        lambda k, t: ".".join(
            [
                _segments(t)[0],
                base64.urlsafe_b64encode(b"[1]").decode().rstrip("="),
                _segments(t)[2],
            ]
        ),
        lambda k, t: jwt.encode(_claims(), "s" * 32, algorithm="HS256"),
    ],
)
def test_tampered_tokens_are_rejected(keys: Keys, mangle: Any) -> None:
    token = mangle(keys, keys.sign(_claims()))
    with pytest.raises(jwt.InvalidTokenError):
        keys.verify(token, ISS, AUD)


def test_pkce_s256() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 appendix B
    assert pkce_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    assert not pkce_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN")
    assert not pkce_matches("short", "x")
