"""The seed's latency table: which cells the step lists and layer figures reproduce,
and that every other cell is reported as a finding with the arithmetic of its steps."""

from __future__ import annotations

from typing import Any

import pytest

from scenarios import World, load_seed_targets
from sim.runner import SimulationPlan, run_plan
from sim.summary import averages, findings, latency_rows

# Cells whose p50 the seed profile puts inside the seed's range, from the step lists.
# (userinfo same region is one Redis round trip after the edge, 8 ms: below the seed's 10.)
INSIDE = {
    ("hybrid", "session_validation", "same_region"),
    ("hybrid", "profile_update", "same_region"),
    ("hybrid", "login", "cross_region"),
    ("hybrid", "token_issue", "cross_region"),
    ("hybrid", "profile_update", "cross_region"),
    ("legacy", "session_validation", "all"),
}
# Inside in the full-length default run (p50 ~265 ms against 150-300), but a rare cell
# (1 % of requests): in this test's short run its p50's interval can reach the 300 bound.
INSIDE_OR_EDGE = {("hybrid", "profile_update", "cross_region")}


def _table(
    world: World, qps: float, seed: int = 1, region: str = "all"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    plan = SimulationPlan(
        world.profile.name,
        (("hybrid", qps, 3), ("legacy", 2000.0, 1)),
        duration_s=8.0,
        warmup_s=0.5,
        replications=2,
        seed=seed,
        workers=1,
    )
    results = run_plan(world, plan)
    targets = load_seed_targets()
    rows = latency_rows(results, world, targets, region)
    avgs = averages(rows, targets)
    return rows, avgs, findings(rows, avgs, world)


@pytest.fixture(scope="module")
def seed_table(seed_world: World) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    return _table(seed_world, 30_000.0)


def test_all_fifteen_cells_are_reported(seed_table: Any) -> None:
    rows, _, _ = seed_table
    aggregate = [r for r in rows if r["region"] == "all"]
    assert len(aggregate) == 15
    assert len(rows) == 15 * 5  # four regions and the aggregate
    for row in aggregate:
        assert row["n"] > 0
        assert row["p50_ci_ms"][0] <= row["p50_ms"] <= row["p50_ci_ms"][1]
        assert row["p50_ms"] <= row["p90_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["p999_ms"]


# Login in the same region costs edge 5 + three Redis calls 3 each + a database write 30
# + a Redis write 3 = 47 ms at the midpoints, plus a miss path: its p50 sits on the seed's
# 50 ms bound, and its confidence interval contains it.
EDGE = {("hybrid", "login", "same_region")}


def test_cell_on_the_edge_of_its_range(seed_table: Any) -> None:
    rows, _, notes = seed_table
    edge = {
        (r["architecture"], r["operation"], r["locality"])
        for r in rows
        if r["region"] == "all" and r["verdict"] == "edge"
    }
    assert edge - INSIDE_OR_EDGE == EDGE
    note = next(n for n in notes if n.startswith("login same_region (all)"))
    assert "contains the bound" in note


def test_cells_inside_the_seed_range(seed_table: Any) -> None:
    rows, _, _ = seed_table
    inside = {
        (
            r["architecture"],
            r["operation"],
            r["locality"] if r["architecture"] == "hybrid" else "all",
        )
        for r in rows
        if r["region"] == "all" and r["inside_seed_range"]
    }
    assert inside == INSIDE


def test_every_cell_outside_is_a_finding_with_arithmetic(seed_table: Any) -> None:
    rows, _, notes = seed_table
    outside = [r for r in rows if r["region"] == "all" and not r["inside_seed_range"]]
    assert len(outside) == 15 - len(INSIDE)
    assert {r["verdict"] for r in outside} == {"outside", "edge"}
    for row in outside:
        where = row["locality"] if row["architecture"] == "hybrid" else "legacy"
        note = next(n for n in notes if n.startswith(f"{row['operation']} {where} (all)"))
        assert "Mean ms per request by step" in note and "dominated by" in note
        # The arithmetic adds up to the cell's mean latency (traced requests are a sample).
        total = float(note.split("= ")[-1].split(" ms")[0])
        if row["n"] >= 1000:
            assert total == pytest.approx(row["mean_ms"], rel=0.05)


def test_token_issue_same_region_arithmetic(seed_table: Any) -> None:
    """edge 5 + two Redis calls 3 + 3 + a database write 30 (+2 CPU): above 40 ms."""
    _, _, notes = seed_table
    note = next(n for n in notes if n.startswith("token_issue same_region"))
    assert "above the seed's 15-40 ms" in note
    assert "crdb.write_refresh_token" in note and "redis.rate_limit" in note


def test_mean_latency_by_mix_and_by_operation(seed_table: Any) -> None:
    _, avgs, notes = seed_table
    agg = {a["locality"]: a for a in avgs if a["region"] == "all"}
    # Weighted by the mix (79 % session validation), the means fall below the seed's...
    assert agg["same_region"]["mix_weighted_mean_ms"] < 20
    assert agg["cross_region"]["mix_weighted_mean_ms"] < 100
    # ...while the plain mean of the five operations lies inside.
    assert agg["same_region"]["operation_mean_inside"]
    assert agg["cross_region"]["operation_mean_inside"]
    assert sum("weighted by the workload mix" in n for n in notes) == 2


def test_golden_values_for_seed_1(seed_table: Any) -> None:
    """Seeded golden values: any change to the model or the scenario shows up here."""
    rows, _, _ = seed_table
    cell = {(r["architecture"], r["operation"], r["locality"], r["region"]): r for r in rows}
    sv = cell[("hybrid", "session_validation", "same_region", "all")]
    login = cell[("legacy", "login", "all", "ap-ne")]
    assert (sv["n"], login["n"]) == GOLDEN_N
    assert (round(sv["p50_ms"], 6), round(login["p50_ms"], 6)) == GOLDEN_P50


def test_cited_profile_names_the_dominant_step(cited_world: World) -> None:
    rows, _, notes = _table(cited_world, 10_000.0, region="ap-ne")
    token = next(
        r for r in rows if r["operation"] == "token_issue" and r["locality"] == "cross_region"
    )
    assert token["dominant_step"] == "crdb.write_refresh_token (ap-ne→eu-west, RTT 218 ms)"
    login = next(r for r in rows if r["operation"] == "login" and r["locality"] == "same_region")
    assert login["dominant_step"] == "edge.verify_password"
    assert any("dominated by" in n for n in notes)


GOLDEN_N = (56971, 54)
GOLDEN_P50 = (8.274736, 497.863246)
