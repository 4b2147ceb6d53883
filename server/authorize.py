"""The front channel: authorization requests (code + PKCE), pushed requests (RFC 9126) and
the device authorization grant's user side (RFC 8628)."""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from server import steps
from server.core import (
    SCOPES,
    Client,
    authenticate_client,
    cache_step,
    client_of,
    form_of,
    param,
    state_of,
)
from server.errors import (
    OAuthError,
)
from server.openapi import AUTHORIZE_PARAMS
from server.sessions import session_of

PAR_PREFIX = "urn:ietf:params:oauth:request_uri:"


def _check_redirect(client: Client, redirect_uri: str) -> None:
    if redirect_uri not in client.redirect_uris:
        # Never redirect to an unregistered address: answer here instead.
        raise OAuthError(400, "invalid_request", "redirect_uri is not registered for this client")


async def par(request: Request) -> Response:
    """RFC 9126: the client pushes its authorization request and gets a request_uri."""
    st = state_of(request)
    form = await form_of(request)
    client = authenticate_client(st, request, form)
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
    st = state_of(request)
    q: Any = request.query_params
    client = client_of(st, param(q, "client_id", max_len=200))
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


DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels: no words; RFC 8628 §6.1


async def device_authorization(request: Request) -> Response:
    """RFC 8628 §3.1: a device code for the client, a user code for the person."""
    st = state_of(request)
    form = await form_of(request)
    client = authenticate_client(st, request, form)
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
    st = state_of(request)
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
