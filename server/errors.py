"""Errors as RFC 6749 §5.2 JSON bodies; bearer failures with RFC 6750 WWW-Authenticate."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.storage import Unavailable


class OAuthError(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        description: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.headers = headers or {}


def bearer_error(description: str, error: str = "invalid_token") -> OAuthError:
    return OAuthError(
        401,
        error,
        description,
        {"WWW-Authenticate": f'Bearer error="{error}", error_description="{description}"'},
    )


def error_response(status: int, error: str, description: str, **headers: str) -> Response:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store", **headers},
    )


async def on_oauth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    return error_response(exc.status, exc.error, exc.description, **exc.headers)


async def on_http_error(request: Request, exc: Exception) -> Response:
    """404 and 405 from routing, as JSON like every other error."""
    status = getattr(exc, "status_code", 400)
    error = {404: "not_found", 405: "method_not_allowed"}.get(status, "invalid_request")
    return error_response(status, error, str(getattr(exc, "detail", "")) or error)


async def on_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Unavailable)
    return error_response(
        503,
        "temporarily_unavailable",
        f"the {exc.store} {exc.why}; nothing was changed, retry later",
        **{"Retry-After": "1"},
    )


async def on_unexpected(request: Request, exc: Exception) -> Response:
    return error_response(500, "server_error", "the server failed to handle this request")
