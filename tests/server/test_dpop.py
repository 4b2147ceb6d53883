"""DPoP (RFC 9449): proof checks, jti replay in Redis, cnf.jkt binding at userinfo and refresh."""

from __future__ import annotations

import time

from starlette.testclient import TestClient

from server.dpop import thumbprint
from tests.server.conftest import DPoPKey, authorize, code_of, login, pkce
from tests.server.test_steps import expected, recorded

TOKEN_URL = "http://127.0.0.1:8000/token"
USERINFO_URL = "http://127.0.0.1:8000/userinfo"


def _code_exchange(c: TestClient, key: DPoPKey, proof: str | None = None) -> object:
    assert login(c).status_code == 200
    verifier, challenge = pkce()
    code = code_of(authorize(c, challenge))
    return c.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "http://127.0.0.1:8765/callback",
            "client_id": "demo-spa",
            "code_verifier": verifier,
        },
        headers={"DPoP": proof or key.proof("POST", TOKEN_URL)},
    )


def test_dpop_bound_tokens_follow_the_step_list_and_bind_the_key(client: TestClient) -> None:
    key = DPoPKey()
    issued = _code_exchange(client, key)
    assert issued.status_code == 200, issued.text  # type: ignore[attr-defined]
    body = issued.json()  # type: ignore[attr-defined]
    assert body["token_type"] == "DPoP"
    # With a proof, the jti check is a step: the DPoP branch of the step list.
    assert recorded(issued) == expected("token_issue", {}, {"dpop_proof": True})
    import jwt

    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["cnf"]["jkt"] == thumbprint(key.jwk)
    access = body["access_token"]
    headers = {
        "Authorization": f"DPoP {access}",
        "DPoP": key.proof("GET", USERINFO_URL, access),
    }
    assert client.get("/userinfo", headers=headers).status_code == 200
    # As a plain bearer token it is refused: the key must be proven.
    as_bearer = client.get("/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert as_bearer.status_code == 401
    # Another key's proof, or a proof without the token hash, is refused.
    thief = DPoPKey()
    stolen = {"Authorization": f"DPoP {access}", "DPoP": thief.proof("GET", USERINFO_URL, access)}
    assert client.get("/userinfo", headers=stolen).status_code == 401
    no_ath = {"Authorization": f"DPoP {access}", "DPoP": key.proof("GET", USERINFO_URL)}
    refused = client.get("/userinfo", headers=no_ath)
    assert refused.status_code == 401
    assert 'DPoP error="invalid_dpop_proof"' in refused.headers["www-authenticate"]
    # The refresh token is bound too: only the same key can use it.
    form = {
        "grant_type": "refresh_token",
        "refresh_token": body["refresh_token"],
        "client_id": "demo-spa",
    }
    wrong = client.post("/token", data=form, headers={"DPoP": thief.proof("POST", TOKEN_URL)})
    assert wrong.status_code == 400
    right = client.post("/token", data=form, headers={"DPoP": key.proof("POST", TOKEN_URL)})
    assert right.status_code == 200 and right.json()["token_type"] == "DPoP"


def test_bad_and_replayed_proofs_are_refused(client: TestClient) -> None:
    key = DPoPKey()
    replayed = key.proof("POST", TOKEN_URL)
    assert _code_exchange(client, key, replayed).status_code == 200  # type: ignore[attr-defined]
    again = _code_exchange(client, key, replayed)
    assert again.status_code == 400  # type: ignore[attr-defined]
    assert "replay" in again.json()["error_description"]  # type: ignore[attr-defined]
    for bad in (
        key.proof("GET", TOKEN_URL),
        key.proof("POST", "http://127.0.0.1:8000/elsewhere"),
        key.proof("POST", TOKEN_URL, iat=int(time.time()) - 3600),
        "not-a-jwt",
    ):
        response = _code_exchange(client, key, bad)
        assert response.status_code == 400  # type: ignore[attr-defined]
        assert response.json()["error"] == "invalid_dpop_proof"  # type: ignore[attr-defined]
