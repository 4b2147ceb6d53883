"""DPoP (RFC 9449): proof checks and key thumbprints (RFC 7638)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import jwt

from server.errors import OAuthError
from server.security import b64url, now

PROOF_ALGS = ("ES256", "RS256", "PS256", "EdDSA")
WINDOW_S = 60  # a proof's iat may be this far from our clock
_REQUIRED = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}


def thumbprint(jwk: dict[str, Any]) -> str:
    members = _REQUIRED.get(str(jwk.get("kty")))
    if members is None or any(m not in jwk for m in members):
        raise ValueError("unsupported or incomplete JWK")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def _bad(description: str, status: int) -> OAuthError:
    headers = {
        "WWW-Authenticate": f'DPoP error="invalid_dpop_proof", error_description="{description}"'
    }
    return OAuthError(status, "invalid_dpop_proof", description, headers if status == 401 else None)


def check_proof(
    proof: str,
    method: str,
    urls: tuple[str, ...],
    access_token: str | None = None,
    status: int = 400,
) -> tuple[str, str]:
    """Validate a proof for this request: its (jti, key thumbprint), or raise.

    `urls` are the addresses the proof's htu may name (without query or fragment).
    The jti's single use is checked by the caller, in Redis.
    """
    try:
        header = jwt.get_unverified_header(proof)
    except jwt.InvalidTokenError:
        raise _bad("the DPoP header is not a JWT", status) from None
    jwk = header.get("jwk")
    if header.get("typ") != "dpop+jwt" or header.get("alg") not in PROOF_ALGS:
        raise _bad("a DPoP proof needs typ dpop+jwt and an asymmetric alg", status)
    if not isinstance(jwk, dict) or "d" in jwk:
        raise _bad("a DPoP proof needs a public jwk in its header", status)
    try:
        key = jwt.PyJWK(jwk).key
        claims: dict[str, Any] = jwt.decode(
            proof,
            key,
            algorithms=[header["alg"]],
            options={"require": ["jti", "iat", "htm", "htu"], "verify_aud": False},
        )
        jkt = thumbprint(jwk)
    except (jwt.InvalidTokenError, jwt.PyJWKError, ValueError) as exc:
        raise _bad(f"DPoP proof rejected: {exc}", status) from None
    if claims["htm"] != method:
        raise _bad(f"DPoP htm is {claims['htm']!r}, not {method}", status)
    if str(claims["htu"]).split("?")[0].split("#")[0] not in urls:
        raise _bad("DPoP htu does not name this endpoint", status)
    if not isinstance(claims["iat"], int | float) or abs(claims["iat"] - now()) > WINDOW_S:
        raise _bad(f"DPoP proof iat is not within {WINDOW_S} s of now", status)
    if access_token is not None:
        ath = b64url(hashlib.sha256(access_token.encode()).digest())
        if claims.get("ath") != ath:
            raise _bad("DPoP ath does not match the access token", status)
    jti = claims["jti"]
    if not isinstance(jti, str) or not 8 <= len(jti) <= 200:
        raise _bad("DPoP jti must be a string of 8-200 characters", status)
    return jti, jkt
