"""Runs a failure scenario: every replication simulates the whole timeline.

A scenario that compares CockroachDB survival goals runs once per goal (a variant). The
replications of a variant are pooled: their timelines add up second by second, and the
times at which each failure was detected and recovered are averaged. The summary reads
availability, failed requests, lost writes, detection and recovery times, the worst
one-minute p99, the cache hit rate's dip and climb, and the cost of the extra load.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from scenarios.faults import FailureScenario, TrafficSpike
from scenarios.loader import World
from scenarios.prices import Pricing
from scenarios.workload import OPERATIONS
from sim.cost import mau_millions
from sim.faults import FaultEngine
from sim.model import RunConfig, max_reduction
from sim.runner import Report, _pool, _run_one, run_jobs
from sim.timeline import (
    VISIT_KINDS,
    Timeline,
    impairment,
    per_second,
    percentile_of,
    recovery_after,
    totals,
    worst_minute_p99,
)

WRITE_OPERATIONS = ("login", "token_issue", "profile_update")


@dataclass(frozen=True)
class ScenarioPlan:
    name: str
    scenario: FailureScenario
    profile: str
    mau: str
    load: str
    qps: float
    peak_qps: float
    seed: int = 1
    replications: int = 1
    workers: int = 0
    region: str = "all"  # a region to show on its own as well

    @property
    def variants(self) -> tuple[str | None, ...]:
        return self.scenario.survival or (None,)

    @property
    def seconds(self) -> int:
        return math.ceil(self.scenario.duration_s)


def world_for(world: World, survival: str | None) -> World:
    """The world with CockroachDB's survival goal replaced (None: as in topology.toml)."""
    if survival is None or survival == world.topology.crdb.survival:
        return world
    crdb = world.topology.crdb.model_copy(update={"survival": survival})
    topology = world.topology.model_copy(update={"crdb": crdb})
    return dataclasses.replace(world, topology=topology)


def rate_schedule(plan: ScenarioPlan) -> tuple[tuple[float, float, float], ...]:
    """Offered load over time: the base QPS, changed by traffic events."""
    end = plan.scenario.duration_s * 1000
    spikes = sorted(
        (e for e in plan.scenario.events if isinstance(e, TrafficSpike)), key=lambda e: e.at_s
    )
    pieces: list[tuple[float, float, float]] = []
    t = 0.0
    for ev in spikes:
        qps = plan.peak_qps if ev.load == "peak" else plan.qps * (ev.factor or 1.0)
        if ev.at_s * 1000 > t:
            pieces.append((t, ev.at_s * 1000, plan.qps))
        pieces.append((ev.at_s * 1000, ev.end_s * 1000, qps))
        t = ev.end_s * 1000
    if t < end:
        pieces.append((t, end, plan.qps))
    return tuple(pieces)


def configs(plan: ScenarioPlan, world: World) -> list[tuple[int, RunConfig]]:
    arch = plan.scenario.architecture
    reduction = 1 if plan.scenario.exact_scale else max_reduction(world, arch)
    schedule = rate_schedule(plan)
    return [
        (
            v,
            RunConfig(
                arch,
                plan.qps,
                plan.scenario.duration_s * 1000,
                0.0,
                10,
                reduction,
                plan.seed,
                rep,
                schedule,
            ),
        )
        for v in range(len(plan.variants))
        for rep in range(plan.replications)
    ]


