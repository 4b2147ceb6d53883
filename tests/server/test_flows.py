"""Every endpoint against real Redis and PostgreSQL: the OAuth and OIDC rules, and bad input."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from dataclasses import replace

import asyncpg
import jwt
import pytest
import redis
from starlette.testclient import TestClient

from server.metrics import migrations, runqueue_wait_s
from server.security import HashCounter
from server.settings import Settings
from server.storage import Database, Unavailable
from tests.server.conftest import (
    REDIRECT,
    authorize,
    bearer,
    code_of,
    exchange,
    login,
    make_client,
    pkce,
    tokens,
)


def test_discovery_jwks_and_signed_tokens(client: TestClient) -> None:
    meta = client.get("/.well-known/openid-configuration").json()
    assert meta["issuer"] == "http://127.0.0.1:8000"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert {"ES256", "RS256"} <= set(meta["id_token_signing_alg_values_supported"])
    keys = client.get("/jwks.json").json()["keys"]
    assert {k["alg"] for k in keys} == {"ES256", "RS256"}
    issued = tokens(client)
    header = jwt.get_unverified_header(issued["id_token"])
    assert header["alg"] == "ES256"
    jwk = next(k for k in keys if k["kid"] == header["kid"])
    claims = jwt.decode(
        issued["id_token"],
        jwt.PyJWK(jwk).key,
        algorithms=["ES256"],
        audience="demo-spa",
        issuer=meta["issuer"],
    )
    assert claims["nonce"] == "n-1" and claims["sub"]


def test_login_session_cookie_and_its_errors(client: TestClient) -> None:
    ok = login(client)
    assert ok.status_code == 200
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    session = client.get("/session").json()
    assert session["sub"] == ok.json()["sub"] and session["expires_at"] > time.time()
    assert login(client, password="wrong").json()["error"] == "access_denied"
    challenge = client.get("/login").json()["challenge"]
    form = {"email": "alice@example.com", "password": "correct horse battery staple"}
    assert client.post("/login", data={**form, "challenge": challenge}).status_code == 200
    reused = client.post("/login", data={**form, "challenge": challenge})
    assert reused.status_code == 400 and "already used" in reused.json()["error_description"]
    forged = client.post("/login", data={**form, "challenge": challenge[:-3] + "abc"})
    assert forged.status_code == 400
    assert client.post("/login", data=form).json()["error"] == "invalid_request"
    client.cookies.clear()
    assert client.get("/session").status_code == 401


def test_authorize_rules(client: TestClient) -> None:
    _, challenge = pkce()
    anonymous = authorize(client, challenge, prompt="none")
    assert anonymous.status_code == 302
    assert "error=login_required" in anonymous.headers["location"]
    assert "state=st-1" in anonymous.headers["location"] and "iss=" in anonymous.headers["location"]
    assert login(client).status_code == 200
    no_pkce = client.get(
        "/authorize",
        params={
            "client_id": "demo-spa",
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "openid",
        },
        follow_redirects=False,
    )
    assert "error=invalid_request" in no_pkce.headers["location"]
    evil = authorize(client, challenge, redirect_uri="http://evil.example/cb")
    assert evil.status_code == 400 and "location" not in evil.headers
    assert authorize(client, challenge, client_id="nobody").status_code == 401
    bad_scope = authorize(client, challenge, scope="profile")
    assert "error=invalid_scope" in bad_scope.headers["location"]
    good = authorize(client, challenge)
    assert good.headers["location"].startswith(REDIRECT + "?code=")


def test_code_is_single_use_pkce_bound_and_replay_revokes(client: TestClient) -> None:
    assert login(client).status_code == 200
    verifier, challenge = pkce()
    code = code_of(authorize(client, challenge))
    wrong = exchange(client, code, pkce()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    # The failed attempt consumed the code: single use means single attempt.
    code = code_of(authorize(client, challenge))
    first = exchange(client, code, verifier)
    assert first.status_code == 200
    access = first.json()["access_token"]
    assert client.get("/userinfo", headers=bearer(access)).status_code == 200
    replay = exchange(client, code, verifier)
    assert replay.status_code == 400 and "revoked" in replay.json()["error_description"]
    denied = client.get("/userinfo", headers=bearer(access))
    assert denied.status_code == 401 and "revoked" in denied.json()["error_description"]
    assert 'error="invalid_token"' in denied.headers["www-authenticate"]
    refresh = client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first.json()["refresh_token"],
            "client_id": "demo-spa",
        },
    )
    assert refresh.status_code == 400


def test_refresh_rotation_and_reuse_revokes_the_family(client: TestClient) -> None:
    issued = tokens(client)

    def refresh(token: str) -> object:
        return client.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": token, "client_id": "demo-spa"},
        )

    second = refresh(issued["refresh_token"])
    assert second.status_code == 200  # type: ignore[attr-defined]
    rotated = second.json()  # type: ignore[attr-defined]
    assert rotated["refresh_token"] != issued["refresh_token"]
    stolen = refresh(issued["refresh_token"])  # the old one, used again
    assert stolen.status_code == 400  # type: ignore[attr-defined]
    assert refresh(rotated["refresh_token"]).status_code == 400  # type: ignore[attr-defined]
    assert client.get("/userinfo", headers=bearer(rotated["access_token"])).status_code == 401


def test_userinfo_profile_revoke_and_introspect(client: TestClient, settings: Settings) -> None:
    issued = tokens(client)
    access = issued["access_token"]
    info = client.get("/userinfo", headers=bearer(access)).json()
    assert info["email"] == "alice@example.com" and info["email_verified"] is True
    posted = client.post("/userinfo", data={"access_token": access})
    assert posted.status_code == 200
    missing = client.get("/userinfo")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    garbage = client.get("/userinfo", headers=bearer("not.a.jwt"))
    assert garbage.status_code == 401 and garbage.json()["error"] == "invalid_token"
    for body in ({"shoe_size": "9"}, {"name": 7}, [], {"name": "x" * 300}):
        assert client.patch("/profile", json=body, headers=bearer(access)).status_code == 400
    assert client.patch("/profile", content=b"{oops", headers=bearer(access)).status_code == 400
    service = ("demo-service", "demo-service-secret")
    active = client.post("/introspect", data={"token": access}, auth=service).json()
    assert active["active"] is True and active["sub"] == info["sub"]
    refresh_state = client.post(
        "/introspect", data={"token": issued["refresh_token"]}, auth=service
    )
    assert refresh_state.json()["active"] is True
    public = client.post("/introspect", data={"token": access, "client_id": "demo-spa"})
    assert public.status_code == 401
    bad_secret = client.post("/introspect", data={"token": access}, auth=("demo-service", "x"))
    assert bad_secret.status_code == 401
    revoked = client.post("/revoke", data={"token": access, "client_id": "demo-spa"})
    assert revoked.status_code == 200
    assert client.get("/userinfo", headers=bearer(access)).status_code == 401
    assert client.post("/introspect", data={"token": access}, auth=service).json() == {
        "active": False
    }
    # Should the regional cache lose both the revocation mark and the profile, the
    # database read that refills the profile still finds the revocation.
    cache = redis.Redis.from_url(settings.redis_url)
    assert cache.delete(f"revoked:{active['jti']}", f"user:{info['sub']}") == 2
    lost = client.get("/userinfo", headers=bearer(access))
    assert lost.status_code == 401 and "revoked" in lost.json()["error_description"]
    assert (
        client.post("/revoke", data={"token": "unknown", "client_id": "demo-spa"}).status_code
        == 200
    )


def test_rate_limit_answers_429_with_retry_after(settings: Settings) -> None:
    with make_client(settings, login_per_account=3) as c:
        statuses = [login(c).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = login(c)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["error"] == "rate_limited"
        # Another account from the same address is not limited by alice's window.
        assert login(c, email="nobody@example.com").status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("post", "/login", {"content": b"\xff\xfe", "headers": {"content-type": "text/plain"}}),
        ("post", "/login", {"data": {"email": "a" * 5000, "password": "p", "challenge": "c"}}),
        ("post", "/login", {"data": {"email": "a", "password": "p", "challenge": "x.y.z"}}),
        ("post", "/token", {"data": {"grant_type": "password", "client_id": "demo-spa"}}),
        ("post", "/token", {"data": {"grant_type": "authorization_code"}}),
        (
            "post",
            "/token",
            {
                "data": {
                    "grant_type": "authorization_code",
                    "client_id": "demo-spa",
                    "code": "nope",
                    "redirect_uri": REDIRECT,
                }
            },
        ),
        (
            "post",
            "/token",
            {"headers": {"authorization": "Basic !!!"}, "data": {"grant_type": "x"}},
        ),
        ("get", "/authorize", {"params": {}}),
        ("get", "/session", {"headers": {"cookie": "sid=" + "x" * 500}}),
        ("patch", "/profile", {"json": {"name": "x"}}),
        ("get", "/nowhere", {}),
        ("delete", "/token", {}),
    ],
)
def test_garbage_gets_a_json_error_never_a_500(
    client: TestClient, method: str, path: str, kwargs: dict[str, object]
) -> None:
    response = getattr(client, method)(path, **kwargs)
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert body["error"] and "Traceback" not in response.text


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"grant_type=\xff\xfe", "unreadable form body"),  # not UTF-8
        ("&".join(f"f{i}=v" for i in range(51)).encode(), "unreadable form body"),  # > 50
        (b"grant_type=" + b"x" * (64 * 1024), "over 64 KiB"),
    ],
)
def test_bad_form_bodies_are_named(client: TestClient, body: bytes, says: str) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    response = client.post("/token", content=body, headers=form)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert says in response.json()["error_description"]


def test_form_fields_are_percent_and_plus_decoded(client: TestClient) -> None:
    # '+' is a space and %2B a plus: the grant type arrives as written, and is refused by name.
    body = b"grant_type=my+grant%2Bx&client_id=demo-spa"
    form = {"content-type": "application/x-www-form-urlencoded"}
    response = client.post("/token", content=body, headers=form)
    assert response.status_code == 400
    assert "'my grant+x'" in response.json()["error_description"]


def test_healthz_metrics_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {
        "region": "us-east",
        "database": "ok",
        "redis": "ok",
        "status": "ok",
    }
    tokens(client)
    text = client.get("/metrics").text
    assert 'authscale_requests_total{operation="token_issue",status="200"} 1' in text
    assert 'authscale_request_seconds_count{operation="login"}' in text
    # The event loop's CPU, and its time waiting for a core (Linux's schedstat).
    values = dict(
        line.split()
        for line in text.splitlines()
        if line.startswith(("authscale_event_loop", "authscale_password"))
    )
    assert float(values["authscale_event_loop_cpu_seconds_total"]) > 0
    assert float(values["authscale_event_loop_runqueue_wait_seconds_total"]) >= 0
    assert runqueue_wait_s("/proc/no-such-file") is None
    # ... and how often the kernel moved it to another core (Linux's /proc/.../sched).
    assert int(values["authscale_event_loop_migrations_total"]) >= 0
    assert isinstance(migrations(), int) and migrations("/proc/no-such-file") is None
    # The password verifications the worker threads ran (the sign-in above), and their CPU.
    assert int(values["authscale_password_hashes_total"]) >= 1
    assert float(values["authscale_password_hash_cpu_seconds_total"]) > 0
    # ... and the worker threads' time waiting for a core, each thread's total.
    assert float(values["authscale_password_hash_runqueue_wait_seconds_total"]) >= 0
    assert migrations("/proc/self/stat") is None  # a file without the field
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1") and "/token" in spec["paths"]
    # start-up's heap is frozen, out of the collector's full passes
    assert gc.get_freeze_count() > 0


def test_serialization_failures_are_retried(settings: Settings) -> None:
    async def scenario() -> tuple[int, int]:
        db = Database(settings.database_url)
        await db.open()
        calls = 0

        async def flaky(conn: asyncpg.Connection) -> int:
            nonlocal calls
            calls += 1
            if calls < 3:
                raise asyncpg.exceptions.SerializationError("restart transaction")
            return int(await conn.fetchval("SELECT 41 + 1"))

        try:
            return await db.run(flaky), db.retries
        finally:
            await db.close()

    assert asyncio.run(scenario()) == (42, 2)


def test_endless_serialization_failures_are_a_503_not_a_500(settings: Settings) -> None:
    """Contention that outlasts the retries (seen under load on PATCH /profile) rolls back
    and tells the client to retry: Unavailable, which the app answers with 503."""

    async def scenario() -> Unavailable:
        db = Database(settings.database_url)
        await db.open()

        async def always(conn: asyncpg.Connection) -> int:
            raise asyncpg.exceptions.SerializationError("restart transaction")

        try:
            with pytest.raises(Unavailable) as caught:
                await db.run(always)
            return caught.value
        finally:
            await db.close()

    err = asyncio.run(scenario())
    assert err.store == "database" and "conflicting" in err.why


def test_settings_reject_bad_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGIN_PER_IP", "lots")
    with pytest.raises(ValueError, match="LOGIN_PER_IP='lots' is not an integer"):
        Settings.from_env("redis://x", "postgresql://x")
    assert replace(Settings("r", "d"), region="ap-ne").region == "ap-ne"
    monkeypatch.delenv("LOGIN_PER_IP")
    assert Settings.from_env("redis://x", "postgresql://x").keep_alive_s == 75
    monkeypatch.setenv("KEEP_ALIVE_S", "2")
    assert Settings.from_env("redis://x", "postgresql://x").keep_alive_s == 2
    monkeypatch.setenv("KEEP_ALIVE_S", "0")
    with pytest.raises(ValueError, match="KEEP_ALIVE_S=0 must be > 0"):
        Settings.from_env("redis://x", "postgresql://x")


def test_the_hash_threads_wait_is_each_threads_latest_total(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Linux's schedstat counts a thread's wait for a core since it started: the counter
    keeps each worker thread's latest reading, so the sum is theirs in all, counted once."""
    readings = iter([0.010, 0.012, 0.030])
    monkeypatch.setattr("server.security.runqueue_wait_s", lambda: next(readings))
    counter = HashCounter()
    counter.add(0.02)
    counter.add(0.02)  # the same thread again: its total replaces the first reading
    assert counter.wait_s == pytest.approx(0.012)
    other = threading.Thread(target=counter.add, args=(0.02,))
    other.start()
    other.join()
    assert counter.wait_s == pytest.approx(0.042) and counter.count == 3
    # Where the kernel does not say, the count goes on and the wait stays as it was.
    monkeypatch.setattr("server.security.runqueue_wait_s", lambda: None)
    counter.add(0.02)
    assert counter.wait_s == pytest.approx(0.042) and counter.count == 4
