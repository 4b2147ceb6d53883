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

import hmac
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import asyncpg
import jwt
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import steps
from server.dpop import PROOF_ALGS as DPOP_ALGS
from server.dpop import WINDOW_S, check_proof
from server.emulation import Emulation
from server.errors import (
    OAuthError,
    bearer_error,
    on_http_error,
    on_oauth_error,
    on_unavailable,
    on_unexpected,
)
from server.metrics import Metrics
from server.openapi import AUTHORIZE_PARAMS, openapi_spec
from server.security import (
    Keys,
    SigningKey,
    b64url,
    hash_password,
    now,
    pkce_matches,
    sha256,
    verify_password,
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

# GETDEL the code and leave a marker of what it issued, so a replay can revoke that.
CONSUME_CODE_LUA = """
local v = redis.call('GETDEL', KEYS[1])
if v then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return {1, v}
end
local used = redis.call('GET', KEYS[2])
if used then return {2, used} end
return {0, ''}
"""

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


def _state(request: Request) -> State:
    state: State = request.app.state.authscale
    return state


# -- helpers: steps with their unavailability rules -----------------------------------


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
    try:
        return await request.form(max_fields=50)
    except Exception as exc:  # malformed body
        raise OAuthError(400, "invalid_request", f"unreadable form body: {exc}") from exc


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


# -- login and sessions -----------------------------------------------------------------


def _challenge_mac(st: State, nonce: str, expires: int) -> str:
    return b64url(hmac.digest(st.challenge_secret, f"{nonce}.{expires}".encode(), "sha256"))[:32]


async def login_challenge(request: Request) -> Response:
    """A signed, single-use login challenge for the next POST /login."""
    st = _state(request)
    steps.current().handled()
    nonce = secrets.token_urlsafe(16)
    expires = now() + st.settings.challenge_ttl_s
    challenge = f"{nonce}.{expires}.{_challenge_mac(st, nonce, expires)}"
    await cache_step(
        st,
        "issue_challenge",
        lambda r: r.set(f"chal:{nonce}", b"1", ex=st.settings.challenge_ttl_s),
        rule="skip",
    )
    return JSONResponse({"challenge": challenge, "expires_in": st.settings.challenge_ttl_s})


def _check_challenge(st: State, challenge: str) -> str:
    try:
        nonce, expires_text, mac = challenge.split(".")
        expires = int(expires_text)
    except ValueError:
        raise OAuthError(400, "invalid_request", "malformed login challenge") from None
    if not hmac.compare_digest(mac, _challenge_mac(st, nonce, expires)) or expires < now():
        raise OAuthError(400, "invalid_request", "login challenge is invalid or expired")
    return nonce


async def login(request: Request) -> Response:
    st = _state(request)
    form = await form_of(request)
    email = param(form, "email", max_len=320).strip().lower()
    password = param(form, "password", max_len=1024)
    nonce = _check_challenge(st, param(form, "challenge", max_len=200))
    steps.current().handled()
    s = st.settings
    await rate_limit(
        st,
        "login",
        [(f"ip:{client_ip(request)}", s.login_per_ip), (f"acct:{email}", s.login_per_account)],
    )
    fresh = await cache_step(st, "consume_challenge", lambda r: r.getdel(f"chal:{nonce}"), "skip")
    if fresh is None:  # Redis answered: the challenge was consumed before (DOWN: accepted)
        raise OAuthError(400, "invalid_request", "login challenge was already used")
    cached = await cache_step(st, "get_user", lambda r: r.get(f"login:{email}"), "miss")
    if cached:
        account = json.loads(cached)
    else:
        row = await db_step(
            st,
            "read_user",
            lambda c: c.fetchrow(
                "SELECT id, password_hash, home_region FROM users WHERE email = $1", email
            ),
        )
        account = (
            {"sub": str(row["id"]), "hash": row["password_hash"], "home": row["home_region"]}
            if row
            else None
        )
        if account is not None:
            await cache_step(
                st,
                "set_user",
                lambda r: r.set(f"login:{email}", json.dumps(account), ex=s.user_cache_ttl_s),
                "skip",
            )
    async with steps.current().step("edge", "verify_password"):
        ok = await verify_password(account["hash"] if account else None, password)
    if not ok or account is None:
        raise OAuthError(401, "access_denied", "wrong email or password")
    sid = secrets.token_urlsafe(32)
    expires = now() + s.session_ttl_s
    await db_step(
        st,
        "write_session",
        lambda c: c.execute(
            "INSERT INTO sessions (id_hash, user_id, home_region, expires_at) "
            "VALUES ($1, $2, $3, to_timestamp($4))",
            sha256(sid),
            uuid.UUID(account["sub"]),
            account["home"],
            expires,
        ),
        home=account["home"],
        write=True,
    )
    value = json.dumps(
        {"sub": account["sub"], "exp": expires, "auth_time": now(), "home": account["home"]}
    )
    await cache_step(
        st, "set_session", lambda r: r.set(f"sess:{sha256(sid)}", value, exat=expires), "skip"
    )
    response = JSONResponse({"sub": account["sub"], "expires_at": expires})
    response.set_cookie(
        "sid", sid, max_age=s.session_ttl_s, httponly=True, samesite="lax", path="/"
    )
    return response


async def session_of(st: State, request: Request) -> dict[str, Any] | None:
    """The session behind the sid cookie: Redis first, the database on a miss."""
    sid = request.cookies.get("sid", "")
    steps.current().handled()
    if not sid or len(sid) > 100:
        return None
    key = sha256(sid)
    cached = await cache_step(st, "get_session", lambda r: r.get(f"sess:{key}"), "miss")
    if cached:
        data: dict[str, Any] = json.loads(cached)
        return data if data["exp"] > now() else None
    row = await db_step(
        st,
        "read_session",
        lambda c: c.fetchrow(
            "SELECT user_id, home_region, extract(epoch FROM expires_at)::INT8 AS exp, "
            "extract(epoch FROM created_at)::INT8 AS auth_time FROM sessions WHERE id_hash = $1",
            key,
        ),
    )
    if row is None or row["exp"] <= now():
        return None
    data = {
        "sub": str(row["user_id"]),
        "exp": row["exp"],
        "auth_time": row["auth_time"],
        "home": row["home_region"],
    }
    await cache_step(
        st, "set_session", lambda r: r.set(f"sess:{key}", json.dumps(data), exat=row["exp"]), "skip"
    )
    return data


async def session(request: Request) -> Response:
    data = await session_of(_state(request), request)
    if data is None:
        raise OAuthError(401, "login_required", "no valid session; POST /login first")
    return JSONResponse({"sub": data["sub"], "expires_at": data["exp"]})


# -- authorization code flow ------------------------------------------------------------


def _client(st: State, client_id: str) -> Client:
    client = st.clients.get(client_id)
    if client is None:
        raise OAuthError(401, "invalid_client", f"unknown client {client_id!r}")
    return client


PAR_PREFIX = "urn:ietf:params:oauth:request_uri:"


def _check_redirect(client: Client, redirect_uri: str) -> None:
    if redirect_uri not in client.redirect_uris:
        # Never redirect to an unregistered address: answer here instead.
        raise OAuthError(400, "invalid_request", "redirect_uri is not registered for this client")


async def par(request: Request) -> Response:
    """RFC 9126: the client pushes its authorization request and gets a request_uri."""
    st = _state(request)
    form = await form_of(request)
    client = _authenticate_client(st, request, form)
    if "request_uri" in form:
        raise OAuthError(400, "invalid_request", "request_uri is not allowed in a pushed request")
    params = {k: param(form, k, required=False) for k in AUTHORIZE_PARAMS}
    params["client_id"] = client.id
    _check_redirect(client, params["redirect_uri"])
    steps.current().handled()
    ident = secrets.token_urlsafe(24)
    ttl = st.settings.par_ttl_s
    await cache_step(st, "store_par", lambda r: r.set(f"par:{ident}", json.dumps(params), ex=ttl))
    return JSONResponse(
        {"request_uri": PAR_PREFIX + ident, "expires_in": ttl},
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


async def authorize(request: Request) -> Response:
    st = _state(request)
    q: Any = request.query_params
    client = _client(st, param(q, "client_id", max_len=200))
    request_uri = q.get("request_uri", "")
    if request_uri:
        if not request_uri.startswith(PAR_PREFIX) or len(request_uri) > 200:
            raise OAuthError(400, "invalid_request_uri", "request_uri is not one we issued")
        key = "par:" + request_uri[len(PAR_PREFIX) :]
        pushed = await cache_step(st, "consume_par", lambda r: r.getdel(key))
        if not pushed:
            raise OAuthError(400, "invalid_request_uri", "request_uri is unknown, used or expired")
        q = json.loads(pushed)
        if q["client_id"] != client.id:
            raise OAuthError(400, "invalid_request_uri", "request_uri belongs to another client")
    redirect_uri = param(q, "redirect_uri")
    _check_redirect(client, redirect_uri)
    state = q.get("state", "")

    def back(**params: str) -> Response:
        params = {**params, "iss": st.settings.issuer, **({"state": state} if state else {})}
        return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", status_code=302)

    if q.get("response_type") != "code":
        return back(error="unsupported_response_type", error_description="use response_type=code")
    scopes = set(q.get("scope", "").split())
    if "openid" not in scopes or not scopes <= SCOPES:
        return back(
            error="invalid_scope",
            error_description=f"scope must include openid, within {sorted(SCOPES)}",
        )
    challenge = q.get("code_challenge", "")
    if client.require_pkce and (not challenge or q.get("code_challenge_method") != "S256"):
        return back(error="invalid_request", error_description="PKCE with S256 is required")
    sess = await session_of(st, request)
    if sess is None:
        return back(error="login_required", error_description="no valid session; POST /login first")
    code = secrets.token_urlsafe(32)
    data = {
        "client_id": client.id,
        "redirect_uri": redirect_uri,
        "sub": sess["sub"],
        "scope": " ".join(sorted(scopes)),
        "nonce": q.get("nonce", "")[:256],
        "code_challenge": challenge,
        "auth_time": sess["auth_time"],
        "home": sess.get("home", st.settings.region),
    }
    await cache_step(
        st, "store_code", lambda r: r.set(f"code:{{{code}}}", json.dumps(data), px=60_000)
    )
    return back(code=code)


def _authenticate_client(st: State, request: Request, form: Any) -> Client:
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
    client = _client(st, client_id)
    if not client.public and not (
        isinstance(secret, str)
        and client.secret_hash
        and hmac.compare_digest(sha256(secret), client.secret_hash)
    ):
        raise OAuthError(
            401, "invalid_client", "client authentication failed", {"WWW-Authenticate": "Basic"}
        )
    return client


@dataclass
class Grant:
    """What a token request was granted: whose tokens, for what, bound to which key."""

    sub: str
    scope: str
    home: str
    auth_time: int
    family: str = field(default_factory=lambda: str(uuid.uuid4()))
    jti: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    nonce: str = ""
    jkt: str | None = None  # DPoP key thumbprint the tokens are bound to


async def _issue(st: State, client: Client, grant: Grant) -> dict[str, Any]:
    s = st.settings
    t = now()
    access_claims = {
        "iss": s.issuer,
        "sub": grant.sub,
        "aud": s.issuer + "/userinfo",
        "client_id": client.id,
        "scope": grant.scope,
        "iat": t,
        "exp": t + s.access_ttl_s,
        "jti": grant.jti,
        "home_region": grant.home,
        **({"cnf": {"jkt": grant.jkt}} if grant.jkt else {}),
    }
    async with steps.current().step("edge", "sign_token"):
        access = st.keys.sign(access_claims, typ="at+jwt")
    async with steps.current().step("edge", "sign_token"):
        id_token = st.keys.sign(
            {
                "iss": s.issuer,
                "sub": grant.sub,
                "aud": client.id,
                "iat": t,
                "exp": t + s.access_ttl_s,
                "auth_time": grant.auth_time,
                **({"nonce": grant.nonce} if grant.nonce else {}),
            },
            alg=client.id_token_alg,
        )
    refresh = secrets.token_urlsafe(32)
    await db_step(
        st,
        "write_refresh_token",
        lambda c: c.execute(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, client_id, scope, "
            "access_jti, home_region, jkt, expires_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, to_timestamp($9))",
            sha256(refresh),
            uuid.UUID(grant.family),
            uuid.UUID(grant.sub),
            client.id,
            grant.scope,
            grant.jti,
            grant.home,
            grant.jkt,
            t + s.refresh_ttl_s,
        ),
        home=grant.home,
        write=True,
    )
    return {
        "access_token": access,
        "token_type": "DPoP" if grant.jkt else "Bearer",
        "expires_in": s.access_ttl_s,
        "id_token": id_token,
        "refresh_token": refresh,
        "scope": grant.scope,
    }


async def token(request: Request) -> Response:
    st = _state(request)
    form = await form_of(request)
    grant = param(form, "grant_type", max_len=100)
    client = _authenticate_client(st, request, form)
    header = request.headers.get("dpop")
    proof = check_proof(header, "POST", endpoint_urls(st, request)) if header else None
    steps.current().handled()
    s = st.settings
    await rate_limit(
        st,
        "token",
        [(f"ip:{client_ip(request)}", s.token_per_ip), (f"client:{client.id}", s.token_per_client)],
    )
    if grant == "authorization_code":
        body = await _code_grant(st, client, form, proof)
    elif grant == "refresh_token":
        body = await _refresh_grant(st, client, form, proof)
    elif grant == DEVICE_GRANT:
        body = await _device_grant(st, client, form, proof)
    else:
        raise OAuthError(400, "unsupported_grant_type", f"grant_type {grant!r} is not supported")
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels: no words; RFC 8628 §6.1


async def device_authorization(request: Request) -> Response:
    """RFC 8628 §3.1: a device code for the client, a user code for the person."""
    st = _state(request)
    form = await form_of(request)
    client = _authenticate_client(st, request, form)
    scopes = set(param(form, "scope", required=False).split()) or {"openid"}
    if not scopes <= SCOPES:
        raise OAuthError(400, "invalid_scope", f"scope must be within {sorted(SCOPES)}")
    steps.current().handled()
    s = st.settings
    device_code = secrets.token_urlsafe(32)
    raw = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
    user_code = f"{raw[:4]}-{raw[4:]}"
    record = {"client_id": client.id, "scope": " ".join(sorted(scopes)), "status": "pending"}

    async def store(r: Any) -> None:
        async with r.pipeline(transaction=False) as pipe:
            pipe.set(f"device:{device_code}", json.dumps(record), ex=s.device_ttl_s)
            pipe.set(f"usercode:{user_code}", device_code, ex=s.device_ttl_s)
            await pipe.execute()

    await cache_step(st, "store_device_code", store)
    verification = f"{s.issuer}/device"
    return JSONResponse(
        {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification,
            "verification_uri_complete": f"{verification}?{urlencode({'user_code': user_code})}",
            "expires_in": s.device_ttl_s,
            "interval": s.device_interval_s,
        },
        headers={"Cache-Control": "no-store"},
    )


async def device_verify(request: Request) -> Response:
    """The person, logged in, approves or denies the user code shown on the device."""
    st = _state(request)
    form = await form_of(request)
    user_code = param(form, "user_code", max_len=20).strip().upper()
    action = param(form, "action", required=False) or "approve"
    if action not in ("approve", "deny"):
        raise OAuthError(400, "invalid_request", "action must be approve or deny")
    sess = await session_of(st, request)
    if sess is None:
        raise OAuthError(401, "login_required", "no valid session; POST /login first")
    device_code = await cache_step(
        st, "find_user_code", lambda r: r.getdel(f"usercode:{user_code}")
    )
    if not device_code:
        raise OAuthError(400, "invalid_request", "unknown, used or expired user_code")
    key = f"device:{device_code.decode()}"
    current = await cache_step(st, "read_device_code", lambda r: r.get(key))
    if not current:
        raise OAuthError(400, "expired_token", "the device code has expired")
    record = json.loads(current)
    record.update(
        status="approved" if action == "approve" else "denied",
        sub=sess["sub"],
        home=sess.get("home", st.settings.region),
        auth_time=sess["auth_time"],
    )
    await cache_step(
        st, "approve_device_code", lambda r: r.set(key, json.dumps(record), keepttl=True)
    )
    return JSONResponse({"status": record["status"]})


async def _device_grant(
    st: State, client: Client, form: Any, proof: tuple[str, str] | None
) -> dict[str, Any]:
    device_code = param(form, "device_code", max_len=200)
    key = f"device:{device_code}"
    current = await cache_step(st, "read_device_code", lambda r: r.get(key))
    if not current:
        raise OAuthError(400, "expired_token", "the device code is unknown or has expired")
    record = json.loads(current)
    if record["client_id"] != client.id:
        raise OAuthError(400, "invalid_grant", "the device code was issued to another client")
    if record["status"] == "pending":
        interval = st.settings.device_interval_s
        polled = await cache_step(
            st,
            "pace_device_poll",
            lambda r: r.set(f"devpoll:{device_code}", b"1", nx=True, ex=interval),
        )
        if not polled:
            raise OAuthError(400, "slow_down", f"poll at most every {interval} s")
        raise OAuthError(400, "authorization_pending", "the user has not answered yet")
    # Approved or denied: the code is used up either way (GETDEL: one issuance only).
    taken = await cache_step(st, "consume_device_code", lambda r: r.getdel(key))
    if not taken:
        raise OAuthError(400, "expired_token", "the device code was already used")
    if record["status"] != "approved":
        raise OAuthError(400, "access_denied", "the user denied the request")
    if proof is not None:
        await check_dpop_jti(st, proof[0])
    return await _issue(
        st,
        client,
        Grant(
            record["sub"],
            record["scope"],
            record["home"],
            record["auth_time"],
            jkt=proof[1] if proof else None,
        ),
    )


def endpoint_urls(st: State, request: Request) -> tuple[str, ...]:
    """The addresses a DPoP proof's htu may name for this request."""
    return (st.settings.issuer + request.url.path, str(request.url.replace(query="", fragment="")))


async def check_dpop_jti(st: State, jti: str) -> None:
    """A proof is single-use: SET NX on its jti for longer than the iat window."""
    fresh = await cache_step(
        st, "check_dpop_jti", lambda r: r.set(f"dpop:jti:{jti}", b"1", nx=True, ex=2 * WINDOW_S)
    )
    if not fresh:
        raise OAuthError(400, "invalid_dpop_proof", "DPoP proof was already used (jti replay)")


async def _code_grant(
    st: State, client: Client, form: Any, proof: tuple[str, str] | None
) -> dict[str, Any]:
    code = param(form, "code", max_len=200)
    redirect_uri = param(form, "redirect_uri")
    family, jti = str(uuid.uuid4()), secrets.token_urlsafe(16)
    marker = json.dumps({"family": family, "jti": jti})
    status, value = await cache_step(
        st,
        "consume_code",
        lambda r: st.cache.script("consume_code", CONSUME_CODE_LUA)(
            keys=[f"code:{{{code}}}", f"code_used:{{{code}}}"],
            args=[marker, st.settings.refresh_ttl_s * 1000],
            client=r,
        ),
    )
    if int(status) == 2:
        issued = json.loads(value)
        await _revoke_family(st, issued["family"], issued["jti"])
        raise OAuthError(
            400, "invalid_grant", "authorization code was already used; its tokens are revoked"
        )
    if int(status) != 1:
        raise OAuthError(400, "invalid_grant", "unknown or expired authorization code")
    data = json.loads(value)
    if proof is not None:
        await check_dpop_jti(st, proof[0])
    if data["client_id"] != client.id or data["redirect_uri"] != redirect_uri:
        raise OAuthError(400, "invalid_grant", "code was issued to another client or redirect_uri")
    if data["code_challenge"]:
        verifier = param(form, "code_verifier", max_len=128)
        if not pkce_matches(verifier, data["code_challenge"]):
            raise OAuthError(
                400, "invalid_grant", "code_verifier does not match the code_challenge"
            )
    return await _issue(
        st,
        client,
        Grant(
            data["sub"],
            data["scope"],
            data["home"],
            data["auth_time"],
            family,
            jti,
            data["nonce"],
            proof[1] if proof else None,
        ),
    )


async def _refresh_grant(
    st: State, client: Client, form: Any, proof: tuple[str, str] | None
) -> dict[str, Any]:
    presented = sha256(param(form, "refresh_token", max_len=200))
    if proof is not None:
        await check_dpop_jti(st, proof[0])

    async def rotate(c: asyncpg.Connection) -> Any:
        row = await c.fetchrow(
            "SELECT family_id, user_id, client_id, scope, access_jti, rotated, revoked, "
            "home_region, jkt, extract(epoch FROM expires_at)::INT8 AS exp FROM refresh_tokens "
            "WHERE token_hash = $1 FOR UPDATE",
            presented,
        )
        if row is None or row["client_id"] != client.id:
            return "unknown", None
        if row["rotated"] or row["revoked"]:
            return "reused", row
        if row["exp"] <= now():
            return "expired", None
        if row["jkt"] is not None and (proof is None or proof[1] != row["jkt"]):
            return "bound to another DPoP key", None
        await c.execute("UPDATE refresh_tokens SET rotated = true WHERE token_hash = $1", presented)
        return "ok", row

    outcome, row = await db_step(st, "rotate_refresh_token", rotate, transaction=True)
    if outcome == "reused":
        await _revoke_family(st, str(row["family_id"]), row["access_jti"])
        raise OAuthError(
            400, "invalid_grant", "refresh token was already used; its family is revoked"
        )
    if outcome != "ok":
        raise OAuthError(400, "invalid_grant", f"refresh token is {outcome}")
    return await _issue(
        st,
        client,
        Grant(
            str(row["user_id"]),
            row["scope"],
            row["home_region"] or st.settings.region,
            now(),
            family=str(row["family_id"]),
            jkt=row["jkt"] or (proof[1] if proof else None),
        ),
    )


async def _revoke_family(st: State, family: str, jti: str | None) -> None:
    """Revoke every refresh token of a family and every access token it issued."""

    async def work(c: asyncpg.Connection) -> set[str]:
        jtis = [
            r["access_jti"]
            for r in await c.fetch(
                "UPDATE refresh_tokens SET revoked = true WHERE family_id = $1 "
                "RETURNING access_jti",
                uuid.UUID(family),
            )
        ]
        for j in {*jtis, *([jti] if jti else [])}:
            await c.execute(
                "INSERT INTO revocations (jti, expires_at) "
                "VALUES ($1, now() + $2 * INTERVAL '1 second') ON CONFLICT (jti) DO NOTHING",
                j,
                float(st.settings.access_ttl_s),
            )
        return {*jtis, *([jti] if jti else [])}

    for j in await db_step(st, "revoke_family", work, transaction=True):
        await mark_revoked(st, j)


async def mark_revoked(st: State, jti: str) -> None:
    ttl = st.settings.access_ttl_s
    await cache_step(st, "mark_revoked", lambda r: r.set(f"revoked:{jti}", b"1", ex=ttl), "skip")


# -- resource endpoints -------------------------------------------------------------------


async def bearer_claims(
    st: State, request: Request, form: FormData | None = None
) -> dict[str, Any]:
    """Verify the access token (header, or form body for POST) and that it is not revoked."""
    auth = request.headers.get("authorization", "")
    scheme, _, token_text = auth.partition(" ")
    scheme, token_text = scheme.lower(), token_text.strip()
    if scheme not in ("bearer", "dpop"):
        scheme, token_text = "bearer", ""
    if not token_text and form is not None and isinstance(form.get("access_token"), str):
        token_text = str(form.get("access_token"))
    if not token_text:
        raise OAuthError(
            401,
            "invalid_request",
            "an access token is required",
            {"WWW-Authenticate": 'Bearer, DPoP algs="ES256 RS256"'},
        )
    jkt = None
    if scheme == "dpop":
        proof = request.headers.get("dpop", "")
        if not proof:
            raise bearer_error("a DPoP-scheme token needs a DPoP proof header")
        _, jkt = check_proof(
            proof, request.method, endpoint_urls(st, request), token_text, status=401
        )
    steps.current().handled()
    claims = await access_claims(st, token_text)
    bound = (claims.get("cnf") or {}).get("jkt")
    if bound != jkt:
        raise bearer_error(
            "this token is bound to a DPoP key: present it with the DPoP scheme and a proof"
            if bound
            else "this is a Bearer token: present it with the Bearer scheme"
        )
    return claims


async def access_claims(st: State, text: str) -> dict[str, Any]:
    """Claims of a valid access token we issued that is not revoked, or a bearer error."""
    async with steps.current().step("edge", "verify_token"):
        try:
            claims = st.keys.verify(text, st.settings.issuer, st.settings.issuer + "/userinfo")
        except jwt.InvalidTokenError as exc:
            raise bearer_error(f"access token rejected: {exc}") from None
    jti = str(claims.get("jti", ""))
    revoked = await cache_step(st, "check_revoked", lambda r: r.exists(f"revoked:{jti}"), "miss")
    if revoked is DOWN:
        row = await db_step(
            st,
            "read_revocation",
            lambda c: c.fetchrow("SELECT 1 FROM revocations WHERE jti = $1", jti),
        )
        revoked = row is not None
    if revoked:
        raise bearer_error("access token has been revoked")
    return claims


async def user_profile(st: State, sub: str) -> dict[str, Any]:
    """The profile: Redis first, the database on a miss (read-through)."""
    cached = await cache_step(st, "get_user", lambda r: r.get(f"user:{sub}"), "miss")
    if cached:
        data: dict[str, Any] = json.loads(cached)
        return data
    row = await db_step(
        st,
        "read_user",
        lambda c: c.fetchrow("SELECT email, profile FROM users WHERE id = $1", uuid.UUID(sub)),
    )
    if row is None:
        raise bearer_error("the token's user no longer exists")
    data = {"sub": sub, "email": row["email"], **json.loads(row["profile"])}
    ttl = st.settings.user_cache_ttl_s
    await cache_step(
        st, "set_user", lambda r: r.set(f"user:{sub}", json.dumps(data), ex=ttl), "skip"
    )
    return data


async def userinfo(request: Request) -> Response:
    st = _state(request)
    form = await form_of(request) if request.method == "POST" else None
    claims = await bearer_claims(st, request, form)
    profile = await user_profile(st, claims["sub"])
    scopes = set(str(claims.get("scope", "")).split())
    out: dict[str, Any] = {"sub": claims["sub"]}
    if "email" in scopes:
        out.update(email=profile.get("email"), email_verified=True)
    if "profile" in scopes:
        out.update({k: profile[k] for k in PROFILE_FIELDS if k in profile})
    return JSONResponse(out, headers={"Cache-Control": "no-store"})


async def profile_update(request: Request) -> Response:
    st = _state(request)
    try:
        changes = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise OAuthError(400, "invalid_request", "the body must be a JSON object") from None
    if not isinstance(changes, dict) or not changes:
        raise OAuthError(400, "invalid_request", "the body must be a non-empty JSON object")
    for key, value in changes.items():
        if key not in PROFILE_FIELDS:
            raise OAuthError(
                400, "invalid_request", f"unknown field {key!r}; allowed: {sorted(PROFILE_FIELDS)}"
            )
        if not isinstance(value, str) or len(value) > PROFILE_FIELDS[key]:
            raise OAuthError(
                400, "invalid_request", f"{key} must be a string of at most {PROFILE_FIELDS[key]}"
            )
    claims = await bearer_claims(st, request)
    sub = uuid.UUID(claims["sub"])
    rec = steps.current()

    # The row's home region (where its leaseholder is) travels in the token.
    home = str(claims.get("home_region") or st.settings.region)
    emulation = st.emulation

    async def read_modify_write(c: asyncpg.Connection) -> dict[str, Any]:
        async with rec.step("crdb", "read_user", home):
            row = await c.fetchrow("SELECT profile FROM users WHERE id = $1 FOR UPDATE", sub)
            await emulation.wait(home, write=False)
        if row is None:
            raise bearer_error("the token's user no longer exists")
        merged: dict[str, Any] = {**json.loads(row["profile"]), **changes}
        async with rec.step("crdb", "write_user", home):
            await c.execute(
                "UPDATE users SET profile = $2::JSONB, updated_at = now() WHERE id = $1",
                sub,
                json.dumps(merged),
            )
            await emulation.wait(home, write=True)
        return merged

    merged = await st.db.run(read_modify_write)
    await cache_step(st, "delete_user", lambda r: r.delete(f"user:{sub}"), "skip")
    return JSONResponse({"sub": str(sub), **merged})


async def revoke(request: Request) -> Response:
    """RFC 7009: 200 whether or not the token was known."""
    st = _state(request)
    form = await form_of(request)
    client = _authenticate_client(st, request, form)
    text = param(form, "token", max_len=4096)
    steps.current().handled()
    if text.count(".") == 2:
        try:
            claims = st.keys.verify(text, st.settings.issuer, st.settings.issuer + "/userinfo")
        except jwt.InvalidTokenError:
            return Response(status_code=200)
        if claims.get("client_id") == client.id:
            jti = str(claims["jti"])
            await db_step(
                st,
                "write_revocation",
                lambda c: c.execute(
                    "INSERT INTO revocations (jti, expires_at) VALUES ($1, to_timestamp($2)) "
                    "ON CONFLICT (jti) DO NOTHING",
                    jti,
                    int(claims["exp"]),
                ),
            )
            await mark_revoked(st, jti)
        return Response(status_code=200)
    row = await db_step(
        st,
        "read_refresh_token",
        lambda c: c.fetchrow(
            "SELECT family_id, client_id, access_jti FROM refresh_tokens WHERE token_hash = $1",
            sha256(text),
        ),
    )
    if row is not None and row["client_id"] == client.id:
        await _revoke_family(st, str(row["family_id"]), row["access_jti"])
    return Response(status_code=200)


async def introspect(request: Request) -> Response:
    """RFC 7662, for confidential clients."""
    st = _state(request)
    form = await form_of(request)
    client = _authenticate_client(st, request, form)
    if client.public:
        raise OAuthError(401, "invalid_client", "introspection is for confidential clients")
    text = param(form, "token", max_len=4096)
    steps.current().handled()
    inactive = JSONResponse({"active": False})
    if text.count(".") == 2:
        try:
            claims = await access_claims(st, text)
        except OAuthError:
            return inactive
        return JSONResponse({"active": True, "token_type": "Bearer", **claims})
    row = await db_step(
        st,
        "read_refresh_token",
        lambda c: c.fetchrow(
            "SELECT user_id, client_id, scope, rotated, revoked, "
            "extract(epoch FROM expires_at)::INT8 AS exp FROM refresh_tokens WHERE token_hash = $1",
            sha256(text),
        ),
    )
    if row is None or row["rotated"] or row["revoked"] or row["exp"] <= now():
        return inactive
    return JSONResponse(
        {
            "active": True,
            "token_type": "refresh_token",
            "sub": str(row["user_id"]),
            "client_id": row["client_id"],
            "scope": row["scope"],
            "exp": row["exp"],
        }
    )


# -- metadata and operations ------------------------------------------------------------


async def discovery(request: Request) -> Response:
    iss = _state(request).settings.issuer
    return JSONResponse(
        {
            "issuer": iss,
            "authorization_endpoint": f"{iss}/authorize",
            "token_endpoint": f"{iss}/token",
            "userinfo_endpoint": f"{iss}/userinfo",
            "jwks_uri": f"{iss}/jwks.json",
            "revocation_endpoint": f"{iss}/revoke",
            "introspection_endpoint": f"{iss}/introspect",
            "pushed_authorization_request_endpoint": f"{iss}/par",
            "device_authorization_endpoint": f"{iss}/device_authorization",
            "dpop_signing_alg_values_supported": list(DPOP_ALGS),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_GRANT],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": sorted(SCOPES),
            "claims_supported": ["sub", "email", "email_verified", *PROFILE_FIELDS],
            "authorization_response_iss_parameter_supported": True,
        }
    )


async def jwks(request: Request) -> Response:
    return JSONResponse(
        _state(request).keys.jwks(), headers={"Cache-Control": "public, max-age=300"}
    )


async def healthz(request: Request) -> Response:
    st = _state(request)
    report = {"region": st.settings.region}
    for name, check in (("database", st.db.ping), ("redis", st.cache.ping)):
        try:
            await check()
            report[name] = "ok"
        except Unavailable:
            report[name] = "unavailable"
    # Without Redis the server still answers (from the database); without the database not.
    status = 200 if report["database"] == "ok" else 503
    report["status"] = "ok" if status == 200 and report["redis"] == "ok" else "degraded"
    return JSONResponse(report, status_code=status)


async def metrics(request: Request) -> Response:
    return Response(_state(request).metrics.render(), media_type="text/plain; version=0.0.4")


async def bench_redis_get(request: Request) -> Response:
    """The benchmark's baseline: one Redis GET and a small JSON answer."""
    st = _state(request)
    value = await st.cache.call(lambda r: r.get("bench:key"))
    return JSONResponse({"value": value.decode() if isinstance(value, bytes) else value})


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_spec(_state(request).settings.issuer))


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
        rec = steps.begin(self.state.settings.region)
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
