"""A client of this server over HTTP: sign a user in and get an access token.

The demo confidential client (`demo-service`) runs the code flow; the benchmark and the
load generator both sign users in this way before they measure anything.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.cookiejar import CookieJar
from typing import Any

CLIENT, SECRET = "demo-service", "demo-service-secret"
REDIRECT = "http://127.0.0.1:8765/callback"
BASIC = "Basic " + base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()


def authorize_query(scope: str = "openid") -> str:
    return urllib.parse.urlencode(
        {"client_id": CLIENT, "redirect_uri": REDIRECT, "response_type": "code", "scope": scope}
    )


AUTHORIZE_QUERY = authorize_query()


@dataclass(frozen=True)
class SignedIn:
    sid: str
    access_token: str
    sub: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


def code_from(location: str) -> str:
    params = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)
    if "code" not in params:
        raise RuntimeError(f"authorize answered without a code: {location}")
    return params["code"][0]


def sign_in(base: str, email: str, password: str, scope: str = "openid") -> SignedIn:
    """Log in at `base` (a session cookie) and get an access token through the code flow."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect())

    def call(method: str, path: str, data: dict[str, str] | None = None) -> Any:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        with opener.open(urllib.request.Request(base + path, body, method=method), timeout=10) as r:
            return json.loads(r.read())

    challenge = call("GET", "/login")["challenge"]
    who = call("POST", "/login", {"email": email, "password": password, "challenge": challenge})
    sid = next(c.value for c in jar if c.name == "sid")
    try:
        opener.open(base + "/authorize?" + authorize_query(scope), timeout=10)
        raise RuntimeError("authorize did not redirect")
    except urllib.error.HTTPError as exc:
        code = code_from(exc.headers["Location"])
    req = urllib.request.Request(
        base + "/token",
        urllib.parse.urlencode(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
        ).encode(),
        headers={"Authorization": BASIC},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        access = json.loads(r.read())["access_token"]
    return SignedIn(str(sid), str(access), str(who["sub"]))
