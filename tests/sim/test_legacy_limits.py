"""The legacy design's limits: the seed's memory arithmetic, hot objects, and a run at
100M MAU where those limits show up as overloaded stations and timed-out requests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scenarios import World
from sim.cli import main
from sim.legacy_limits import object_rates, session_memory


def test_session_memory_reproduces_the_seeds_arithmetic(seed_world: World) -> None:
    rows = {(r["mau"], r["shards"]): r for r in session_memory(seed_world)}
    # seed §1.2: 10M sessions on 100 shards = 100k sessions = 100 MB, "just under" 128 MB.
    assert rows[("100M", 100)]["sessions_per_shard"] == pytest.approx(100_000)
    assert rows[("100M", 100)]["mb_per_shard"] == pytest.approx(100.0)
    assert rows[("100M", 100)]["within_limit"]
    assert rows[("100M", 1000)]["mb_per_shard"] == pytest.approx(10.0)
    # Four regions (the seed counts five) x 100 shards.
    assert rows[("100M", 400)]["mb_per_shard"] == pytest.approx(25.0)
    assert not rows[("200M", 100)]["within_limit"]


def test_singletons_are_the_hot_spots(seed_world: World) -> None:
    rows = object_rates(seed_world, {"10M": 10_000.0, "100M": 100_000.0})
    rate = {(r["namespace"], r["case"]): r for r in rows}
    # Every login consumes a challenge (1.2 % of requests) on one object.
    assert rate[("ChallengeStore", "100M")]["requests_per_s_per_object"] == pytest.approx(1200)
    assert rate[("ChallengeStore", "100M")]["over_capacity"]
    assert not rate[("ChallengeStore", "10M")]["over_capacity"]
    # 30 % of token requests (3.9 %) carry a DPoP proof checked on one object.
    assert rate[("DPoPJTIStore", "100M")]["requests_per_s_per_object"] == pytest.approx(1170)
    assert (
        rate[("SessionStore", "100M")]["utilisation"]
        < 1
        < rate[("ChallengeStore", "100M")]["utilisation"]
    )
    assert ("TokenRevocationStore", "10M") not in rate  # no step list uses it


def test_legacy_at_100m_hits_its_limits_in_latency_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = [
        "--arch",
        "legacy",
        "--duration",
        "6",
        "--warmup",
        "0.5",
        "--replications",
        "1",
        "--workers",
        "1",
        "--quiet",
        "--results-dir",
    ]
    assert main(["--mau", "100M", *flags, str(tmp_path / "big")]) == 0
    out = capsys.readouterr().out
    assert "Legacy sizing limits" in out and "OVER" in out and "timed out" in out
    big = json.loads((tmp_path / "big" / "sim" / "latest" / "summary.json").read_text())
    assert main(["--mau", "10M", *flags, str(tmp_path / "small")]) == 0
    small = json.loads((tmp_path / "small" / "sim" / "latest" / "summary.json").read_text())
    util_big, util_small = big["utilisation_max"]["legacy"], small["utilisation_max"]["legacy"]
    for hot in ("do/ChallengeStore", "do/DPoPJTIStore", "d1/us-east"):
        assert util_big[hot] > 1.0 > util_small[hot]

    def cell(summary: dict, op: str) -> dict:
        return next(r for r in summary["latency"] if r["operation"] == op and r["region"] == "all")

    assert sum(r["errors"] for r in big["latency"] if r["region"] == "all") > 0
    assert sum(r["errors"] for r in small["latency"] if r["region"] == "all") == 0
    # The DPoP check queues behind a saturated singleton (load 1.17): its backlog grows by
    # ~0.17 s every second, so within 6 s token issue's tail passes a second.
    assert cell(big, "token_issue")["p99_ms"] > 1000
    assert cell(big, "token_issue")["p99_ms"] > 5 * cell(small, "token_issue")["p99_ms"]
    assert big["legacy_limits"]["session_memory"]
