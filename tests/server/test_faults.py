"""A dead Redis or database, stopped for real (the instances this test session started)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from starlette.testclient import TestClient

from server.infra import PostgresServer, RedisServer
from server.settings import Settings
from server.steps import parse_server_timing
from tests.server.conftest import authorize, bearer, code_of, exchange, login, pkce, tokens


def _eventually(call: Callable[[], Any], ok: Callable[[Any], bool], seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = call()
        if ok(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def _count(settings: Settings, table: str) -> int:
    import asyncio

    async def q() -> int:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        finally:
            await conn.close()

    return asyncio.run(q())


def test_redis_down_reads_from_the_database_and_logins_still_work(
    client: TestClient, stores: tuple[RedisServer, PostgresServer]
) -> None:
    redis_server, _ = stores
    issued = tokens(client)
    withdrawn = tokens(client)["access_token"]
    assert client.post("/revoke", data={"token": withdrawn, "client_id": "demo-spa"}).is_success
    redis_server.stop()
    try:
        # With Redis gone, the revocation row in the database still refuses the token.
        refused = client.get("/userinfo", headers=bearer(withdrawn))
        assert refused.status_code == 401 and "revoked" in refused.json()["error_description"]
        session = client.get("/session")
        assert session.status_code == 200
        steps = [(c, a) for c, a, _ in parse_server_timing(session.headers["server-timing"])]
        assert steps == [
            ("edge", "handle"),
            ("redis", "get_session"),
            ("crdb", "read_session"),
            ("redis", "set_session"),
        ]
        info = client.get("/userinfo", headers=bearer(issued["access_token"]))
        assert info.status_code == 200 and info.json()["email"] == "alice@example.com"
        assert ("crdb", "read_user_check_revoked") in [
            (c, a) for c, a, _ in parse_server_timing(info.headers["server-timing"])
        ]
        relogin = login(client)
        assert relogin.status_code == 200
        assert client.get("/healthz").json()["status"] == "degraded"
        # Authorization codes live only in Redis: issuing one cannot work now.
        _, challenge = pkce()
        assert authorize(client, challenge).status_code == 503
    finally:
        redis_server.start()
    # Nothing was lost: the session created while Redis was down is in the database.
    assert client.get("/session").json()["sub"] == relogin.json()["sub"]
    assert client.get("/healthz").json()["status"] == "ok"


def test_database_down_answers_503_and_writes_nothing(
    client: TestClient, settings: Settings, stores: tuple[RedisServer, PostgresServer]
) -> None:
    _, pg = stores
    issued = tokens(client)
    assert client.get("/session").status_code == 200  # now cached in Redis
    assert client.get("/userinfo", headers=bearer(issued["access_token"])).status_code == 200
    verifier, challenge = pkce()
    code = code_of(authorize(client, challenge))
    sessions_before = _count(settings, "sessions")
    tokens_before = _count(settings, "refresh_tokens")
    pg.stop()
    try:
        assert client.get("/session").status_code == 200  # served from the cache
        cached = client.get("/userinfo", headers=bearer(issued["access_token"]))
        assert cached.status_code == 200 and cached.json()["email"] == "alice@example.com"
        for response in (
            login(client),
            exchange(client, code, verifier),
            client.patch("/profile", json={"name": "Nope"}, headers=bearer(issued["access_token"])),
        ):
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "temporarily_unavailable"
            assert response.headers["retry-after"] == "1"
        assert client.get("/healthz").status_code == 503
    finally:
        pg.start()
    assert _count(settings, "sessions") == sessions_before
    assert _count(settings, "refresh_tokens") == tokens_before
    again = _eventually(lambda: login(client), lambda r: r.status_code == 200)
    assert again.status_code == 200
    info = client.get("/userinfo", headers=bearer(issued["access_token"]))
    assert info.json().get("name") != "Nope"


@pytest.mark.parametrize("store", ["redis", "database"])
def test_startup_without_the_store_fails_clearly(settings: Settings, store: str) -> None:
    from dataclasses import replace

    from tests.server.conftest import make_client

    dead = "postgresql://authscale@127.0.0.1:1/postgres" if store == "database" else None
    if dead is None:
        # Redis is not needed to start: the server comes up degraded.
        with make_client(settings, redis_url="redis://127.0.0.1:1/0") as c:
            assert c.get("/healthz").json()["redis"] == "unavailable"
            assert login(c).status_code == 200
        return
    with (
        pytest.raises(RuntimeError, match="cannot open the database"),
        make_client(replace(settings, database_url=dead)),
    ):
        pass
