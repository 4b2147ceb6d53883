"""The database pool: connections are reused, bounded, and never reused after work that
left them in doubt (a cancelled or timed-out statement)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from server.infra import PostgresServer, RedisServer
from server.storage import Database, Unavailable


@pytest.fixture
def db_url(stores: tuple[RedisServer, PostgresServer]) -> str:
    return stores[1].url


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Database]:
    db = Database(url)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


async def _backends(db: Database) -> int:
    """Connections the pool holds open: its idle ones (none is checked out here)."""
    assert db.pool is not None
    return len(db.pool._idle)


def test_connections_are_reused_and_survive_statement_errors(db_url: str) -> None:
    async def scenario() -> None:
        async with opened(db_url) as db:
            pids = {
                await db.run(lambda c: c.fetchval("SELECT pg_backend_pid()")) for _ in range(20)
            }
            assert len(pids) == 1  # one request at a time: one connection, reused
            with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
                await db.run(lambda c: c.fetchval("SELECT 1 / 0"), transaction=False)
            # The server refused a statement; the session is sound and kept.
            assert await db.run(lambda c: c.fetchval("SELECT pg_backend_pid()")) in pids

    asyncio.run(scenario())


def test_a_cancelled_statement_retires_its_connection(db_url: str) -> None:
    async def scenario() -> None:
        async with opened(db_url) as db:
            first = await db.run(lambda c: c.fetchval("SELECT pg_backend_pid()"))
            slow = asyncio.create_task(db.run(lambda c: c.execute("SELECT pg_sleep(5)")))
            await asyncio.sleep(0.3)
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            # Its connection may still be inside the statement: it is closed, not reused,
            # and the next request gets a fresh one that works.
            again = await db.run(lambda c: c.fetchval("SELECT pg_backend_pid()"))
            assert again != first
            assert await _backends(db) == 1

    asyncio.run(scenario())


def test_the_pool_is_bounded_and_queues_the_rest(db_url: str) -> None:
    async def scenario() -> None:
        async with opened(db_url) as db:
            pids = await asyncio.gather(
                *(
                    db.run(lambda c: c.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.2)"))
                    for _ in range(30)
                )
            )
            assert len(pids) == 30
            assert len(set(pids)) == 20  # at most 20 at once; ten waited their turn
            assert await _backends(db) == 20
        with pytest.raises(Unavailable, match="closed"):
            await db.run(lambda c: c.fetchval("SELECT 1"))

    asyncio.run(scenario())
