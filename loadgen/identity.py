"""Seeded users and their credentials: accounts in the database, sessions and tokens got
through the servers before the measured run starts (so the run measures operations, not
seeding)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from server import client
from server.security import hash_password

PASSWORD = "load test password"


def email_of(region: str, i: int) -> str:
    return f"load-{region}-{i}@authscale.test"


def seed_users(database_url: str, regions: list[str], per_region: int) -> int:
    """Create `per_region` accounts homed in each region (idempotent): how many are new."""
    digest = hash_password(PASSWORD)  # one argon2id hash: every seeded user has this password

    async def work() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            created = 0
            for region in regions:
                for i in range(per_region):
                    status = await conn.execute(
                        "INSERT INTO users (email, password_hash, home_region, profile) "
                        "VALUES ($1, $2, $3, '{}'::JSONB) ON CONFLICT (email) DO NOTHING",
                        email_of(region, i),
                        digest,
                        region,
                    )
                    created += status.endswith(" 1")
            return created
        finally:
            await conn.close()

    return asyncio.run(work())


@dataclass
class Identity:
    email: str
    home: str
    sid: str
    access_token: str


def sign_in(base: str, email: str, home: str) -> Identity:
    """Log a seeded user in at `base` and get its access token (the code flow)."""
    got = client.sign_in(base, email, PASSWORD)
    return Identity(email, home, got.sid, got.access_token)
