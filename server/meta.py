"""Metadata and operations: discovery, JWKS, health, metrics, OpenAPI, the bench baseline."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.authorize import DEVICE_GRANT
from server.core import (
    PROFILE_FIELDS,
    SCOPES,
    state_of,
)
from server.dpop import PROOF_ALGS as DPOP_ALGS
from server.openapi import openapi_spec
from server.storage import Unavailable


async def discovery(request: Request) -> Response:
    iss = state_of(request).settings.issuer
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
        state_of(request).keys.jwks(), headers={"Cache-Control": "public, max-age=300"}
    )


async def healthz(request: Request) -> Response:
    st = state_of(request)
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
    return Response(state_of(request).metrics.render(), media_type="text/plain; version=0.0.4")


async def bench_redis_get(request: Request) -> Response:
    """The benchmark's baseline: one Redis GET and a small JSON answer."""
    st = state_of(request)
    value = await st.cache.call(lambda r: r.get("bench:key"))
    return JSONResponse({"value": value.decode() if isinstance(value, bytes) else value})


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_spec(state_of(request).settings.issuer))
