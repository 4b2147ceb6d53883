"""`make simulate`: validate the flags, run the model, print the table, write results/sim/."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from scenarios import ScenarioError, load_seed_targets, load_world
from scenarios.loader import available_profiles, calibrated_world, profile_path
from scenarios.results import LOG_BIN_LO_MS, LOG_BIN_RATIO, log_bins
from sim.errors import SimulationError
from sim.legacy_limits import legacy_limits
from sim.legacy_limits import render as render_limits
from sim.model import max_reduction, node_counts
from sim.pace import calibration_pace, paced
from sim.results import new_run_dir, point_latest, write_json, write_latency_csv
from sim.runner import SimulationPlan, run_plan
from sim.stats import shares, spell_shares
from sim.summary import averages, findings, latency_rows
from sim.table import averages_table, latency_table, region_p50_matrix

T = TypeVar("T")


class UsageError(Exception):
    """A flag has a value the simulator cannot use."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="make simulate",
        description="Simulate the four-region system and compare with the seed's latency table.",
    )
    p.add_argument("--region", default="all", help="whose traffic to report: a region or all")
    p.add_argument("--mau", default=None, help="MAU preset: 10M, 100M or 200M (default 200M)")
    p.add_argument("--load", default=None, help="average (default) or peak: the preset's QPS")
    p.add_argument("--qps", default=None, help="offered requests/s; overrides MAU and LOAD")
    p.add_argument("--profile", default=None, help="latency profile: seed (default) or cited")
    p.add_argument("--duration", default=None, help="simulated seconds measured (default 60)")
    p.add_argument("--scenario", default=None, help="a failure drill from scenarios/failures/")
    p.add_argument("--list-scenarios", action="store_true", help="list the failure drills")
    p.add_argument("--seed", default="1", help="random seed (an integer >= 0)")
    p.add_argument("--arch", default=None, help="hybrid, legacy or both (default both)")
    p.add_argument(
        "--replications",
        default=None,
        help="independent replications (>= 1; default 2, 1 for a scenario)",
    )
    p.add_argument("--warmup", default="0.5", help="simulated seconds discarded per replication")
    p.add_argument("--workers", default="0", help="processes (0: one per core)")
    p.add_argument("--results-dir", default=os.environ.get("AUTHSCALE_RESULTS", "results"))
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument(
        "--pace",
        default=None,
        help="PROFILE=local only: load run folders (comma-separated) whose recorded pace of "
        "the machine's cores (and CPU per request) the model follows, a diagnostic; none: one "
        "steady pace (default: the pace the calibration recorded nearest the load)",
    )
    return p.parse_args(argv)


def _number(name: str, text: str, kind: type, minimum: float, strict: bool = False) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a number; give e.g. {name}=60") from None
    if value < minimum or (strict and value == minimum):
        rel = ">" if strict else ">="
        raise UsageError(f"{name}={text} must be {rel} {minimum:g}")
    return value


def build_plan(args: argparse.Namespace) -> tuple[SimulationPlan, dict[str, Any]]:
    """Check every flag against the scenario and turn them into a plan, or raise."""
    given = {k: getattr(args, k) for k in ("mau", "load", "arch", "duration", "replications")}
    args.mau = args.mau or "200M"
    args.load = args.load or "average"
    args.profile = args.profile or "seed"
    args.duration = args.duration or "60"
    args.arch = args.arch or "both"
    args.replications = args.replications or "2"
    profiles = available_profiles()
    if args.profile not in profiles and not args.profile.endswith(".toml"):
        hint = "; make calibrate writes the local one" if args.profile == "local" else ""
        raise UsageError(
            f"unknown PROFILE={args.profile!r}: choose one of {', '.join(profiles)}{hint}"
        )
    world = load_world(args.profile)
    if world.profile.emulated:
        return _calibrated_plan(args, world, given)
    if args.pace:
        raise UsageError(
            "PACE= replays a load run's pace on the local stack's cores: give PROFILE=local"
        )
    regions = world.topology.regions
    if args.region != "all" and args.region not in regions:
        raise UsageError(f"unknown REGION={args.region!r}: choose one of all, {', '.join(regions)}")
    presets = world.workload.mau
    if args.mau not in presets:
        raise UsageError(f"unknown MAU={args.mau!r}: choose one of {', '.join(presets)}")
    if args.load not in ("average", "peak"):
        raise UsageError(f"unknown LOAD={args.load!r}: choose average or peak")
    if args.arch not in ("both", "hybrid", "legacy"):
        raise UsageError(f"unknown ARCH={args.arch!r}: choose both, hybrid or legacy")
    qps = (
        _number("QPS", args.qps, float, 0, strict=True)
        if args.qps
        else world.workload.qps(args.mau, args.load)
    )
    duration = _number("DURATION", args.duration, float, 0, strict=True)
    seed = _number("SEED", args.seed, int, 0)
    replications = _number("REPLICATIONS", args.replications, int, 1)
    warmup = _number("WARMUP", args.warmup, float, 0)
    workers = _number("WORKERS", args.workers, int, 0)
    targets = load_seed_targets()
    runs = []
    if args.arch in ("both", "hybrid"):
        runs.append(("hybrid", qps, max_reduction(world, "hybrid")))
    legacy_qps = qps if args.arch == "legacy" else world.workload.qps(targets.legacy_mau, "average")
    if args.arch in ("both", "legacy"):
        runs.append(("legacy", legacy_qps, max_reduction(world, "legacy")))
    plan = SimulationPlan(
        args.profile, tuple(runs), duration, warmup, replications, seed=seed, workers=workers
    )
    context = {"world": world, "targets": targets, "qps": qps, "legacy_qps": legacy_qps}
    return plan, context


