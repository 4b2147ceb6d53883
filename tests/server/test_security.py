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
