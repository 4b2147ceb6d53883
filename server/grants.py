"""The token endpoint: authorization code, refresh (rotation, family revocation) and device
grants; ES256/RS256 tokens, DPoP-bound when the request carries a proof."""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import Response

from server import steps
from server.authorize import DEVICE_GRANT
from server.core import (
    Client,
    FastJSONResponse,
    State,
    authenticate_client,
    cache_step,
    client_ip,
    db_step,
    endpoint_urls,
    form_of,
    param,
    rate_limit,
    state_of,
)
from server.dpop import WINDOW_S, check_proof
from server.errors import (
    OAuthError,
)
from server.security import (
    now,
    pkce_matches,
    sha256,
)

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
    st = state_of(request)
    form = await form_of(request)
    grant = param(form, "grant_type", max_len=100)
    client = authenticate_client(st, request, form)
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
    return FastJSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


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
    marker = orjson.dumps({"family": family, "jti": jti})
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
        await revoke_family(st, issued["family"], issued["jti"])
        raise OAuthError(
            400, "invalid_grant", "authorization code was already used; its tokens are revoked"
        )
    if int(status) != 1:
        raise OAuthError(400, "invalid_grant", "unknown or expired authorization code")
    data = orjson.loads(value)
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
        await revoke_family(st, str(row["family_id"]), row["access_jti"])
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


async def revoke_family(st: State, family: str, jti: str | None) -> None:
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