def run_scenario(
    world: World, plan: ScenarioPlan, on_progress: Callable[[float, int], None] | None = None
) -> list[dict[str, Any]]:
    """Run every variant and replication; one pooled result per variant."""
    jobs = configs(plan, world)
    worlds = [world_for(world, v) for v in plan.variants]
    users = mau_millions(plan.mau) * 1e6

    def job(payload: tuple[int, RunConfig], report: Report) -> dict[str, Any]:
        variant, config = payload
        w = worlds[variant]
        rng = np.random.default_rng([config.seed, config.replication, 7919])
        engine = FaultEngine(w, plan.scenario, users, plan.seconds, rng)
        out = _run_one(w, config, report, engine)
        out["timeline"] = engine.timeline.arrays()
        out["records"] = [dataclasses.asdict(r) for r in engine.records]
        out["log"] = engine.log
        out["moved"] = engine.moved
        return out

    outputs = run_jobs(jobs, job, plan.workers, on_progress)
    results = []
    regions = tuple(world.topology.regions)
    for v, survival in enumerate(plan.variants):
        mine = [i for i, (variant, _) in enumerate(jobs) if variant == v]
        timeline = Timeline(plan.seconds, regions)
        for i in mine:
            timeline.merge(Timeline.from_arrays(plan.seconds, regions, outputs[i]["timeline"]))
        cells = _pool([jobs[i][1] for i in mine], {k: outputs[i] for k, i in enumerate(mine)})
        results.append(
            {
                "survival": survival or world.topology.crdb.survival,
                "reduction": jobs[mine[0]][1].reduction,
                "timeline": timeline,
                "records": [outputs[i]["records"] for i in mine],
                "log": [outputs[i]["log"] for i in mine],
                "moved": sum(outputs[i]["moved"] for i in mine),
                "arrived": sum(outputs[i]["arrived"] for i in mine),
                "result": cells[plan.scenario.architecture],
            }
        )
    return results


# -- summary --------------------------------------------------------------------------


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 3) if present else None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def summarise(
    plan: ScenarioPlan, variant: dict[str, Any], pricings: dict[str, Pricing]
) -> dict[str, Any]:
    """The numbers a reader wants from one variant of a scenario run."""
    tl: Timeline = variant["timeline"]
    scale = variant["reduction"] / plan.replications  # simulated counts -> one full-size run
    events = plan.scenario.events
    first = max(int(min(e.at_s for e in events)), 2)
    # The baseline is the seconds before the first failure, less the first second (queues
    # fill from empty) and the last one (its requests can still meet the failure).
    base_end = max(first - 1, 2)
    imp = impairment(tl, base_end)
    tot = totals(tl)
    worst, w_start, w_end = worst_minute_p99(tl)
    ps = per_second(tl)
    starts = sorted({int(e.at_s) for e in events})
    event_rows = []
    for i, ev in enumerate(events):
        recs = [reps[i] for reps in variant["records"]]
        later = [s for s in starts if s > int(ev.at_s)]
        measured = recovery_after(imp["impaired"], int(ev.at_s), later[0] if later else None)
        event_rows.append(
            {
                "event": i,
                "component": ev.component,
                "target": recs[0]["target"],
                "start_s": ev.at_s,
                "for_s": ev.for_s,
                "detected_after_s": _round(_since(recs, "detected_s", ev.at_s)),
                "recovered_after_s": _round(_since(recs, "recovered_s", ev.at_s)),
                "measured_recovery_s": measured,
                "lost_writes": round(sum(r["lost_writes"] for r in recs) * scale, 1),
                "notes": recs[0]["notes"],
            }
        )
    baseline = slice(1, base_end)
    write_ops = [OPERATIONS.index(o) for o in WRITE_OPERATIONS]
    write_hist = tl.hist[baseline][:, :, write_ops].sum(axis=(0, 1, 2))
    hit = ps["hit_rate"]
    base_hit = float(np.nanmean(hit[baseline])) if np.isfinite(hit[baseline]).any() else None
    return {
        "survival": variant["survival"],
        "reduction": variant["reduction"],
        "offered": tot.offered,
        "completed": tot.completed,
        "failed": tot.failed,
        "errors_by_kind": tot.errors_by_kind,
        "availability": _round(tot.availability, 6),
        "requests_failed_full_scale": round(tot.failed * scale),
        "lost_writes": round(sum(e["lost_writes"] for e in event_rows), 1),
        "moved_redirects": round(variant["moved"] * scale),
        "baseline_p99_ms": _round(imp["baseline_p99_ms"]),
        "baseline_write_p50_ms": _round(percentile_of(write_hist, 50)),
        "baseline_write_p99_ms": _round(percentile_of(write_hist, 99)),
        "impaired_seconds": int(imp["impaired"].sum()),
        "worst_minute_p99_ms": _round(worst),
        "worst_minute_window_s": [w_start, w_end],
        "db_utilisation": {
            "baseline": _round(_nanmean(ps["db_utilisation_busiest"][baseline]), 4),
            "peak": _round(float(np.max(ps["db_utilisation_busiest"])), 4),
            "note": "busy time over capacity of the busiest region's live database nodes",
        },
        "cache_hit_rate": {
            "baseline": _round(base_hit, 4),
            "lowest": _round(float(np.nanmin(hit)) if np.isfinite(hit).any() else None, 4),
            "back_to_90pct_of_baseline_s": _back_to(hit, base_hit, first),
        },
        "by_region": _by_region(tl),
        "events": event_rows,
        "extra_load": extra_load(
            tl, base_end, scale, pricings, plan.scenario.architecture, scheduled_extra(plan)
        ),
    }


