"""Turns pooled samples into the result rows, averages and findings of a run.

A row is one (architecture, operation, locality, region) cell with its percentiles and
95 % intervals, the seed's range and whether the p50 lies inside it. A finding explains a
cell outside its range with the arithmetic of its steps: the mean time each step took in
traced requests, and the step that dominates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from scenarios.loader import World
from scenarios.targets import SeedTargets
from scenarios.workload import LOCALITIES, OPERATIONS
from sim.runner import ArchitectureResult, CellSamples
from sim.stats import PERCENTILES, percentile_interval

_KEYS = {50: "p50_ms", 90: "p90_ms", 95: "p95_ms", 99: "p99_ms", 99.9: "p999_ms"}


@dataclass(frozen=True)
class StepShare:
    step: str
    route: str | None
    mean_ms: float


def merge_cells(cells: Iterable[CellSamples]) -> CellSamples:
    """Pool cells of several regions; batch k of the result pools batch k of each."""
    cells = list(cells)
    merged = CellSamples()
    n_batches = max((len(c.batches) for c in cells), default=0)
    for k in range(n_batches):
        parts = [c.batches[k] for c in cells if k < len(c.batches)]
        merged.batches.append(np.concatenate(parts) if parts else np.empty(0))
    for c in cells:
        for kind, n in c.errors_by_kind.items():
            merged.errors_by_kind[kind] = merged.errors_by_kind.get(kind, 0) + n
        merged.retried += c.retried
        merged.add_steps(c.traced, c.step_ms, c.tail_traced, c.tail_step_ms)
    return merged


def step_shares(samples: CellSamples, tail: bool = False) -> list[StepShare]:
    """Mean ms per request spent in each step (routes of one step pooled), largest first;
    `tail`: over the slowest tenth of the traced requests only."""
    traced, step_ms = (
        (samples.tail_traced, samples.tail_step_ms) if tail else (samples.traced, samples.step_ms)
    )
    if traced == 0:
        return []
    by_step: dict[str, float] = {}
    top_route: dict[str, tuple[float, str | None]] = {}
    for label, ms in step_ms.items():
        step, _, route = label.partition("|")
        by_step[step] = by_step.get(step, 0.0) + ms
        if step not in top_route or ms > top_route[step][0]:
            top_route[step] = (ms, route or None)
    shares = [StepShare(s, top_route[s][1], ms / traced) for s, ms in by_step.items()]
    return sorted(shares, key=lambda s: -s.mean_ms)


def describe_step(share: StepShare, world: World) -> str:
    """'crdb.write_user (ap-ne→eu-west, RTT 218 ms)' where a step crosses regions."""
    if share.route is None:
        return share.step
    src, _, dst = share.route.partition("→")
    if src == dst:
        return f"{share.step} (same region)"
    if world.profile.network == "rtt":
        rtt = world.topology.rtt.between(src, dst)
        return f"{share.step} ({src}→{dst}, RTT {rtt:g} ms)"
    return f"{share.step} ({src}→{dst})"


def cell_row(
    architecture: str,
    operation: str,
    locality: str,
    region: str,
    samples: CellSamples,
    targets: SeedTargets,
    world: World,
) -> dict[str, Any]:
    pooled = np.sort(np.concatenate(samples.batches)) if samples.batches else np.empty(0)
    n = len(pooled)
    lo, hi = targets.range_for(architecture, operation, locality)
    row: dict[str, Any] = {
        "architecture": architecture,
        "operation": operation,
        "locality": locality,
        "region": region,
        "n": n,
        "errors": samples.errors,
        "errors_by_kind": dict(sorted(samples.errors_by_kind.items())),
        "retried": samples.retried,
        "mean_ms": float(pooled.mean()) if n else None,
    }
    for p in PERCENTILES:
        row[_KEYS[p]] = float(np.percentile(pooled, p)) if n else None
    for p, key in ((50, "p50_ci_ms"), (99, "p99_ci_ms")):
        ci = percentile_interval(samples.batches, pooled, p) if n else None
        row[key] = [ci.low, ci.high] if ci else None
        row[key.replace("_ms", "_method")] = ci.method if ci else None
    p99, ci99 = row["p99_ms"], row["p99_ci_ms"]
    row["p99_ci_half_width_pct"] = 100 * (ci99[1] - ci99[0]) / 2 / p99 if ci99 and p99 else None
    row["seed_range_ms"] = [lo, hi]
    row["inside_seed_range"] = bool(n) and lo <= row["p50_ms"] <= hi
    ci50 = row["p50_ci_ms"]
    row["p50_ci_contains_bound"] = bool(ci50) and any(ci50[0] <= b <= ci50[1] for b in (lo, hi))
    row["verdict"] = (
        "edge"
        if row["p50_ci_contains_bound"]
        else "inside"
        if row["inside_seed_range"]
        else "outside"
    )
    shares = step_shares(samples)
    row["steps_mean_ms"] = {s.step: round(s.mean_ms, 3) for s in shares}
    row["dominant_step"] = describe_step(shares[0], world) if shares else None
    tail = step_shares(samples, tail=True)
    if tail:
        row["steps_tail_mean_ms"] = {s.step: round(s.mean_ms, 3) for s in tail}
    return row


def latency_rows(
    results: dict[str, ArchitectureResult],
    world: World,
    targets: SeedTargets,
    report_region: str,
) -> list[dict[str, Any]]:
    regions = world.topology.regions if report_region == "all" else (report_region,)
    rows = []
    for arch, res in results.items():
        localities = LOCALITIES if arch == "hybrid" else ("all",)
        for op in OPERATIONS:
            for loc in localities:
                for region in regions:
                    rows.append(
                        cell_row(
                            arch, op, loc, region, res.cells[(op, loc, region)], targets, world
                        )
                    )
                if report_region == "all":
                    merged = merge_cells(res.cells[(op, loc, r)] for r in world.topology.regions)
                    rows.append(cell_row(arch, op, loc, "all", merged, targets, world))
    return rows


def averages(rows: list[dict[str, Any]], targets: SeedTargets) -> list[dict[str, Any]]:
    """Hybrid mean latency per locality and reported region, from the rows' own means:
    over all requests (n-weighted, i.e. by the mix) and the plain mean of the operations."""
    out = []
    regions = list(dict.fromkeys(r["region"] for r in rows if r["architecture"] == "hybrid"))
    for loc in LOCALITIES:
        for region in regions:
            cells = [
                r
                for r in rows
                if r["architecture"] == "hybrid"
                and r["locality"] == loc
                and r["region"] == region
                and r["n"]
            ]
            n = sum(r["n"] for r in cells)
            mix_mean = sum(r["n"] * r["mean_ms"] for r in cells) / n if n else None
            op_mean = float(np.mean([r["mean_ms"] for r in cells])) if cells else None
            lo, hi = targets.mean_latency_ms[loc]
            out.append(
                {
                    "architecture": "hybrid",
                    "locality": loc,
                    "region": region,
                    "mix_weighted_mean_ms": mix_mean,
                    "operation_mean_ms": op_mean,
                    "seed_range_ms": [lo, hi],
                    "mix_weighted_inside": mix_mean is not None and lo <= mix_mean <= hi,
                    "operation_mean_inside": op_mean is not None and lo <= op_mean <= hi,
                }
            )
    return out


def findings(rows: list[dict[str, Any]], avgs: list[dict[str, Any]], world: World) -> list[str]:
    top_op = max(OPERATIONS, key=lambda o: world.workload.mix[o].value)
    top_means = {
        (r["locality"], r["region"]): r["mean_ms"]
        for r in rows
        if r["architecture"] == "hybrid" and r["operation"] == top_op
    }
    """One sentence per aggregate cell outside its range, with its step arithmetic."""
    out = []
    for row in rows:
        if row["region"] != "all" and any(r["region"] == "all" for r in rows):
            continue
        if row["inside_seed_range"] or not row["n"]:
            continue
        lo, hi = row["seed_range_ms"]
        side = "above" if row["p50_ms"] > hi else "below"
        parts = " + ".join(f"{s} {ms:.1f}" for s, ms in row["steps_mean_ms"].items())
        total = sum(row["steps_mean_ms"].values())
        where = row["locality"] if row["architecture"] == "hybrid" else "legacy"
        cause = f"dominated by {row['dominant_step']}"
        if row["p50_ci_contains_bound"]:
            ci = row["p50_ci_ms"]
            cause += (
                f"; its 95 % CI ({ci[0]:.1f}-{ci[1]:.1f} ms) contains the bound, so the "
                "cell sits on the edge of the range"
            )
        out.append(
            f"{row['operation']} {where} ({row['region']}): p50 {row['p50_ms']:.1f} ms is "
            f"{side} the seed's {lo:g}-{hi:g} ms. Mean ms per request by step: {parts} "
            f"= {total:.1f} ms; {cause}."
        )
    for avg in avgs:
        if avg["region"] != "all" and any(a["region"] == "all" for a in avgs):
            continue
        if avg["mix_weighted_inside"]:
            continue
        lo, hi = avg["seed_range_ms"]
        op_note = "inside" if avg["operation_mean_inside"] else "also outside"
        out.append(
            f"mean latency {avg['locality']} ({avg['region']}): {avg['mix_weighted_mean_ms']:.1f}"
            f" ms over all requests (weighted by the workload mix) is outside the seed's "
            f"{lo:g}-{hi:g} ms; the plain mean of the five operations, "
            f"{avg['operation_mean_ms']:.1f} ms, is {op_note} it. The mix gives "
            f"{top_op} {world.workload.mix[top_op].value:.1%} of requests, at a mean of "
            f"{top_means[(avg['locality'], avg['region'])]:.1f} ms."
        )
    return out
