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
# Before attempt n + 1 of a transaction that conflicted: BACKOFF_S * 2**(n - 1) seconds plus
# up to JITTER_S more, drawn evenly (the model's retries take the same, from the profile).
BACKOFF_S = 0.1
JITTER_S = 0.05


class ConnectionPool:
    """A LIFO pool of asyncpg connections, opened on demand up to `size`.

    asyncpg's own pool costs about 30 us of CPU per checkout here (a proxy object per
    acquire, an inactivity timer per release, a lock-protected queue), 40 % of a one-insert
    request's database CPU; this pool is a list and a semaphore. It keeps what the server
    needs of one: a connection that comes back broken, inside a transaction or from work
    that failed other than by a database error (a cancelled request, a timeout, a dropped
    socket) is closed, not reused, and the next checkout opens a fresh one, so a database
    restart heals by itself. No reset query on the way back: the server changes no
    session state (no SET, LISTEN, advisory locks or cursors).
    """

    def __init__(self, url: str, size: int, timeout_s: float) -> None:
        self.url, self.timeout_s = url, timeout_s
        self._idle: list[asyncpg.Connection] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    async def acquire(self) -> asyncpg.Connection:
        if self._closed:
            raise asyncpg.exceptions.InterfaceError("the connection pool is closed")
        await self._slots.acquire()
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
        try:
            fresh: asyncpg.Connection = await asyncpg.connect(
                self.url, timeout=self.timeout_s, command_timeout=self.timeout_s
            )
        except BaseException:
            self._slots.release()
            raise
        return fresh

    def release(self, conn: asyncpg.Connection, reusable: bool) -> None:
        if reusable and not self._closed and not conn.is_closed() and not conn.is_in_transaction():
            self._idle.append(conn)
        elif not conn.is_closed():
            conn.terminate()
        self._slots.release()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            try:
                await asyncio.wait_for(conn.close(), self.timeout_s)
            except (TimeoutError, OSError, asyncpg.exceptions.InterfaceError):
                conn.terminate()


class Database:
    """A PostgreSQL-wire database through a connection pool, with the CockroachDB retry
    contract."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool: ConnectionPool | None = None
        self.retries = 0

    async def open(self) -> None:
        self.pool = ConnectionPool(self.url, size=20, timeout_s=5)
        await self.run(lambda conn: conn.execute(SCHEMA), transaction=False)

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
                conn = await self.pool.acquire()
                reusable = False
                try:
                    if not transaction:
                        result = await work(conn)
                    else:
                        async with conn.transaction(isolation="serializable"):
                            result = await work(conn)
                    reusable = True
                    return result
                except asyncpg.exceptions.PostgresError:
                    reusable = True  # the server refused a statement; the session is sound
                    raise
                finally:
                    self.pool.release(conn, reusable)
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
                await asyncio.sleep((2**attempt) * BACKOFF_S + random.uniform(0, JITTER_S))
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
