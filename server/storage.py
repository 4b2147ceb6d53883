"""The two stores: a PostgreSQL-wire database (the source of truth) and Redis (the cache).

SQL is written to run unchanged on PostgreSQL and CockroachDB: UUID keys from
`gen_random_uuid()`, no sequences, no LISTEN/NOTIFY, no advisory locks, one statement at
a time per connection, and every transaction retried on SQLSTATE 40001 with exponential
backoff (2^n x 100 ms plus jitter), as CockroachDB's retry contract asks.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    home_region TEXT NOT NULL,
    profile JSONB NOT NULL DEFAULT '{}'::JSONB,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,
    user_id UUID NOT NULL,
    home_region TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS clients (
    id TEXT PRIMARY KEY,
    secret_hash TEXT,
    redirect_uris TEXT[] NOT NULL,
    public BOOL NOT NULL,
    require_pkce BOOL NOT NULL DEFAULT true
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id UUID NOT NULL,
    user_id UUID NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    access_jti TEXT NOT NULL,
    rotated BOOL NOT NULL DEFAULT false,
    revoked BOOL NOT NULL DEFAULT false,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family_id);
ALTER TABLE refresh_tokens ADD COLUMN IF NOT EXISTS home_region TEXT;
ALTER TABLE refresh_tokens ADD COLUMN IF NOT EXISTS jkt TEXT;
ALTER TABLE clients ADD COLUMN IF NOT EXISTS id_token_alg TEXT NOT NULL DEFAULT 'ES256';
CREATE TABLE IF NOT EXISTS revocations (
    jti TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_pem TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""


class Unavailable(Exception):
    """A store cannot be reached; `store` is `database` or `redis`."""

    def __init__(self, store: str, cause: BaseException, why: str = "cannot be reached") -> None:
        super().__init__(f"{store} unavailable: {cause!r}")
        self.store = store
        self.why = why


DB_DOWN = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
)
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
MAX_ATTEMPTS = 5


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection needs on its way back to the pool beyond asyncpg's own rollback of
    an open transaction: nothing. The server never changes session state (no SET, LISTEN,
    advisory locks or cursors), so asyncpg's default reset query (RESET ALL, UNLISTEN *,
    CLOSE ALL, pg_advisory_unlock_all) would be one more round trip per request for
    nothing."""


class Database:
    """An asyncpg pool with the CockroachDB retry contract."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool: asyncpg.Pool | None = None
        self.retries = 0

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(
            self.url,
            min_size=1,
            max_size=20,
            command_timeout=5,
            timeout=5,
            reset=_keep_session,
        )
        async with self.pool.acquire() as conn:
            await conn.execute(SCHEMA)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def run(
        self, work: Callable[[asyncpg.Connection], Awaitable[T]], transaction: bool = True
    ) -> T:
        """Run `work` in a serializable transaction (or, for a single statement, its own
        implicit one: one round trip instead of three), retried on 40001."""
        assert self.pool is not None
        for attempt in range(MAX_ATTEMPTS):
            try:
                async with self.pool.acquire() as conn:
                    if not transaction:
                        return await work(conn)
                    async with conn.transaction(isolation="serializable"):
                        return await work(conn)
            except asyncpg.exceptions.SerializationError as exc:
                if attempt == MAX_ATTEMPTS - 1:
                    # Contention that outlasted the retries: the transaction rolled back,
                    # so the client may retry; a 503, not a server error.
                    raise Unavailable(
                        "database",
                        exc,
                        f"kept conflicting with concurrent writes ({MAX_ATTEMPTS} attempts)",
                    ) from exc
                self.retries += 1
                await asyncio.sleep((2**attempt) * 0.1 + random.uniform(0, 0.05))
            except DB_DOWN as exc:
                raise Unavailable("database", exc) from exc
        raise AssertionError("unreachable")

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self.run(lambda conn: conn.fetchrow(sql, *args))

    async def execute(self, sql: str, *args: Any) -> str:
        return await self.run(lambda conn: conn.execute(sql, *args))

    async def ping(self) -> None:
        await self.fetchrow("SELECT 1")


class Cache:
    """redis.asyncio with a blocking pool: callers wait for a connection, never error."""

    def __init__(self, url: str) -> None:
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=64, timeout=2, socket_timeout=1, socket_connect_timeout=1
        )
        self.client = aioredis.Redis(connection_pool=pool, decode_responses=False)
        self._scripts: dict[str, Any] = {}

    def script(self, name: str, source: str) -> Any:
        """A Lua script called by EVALSHA (loaded on first use, and again after a restart)."""
        if name not in self._scripts:
            self._scripts[name] = self.client.register_script(source)
        return self._scripts[name]

    async def call(self, fn: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        try:
            return await fn(self.client)
        except REDIS_DOWN as exc:
            raise Unavailable("redis", exc) from exc

    async def ping(self) -> None:
        await self.call(lambda r: r.ping())

    async def close(self) -> None:
        await self.client.aclose()