def _calibrated_plan(
    args: argparse.Namespace, world: Any, given: dict[str, str | None]
) -> tuple[SimulationPlan, dict[str, Any]]:
    """A plan for a calibrated profile: this machine's stack at the load run's QPS (or
    QPS=), regions and mix; hybrid only, every station whole."""
    cal = world.profile.calibration
    if given["mau"] or given["load"] or given["arch"] not in (None, "hybrid"):
        raise UsageError(
            f"PROFILE={args.profile} models the load run {cal.run_id} "
            f"({cal.qps:g} QPS, {','.join(cal.regions)}): drop MAU, LOAD and ARCH "
            "(QPS= sets another load)"
        )
    qps = _number("QPS", args.qps, float, 0, strict=True) if args.qps else cal.qps
    duration = _number("DURATION", given["duration"] or "120", float, 0, strict=True)
    replications = _number("REPLICATIONS", given["replications"] or "2", int, 1)
    # Each replication stands for one load run of its length, caches cold at its start.
    world = calibrated_world(world, qps, duration / replications)
    regions = world.topology.regions
    if args.region != "all" and args.region not in regions:
        raise UsageError(
            f"REGION={args.region!r} is not in the calibrated stack: choose all or "
            f"{', '.join(regions)}"
        )
    args.mau, args.load, args.arch = "local", "calibrated", "hybrid"
    if args.pace == "none":
        pace = None
    elif args.pace:
        pace = paced(cal, qps, args.pace.split(","))
    else:
        pace = calibration_pace(cal, profile_path(args.profile), qps)
    plan = SimulationPlan(
        args.profile,
        (("hybrid", qps, 1),),
        duration,
        _number("WARMUP", args.warmup, float, 0),
        replications,
        seed=_number("SEED", args.seed, int, 0),
        workers=_number("WORKERS", args.workers, int, 0),
        pace=pace.factors if pace is not None else (),
        pace_period_ms=pace.period_ms if pace is not None else 10.0,
        speed=pace.speed if pace is not None else (1.0, 1.0),
    )
    ctx = {
        "world": world, "targets": load_seed_targets(), "qps": qps, "legacy_qps": None,
        "pace": pace.said() if pace is not None else None,
    }  # fmt: skip
    return plan, ctx


