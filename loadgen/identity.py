"""Seeded users and their credentials: accounts in the database, sessions and tokens got
through the servers before the measured run starts (so the run measures operations, not
seeding)."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.cookiejar import CookieJar
from typing import Any

import asyncpg

from server.security import hash_password

PASSWORD = "load test password"
CLIENT, SECRET = "demo-service", "demo-service-secret"
REDIRECT = "http://127.0.0.1:8765/callback"
BASIC = "Basic " + base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()


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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


def sign_in(base: str, email: str, home: str) -> Identity:
    """Log in at `base` and get an access token through the code flow."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect())

    def call(method: str, path: str, data: dict[str, str] | None = None) -> Any:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        with opener.open(urllib.request.Request(base + path, body, method=method), timeout=10) as r:
            return json.loads(r.read())

    challenge = call("GET", "/login")["challenge"]
    call("POST", "/login", {"email": email, "password": PASSWORD, "challenge": challenge})
    sid = next(c.value for c in jar if c.name == "sid")
    code = authorize(opener, base)
    req = urllib.request.Request(
        base + "/token",
        urllib.parse.urlencode(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
        ).encode(),
        headers={"Authorization": BASIC},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        access = json.loads(r.read())["access_token"]
    return Identity(email, home, str(sid), str(access))


AUTHORIZE_QUERY = urllib.parse.urlencode(
    {"client_id": CLIENT, "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid"}
)


def code_from(location: str) -> str:
    params = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)
    if "code" not in params:
        raise RuntimeError(f"authorize answered without a code: {location}")
    return params["code"][0]


def authorize(opener: urllib.request.OpenerDirector, base: str) -> str:
    try:
        opener.open(base + "/authorize?" + AUTHORIZE_QUERY, timeout=10)
    except urllib.error.HTTPError as exc:
        return code_from(exc.headers["Location"])
    raise RuntimeError("authorize did not redirect")
