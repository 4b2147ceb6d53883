"""Pushed authorization requests (RFC 9126), the device grant (RFC 8628), RS256 ID tokens."""

from __future__ import annotations

import time

import jwt
from starlette.testclient import TestClient

from server.settings import Settings
from tests.server.conftest import REDIRECT, code_of, exchange, login, make_client, pkce

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


def test_pushed_authorization_request_is_single_use(client: TestClient) -> None:
    assert login(client).status_code == 200
    verifier, challenge = pkce()
    pushed = client.post(
        "/par",
        data={
            "client_id": "demo-spa",
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "openid email",
            "state": "par-state",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert pushed.status_code == 201
    request_uri = pushed.json()["request_uri"]
    assert request_uri.startswith("urn:ietf:params:oauth:request_uri:")
    params = {"client_id": "demo-spa", "request_uri": request_uri}
    first = client.get("/authorize", params=params, follow_redirects=False)
    assert first.status_code == 302 and "state=par-state" in first.headers["location"]
    assert exchange(client, code_of(first), verifier).status_code == 200
    again = client.get("/authorize", params=params, follow_redirects=False)
    assert again.status_code == 400 and again.json()["error"] == "invalid_request_uri"
    other = client.get(
        "/authorize",
        params={"client_id": "demo-service", "request_uri": request_uri},
        follow_redirects=False,
    )
    assert other.status_code == 400
    bad = client.post("/par", data={"client_id": "demo-spa", "redirect_uri": "http://evil/"})
    assert bad.status_code == 400


def test_device_grant_polls_then_issues_once(settings: Settings) -> None:
    with make_client(settings, device_interval_s=1) as c:
        started = c.post(
            "/device_authorization", data={"client_id": "demo-spa", "scope": "openid email"}
        )
        assert started.status_code == 200
        body = started.json()
        assert body["interval"] == 1 and len(body["user_code"]) == 9
        poll = {"grant_type": DEVICE, "device_code": body["device_code"], "client_id": "demo-spa"}
        assert c.post("/token", data=poll).json()["error"] == "authorization_pending"
        assert c.post("/token", data=poll).json()["error"] == "slow_down"
        # Approving needs a logged-in person.
        assert c.post("/device", data={"user_code": body["user_code"]}).status_code == 401
        assert login(c).status_code == 200
        approved = c.post("/device", data={"user_code": body["user_code"].lower()})
        assert approved.json() == {"status": "approved"}
        time.sleep(1.1)
        issued = c.post("/token", data=poll)
        assert issued.status_code == 200 and issued.json()["token_type"] == "Bearer"
        assert c.post("/token", data=poll).json()["error"] == "expired_token"
        # A denied request ends with access_denied.
        second = c.post("/device_authorization", data={"client_id": "demo-spa"}).json()
        c.post("/device", data={"user_code": second["user_code"], "action": "deny"})
        denied = c.post("/token", data={**poll, "device_code": second["device_code"]})
        assert denied.json()["error"] == "access_denied"


def test_confidential_client_gets_rs256_id_tokens(client: TestClient) -> None:
    assert login(client).status_code == 200
    response = client.get(
        "/authorize",
        params={
            "client_id": "demo-service",
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "openid",
        },
        follow_redirects=False,
    )
    code = code_of(response)
    issued = client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=("demo-service", "demo-service-secret"),
    )
    assert issued.status_code == 200, issued.text
    assert jwt.get_unverified_header(issued.json()["id_token"])["alg"] == "RS256"
    wrong_secret = client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=("demo-service", "guess"),
    )
    assert wrong_secret.status_code == 401
