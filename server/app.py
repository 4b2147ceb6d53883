"""The OpenID Connect provider: a stateless Starlette app on Redis and a PostgreSQL-wire database.

Each handler performs, in order, the steps its operation has in
`scenarios/data/operations.toml` and records them (see `server.steps`). Redis holds
short-lived state and caches; the database holds users, sessions, refresh tokens and
revocations. When Redis cannot be reached a step does what its `on_unavailable` rule in
the step list says: a cache lookup falls back to the database, a cache fill or the
rate limiter is skipped, Redis-only state (authorization codes) fails the request with
503. When the database cannot be reached, writes answer 503 and change nothing.
"""

from __future__ import annotations

import gc
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import steps
from server.authorize import authorize, device_authorization, device_verify, par
from server.core import (
    Client,
    State,
)
from server.emulation import Emulation
from server.errors import (
    OAuthError,
    on_http_error,
    on_oauth_error,
    on_unavailable,
    on_unexpected,
)
from server.grants import token
from server.meta import bench_redis_get, discovery, healthz, jwks, metrics, openapi
from server.resources import introspect, profile_update, revoke, userinfo
from server.security import (
    Keys,
    SigningKey,
    hash_password,
    sha256,
)
from server.sessions import login, login_challenge, session
from server.settings import Settings
from server.storage import Cache, Database, Unavailable

ROUTES = [
    Route("/.well-known/openid-configuration", discovery, name="discovery"),
    Route("/login", login_challenge, methods=["GET"], name="login_challenge"),
    Route("/login", login, methods=["POST"], name="login"),
    Route("/session", session, methods=["GET"], name="session_validation"),
    Route("/authorize", authorize, methods=["GET"], name="authorize"),
    Route("/par", par, methods=["POST"], name="par"),
    Route("/token", token, methods=["POST"], name="token_issue"),
    Route(
        "/device_authorization",
        device_authorization,
        methods=["POST"],
        name="device_authorization",
    ),
    Route("/device", device_verify, methods=["POST"], name="device_verify"),
    Route("/userinfo", userinfo, methods=["GET", "POST"], name="userinfo"),
    Route("/profile", profile_update, methods=["PATCH"], name="profile_update"),
    Route("/revoke", revoke, methods=["POST"], name="revoke"),
    Route("/introspect", introspect, methods=["POST"], name="introspect"),
    Route("/jwks.json", jwks, name="jwks"),
    Route("/healthz", healthz, name="healthz"),
    Route("/metrics", metrics, name="metrics"),
    Route("/openapi.json", openapi, name="openapi"),
]


class StepsMiddleware:
    """Starts each request's step record; adds Server-Timing; feeds the latency metrics."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rec = steps.begin(self.state.settings.region, self.state.settings.step_cpu)
        status = 500

        async def send_with_timing(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", rec.header().encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_timing)
        finally:
            route = scope.get("route")
            name = getattr(route, "name", None) or "unmatched"
            self.state.metrics.observe(name, status, time.perf_counter() - rec.started)


async def load_keys(st: State) -> None:
    """Signing keys and the challenge secret live in the database, shared by every process."""

    async def work(c: asyncpg.Connection) -> list[asyncpg.Record]:
        for alg in ("ES256", "RS256", "HS256"):
            exists = await c.fetchrow("SELECT 1 FROM signing_keys WHERE alg = $1", alg)
            if exists is None:
                if alg == "HS256":
                    kid, pem = "challenge-hmac", secrets.token_hex(32)
                else:
                    key = SigningKey.generate(alg)
                    kid, pem = key.kid, key.pem()
                await c.execute(
                    "INSERT INTO signing_keys (kid, alg, private_pem) VALUES ($1, $2, $3) "
                    "ON CONFLICT (kid) DO NOTHING",
                    kid,
                    alg,
                    pem,
                )
        return list(
            await c.fetch("SELECT kid, alg, private_pem FROM signing_keys ORDER BY created_at")
        )

    rows = await st.db.run(work)
    st.keys = Keys(
        [
            SigningKey.from_pem(r["kid"], r["alg"], r["private_pem"])
            for r in rows
            if r["alg"] != "HS256"
        ]
    )
    st.challenge_secret = bytes.fromhex(next(r["private_pem"] for r in rows if r["alg"] == "HS256"))


DEMO_CLIENTS = [
    Client("demo-spa", None, ["http://127.0.0.1:8765/callback"], public=True, require_pkce=True),
    Client(
        "demo-service",
        sha256("demo-service-secret"),
        ["http://127.0.0.1:8765/callback"],
        public=False,
        require_pkce=False,
        id_token_alg="RS256",
    ),
]


DEMO_USER = ("alice@example.com", "correct horse battery staple")


async def ensure_demo_data(st: State) -> None:
    """Idempotent: the demo clients and user exist after this, whatever ran before."""

    async def work(c: asyncpg.Connection) -> None:
        for client in DEMO_CLIENTS:
            await c.execute(
                "INSERT INTO clients (id, secret_hash, redirect_uris, public, require_pkce, "
                "id_token_alg) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                client.id,
                client.secret_hash,
                client.redirect_uris,
                client.public,
                client.require_pkce,
                client.id_token_alg,
            )
        if await c.fetchrow("SELECT 1 FROM users WHERE email = $1", DEMO_USER[0]) is None:
            await c.execute(
                "INSERT INTO users (email, password_hash, home_region, profile) "
                "VALUES ($1, $2, $3, $4::JSONB) ON CONFLICT (email) DO NOTHING",
                DEMO_USER[0],
                hash_password(DEMO_USER[1]),
                st.settings.region,
                json.dumps({"name": "Alice Example"}),
            )

    await st.db.run(work)


async def load_clients(st: State) -> None:
    rows = await st.db.run(
        lambda c: c.fetch(
            "SELECT id, secret_hash, redirect_uris, public, require_pkce, id_token_alg FROM clients"
        )
    )
    st.clients = {
        r["id"]: Client(
            r["id"],
            r["secret_hash"],
            list(r["redirect_uris"]),
            r["public"],
            r["require_pkce"],
            r["id_token_alg"],
        )
        for r in rows
    }


def create_app(settings: Settings) -> Starlette:
    state = State(
        settings,
        Database(settings.database_url),
        Cache(settings.redis_url),
        emulation=Emulation.load(settings.region, settings.survival),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await state.db.open()
        except Exception as exc:
            raise RuntimeError(
                f"cannot open the database at {settings.database_url_redacted}: {exc}; "
                "check DATABASE_URL (unset, make server starts its own PostgreSQL)"
            ) from exc
        await load_keys(state)
        if settings.demo_data:
            await ensure_demo_data(state)
        await load_clients(state)
        # What start-up built (modules, keys, clients, pools) lives as long as the process:
        # freezing it keeps the collector from walking it again in every full collection,
        # which measured 60-95 ms on the 2-core test machine with every request in the
        # process waiting (gc.callbacks, 271 QPS on two regions).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await state.cache.close()
            await state.db.close()

    routes = list(ROUTES)
    if settings.bench_routes:
        routes.append(Route("/bench/redis-get", bench_redis_get, name="bench_redis_get"))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: on_http_error,
            OAuthError: on_oauth_error,
            Unavailable: on_unavailable,
            Exception: on_unexpected,
        },
    )
    app.state.authscale = state
    app.add_middleware(StepsMiddleware, state=state)
    return app
