"""Server tests run against real Redis and PostgreSQL servers that the session starts itself
(on ports of their own), so fault tests can stop them without touching the machine's."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis
from starlette.testclient import TestClient

from server.app import create_app
from server.infra import PostgresServer, RedisServer
from server.settings import Settings

REDIRECT = "http://127.0.0.1:8765/callback"
ALICE = ("alice@example.com", "correct horse battery staple")


@pytest.fixture(scope="session")
def stores(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RedisServer, PostgresServer]]:
    base = Path(tmp_path_factory.mktemp("stores"))
    r = RedisServer(base / "redis")
    pg = PostgresServer(base / "pg")
    try:  # whichever started is stopped, even when the other fails to start
        r.start()
        pg.start()
        yield r, pg
    finally:
        r.stop()
        pg.remove()


@pytest.fixture
def settings(stores: tuple[RedisServer, PostgresServer]) -> Settings:
    r, pg = stores
    redis.Redis.from_url(r.url).flushall()
    return Settings(redis_url=r.url, database_url=pg.url, region="us-east")


def make_client(settings: Settings, **changes: Any) -> TestClient:
    return TestClient(create_app(replace(settings, **changes)), base_url="http://127.0.0.1:8000")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with make_client(settings) as c:
        yield c


def login(c: TestClient, email: str = ALICE[0], password: str = ALICE[1]) -> Any:
    challenge = c.get("/login").json()["challenge"]
    return c.post("/login", data={"email": email, "password": password, "challenge": challenge})


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(c: TestClient, challenge: str, **extra: str) -> Any:
    params = {
        "client_id": "demo-spa",
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid profile email offline_access",
        "state": "st-1",
        "nonce": "n-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return c.get("/authorize", params=params, follow_redirects=False)


def code_of(response: Any) -> str:
    match = re.search(r"[?&]code=([^&]+)", response.headers["location"])
    assert match, response.headers["location"]
    return match.group(1)


def exchange(c: TestClient, code: str, verifier: str) -> Any:
    return c.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "demo-spa",
            "code_verifier": verifier,
        },
    )


def tokens(c: TestClient) -> dict[str, Any]:
    """Log in and run the authorization-code flow: the token response."""
    assert login(c).status_code == 200
    verifier, challenge = pkce()
    response = exchange(c, code_of(authorize(c, challenge)), verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class DPoPKey:
    """A client's DPoP key pair, making proofs as RFC 9449 describes."""

    def __init__(self) -> None:
        import json

        from cryptography.hazmat.primitives.asymmetric import ec

        self.key = ec.generate_private_key(ec.SECP256R1())
        self.jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))

    def proof(
        self, method: str, url: str, access_token: str | None = None, **overrides: Any
    ) -> str:
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()),
        }
        if access_token is not None:
            digest = hashlib.sha256(access_token.encode()).digest()
            claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        claims.update(overrides)
        return jwt.encode(
            claims, self.key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": self.jwk}
        )
