"""Login (a signed, single-use challenge; argon2id) and session validation (read-through)."""

from __future__ import annotations

import hmac
import json
import secrets
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server import steps
from server.core import (
    State,
    cache_step,
    client_ip,
    db_step,
    form_of,
    param,
    rate_limit,
    state_of,
)
from server.errors import (
    OAuthError,
)
from server.security import (
    b64url,
    now,
    sha256,
    verify_password,
)


def _challenge_mac(st: State, nonce: str, expires: int) -> str:
    return b64url(hmac.digest(st.challenge_secret, f"{nonce}.{expires}".encode(), "sha256"))[:32]


async def login_challenge(request: Request) -> Response:
    """A signed, single-use login challenge for the next POST /login."""
    st = state_of(request)
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
    st = state_of(request)
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
    async with steps.current().step("edge", "verify_password", on_loop=False):
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
    data = await session_of(state_of(request), request)
    if data is None:
        raise OAuthError(401, "login_required", "no valid session; POST /login first")
    return JSONResponse({"sub": data["sub"], "expires_at": data["exp"]})