class Progress:
    """One updating line on stderr (a line per 10 % when stderr is not a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self._last_decile = -1

    def __call__(self, fraction: float, completed: int) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.started
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.02 else float("nan")
        text = (
            f"simulating: {fraction:6.1%}  {completed:>11,} requests  "
            f"{elapsed:5.0f} s elapsed  ~{eta:4.0f} s left"
        )
        if self.tty:
            print("\r" + text, end="", file=sys.stderr, flush=True)
        elif int(fraction * 10) > self._last_decile:
            self._last_decile = int(fraction * 10)
            print(text, file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled and self.tty:
            print(file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_scenarios:
        from sim.scenario_cli import list_scenarios

        return list_scenarios()
    if args.scenario:
        from sim import scenario_cli

        try:
            _number("SEED", args.seed, int, 0)
            _number("REPLICATIONS", args.replications or "1", int, 1)
            _number("WORKERS", args.workers, int, 0)
        except UsageError as exc:
            print(f"authscale simulate: error: {exc}", file=sys.stderr)
            return 2
        args.replications = args.replications or "1"
        return scenario_cli.main(args, Progress(not args.quiet))
    try:
        plan, ctx = build_plan(args)
    except (UsageError, ScenarioError, SimulationError) as exc:
        print(f"authscale simulate: error: {exc}", file=sys.stderr)
        return 2
    world, targets = ctx["world"], ctx["targets"]
    profile_name = Path(args.profile).stem if args.profile.endswith(".toml") else args.profile
    tag = f"{args.mau}-{'q' + str(int(ctx['qps'])) if args.qps else args.load}-{profile_name}"
    if world.profile.emulated:
        tag = f"local-q{ctx['qps']:g}-{'-'.join(world.topology.regions)}"
    run_dir = new_run_dir(Path(args.results_dir), "sim", f"{tag}-s{plan.seed}")
    header = _header(args, plan, ctx)
    write_json(
        run_dir / "scenario.json",
        {"flags": vars(args), "plan": _plan_dict(plan), "scenario": world.as_dict()},
    )
    print(header)
    progress = Progress(not args.quiet)
    outcome = run_recorded(lambda: run_plan(world, plan, progress), run_dir, progress)
    if isinstance(outcome, int):
        return outcome
    results, wall = outcome
    rows = latency_rows(results, world, targets, args.region)
    avgs = averages(rows, targets)
    notes = findings(rows, avgs, world)
    summary = _summary(args, plan, ctx, results, rows, avgs, notes, wall, run_dir)
    write_latency_csv(run_dir / "latency.csv", rows)
    write_json(run_dir / "distributions.json", distributions(results, world))
    write_json(run_dir / "summary.json", summary)
    point_latest(run_dir)
    _print_report(args, world, rows, avgs, notes, summary, run_dir)
    return 0


def run_recorded(work: Callable[[], T], run_dir: Path, progress: Progress) -> tuple[T, float] | int:
    """Run `work`: its result and wall seconds, or the exit code after a failure or Ctrl-C,
    with summary.json saying how the run ended."""
    started = time.monotonic()
    try:
        result = work()
    except BaseException as exc:
        progress.done()
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        write_json(run_dir / "summary.json", {"status": status, "error": repr(exc)})
        print(
            f"authscale simulate: {status}: {exc!r}; partial record in {run_dir}", file=sys.stderr
        )
        return 130 if status == "interrupted" else 1
    progress.done()
    return result, time.monotonic() - started


def _header(args: argparse.Namespace, plan: SimulationPlan, ctx: dict[str, Any]) -> str:
    world = ctx["world"]
    lines = [
        f"authscale simulate: profile {plan.profile}, {plan.duration_s:g} simulated s, "
        f"seed {plan.seed}, {plan.replications} replication(s) of "
        f"{plan.duration_s / plan.replications:g} s after {plan.warmup_s:g} s warm-up"
    ]
    for arch, qps, red in plan.runs:
        what = (
            f"{args.mau} MAU {args.load}"
            if arch == "hybrid" or args.arch == "legacy"
            else f"{ctx['targets'].legacy_mau} MAU average, the seed's condition for its "
            "old-architecture column"
        )
        if args.qps and (arch == "hybrid" or args.arch == "legacy"):
            what = "QPS override"
        pools = ", ".join(f"{k} {v}" for k, v in node_counts(world, arch).items())
        red_text = (
            f"simulated at 1/{red} scale: 1/{red} of each pool ({pools}) carrying "
            f"1/{red} of the traffic"
            if red > 1
            else "simulated at full scale"
        )
        lines.append(f"  {arch}: {qps:,.0f} QPS ({what}); {red_text}")
    return "\n".join(lines)


def _plan_dict(plan: SimulationPlan) -> dict[str, Any]:
    return {
        "profile": plan.profile,
        "runs": [list(r) for r in plan.runs],
        "duration_s": plan.duration_s,
        "warmup_s": plan.warmup_s,
        "replications": plan.replications,
        "batches": plan.batches,
        "seed": plan.seed,
    }


def _summary(
    args: argparse.Namespace,
    plan: SimulationPlan,
    ctx: dict[str, Any],
    results: dict[str, Any],
    rows: list[dict[str, Any]],
    avgs: list[dict[str, Any]],
    notes: list[str],
    wall: float,
    run_dir: Path,
) -> dict[str, Any]:
    reported = [r for r in rows if r["p99_ci_half_width_pct"] is not None]
    widest = max(reported, key=lambda r: r["p99_ci_half_width_pct"], default=None)
    return {
        "status": "ok",
        "run_id": run_dir.name,
        "kind": "sim",
        "target_qps": ctx["qps"],
        "legacy_qps": ctx["legacy_qps"],
        "duration_s": plan.duration_s,
        "warmup_s": plan.warmup_s,
        "replications": plan.replications,
        "batches_per_replication": plan.batches,
        "profile": plan.profile,
        "mau": args.mau,
        "load": args.load,
        "region": args.region,
        "architectures": [r[0] for r in plan.runs],
        "seed": plan.seed,
        "reduction": {arch: red for arch, _, red in plan.runs},
        "simulated_requests": {a: r.simulated_requests for a, r in results.items()},
        "wall_s": round(wall, 3),
        "cpu_s": {a: round(r.cpu_s, 3) for a, r in results.items()},
        "utilisation_max": {
            a: {g: round(u, 4) for g, u in sorted(r.utilisation.items())}
            for a, r in results.items()
        },
        # The local stack's shared cores: each thread group's CPU, its wait for a core,
        # and how often its threads were moved to another core's run queue.
        "core_waits": {
            a: {
                g: {
                    "cpu_ms": round(cpu, 1),
                    "wait_ms": round(wait, 1),
                    "wait_per_cpu_ms": round(wait / cpu, 4) if cpu else None,
                    "migrations": int(moved) if moved is not None else None,
                    "migrations_per_cpu_s": (
                        round(1000.0 * moved / cpu, 1) if cpu and moved is not None else None
                    ),
                    # As the kernel's trace counts them (loadgen.schedtrace).
                    "wakeups_per_cpu_s": (
                        round(1000.0 * woke / cpu, 1) if cpu and woke is not None else None
                    ),
                    "preemptions_per_cpu_s": (
                        round(1000.0 * pre / cpu, 1) if cpu and pre is not None else None
                    ),
                    "preempted_wait_share": (
                        round(pre_wait / wait, 4) if wait and pre_wait is not None else None
                    ),
                    # Who took the core at its preemptions: each group's share of them.
                    "preempted_by": shares(r.preempted_for.get(g, {})),
                }
                for g, (cpu, wait, moved, woke, pre, pre_wait) in sorted(r.core_time.items())
            }
            for a, r in results.items()
            if r.core_time
        },
        # ... of the wake-ups onto a core running another thread, per pair of groups, how
        # many preempted it at once (the kernel's: kernel_scheduler.wake_preempt) ...
        "core_wake_preempts": {
            a: _counted(r.wake_preempts, "at_once", "not")
            for a, r in results.items()
            if r.wake_preempts
        },
        # ... the per-core model's two choices of moves, as shares (the kernel's own are in
        # a traced load run's summary: kernel_scheduler) ...
        "core_choices": {
            a: _counted(r.core_choices, "yes", "no") for a, r in results.items() if r.core_choices
        },
        # ... and its slow spells: runs of requests that slowed together (logins marked).
        "slow_spells": {a: spell_shares(r.spells) for a, r in results.items() if r.spells},
        "p99_ci_half_width_pct_max": widest["p99_ci_half_width_pct"] if widest else None,
        "p99_ci_half_width_widest_cell": (
            {k: widest[k] for k in ("architecture", "operation", "locality", "region", "n")}
            if widest
            else None
        ),
        "latency": rows,
        "averages": avgs,
        "findings": notes,
        "legacy_limits": (
            legacy_limits(ctx["world"], ctx["legacy_qps"]) if "legacy" in results else None
        ),
        "regions": list(ctx["world"].topology.regions),
        # The machine's pace replayed on the local stack's cores (sim.pace), or None.
        "pace": ctx.get("pace"),
        # A calibrated profile's load run: what `make compare` matches measurements to.
        "calibration": (
            {
                **cal.model_dump(
                    mode="json",
                    include={
                        "run_id",
                        "regions",
                        "qps",
                        "only_operation",
                        "speed",
                        "capacity_qps",
                        "threaded_steps",
                        "scheduler",
                    },
                ),
                # What the model did to the fitted run's CPU times at this load.
                "cpu_scale": cal.cpu_scale(ctx["qps"]),
            }
            if (cal := ctx["world"].profile.calibration) is not None
            else None
        ),
    }


def _counted(counts: dict[str, list[int]], yes: str, no: str) -> dict[str, dict[str, Any]]:
    """Per key, its [yes, no] counts under those names, with the share of yes."""
    return {
        key: {yes: y, no: n, "share": round(y / (y + n), 4) if y + n else None}
        for key, (y, n) in sorted(counts.items())
    }


CORE_GROUPS = {
    "app/*/loop": "the servers' loops",
    "client/loop": "the load generator",
    "app/*/edge.verify_password": "the password hashes",
    "hand-offs": "the hand-offs",
}


def _cores_line(summary: dict[str, Any]) -> str:
    """The shared cores in words: how busy, and how long each group waited for one."""
    waits = (summary.get("core_waits") or {}).get("hybrid")
    if not waits:
        return ""
    busy = summary["utilisation_max"]["hybrid"].get("machine", 0.0)
    parts = ", ".join(
        f"{CORE_GROUPS.get(g, g)} {w['wait_per_cpu_ms']:.3f}"
        for g, w in waits.items()
        if w["wait_per_cpu_ms"] is not None and g in CORE_GROUPS
    )
    moves = ", ".join(
        f"{CORE_GROUPS[g]} {waits[g]['migrations_per_cpu_s']:.0f}"
        for g in ("app/*/loop", "client/loop")
        if (waits.get(g) or {}).get("migrations_per_cpu_s") is not None
    )
    return (
        f"The machine's cores {busy:.0%} busy; ms waiting for a core per ms of CPU: {parts}"
        + (f"; moves to another core's queue per s of CPU: {moves}" if moves else "")
        + ".\n"
    )


def _scale_line(cal: dict[str, Any]) -> str:
    """What the model did to the fitted run's CPU times at this load, in words."""
    points = cal.get("speed") or []
    scale = cal["cpu_scale"]
    if len(points) < 2:
        return (
            "CPU times as fitted: the calibration measured one load only, so the model cannot "
            "follow how CPU per request changes with load (make calibrate measures two).\n"
        )
    at = " and ".join(f"{p['qps']:g}" for p in points)
    hashed = (
        f", x{scale['hash']:.2f} (the password hash, per verification)"
        if scale.get("hash", 1.0) != 1.0
        else ""
    )
    return (
        f"CPU times scaled x{scale['servers']:.2f} (servers) and "
        f"x{scale['load_generator']:.2f} (load generator){hashed} for this load, from CPU per "
        f"request measured at {at} QPS.\n"
    )


