"""What access tokens are for: userinfo, profile update, revocation and introspection."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import jwt
import orjson
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server import steps
from server.core import (
    DOWN,
    PROFILE_FIELDS,
    FastJSONResponse,
    State,
    authenticate_client,
    cache_step,
    db_step,
    endpoint_urls,
    form_of,
    param,
    state_of,
)
from server.dpop import check_proof
from server.errors import (
    OAuthError,
    bearer_error,
)
from server.grants import mark_revoked, revoke_family
from server.security import (
    now,
    sha256,
)


async def bearer_claims(
    st: State, request: Request, form: FormData | None = None, *, check_revoked: bool = True
) -> dict[str, Any]:
    """Verify the access token (header, or form body for POST) and its DPoP binding, and
    (unless the caller checks it itself, as userinfo does) that it is not revoked."""
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
    claims = await (access_claims if check_revoked else verified)(st, token_text)
    bound = (claims.get("cnf") or {}).get("jkt")
    if bound != jkt:
        raise bearer_error(
            "this token is bound to a DPoP key: present it with the DPoP scheme and a proof"
            if bound
            else "this is a Bearer token: present it with the Bearer scheme"
        )
    return claims


async def verified(st: State, text: str) -> dict[str, Any]:
    """Claims of an access token we signed that has not expired, or a bearer error."""
    async with steps.current().step("edge", "verify_token"):
        try:
            return st.keys.verify(text, st.settings.issuer, st.settings.issuer + "/userinfo")
        except jwt.InvalidTokenError as exc:
            raise bearer_error(f"access token rejected: {exc}") from None


async def access_claims(st: State, text: str) -> dict[str, Any]:
    """Claims of a valid access token we issued that is not revoked, or a bearer error."""
    claims = await verified(st, text)
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


async def token_user(st: State, claims: dict[str, Any]) -> dict[str, Any]:
    """The token's revocation and its user's profile in one round trip to each store.

    One MGET asks Redis for both the revocation mark and the cached profile. On a profile
    miss (or Redis down) one query reads the profile and the revocation row from the
    database, which refills the cache (read-through). In a Redis Cluster the two keys
    hash to different slots: a cluster client sends the two GETs to their nodes in
    parallel, so the wait is still one round trip.
    """
    sub, jti = str(claims["sub"]), str(claims.get("jti", ""))
    found = await cache_step(
        st, "get_user_check_revoked", lambda r: r.mget(f"revoked:{jti}", f"user:{sub}"), "miss"
    )
    revoked, cached = (False, None) if found is DOWN else (found[0] is not None, found[1])
    if revoked:
        raise bearer_error("access token has been revoked")
    if cached:
        data: dict[str, Any] = orjson.loads(cached)
        return data
    row = await db_step(
        st,
        "read_user_check_revoked",
        lambda c: c.fetchrow(
            "SELECT email, profile, EXISTS (SELECT 1 FROM revocations WHERE jti = $2) AS revoked "
            "FROM users WHERE id = $1",
            uuid.UUID(sub),
            jti,
        ),
    )
    if row is None:
        raise bearer_error("the token's user no longer exists")
    if row["revoked"]:
        raise bearer_error("access token has been revoked")
    data = {"sub": sub, "email": row["email"], **json.loads(row["profile"])}
    ttl = st.settings.user_cache_ttl_s
    await cache_step(
        st, "set_user", lambda r: r.set(f"user:{sub}", json.dumps(data), ex=ttl), "skip"
    )
    return data


async def userinfo(request: Request) -> Response:
    st = state_of(request)
    form = await form_of(request) if request.method == "POST" else None
    claims = await bearer_claims(st, request, form, check_revoked=False)
    profile = await token_user(st, claims)
    scopes = set(str(claims.get("scope", "")).split())
    out: dict[str, Any] = {"sub": claims["sub"]}
    if "email" in scopes:
        out.update(email=profile.get("email"), email_verified=True)
    if "profile" in scopes:
        out.update({k: profile[k] for k in PROFILE_FIELDS if k in profile})
    return FastJSONResponse(out, headers={"Cache-Control": "no-store"})


async def profile_update(request: Request) -> Response:
    st = state_of(request)
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
    st = state_of(request)
    form = await form_of(request)
    client = authenticate_client(st, request, form)
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
        await revoke_family(st, str(row["family_id"]), row["access_jti"])
    return Response(status_code=200)


async def introspect(request: Request) -> Response:
    """RFC 7662, for confidential clients."""
    st = state_of(request)
    form = await form_of(request)
    client = authenticate_client(st, request, form)
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
