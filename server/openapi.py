"""The OpenAPI 3.1 description of the server's endpoints."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}
_FORM = "application/x-www-form-urlencoded"
# The parameters of an authorization request, in the query or pushed (RFC 9126).
AUTHORIZE_PARAMS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
)


def _err(*codes: int) -> dict[str, Any]:
    return {
        str(c): {
            "description": "error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for c in codes
    }


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


def _form(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            _FORM: {"schema": {"type": "object", "properties": properties, "required": required}}
        },
    }


def _str(max_length: int = 2048) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length}


def openapi_spec(issuer: str) -> dict[str, Any]:
    token_props = {
        "grant_type": {
            "type": "string",
            "enum": [
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code",
            ],
        },
        "device_code": _str(200),
        "code": _str(200),
        "redirect_uri": _str(),
        "code_verifier": _str(128),
        "refresh_token": _str(200),
        "client_id": _str(200),
        "client_secret": _str(200),
    }
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "authscale OpenID Connect provider", "version": "0.1.0"},
        "servers": [{"url": issuer}],
        "components": {
            "schemas": {"Error": _ERROR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/.well-known/openid-configuration": {
                "get": {"responses": {"200": _json("discovery metadata")}}
            },
            "/login": {
                "get": {"responses": {"200": _json("a signed, single-use login challenge")}},
                "post": {
                    "requestBody": _form(
                        {"email": _str(320), "password": _str(1024), "challenge": _str(200)},
                        ["email", "password", "challenge"],
                    ),
                    "responses": {"200": _json("session created"), **_err(400, 401, 429, 503)},
                },
            },
            "/session": {"get": {"responses": {"200": _json("the session"), **_err(401, 503)}}},
            "/authorize": {
                "get": {
                    "parameters": [
                        {
                            "name": n,
                            "in": "query",
                            "required": n in ("client_id", "redirect_uri"),
                            "schema": _str(),
                        }
                        for n in (*AUTHORIZE_PARAMS, "request_uri")
                    ],
                    "responses": {
                        "302": {"description": "back to the client"},
                        **_err(400, 401, 503),
                    },
                }
            },
            "/token": {
                "post": {
                    "requestBody": _form(token_props, ["grant_type"]),
                    "responses": {"200": _json("tokens"), **_err(400, 401, 429, 503)},
                }
            },
            "/userinfo": {
                "get": {
                    "security": bearer,
                    "responses": {"200": _json("claims"), **_err(401, 503)},
                },
                "post": {
                    "security": bearer,
                    "requestBody": _form({"access_token": _str(4096)}, []),
                    "responses": {"200": _json("claims"), **_err(400, 401, 503)},
                },
            },
            "/profile": {
                "patch": {
                    "security": bearer,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "responses": {"200": _json("the profile"), **_err(400, 401, 503)},
                }
            },
            "/revoke": {
                "post": {
                    "requestBody": _form(
                        {"token": _str(4096), "client_id": _str(200), "client_secret": _str(200)},
                        ["token"],
                    ),
                    "responses": {
                        "200": {"description": "revoked, or unknown"},
                        **_err(400, 401, 503),
                    },
                }
            },
            "/introspect": {
                "post": {
                    "requestBody": _form(
                        {"token": _str(4096), "client_id": _str(200), "client_secret": _str(200)},
                        ["token"],
                    ),
                    "responses": {"200": _json("token state"), **_err(400, 401, 503)},
                }
            },
            "/par": {
                "post": {
                    "requestBody": _form(
                        {n: _str() for n in (*AUTHORIZE_PARAMS, "client_secret")},
                        ["redirect_uri"],
                    ),
                    "responses": {"201": _json("request_uri"), **_err(400, 401, 503)},
                }
            },
            "/device_authorization": {
                "post": {
                    "requestBody": _form(
                        {"client_id": _str(200), "client_secret": _str(200), "scope": _str()},
                        [],
                    ),
                    "responses": {"200": _json("device and user codes"), **_err(400, 401, 503)},
                }
            },
            "/device": {
                "post": {
                    "requestBody": _form(
                        {
                            "user_code": _str(20),
                            "action": {"type": "string", "enum": ["approve", "deny"]},
                        },
                        ["user_code"],
                    ),
                    "responses": {"200": _json("answered"), **_err(400, 401, 503)},
                }
            },
            "/jwks.json": {"get": {"responses": {"200": _json("public keys")}}},
            "/healthz": {"get": {"responses": {"200": _json("healthy"), "503": _json("degraded")}}},
            "/metrics": {"get": {"responses": {"200": {"description": "Prometheus text"}}}},
            "/openapi.json": {"get": {"responses": {"200": _json("this document")}}},
        },
    }
