"""Failure scenarios: seeded runs of every shipped drill check its qualitative physics.

Runs use the 10M MAU preset (10k QPS) so that each takes seconds; where a drill is longer
than its physics needs, the test shortens it. Every check reads the per-second timeline
or the event records, never a number the engine was told to report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from scenarios import load_world
from scenarios.faults import FailureScenario, available_scenarios, load_scenario
from scenarios.prices import load_pricing
from scenarios.workload import OPERATIONS
from sim.scenario import ScenarioPlan, run_scenario, summarise
from sim.timeline import ERROR_KINDS, per_second

SHIPPED = {
    "region-outage",
    "redis-primary-failover",
    "redis-region-loss",
    "crdb-node-loss",
    "crdb-region-loss",
    "network-partition",
    "traffic-spike",
    "legacy-reshard-cold-start",
}


def test_every_drill_the_issue_names_ships_and_loads() -> None:
    assert set(available_scenarios()) >= SHIPPED
    for name in SHIPPED:
        assert load_scenario(name).events


def _plan(name: str, mau: str = "10M", workers: int = 0, **changes: Any) -> ScenarioPlan:
    base = load_scenario(name)
    data = base.model_dump()
    for key, value in changes.items():
        if key == "timings":
            data["timings"] = {**data["timings"], **value}
        else:
            data[key] = value
    scenario = FailureScenario.model_validate(data)
    world = load_world(scenario.profile or "seed")
    return ScenarioPlan(
        name,
        scenario,
        scenario.profile or "seed",
        mau,
        "average",
        world.workload.qps(mau, "average"),
        world.workload.qps(mau, "peak"),
        seed=3,
        workers=workers,
    )


def _run(name: str, **changes: Any) -> tuple[ScenarioPlan, list[dict[str, Any]], list[dict]]:
    plan = _plan(name, **changes)
    world = load_world(plan.profile)
    variants = run_scenario(world, plan)
    pricings = {p: load_pricing(p) for p in ("seed", "list")}
    return plan, variants, [summarise(plan, v, pricings) for v in variants]


def _errors_per_second(variant: dict[str, Any]) -> np.ndarray:
    return per_second(variant["timeline"])["errors"]


def _check_accounting(variant: dict[str, Any]) -> None:
    """Every arrival is counted exactly once: completed or failed, in its second."""
    tl = variant["timeline"]
    assert int(tl.offered.sum()) == variant["arrived"]
    assert np.array_equal(tl.offered, tl.completed + tl.errors.sum(axis=3))
    assert np.array_equal(tl.completed, tl.hist.sum(axis=3))


def test_redis_primary_failover_follows_node_timeout_and_election() -> None:
    _, (variant,), (summary,) = _run("redis-primary-failover")
    _check_accounting(variant)
    ev = summary["events"][0]
    assert ev["detected_after_s"] == pytest.approx(15.0)
    assert 15.5 <= ev["recovered_after_s"] <= 16.0  # 15 s timeout + 0.5-1.0 s election
    assert abs(ev["measured_recovery_s"] - ev["recovered_after_s"]) <= 1.0
    errors = _errors_per_second(variant)
    assert errors[:10].sum() == 0
    assert errors[10:25].all()  # keys of the dead primary fail while it is not yet FAIL
    assert errors[27:].sum() == 0
    assert set(summary["errors_by_kind"]) == {"redis_unavailable"}
    assert summary["moved_redirects"] > 0


def test_clusterdown_fails_every_slot_and_unreplicated_writes_are_lost() -> None:
    # A slow election stretches CLUSTERDOWN over whole seconds, and a long replication lag
    # widens the lost-write window enough to count at 10k QPS.
    def uniform(low: float, high: float) -> dict[str, Any]:
        return {"dist": "uniform", "low_ms": low, "high_ms": high, "source": "test"}

    _, (variant,), (summary,) = _run(
        "redis-primary-failover",
        timings={
            "redis_replication_lag": uniform(200, 400),
            "redis_election_delay": uniform(4000, 5000),
        },
    )
    ev = summary["events"][0]
    assert 19.0 <= ev["recovered_after_s"] <= 20.0
    assert abs(ev["measured_recovery_s"] - ev["recovered_after_s"]) <= 1.0
    ps = per_second(variant["timeline"])
    share = ps["errors"] / np.maximum(ps["offered"], 1)
    # Before FAIL only the dead primary's third of the slots fails; then all of them.
    assert share[26:29].mean() > 2.4 * share[11:24].mean()
    assert summary["lost_writes"] > 0
    assert ev["lost_writes"] == summary["lost_writes"]


def test_redis_region_loss_goes_cold_then_warms_up_with_a_miss_storm() -> None:
    _, (variant,), (summary,) = _run("redis-region-loss", duration_s=70)
    _check_accounting(variant)
    tl = variant["timeline"]
    r = tl.regions.index("us-east")
    hit = tl.hits[:, r] / np.maximum(tl.lookups[:, r], 1)
    assert hit[1:10].mean() > 0.8
    assert hit[11:15].max() == 0  # down: every lookup falls back to the database
    assert hit[16:20].mean() < hit[40:50].mean() < hit[60:70].mean() < hit[1:10].mean()
    db = tl.db_busy_ms[:, r] / tl.db_capacity_ms[:, r]
    assert db[16:20].mean() > 2 * db[1:10].mean()  # the miss storm
    errors = _errors_per_second(variant)
    assert errors[:10].sum() == 0 and errors[16:].sum() == 0
    assert summary["lost_writes"] > 0  # limiter counters and DPoP jti markers
    assert summary["extra_load"]["extra"]["crdb_read"] > 0


def test_crdb_node_loss_stalls_until_lease_expiry_then_recovers() -> None:
    _, variants, summaries = _run(
        "crdb-node-loss",
        duration_s=30,
        events=(
            {"component": "crdb_node", "region": "us-east", "node": 0, "at_s": 10, "for_s": 15},
        ),
    )
    assert [s["survival"] for s in summaries] == ["zone", "region"]
    for variant, summary in zip(variants, summaries, strict=True):
        _check_accounting(variant)
        assert summary["failed"] == 0 and summary["lost_writes"] == 0
        ev = summary["events"][0]
        assert ev["recovered_after_s"] == pytest.approx(9.0)
        assert abs(ev["measured_recovery_s"] - 9) <= 1
        tl = variant["timeline"]
        slowest = [np.nonzero(h)[0].max() for h in tl.hist.sum(axis=(1, 2))]
        # Stalls of seconds (second 9 excluded: its requests can meet the failure).
        assert max(slowest[10:18]) > max(slowest[1:9]) + 100
    zone, region = summaries
    # REGION survival pays a cross-region quorum on every write.
    assert region["baseline_write_p50_ms"] > zone["baseline_write_p50_ms"] + 50


def test_crdb_region_loss_zone_loses_writes_region_moves_leases() -> None:
    _, variants, (zone, region) = _run("crdb-region-loss")
    for v in variants:
        _check_accounting(v)
    zerr = _errors_per_second(variants[0])
    assert zerr[:10].sum() == 0 and zerr[41:].sum() == 0 and zerr[10:40].all()
    assert set(zone["errors_by_kind"]) == {"crdb_unavailable"}
    assert region["failed"] == 0
    assert zone["lost_writes"] == region["lost_writes"] == 0
    assert region["events"][0]["recovered_after_s"] == pytest.approx(9.0)
    assert region["availability"] > zone["availability"]


def test_region_outage_reroutes_after_detection_and_returns() -> None:
    _, variants, summaries = _run("region-outage")
    for variant, summary in zip(variants, summaries, strict=True):
        _check_accounting(variant)
        ev = summary["events"][0]
        assert 10 <= ev["detected_after_s"] <= 20  # 2 checks 10 s apart, random phase
        assert 40 <= ev["recovered_after_s"] <= 50
        errors = _errors_per_second(variant)
        detected = int(10 + ev["detected_after_s"])
        # A request offered just before 10 s can still reach the dark region after it.
        assert errors[:9].sum() == 0
        assert errors[10:detected].all()
        tl = variant["timeline"]
        ap, usw = tl.regions.index("ap-ne"), tl.regions.index("us-west")
        back = int(np.ceil(10 + ev["recovered_after_s"]))
        # While rerouted, no lookup reaches ap-ne's Redis and us-west's takes its users.
        assert tl.lookups[detected + 1 : 39, ap].sum() == 0
        assert tl.lookups[back + 1 :, ap].all() and tl.lookups[1:10, ap].all()
        assert tl.lookups[detected + 1 : 39, usw].mean() > 1.5 * tl.lookups[1:10, usw].mean()
        assert summary["lost_writes"] == 0
    zone, region = summaries
    assert "crdb_unavailable" in zone["errors_by_kind"]  # ap-ne's rows lost their quorum
    assert "crdb_unavailable" not in region["errors_by_kind"]


def test_network_partition_fails_only_calls_across_the_cut_while_it_lasts() -> None:
    _, (variant,), (summary,) = _run("network-partition")
    _check_accounting(variant)
    errors = _errors_per_second(variant)
    assert errors[:10].sum() == 0 and errors[30:].sum() == 0 and errors[10:30].sum() > 0
    assert set(summary["errors_by_kind"]) == {"partition"}
    tl = variant["timeline"]
    k = ERROR_KINDS.index("partition")
    by_region = tl.errors[..., k].sum(axis=(0, 2))
    for region in ("us-west", "ap-ne"):  # their users' calls never cross the cut
        assert by_region[tl.regions.index(region)] == 0
    assert summary["lost_writes"] == 0


def test_traffic_spike_offers_the_peak_and_its_cost() -> None:
    plan, (variant,), (summary,) = _run("traffic-spike")
    _check_accounting(variant)
    offered = per_second(variant["timeline"])["offered"].astype(float)
    ratio = offered[10:30].mean() / offered[1:10].mean()
    assert ratio == pytest.approx(plan.peak_qps / plan.qps, rel=0.05)
    extra = summary["extra_load"]
    assert extra["extra"]["requests"] == round((plan.peak_qps - plan.qps) * 20)
    workers = next(line for line in extra["cost_usd"]["list"]["lines"] if line["item"] == "Workers")
    assert workers["usd"] == pytest.approx(extra["extra"]["requests"] / 1e6 * 0.30, rel=1e-3)
    assert summary["failed"] == 0 and summary["lost_writes"] == 0


def test_legacy_reshard_forwards_cold_reads_less_as_keys_move() -> None:
    _, (variant,), (summary,) = _run(
        "legacy-reshard-cold-start",
        duration_s=60,
        events=(
            {
                "component": "do_reshard",
                "namespace": "SessionStore",
                "shards": 1000,
                "forward_actions": ("get_session",),
                "at_s": 10,
                "for_s": 50,
            },
        ),
    )
    _check_accounting(variant)
    tl = variant["timeline"]
    do = tl.visits[:, 3] / tl.offered.sum(axis=(1, 2))
    assert do[11:20].mean() > do[1:10].mean() * 1.2  # reads forwarded to the old shard
    assert do[50:60].mean() < do[11:20].mean()  # fewer as keys move
    sv = OPERATIONS.index("session_validation")
    p50 = [np.searchsorted(np.cumsum(h), h.sum() / 2) for h in tl.hist[:, :, sv].sum(axis=1)]
    assert np.mean(p50[11:20]) > np.mean(p50[1:10])
    assert summary["failed"] == 0 and summary["lost_writes"] == 0


def test_scenario_runs_are_identical_serial_and_parallel() -> None:
    changes = {
        "duration_s": 14,
        "events": (
            {"component": "crdb_node", "region": "us-east", "node": 0, "at_s": 4, "for_s": 6},
        ),
    }
    world = load_world("cited")
    one = run_scenario(world, _plan("crdb-node-loss", workers=1, **changes))
    two = run_scenario(world, _plan("crdb-node-loss", workers=2, **changes))
    for a, b in zip(one, two, strict=True):
        for name, array in a["timeline"].arrays().items():
            assert np.array_equal(array, b["timeline"].arrays()[name]), name