def _pace_line(pace: dict[str, Any] | None) -> str:
    """The machine's pace the model replayed, in words; empty without one."""
    if not pace:
        return ""
    if pace.get("source") == "calibration":
        return (
            f"The cores' pace from one 10 ms to the next as calibration run {pace['runs'][0]} "
            f"recorded it (p90 x{pace['p90_factor']:.2f}, p99 x{pace['p99_factor']:.2f} of its "
            "mean; PACE=none for one steady pace).\n"
        )
    return (
        f"The machine as {', '.join(pace['runs'])} measured it: CPU per request "
        f"x{pace['servers_speed']:.3f} (servers) and x{pace['load_generator_speed']:.3f} (load "
        f"generator) of the profile's at this load, and the cores' pace from one 10 ms to "
        f"the next (p90 x{pace['p90_factor']:.2f}, p99 x{pace['p99_factor']:.2f} of its mean).\n"
    )


def _retries_line(rows: list[dict[str, Any]]) -> str:
    """The requests whose transaction the model retried after a conflict, per operation
    and locality (the calibration's conflicts at this load); empty where none was."""
    parts = [
        f"{r['operation']} {r['locality'].replace('_', '-')} {r['retried'] / r['n']:.1%}"
        for r in rows
        if r["architecture"] == "hybrid" and r["region"] == "all" and r.get("retried") and r["n"]
    ]
    if not parts:
        return ""
    return (
        "Retried after a conflict (the calibration's conflicts at this load), share of "
        f"requests: {', '.join(parts)}.\n"
    )


