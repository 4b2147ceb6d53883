"""Passwords (argon2id), signing keys (ES256, RS256), JWTs and PKCE."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# OWASP's argon2id minimum: m = 19 MiB, t = 2, p = 1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="argon2")
# Verified against when the account does not exist, so both paths cost the same.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return HASHER.hash(password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """argon2id verification in a thread pool (it takes ~20 ms of CPU)."""

    def check() -> bool:
        try:
            return HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.get_running_loop().run_in_executor(_POOL, check)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) == challenge."""
    if not 43 <= len(verifier) <= 128:
        return False
    return secrets.compare_digest(b64url(hashlib.sha256(verifier.encode()).digest()), challenge)


@dataclass
class SigningKey:
    kid: str
    alg: str
    private_key: Any

    @property
    def public_key(self) -> Any:
        """Derived once: deriving it per verification costs as much as a Redis call."""
        cached = self.__dict__.get("_public")
        if cached is None:
            cached = self.__dict__["_public"] = self.private_key.public_key()
        return cached

    @classmethod
    def generate(cls, alg: str) -> SigningKey:
        key: Any = (
            ec.generate_private_key(ec.SECP256R1())
            if alg == "ES256"
            else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )
        return cls(f"{alg.lower()}-{secrets.token_hex(6)}", alg, key)

    @classmethod
    def from_pem(cls, kid: str, alg: str, pem: str) -> SigningKey:
        return cls(kid, alg, serialization.load_pem_private_key(pem.encode(), password=None))

    def pem(self) -> str:
        raw: bytes = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return raw.decode()

    def public_jwk(self) -> dict[str, Any]:
        algo = jwt.algorithms.ECAlgorithm if self.alg == "ES256" else jwt.algorithms.RSAAlgorithm
        jwk: dict[str, Any] = json.loads(algo.to_jwk(self.private_key.public_key()))
        jwk.update(kid=self.kid, alg=self.alg, use="sig")
        return jwk


class Keys:
    """The signing keys: ES256 signs by default; RS256 is offered to clients that ask."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self.by_kid = {k.kid: k for k in keys}
        self.by_alg = {k.alg: k for k in keys}

    def sign(self, claims: dict[str, Any], alg: str = "ES256", typ: str = "JWT") -> str:
        key = self.by_alg[alg]
        return jwt.encode(
            claims, key.private_key, algorithm=alg, headers={"kid": key.kid, "typ": typ}
        )

    def verify(self, token: str, issuer: str, audience: str | None = None) -> dict[str, Any]:
        """Claims of a token we signed; raises jwt.InvalidTokenError otherwise."""
        header = jwt.get_unverified_header(token)
        key = self.by_kid.get(header.get("kid", ""))
        if key is None or header.get("alg") != key.alg:
            raise jwt.InvalidTokenError("unknown signing key")
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,
            algorithms=[key.alg],
            issuer=issuer,
            audience=audience,
            options={"verify_aud": audience is not None, "require": ["exp", "iat", "sub"]},
        )
        return claims

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.by_kid.values()]}


def now() -> int:
    return int(time.time())