def scheduled_extra(plan: ScenarioPlan) -> float:
    """Requests a traffic event adds by schedule, over the base load, in one full-size run."""
    return sum((b - a) / 1000 * (q - plan.qps) for a, b, q in rate_schedule(plan))


def _by_region(tl: Timeline) -> dict[str, dict[str, Any]]:
    """Offered, failed and availability of the traffic each region's edge took."""
    out = {}
    for r, region in enumerate(tl.regions):
        offered = int(tl.offered[:, r].sum())
        completed = int(tl.completed[:, r].sum())
        out[region] = {
            "offered": offered,
            "failed": offered - completed,
            "availability": _round(completed / offered if offered else None, 6),
        }
    return out


def _nanmean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values) & (values >= 0)]
    return float(finite.mean()) if len(finite) else None


def _since(recs: list[dict[str, Any]], key: str, start: float) -> float | None:
    values = [r[key] - start for r in recs if r[key] is not None]
    return _mean(list(values)) if values else None


def _back_to(hit: np.ndarray, base: float | None, first: int) -> int | None:
    """Seconds after the first failure until the hit rate is back to 90 % of its baseline."""
    if base is None or not base:
        return None
    after = hit[first:]
    low = np.nonzero(np.nan_to_num(after, nan=base) < 0.9 * base)[0]
    if len(low) == 0:
        return 0
    if low[-1] + 1 >= len(after):
        return None
    return int(low[-1] + 1)


def extra_load(
    tl: Timeline,
    base_end: int,
    scale: float,
    pricings: dict[str, Pricing],
    architecture: str,
    extra_requests: float,
) -> dict[str, Any]:
    """Component visits the failure added, and what they cost at each pricing.

    Per request, the seconds before `base_end` set the normal number of visits to
    each component. Extra visits are those beyond that norm for the requests actually
    offered (so Poisson noise in the offered load cancels), plus the norm for the extra
    requests a traffic event offered by schedule.
    """
    baseline = slice(1, base_end)
    offered = tl.offered.sum(axis=(1, 2)).astype(float)
    normal_requests = float(offered.sum()) - extra_requests / scale
    base_offered = max(float(offered[baseline].sum()), 1.0)
    extra = {"requests": extra_requests}
    for k, kind in enumerate(VISIT_KINDS):
        series = tl.visits[:, k].astype(float)
        per_request = float(series[baseline].sum()) / base_offered
        extra[kind] = (float(series.sum()) - per_request * normal_requests) * scale
    out: dict[str, Any] = {
        "note": "visits beyond the pre-failure visits per request, for one full-size run "
        "of the scenario; negative where a failed component was not visited",
        "extra": {k: round(v) for k, v in extra.items()},
        "cost_usd": {},
    }
    for name, pricing in pricings.items():
        ru_read = pricing.usage.crdb_ru_per_read
        ru_write = pricing.usage.crdb_ru_per_write
        units = {
            "requests": extra["requests"],
            "do_requests": extra["do"],
            "crdb_request_units": extra["crdb_read"] * (ru_read.value if ru_read else 1.0)
            + extra["crdb_write"] * (ru_write.value if ru_write else 3.0),
        }
        lines: list[dict[str, Any]] = []
        for item in pricing.items:
            if (
                architecture in item.architectures
                and item.usage in units
                and item.unit.startswith("million")
            ):
                qty = units[item.usage] / 1e6
                lines.append(
                    {
                        "item": item.name,
                        "extra_units": round(qty, 6),
                        "unit": item.unit,
                        "usd": round(qty * item.unit_price_usd, 4),
                    }
                )
        out["cost_usd"][name] = {
            "total": round(sum(line["usd"] for line in lines), 4),
            "lines": lines,
        }
    return out
