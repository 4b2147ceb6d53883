"""The server performs exactly the step lists the simulator walks (scenarios/data/operations.toml).

For each operation and cache branch, the sequence recorded in the Server-Timing header must
equal the step list evaluated for that branch: if either side changes, this fails.
"""

from __future__ import annotations

import redis
from starlette.testclient import TestClient

from scenarios import load_world
from scenarios.operations import Step
from server.settings import Settings
from server.steps import parse_server_timing
from tests.server.conftest import bearer, login, tokens

CATALOG = load_world("seed").operations.hybrid


def walk(operation: str, outcomes: dict[str, bool], shares: dict[str, bool]) -> list[Step]:
    """The steps `operation` performs on this branch, each repeated `count` times."""
    out = []
    for step in CATALOG[operation].steps:
        if step.when is not None:
            cache, branch = step.when.split(":")
            if outcomes[cache] != (branch == "hit"):
                continue
        if step.share is not None and not shares[step.share]:
            continue
        out += [step] * step.count
    return out


def expected(
    operation: str, outcomes: dict[str, bool], shares: dict[str, bool]
) -> list[tuple[str, str]]:
    return [(s.component, s.action) for s in walk(operation, outcomes, shares)]


def recorded(response: object, region: str = "us-east") -> list[tuple[str, str]]:
    steps = parse_server_timing(response.headers["server-timing"])  # type: ignore[attr-defined]
    assert {r for _, _, r in steps} == {region}
    return [(c, a) for c, a, _ in steps]


def test_login_and_session_validation_follow_their_step_lists(
    client: TestClient, settings: Settings
) -> None:
    first = login(client)  # empty cache: the account is read from the database
    assert first.status_code == 200
    assert recorded(first) == expected("login", {"user": False}, {"login_challenge": True})
    second = login(client)
    assert recorded(second) == expected("login", {"user": True}, {"login_challenge": True})
    hit = client.get("/session")
    assert hit.status_code == 200
    assert recorded(hit) == expected("session_validation", {"session": True}, {})
    # Without STEP_CPU=1 the steps carry no CPU field: a system call per step saved.
    timing = hit.headers["server-timing"]
    assert "cpu=" not in timing
    assert ", app;dur=" in timing
    r = redis.Redis.from_url(settings.redis_url)
    for key in r.scan_iter("sess:*"):
        r.delete(key)
    miss = client.get("/session")
    assert miss.status_code == 200
    assert recorded(miss) == expected("session_validation", {"session": False}, {})
    assert recorded(client.get("/session")) == expected("session_validation", {"session": True}, {})


def test_token_userinfo_and_profile_follow_their_step_lists(client: TestClient) -> None:
    assert login(client).status_code == 200
    from tests.server.conftest import authorize, code_of, exchange, pkce

    verifier, challenge = pkce()
    issued = exchange(client, code_of(authorize(client, challenge)), verifier)
    assert issued.status_code == 200
    # No DPoP proof was sent: the jti check is not a step of this request.
    assert recorded(issued) == expected("token_issue", {}, {"dpop_proof": False})
    access = issued.json()["access_token"]
    miss = client.get("/userinfo", headers=bearer(access))
    assert recorded(miss) == expected("userinfo", {"user": False}, {})
    hit = client.get("/userinfo", headers=bearer(access))
    assert recorded(hit) == expected("userinfo", {"user": True}, {})
    update = client.patch("/profile", json={"name": "Alice Updated"}, headers=bearer(access))
    assert update.status_code == 200
    assert recorded(update) == expected("profile_update", {"revocation": True}, {})
    # The invalidation worked: the next userinfo misses and reads the new name.
    after = client.get("/userinfo", headers=bearer(access))
    assert after.json()["name"] == "Alice Updated"
    assert recorded(after) == expected("userinfo", {"user": False}, {})
    assert tokens(client)["token_type"] == "Bearer"