def distributions(results: dict[str, Any], world: Any) -> dict[str, Any]:
    """Every cell's latencies (and each operation-locality's over all regions) in the
    shared 1 % log bins, for CDFs and two-sample tests against measurements."""
    cells = []
    for arch, res in results.items():
        for (op, loc, region), cell in res.cells.items():
            if cell.n:
                cells.append([arch, op, loc, region, log_bins(np.concatenate(cell.batches))])
        groups: dict[tuple[str, str], list[Any]] = {}
        for (op, loc, _), cell in res.cells.items():
            groups.setdefault((op, loc), []).extend(cell.batches)
        for (op, loc), batches in groups.items():
            values = np.concatenate(batches) if batches else np.empty(0)
            if len(values):
                cells.append([arch, op, loc, "all", log_bins(values)])
    return {
        "bins": {"lo_ms": LOG_BIN_LO_MS, "ratio": LOG_BIN_RATIO},
        "fields": ["architecture", "operation", "locality", "region", "counts"],
        "cells": cells,
    }


def _print_report(
    args: argparse.Namespace,
    world: Any,
    rows: list[dict[str, Any]],
    avgs: list[dict[str, Any]],
    notes: list[str],
    summary: dict[str, Any],
    run_dir: Path,
) -> None:
    region = args.region
    title = "all regions (aggregate)" if region == "all" else region
    print(f"\nLatency in ms, traffic served in {title}; seed = the seed's range for the p50")
    print(latency_table(rows, region))
    if avgs:
        print()
        print(averages_table(avgs, region))
    if region == "all":
        print()
        print(region_p50_matrix(rows, world.topology.regions))
    mine = [r for r in rows if r["region"] == region]
    inside = sum(1 for r in mine if r["inside_seed_range"])
    edge = sum(1 for r in mine if r["verdict"] == "edge")
    cal = summary.get("calibration")
    if cal is not None:
        loops = ", ".join(
            f"{g} {u:.0%}" for g, u in sorted(summary["utilisation_max"]["hybrid"].items())
            if g.startswith(("app/", "client"))
        )  # fmt: skip
        print(
            f"\nThis models the local stack of load run {cal['run_id']}; the seed's ranges "
            "describe the global deployment, so the seed column does not apply here.\n"
            f"Event loops busy (client: the load generator's thread): {loops}.\n"
            + _cores_line(summary)
            + _scale_line(cal)
            + _retries_line(rows)
            + _pace_line(summary.get("pace"))
            + "Next: make compare (against a load run of "
            f"{summary['target_qps']:g} QPS on {','.join(cal['regions'])})"
        )
        notes = []
    else:
        print(
            f"\n{inside} of {len(mine)} cells have their p50 inside the seed's range"
            + (f"; {edge} on the edge (the p50's 95 % CI contains a bound)" if edge else "")
            + "."
        )
    if notes:
        print("Findings (cells outside the seed's range, with the arithmetic of their steps):")
        for note in notes:
            print(f"  - {note}")
    if summary["legacy_limits"] is not None:
        _print_legacy_limits(summary, rows, region)
    hw = summary["p99_ci_half_width_pct_max"]
    reqs = sum(summary["simulated_requests"].values())
    print(
        f"\n{reqs:,} requests simulated in {summary['wall_s']:.1f} s wall"
        + (f"; widest p99 95% CI half-width {hw:.1f} %" if hw is not None else "")
    )
    print(f"results: {run_dir}  (summary.json, latency.csv, scenario.json)")


def _print_legacy_limits(summary: dict[str, Any], rows: list[dict[str, Any]], region: str) -> None:
    print("\nLegacy sizing limits (the seed's arithmetic, from the step lists):")
    print(render_limits(summary["legacy_limits"]))
    hot = {g: u for g, u in summary["utilisation_max"]["legacy"].items() if u >= 0.8}
    if hot:
        print(
            "In this run, the busiest stations: "
            + ", ".join(
                f"{g} {u:.0%}{' (overloaded: its queue grows without bound)' if u >= 1 else ''}"
                for g, u in sorted(hot.items(), key=lambda x: -x[1])
            )
        )
    errors = sum(
        r["errors"] for r in rows if r["architecture"] == "legacy" and r["region"] == region
    )
    if errors:
        print(f"Legacy requests that timed out (slower than the client timeout): {errors:,}")


if __name__ == "__main__":
    sys.exit(main())
