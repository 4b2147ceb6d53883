"""Shared pieces of the handlers: the app state, steps with their unavailability rules,
the rate limiter, form parsing and client authentication."""

from __future__ import annotations

import hmac
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg
import orjson
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse

from server import steps
from server.emulation import Emulation
from server.errors import (
    OAuthError,
)
from server.metrics import Metrics
from server.security import (
    Keys,
    sha256,
)
from server.settings import Settings
from server.storage import Cache, Database, Unavailable

RATE_LIMIT_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, 0, now - window)
  if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return math.max(1, tonumber(oldest[2]) + window - now)
  end
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window)
end
return 0
"""


MAX_FORM_FIELDS = 50
MAX_FORM_BYTES = 64 * 1024

PROFILE_FIELDS = {"name": 200, "given_name": 100, "family_name": 100, "locale": 35, "picture": 2000}


SCOPES = {"openid", "profile", "email", "offline_access"}


@dataclass
class Client:
    id: str
    secret_hash: str | None
    redirect_uris: list[str]
    public: bool
    require_pkce: bool
    id_token_alg: str = "ES256"


@dataclass
class State:
    settings: Settings
    db: Database
    cache: Cache
    keys: Keys = field(default_factory=lambda: Keys([]))
    challenge_secret: bytes = b""
    clients: dict[str, Client] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    emulation: Emulation = field(default_factory=lambda: Emulation.load("us-east"))


def state_of(request: Request) -> State:
    state: State = request.app.state.authscale
    return state


class _Down:
    """What a `miss` or `skip` step returns when Redis could not be reached."""

    def __bool__(self) -> bool:
        return False


DOWN: Any = _Down()


async def cache_step(
    st: State,
    action: str,
    fn: Callable[[Any], Awaitable[Any]],
    rule: str = "fail",
) -> Any:
    """One Redis step. On an unreachable Redis: `miss` and `skip` return DOWN, `fail` raises."""
    rec = steps.current()
    async with rec.step("redis", action):
        try:
            return await st.cache.call(fn)
        except Unavailable:
            if rule == "fail":
                raise
            return DOWN


async def db_step(
    st: State,
    action: str,
    work: Callable[[asyncpg.Connection], Awaitable[Any]],
    home: str | None = None,
    write: bool = False,
    transaction: bool = False,
) -> Any:
    """One database step: at the local replica (`home` None) or at the row's home region,
    where the emulation waits the round trip (and the quorum of a write). A single
    statement runs as its own implicit transaction; several need `transaction=True`."""
    async with steps.current().step("crdb", action, home):
        result = await st.db.run(work, transaction)
        await st.emulation.wait(home, write)
        return result


async def rate_limit(st: State, scope: str, subjects: list[tuple[str, int]]) -> None:
    """Sliding window per subject, one atomic script; fail-open when Redis is down."""
    keys = [f"rl:{scope}:{name}" for name, _ in subjects]
    limits = [str(limit) for _, limit in subjects]
    member = f"{time.time_ns()}-{secrets.token_hex(4)}"
    retry_ms = await cache_step(
        st,
        "rate_limit",
        lambda r: st.cache.script("rate_limit", RATE_LIMIT_LUA)(
            keys=keys,
            args=[int(time.time() * 1000), st.settings.rate_window_s * 1000, member, *limits],
            client=r,
        ),
        rule="skip",
    )
    if retry_ms:
        seconds = max(1, -(-int(retry_ms) // 1000))
        raise OAuthError(
            429,
            "slow_down" if scope == "token" else "rate_limited",
            f"too many {scope} requests; retry in {seconds} s",
            {"Retry-After": str(seconds)},
        )


async def form_of(request: Request) -> FormData:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("application/x-www-form-urlencoded"):
        raise OAuthError(
            400, "invalid_request", "send the parameters as application/x-www-form-urlencoded"
        )
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise OAuthError(
            400, "invalid_request", f"the form body is over {MAX_FORM_BYTES // 1024} KiB"
        )
    # The standard library's parser: a third of the CPU of Starlette's (python-multipart)
    # parser for the few short fields an OAuth request carries.
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode(), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except ValueError as exc:  # not UTF-8, or too many fields
        raise OAuthError(400, "invalid_request", f"unreadable form body: {exc}") from exc
    return FormData(cast(list[tuple[str, str | UploadFile]], pairs))


def param(form: Any, name: str, required: bool = True, max_len: int = 2048) -> str:
    value = form.get(name)
    if value is None or value == "":
        if required:
            raise OAuthError(400, "invalid_request", f"missing parameter {name!r}")
        return ""
    if not isinstance(value, str) or len(value) > max_len:
        raise OAuthError(400, "invalid_request", f"parameter {name!r} is not a short string")
    return value


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def client_of(st: State, client_id: str) -> Client:
    client = st.clients.get(client_id)
    if client is None:
        raise OAuthError(401, "invalid_client", f"unknown client {client_id!r}")
    return client


def authenticate_client(st: State, request: Request, form: Any) -> Client:
    auth = request.headers.get("authorization", "")
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if auth.lower().startswith("basic "):
        import base64

        try:
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            raise OAuthError(401, "invalid_client", "malformed Basic credentials") from None
    if not isinstance(client_id, str) or not client_id:
        raise OAuthError(401, "invalid_client", "client_id is required")
    client = client_of(st, client_id)
    if not client.public and not (
        isinstance(secret, str)
        and client.secret_hash
        and hmac.compare_digest(sha256(secret), client.secret_hash)
    ):
        raise OAuthError(
            401, "invalid_client", "client authentication failed", {"WWW-Authenticate": "Basic"}
        )
    return client


def endpoint_urls(st: State, request: Request) -> tuple[str, ...]:
    """The addresses a DPoP proof's htu may name for this request."""
    return (st.settings.issuer + request.url.path, str(request.url.replace(query="", fragment="")))


class FastJSONResponse(JSONResponse):
    """JSONResponse rendered by orjson (compact UTF-8, as Starlette's own), for hot routes."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
