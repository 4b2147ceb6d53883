"""`make simulate SCENARIO=<name>` and `make scenarios`: run or list failure drills."""

from __future__ import annotations

import argparse
import csv
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from scenarios import ScenarioError, load_world
from scenarios.faults import (
    FAILURES_DIR,
    available_scenarios,
    check_against_world,
    load_scenario,
)
from scenarios.loader import available_profiles
from scenarios.prices import load_pricing
from sim.errors import SimulationError
from sim.results import new_run_dir, point_latest, write_json
from sim.scenario import ScenarioPlan, run_scenario, summarise
from sim.timeline import CSV_FIELDS, Timeline, per_second, timeline_rows

_SPARK = "▁▂▃▄▅▆▇█"


class UsageError(Exception):
    pass


@contextmanager
def warnings_off() -> Iterator[None]:
    """All-NaN buckets are expected (seconds with nothing to measure)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def list_scenarios(directory: Path = FAILURES_DIR) -> int:
    names = available_scenarios(directory)
    if not names:
        print(f"no scenario files in {directory}")
        return 1
    print(f"Failure scenarios in {directory} (run one with make simulate SCENARIO=<name>):")
    width = max(len(n) for n in names)
    for name in names:
        try:
            sc = load_scenario(name, directory)
            line = f"[{sc.architecture}, {sc.duration_s:g} s] {sc.description.splitlines()[0]}"
        except ScenarioError as exc:
            line = f"(does not load: {str(exc).splitlines()[0]})"
        print(f"  {name:<{width}}  {line}")
    return 0


def build(args: argparse.Namespace) -> tuple[ScenarioPlan, Any]:
    """Check the flags against the scenario file and the topology, or raise."""
    scenario = load_scenario(args.scenario)
    profile = args.profile or scenario.profile or "seed"
    if profile not in available_profiles():
        raise UsageError(
            f"unknown PROFILE={profile!r}: choose one of {', '.join(available_profiles())}"
        )
    world = load_world(profile)
    check_against_world(scenario, args.scenario, world)
    for flag, value in (("DURATION", args.duration), ("QPS", args.qps)):
        if value:
            raise UsageError(
                f"{flag} does not apply to SCENARIO runs: the scenario file sets the timeline "
                f"and the load; use MAU= or LOAD=, or edit scenarios/failures/{args.scenario}.toml"
            )
    if args.arch and args.arch != scenario.architecture:
        raise UsageError(
            f"SCENARIO={args.scenario} drills the {scenario.architecture} design; "
            f"ARCH={args.arch} does not apply"
        )
    regions = world.topology.regions
    if args.region != "all" and args.region not in regions:
        raise UsageError(f"unknown REGION={args.region!r}: choose one of all, {', '.join(regions)}")
    mau = args.mau or scenario.mau
    if mau not in world.workload.mau:
        raise UsageError(f"unknown MAU={mau!r}: choose one of {', '.join(world.workload.mau)}")
    load = args.load or scenario.load
    if load not in ("average", "peak"):
        raise UsageError(f"unknown LOAD={load!r}: choose average or peak")
    plan = ScenarioPlan(
        args.scenario,
        scenario,
        profile,
        mau,
        load,
        world.workload.qps(mau, load),
        world.workload.qps(mau, "peak"),
        seed=int(args.seed),
        replications=int(args.replications),
        workers=int(args.workers),
        region=args.region,
    )
    return plan, world


def main(args: argparse.Namespace, progress: Any) -> int:
    try:
        plan, world = build(args)
        pricings = {name: load_pricing(name) for name in ("seed", "list")}
    except (UsageError, ScenarioError, SimulationError, ValueError) as exc:
        print(f"authscale simulate: error: {exc}", file=sys.stderr)
        return 2
    run_dir = new_run_dir(Path(args.results_dir), "sim", f"{plan.name}-{plan.mau}-s{plan.seed}")
    write_json(
        run_dir / "scenario.json",
        {
            "flags": vars(args),
            "failure_scenario": plan.scenario.model_dump(mode="json"),
            "profile": plan.profile,
            "mau": plan.mau,
            "qps": plan.qps,
            "scenario": world.as_dict(),
        },
    )
    print(_header(plan))
    from sim.cli import run_recorded

    outcome = run_recorded(lambda: run_scenario(world, plan, progress), run_dir, progress)
    if isinstance(outcome, int):
        return outcome
    variants, wall = outcome
    summaries = [summarise(plan, v, pricings) for v in variants]
    _write_timeline(run_dir / "timeline.csv", variants, len(variants) > 1)
    summary = {
        "status": "ok",
        "kind": "sim-scenario",
        "run_id": run_dir.name,
        "scenario": plan.name,
        "description": plan.scenario.description,
        "architecture": plan.scenario.architecture,
        "profile": plan.profile,
        "mau": plan.mau,
        "load": plan.load,
        "target_qps": plan.qps,
        "duration_s": plan.scenario.duration_s,
        "replications": plan.replications,
        "seed": plan.seed,
        "wall_s": round(wall, 3),
        "simulated_requests": sum(s["offered"] for s in summaries),
        "variants": summaries,
    }
    write_json(run_dir / "summary.json", summary)
    point_latest(run_dir)
    for variant, s in zip(variants, summaries, strict=True):
        _print_variant(plan, variant["timeline"], s, len(summaries) > 1)
    if len(summaries) > 1:
        _print_comparison(summaries)
    print(
        f"\n{summary['simulated_requests']:,} requests simulated in {wall:.1f} s wall"
        f"\nresults: {run_dir}  (summary.json, timeline.csv, scenario.json)"
    )
    return 0


def _header(plan: ScenarioPlan) -> str:
    sc = plan.scenario
    scale = "every node simulated" if sc.exact_scale else "pools reduced by their common factor"
    lines = [
        f"authscale simulate: SCENARIO={plan.name}: {sc.description.splitlines()[0]}",
        f"  {sc.architecture} design, {plan.mau} MAU {plan.load} ({plan.qps:,.0f} QPS), "
        f"profile {plan.profile}, {sc.duration_s:g} s timeline, seed {plan.seed}, "
        f"{plan.replications} replication(s) of the whole timeline; {scale}",
    ]
    if sc.survival:
        lines.append(f"  CockroachDB survival goals compared: {', '.join(sc.survival)}")
    for i, ev in enumerate(sc.events):
        what = {k: v for k, v in ev.model_dump().items() if k not in ("at_s", "for_s", "note")}
        comp = what.pop("component")
        detail = ", ".join(f"{k}={v}" for k, v in what.items() if v is not None)
        lines.append(
            f"  events[{i}]: at {ev.at_s:g} s, {comp} ({detail}) for {ev.for_s:g} s"
            + (f"  # {ev.note}" if ev.note else "")
        )
    return "\n".join(lines)


SPARK_WIDTH = 60


def bucket(values: np.ndarray, width: int, how: str) -> tuple[np.ndarray, int]:
    """At most `width` values: each the max, min or mean of `step` consecutive seconds."""
    values = np.asarray(values, dtype=float)
    step = max(1, -(-len(values) // width))
    if step == 1:
        return values, 1
    pad = (-len(values)) % step
    padded = np.concatenate([values, np.full(pad, np.nan)]).reshape(-1, step)
    with np.errstate(all="ignore"), warnings_off():
        fns: dict[str, Callable[..., np.ndarray]] = {
            "max": np.nanmax,
            "min": np.nanmin,
            "mean": np.nanmean,
        }
        fn = fns[how]
        return fn(padded, axis=1), step


def sparkline(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return ""
    low, high = float(finite.min()), float(finite.max())
    span = high - low or 1.0
    return "".join(
        " " if not np.isfinite(v) else _SPARK[min(int((v - low) / span * 8), 7)] for v in values
    )


def _print_variant(plan: ScenarioPlan, tl: Timeline, s: dict[str, Any], named: bool) -> None:
    title = f"CockroachDB {s['survival'].upper()} survival" if named else "Result"
    print(f"\n{title}:")
    kinds = ", ".join(f"{k} {n:,}" for k, n in s["errors_by_kind"].items()) or "none"
    avail = s["availability"]
    print(
        f"  availability {avail:.4%} of {s['offered']:,} simulated requests; "
        f"failed {s['failed']:,} ({kinds})"
        if avail is not None
        else "  nothing was offered"
    )
    if s["reduction"] > 1 or plan.replications > 1:
        print(
            f"  one full-size run: ~{s['requests_failed_full_scale']:,} requests failed "
            f"(simulated x {s['reduction']} pools / {plan.replications} replications)"
        )
    print(
        f"  data lost: {s['lost_writes']:g} Redis-only writes; database writes are "
        "acknowledged only after their Raft quorum"
    )
    hit_regions = [
        f"{region} {v['availability']:.3%}"
        for region, v in s["by_region"].items()
        if v["availability"] is not None and v["failed"]
    ]
    if hit_regions:
        print("  availability by the region whose edge took the request: " + ", ".join(hit_regions))
    for ev in s["events"]:
        det, rec, meas = ev["detected_after_s"], ev["recovered_after_s"], ev["measured_recovery_s"]
        print(
            f"  events[{ev['event']}] {ev['component']} {ev['target']} at {ev['start_s']:g} s: "
            f"detected after {_s(det)}, recovered after {_s(rec)} (the mechanism); "
            f"latency and errors back to normal after {_s(meas, 'still impaired at the end')}"
        )
        for note in ev["notes"]:
            print(f"      {note}")
    wm = s["worst_minute_p99_ms"]
    w0, w1 = s["worst_minute_window_s"]
    print(
        f"  worst one-minute p99 {_ms(wm)} (window {w0}-{w1} s"
        + (", the whole run: shorter than a minute" if w1 - w0 < 60 else "")
        + f"); p99 before the failure {_ms(s['baseline_p99_ms'])}; "
        f"{s['impaired_seconds']} impaired second(s)"
    )
    db = s["db_utilisation"]
    if db["baseline"] is not None:
        print(
            f"  database utilisation: {db['baseline']:.1%} before, peak {db['peak']:.1%} "
            f"(busiest region's nodes still up)"
        )
    hr = s["cache_hit_rate"]
    if hr["baseline"] is not None:
        print(
            f"  cache hit rate: {hr['baseline']:.1%} before, lowest {hr['lowest']:.1%}, back to "
            f"90 % of before after {_s(hr['back_to_90pct_of_baseline_s'], 'not within the run')}"
        )
    ps = per_second(tl)
    errors = ps["errors"] / np.maximum(ps["offered"], 1)
    lines = [
        ("offered", ps["offered"], "mean", 1.0, "req/s"),
        ("errors", errors, "max", 100.0, "%"),
        ("p99", ps["p99_ms"], "max", 1.0, "ms"),
        ("hit rate", ps["hit_rate"], "min", 100.0, "%"),
        ("db util", ps["db_utilisation"], "max", 100.0, "%"),
    ]
    shown = {ev["target"] for ev in s["events"]} | {plan.region}
    for region in [r for r in tl.regions if r in shown]:
        r = tl.regions.index(region)
        with np.errstate(all="ignore"):
            lines.append((f"hit {region}", tl.hits[:, r] / tl.lookups[:, r], "min", 100.0, "%"))
            lines.append(
                (f"db {region}", tl.db_busy_ms[:, r] / tl.db_capacity_ms[:, r], "max", 100.0, "%")
            )
    step = bucket(ps["offered"], SPARK_WIDTH, "mean")[1]
    print(
        f"  over time, all regions unless named (one mark per {step} s; each line scaled from "
        "its min to its max):"
    )
    for label, series, how, factor, unit in lines:
        series = np.asarray(series, dtype=float)
        if not np.isfinite(series).any():
            continue
        marks, _ = bucket(series, SPARK_WIDTH, how)
        print(f"    {label:<12} {sparkline(marks)}  {_range(series * factor)} {unit}")
    extra = s["extra_load"]
    costs = ", ".join(
        f"${c['total']:,.2f} at {name} prices" for name, c in extra["cost_usd"].items()
    )
    moved = {k: v for k, v in extra["extra"].items() if v}
    print(
        "  extra load of the failure (one full-size run): "
        + (", ".join(f"{k} {v:+,}" for k, v in moved.items()) or "none")
        + f"; {costs}"
    )


def _print_comparison(summaries: list[dict[str, Any]]) -> None:
    print("\nSurvival goals side by side (availability against write latency):")
    print(
        f"  {'goal':<8}{'availability':>14}{'failed':>12}{'write p50 before':>18}"
        f"{'write p99 before':>18}{'worst-minute p99':>18}"
    )
    for s in summaries:
        print(
            f"  {s['survival']:<8}{s['availability']:>14.4%}{s['failed']:>12,}"
            f"{_ms(s['baseline_write_p50_ms']):>18}{_ms(s['baseline_write_p99_ms']):>18}"
            f"{_ms(s['worst_minute_p99_ms']):>18}"
        )


def _s(value: float | None, missing: str = "n/a") -> str:
    return missing if value is None else f"{value:g} s"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} ms"


def _range(values: np.ndarray) -> str:
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if len(finite) == 0:
        return ""
    return f"{finite.min():,.3g}-{finite.max():,.3g}"


def _write_timeline(path: Path, variants: list[dict[str, Any]], with_goal: bool) -> None:
    fields = (("survival",) if with_goal else ()) + CSV_FIELDS
    with path.open("w", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=fields)
        out.writeheader()
        for v in variants:
            for row in timeline_rows(v["timeline"]):
                if with_goal:
                    row = {"survival": v["survival"], **row}
                out.writerow(row)
