"""Passwords (argon2id), signing keys (ES256, RS256), JWTs and PKCE."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from server.sched import runqueue_wait_s

# OWASP's argon2id minimum: m = 19 MiB, t = 2, p = 1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
HASH_THREADS = 4  # worker threads per server process that run the password hash
_POOL = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="argon2")
# Verified against when the account does not exist, so both paths cost the same.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))


class HashCounter:
    """The verifications the worker threads ran and the CPU they took (each thread's own
    clock), for /metrics: the hash's cost can change with the machine's load. Beside them,
    the threads' time runnable but waiting for a core (Linux's schedstat, each thread's
    total as of its latest verification: a woken thread's wait for a core before the hash
    starts counts too)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.cpu_s = 0.0
        self._waits: dict[int, float] = {}

    def add(self, cpu_s: float) -> None:
        waited = runqueue_wait_s()
        with self._lock:
            self.count += 1
            self.cpu_s += cpu_s
            if waited is not None:
                self._waits[threading.get_ident()] = waited

    @property
    def wait_s(self) -> float:
        with self._lock:
            return sum(self._waits.values())


HASHES = HashCounter()


def hash_password(password: str) -> str:
    return HASHER.hash(password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """argon2id verification in a thread pool (it takes ~20 ms of CPU)."""

    def check() -> bool:
        started = time.thread_time()
        try:
            return HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False
        finally:
            HASHES.add(time.thread_time() - started)

    return await asyncio.get_running_loop().run_in_executor(_POOL, check)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


# bytes.translate: a fifth of the CPU of str.translate, which looks each character up.
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
# One signature scheme object each, not one per verification. ES256 signs with RFC 6979
# deterministic nonces: the signature is then a function of the key and the message, which
# lets the issuer check its own tokens by signing again (see Keys.verify).
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
_SHA256 = hashes.SHA256()
_PKCS1 = padding.PKCS1v15()


def _b64decode(segment: str) -> bytes:
    """Unpadded base64url (the caller has checked the alphabet)."""
    try:
        return binascii.a2b_base64(
            (segment + "=" * (-len(segment) % 4)).encode().translate(_TO_STANDARD),
            strict_mode=True,
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None


def _es256(key: SigningKey, signing_input: bytes) -> bytes:
    """The JWS ES256 signature (R || S, 32 bytes each) of `signing_input`, deterministic."""
    r, s = decode_dss_signature(key.private_key.sign(signing_input, _ECDSA_SHA256))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


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
        # Header segment -> its key, for headers already checked: a token's header is one
        # of a few strings (our kids and typs), so most verifications skip parsing it.
        self._header_keys: dict[str, SigningKey] = {}
        self._headers: dict[tuple[str, str], str] = {}  # (alg, typ) -> header segment

    def sign(self, claims: dict[str, Any], alg: str = "ES256", typ: str = "JWT") -> str:
        """A compact JWS of `claims` (what jwt.encode makes, measured 1.5x faster: the
        header segment is encoded once per key and typ, the claims by orjson)."""
        key = self.by_alg[alg]
        head = self._headers.get((alg, typ))
        if head is None:
            head = self._headers[(alg, typ)] = b64url(
                orjson.dumps({"alg": alg, "kid": key.kid, "typ": typ})
            )
        signing_input = f"{head}.{b64url(orjson.dumps(claims))}"
        if alg == "ES256":
            signature = _es256(key, signing_input.encode())
        else:
            signature = key.private_key.sign(signing_input.encode(), _PKCS1, _SHA256)
        return f"{signing_input}.{b64url(signature)}"

    def verify(self, token: str, issuer: str, audience: str | None = None) -> dict[str, Any]:
        """Claims of a token we signed; raises a jwt.InvalidTokenError subclass otherwise.

        Our own tokens only: the key comes from our kid and must match the header's alg.
        Done here rather than with jwt.decode, which checks every base64 character in a
        Python loop and parses the token twice: measured, that was half of userinfo's CPU.

        ES256: we hold the private key and sign deterministically (RFC 6979), so a token
        we signed carries exactly the signature that signing its header and claims again
        gives. Signing is about 18 us of CPU here against 45 us for an ECDSA verification,
        so the check signs again and compares in constant time. That accepts only valid
        signatures (what we would produce is one); anything else, such as a valid
        signature made with a random nonce, goes on to the full verification, so the set
        of tokens accepted is exactly the standard verifier's.
        """
        if not _JWS.fullmatch(token):
            raise jwt.DecodeError("not a compact JWS of three base64url segments")
        head, body, sig = token.split(".")
        key = self._header_keys.get(head)
        try:
            if key is None:
                key = self._key_of_header(orjson.loads(_b64decode(head)))
                if len(self._header_keys) < 64:  # our own headers: one per key and typ
                    self._header_keys[head] = key
            claims: dict[str, Any] = orjson.loads(_b64decode(body))
            signature = _b64decode(sig)
        except ValueError:
            raise jwt.DecodeError("a segment is not base64url-encoded JSON") from None
        if not isinstance(claims, dict):
            raise jwt.DecodeError("the claims must be a JSON object")
        signed = token[: len(head) + len(body) + 1].encode()
        try:
            if key.alg == "ES256":
                if len(signature) != 64:
                    raise InvalidSignature
                if not hmac.compare_digest(_es256(key, signed), signature):
                    r = int.from_bytes(signature[:32], "big")
                    s = int.from_bytes(signature[32:], "big")
                    key.public_key.verify(encode_dss_signature(r, s), signed, _ECDSA_SHA256)
            else:
                key.public_key.verify(signature, signed, _PKCS1, _SHA256)
        except InvalidSignature:
            raise jwt.InvalidSignatureError("signature verification failed") from None
        for name in ("exp", "iat", "sub"):
            if name not in claims:
                raise jwt.MissingRequiredClaimError(name)
        if not isinstance(claims["exp"], int | float) or claims["exp"] <= time.time():
            raise jwt.ExpiredSignatureError("the token has expired")
        if claims.get("iss") != issuer:
            raise jwt.InvalidIssuerError("the token was issued by someone else")
        if audience is not None:
            aud = claims.get("aud")
            if aud != audience and not (isinstance(aud, list) and audience in aud):
                raise jwt.InvalidAudienceError("the token is not for this audience")
        return claims

    def _key_of_header(self, header: Any) -> SigningKey:
        if not isinstance(header, dict):
            raise jwt.DecodeError("the header must be a JSON object")
        key = self.by_kid.get(str(header.get("kid", "")))
        if key is None or header.get("alg") != key.alg:
            raise jwt.InvalidAlgorithmError("unknown signing key, or not its algorithm")
        return key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.by_kid.values()]}


def now() -> int:
    return int(time.time())
