"""Region emulation: a server in one region, a user homed in another.

Steps keep their places from the step list (Redis and follower reads local, reads and
writes of the user's rows at its home), and a step that crosses regions takes at least the
topology's RTT — the same file the simulator reads.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from loadgen import trace
from scenarios import load_world
from server.emulation import Emulation
from server.settings import Settings
from server.steps import parse_server_timing
from tests.server.conftest import authorize, bearer, code_of, exchange, login, make_client, pkce
from tests.server.test_steps import walk

WORLD = load_world("seed")
RTT = WORLD.topology.rtt


def _home_of_alice(settings: Settings) -> str:
    import asyncio

    import asyncpg

    async def q() -> str:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return str(
                await conn.fetchval(
                    "SELECT home_region FROM users WHERE email = 'alice@example.com'"
                )
            )
        finally:
            await conn.close()

    return asyncio.run(q())


def expected_places(
    operation: str, edge: str, home: str, outcomes: dict[str, bool], shares: dict[str, bool]
) -> list[tuple[str, str, str]]:
    return [
        (s.component, s.action, home if s.at == "home" else edge)
        for s in walk(operation, outcomes, shares)
    ]


def _timed(response: Any) -> dict[tuple[str, str], float]:
    out = {}
    for part in response.headers["server-timing"].split(","):
        name, *params = part.strip().split(";")
        dur = next(float(p[4:]) for p in params if p.startswith("dur="))
        out[tuple(name.split(".", 1))] = dur
    return out


@pytest.mark.parametrize("survival", ["zone", "region"])
def test_cross_region_user_pays_the_rtt_to_its_home(settings: Settings, survival: str) -> None:
    with make_client(settings) as first:  # make sure the demo user exists
        assert first.get("/healthz").status_code == 200
    home = _home_of_alice(settings)
    edge = next(r for r in WORLD.topology.regions if r != home)
    rtt = RTT.between(edge, home)
    quorum = (
        RTT.between(home, WORLD.topology.nearest_other_region(home)) if survival == "region" else 0
    )
    # STEP_CPU=1, as calibration runs the servers: steps carry their event-loop CPU.
    with make_client(replace(settings, step_cpu=True), region=edge, survival=survival) as c:
        logged = login(c)
        assert logged.status_code == 200
        steps = parse_server_timing(logged.headers["server-timing"])
        assert steps == expected_places(
            "login", edge, home, {"user": False}, {"login_challenge": True}
        )
        assert _timed(logged)[("crdb", "write_session")] >= rtt + quorum
        verifier, challenge = pkce()
        issued = exchange(c, code_of(authorize(c, challenge)), verifier)
        assert parse_server_timing(issued.headers["server-timing"]) == expected_places(
            "token_issue", edge, home, {}, {"dpop_proof": False}
        )
        assert _timed(issued)[("crdb", "write_refresh_token")] >= rtt + quorum
        access = issued.json()["access_token"]
        updated = c.patch("/profile", json={"locale": "ja-JP"}, headers=bearer(access))
        assert updated.status_code == 200
        assert parse_server_timing(updated.headers["server-timing"]) == expected_places(
            "profile_update", edge, home, {"revocation": True}, {}
        )
        timed = _timed(updated)
        assert timed[("crdb", "read_user")] >= rtt
        assert timed[("crdb", "write_user")] >= rtt + quorum
        # What calibration reads: each step's loop CPU and the emulated wait it holds, and
        # the request's own entry. The CPU excludes the emulated sleep.
        parsed = trace.parse(updated.headers["server-timing"])
        assert parsed is not None
        entries, app_ms, app_cpu = {e[0]: e for e in parsed[0]}, parsed[1], parsed[2]
        _, dur, cpu, wan = entries["crdb.write_user"]
        assert wan == pytest.approx(rtt + quorum, abs=0.001)
        assert 0 <= cpu < dur - wan + 1 and cpu < 50
        assert entries["crdb.read_user"][3] == pytest.approx(rtt, abs=0.001)
        assert entries["redis.check_revoked"][3] == 0.0
        assert app_ms >= dur and 0 < app_cpu < app_ms
        # Follower reads stay local: userinfo pays no RTT.
        info = c.get("/userinfo", headers=bearer(access))
        assert {r for _, _, r in parse_server_timing(info.headers["server-timing"])} == {edge}
        assert _timed(info).get(("crdb", "read_user"), 0.0) < rtt


def test_emulation_reads_the_simulators_topology() -> None:
    em = Emulation.load("ap-ne", "region")
    assert em.delay_ms("eu-west", write=False) == RTT.between("ap-ne", "eu-west") == 218
    assert em.delay_ms("eu-west", write=True) == 218 + RTT.between("eu-west", "us-east")
    assert em.delay_ms(None, write=False) == 0
    assert Emulation.load("ap-ne", "zone").delay_ms("ap-ne", write=True) == 0
    with pytest.raises(ValueError, match="unknown REGION='mars'"):
        Emulation.load("mars")
