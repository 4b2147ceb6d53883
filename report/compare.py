"""`make compare`: a calibrated simulation against the load run of the same scenario.

A simulator run with a calibrated profile (`make simulate PROFILE=local`) records the
load it modelled (regions, QPS, mix). This module finds the load runs that offered the
same since the profile's calibration (or takes the runs named), refuses runs that
differ, pools their requests, and puts them side by side per operation × locality ×
region: measured p50/p90/p99 against simulated (with
the simulator's 95 % intervals), the relative errors, and a two-sample
Kolmogorov-Smirnov test of the two distributions. A cell with at least MIN_SAMPLES
measured requests passes when its simulated p50 and p90 are within TOLERANCE of the
measured ones; where a cell is off, the step whose mean time differs most between the
model and the load runs' traces (those that were traced, pooled) is named as the cause,
over every request and, where the p90 is off, over the slowest tenth. With several
load runs, each cell also says how far each run's own p50 and p90 lie from the pooled
ones: how well the machine repeats its own measurement.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import sys
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram
from scipy import stats

from report.calibrate import MIN_WAKES_ONTO_BUSY, RUNQUEUE_WAITS, wake_preempt_counts
from scenarios.profiles import SpeedPoint, expected_cpu_ms
from scenarios.results import (
    LOG_BIN_LO_MS,
    LOG_BIN_RATIO,
    TRACE_FORMATS_READ,
    log_bin_index,
    log_bin_mid_ms,
    offered_requests,
    run_cpu_per_request,
)
from sim.cores import GROUP_OF_TRACE_CLASS, HAND_OFFS
from sim.stats import SLOW_SPELL_FACTOR, SPELL, slow_spells, slowest_tenth_steps, spell_shares

TOLERANCE = 0.15
MIN_SAMPLES = 1000
PERCENTILES = (50, 90, 99)


class CompareError(Exception):
    """The two runs cannot be compared; the message says why and what to run."""


@dataclass(frozen=True)
class Pair:
    """A calibrated simulation and the load run(s) of its scenario: `load_dir` is the
    newest, `repeats` the older runs of the same load pooled with it."""

    sim_dir: Path
    sim: dict[str, Any]
    load_dir: Path
    load: dict[str, Any]
    repeats: tuple[tuple[Path, dict[str, Any]], ...] = ()

    @property
    def load_dirs(self) -> list[Path]:
        return [self.load_dir, *(d for d, _ in self.repeats)]

    @property
    def loads(self) -> list[dict[str, Any]]:
        """Every pooled load run's summary, newest first."""
        return [self.load, *(load for _, load in self.repeats)]

    @cached_property
    def measured_each(self) -> list[dict[tuple[str, str, str], dict[int, int]]]:
        """Each load run's latencies in the shared log bins, newest first (read once)."""
        return [measured_bins(d) for d in self.load_dirs]

    @cached_property
    def measured(self) -> dict[tuple[str, str, str], dict[int, int]]:
        """The load runs' latencies pooled: every measured request once."""
        each = self.measured_each
        if len(each) == 1:
            return each[0]
        pooled: dict[tuple[str, str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for run in each:
            for key, bins in run.items():
                for i, n in bins.items():
                    pooled[key][i] += n
        return {k: dict(v) for k, v in pooled.items()}

    @cached_property
    def simulated(self) -> dict[tuple[str, str, str], dict[int, int]]:
        return sim_bins(self.sim_dir)


def _read(run: Path) -> dict[str, Any]:
    path = run / "summary.json"
    if not path.is_file():
        raise CompareError(f"{run}: no summary.json (not a run folder)")
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("status") != "ok":
        raise CompareError(f"{run}: the run did not finish ({data.get('status')})")
    return data


def _runs(folder: Path) -> list[Path]:
    return sorted(
        (p.parent for p in folder.glob("*/summary.json") if p.parent.name != "latest"),
        reverse=True,
    )


def scenario_of_load(load: dict[str, Any]) -> dict[str, Any]:
    return {
        "regions": sorted(load["regions"]),
        "qps": float(load["target_qps"]),
        "mix": load.get("only_operation") or "default",
        "failure drill": load.get("scenario") or "none",
        "mode": load.get("mode", "open"),
    }


def scenario_of_sim(sim: dict[str, Any]) -> dict[str, Any]:
    cal = sim.get("calibration")
    if sim.get("kind") != "sim" or cal is None:
        raise CompareError(
            f"simulation {sim.get('run_id')} used profile {sim.get('profile')!r}, which models "
            "the seed's deployment, not this machine: run make calibrate, then "
            "make simulate PROFILE=local"
        )
    return {
        "regions": sorted(sim["regions"]),
        "qps": float(sim["target_qps"]),
        "mix": cal.get("only_operation") or "default",
        "failure drill": "none",
        "mode": "open",
    }


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [f"{k}: simulated {a[k]} vs measured {b[k]}" for k in a if a[k] != b.get(k)]


def find_pair(results: Path, sim_run: str = "", load_run: str = "") -> Pair:
    """The simulation (`sim_run`, else the newest calibrated one) and the load runs of the
    same scenario: those named in `load_run` (comma-separated), else every one made since
    the calibration run the simulation's profile was fitted from, else the newest; pooled,
    newest first. A clear error when none matches or a named one differs."""
    if sim_run:
        sim_dir = Path(sim_run)
        sim = _read(sim_dir)
    else:
        found = [(d, s) for d in _runs(results / "sim") if (s := _try(d)) and s.get("calibration")]
        if not found:
            raise CompareError(
                f"no calibrated simulation under {results / 'sim'}: run make calibrate, then "
                "make simulate PROFILE=local"
            )
        sim_dir, sim = found[0]
    want = scenario_of_sim(sim)
    if load_run:
        named = []
        for part in (p.strip() for p in load_run.split(",")):
            if not part:
                continue
            load_dir = Path(part)
            load = _read(load_dir)
            if load.get("kind") != "load":
                raise CompareError(f"{load_dir} is not a load run (kind {load.get('kind')!r})")
            diff = differences(want, scenario_of_load(load))
            if diff:
                raise CompareError(
                    f"simulation {sim['run_id']} and load run {load['run_id']} are not the "
                    f"same scenario ({'; '.join(diff)}): compare runs of one load"
                )
            named.append((load_dir, load))
        if len({d.resolve() for d, _ in named}) != len(named):
            raise CompareError(f"a load run is named twice in {load_run}: name each run once")
        if named:
            named.sort(key=lambda dl: str(dl[1].get("run_id", "")), reverse=True)
            return Pair(sim_dir, sim, *named[0], repeats=tuple(named[1:]))
    matching = [
        (d, load)
        for d in _runs(results / "load")
        if (load := _try(d)) and load.get("kind") == "load"
        and not differences(want, scenario_of_load(load))
    ]  # fmt: skip
    if matching:
        since = _stamp(str((sim.get("calibration") or {}).get("run_id", "")))
        pooled = [(d, load) for d, load in matching if since and _stamp(d.name) >= since]
        pooled = pooled or matching[:1]
        return Pair(sim_dir, sim, *pooled[0], repeats=tuple(pooled[1:]))
    qps = f"{want['qps']:g}"
    raise CompareError(
        f"no load run matches simulation {sim['run_id']} ({qps} QPS on "
        f"{','.join(want['regions'])}, mix {want['mix']}): run make loadtest QPS={qps} "
        f"REGIONS={','.join(want['regions'])} TRACE=1"
        + ("" if want["mix"] == "default" else f" MIX={want['mix']}")
    )


def _stamp(run_id: str) -> str:
    """A run's start (YYYYMMDD-HHMMSS, the first part of its folder's name): comparable."""
    return run_id[:15] if len(run_id) >= 15 and run_id[8] == "-" else ""


def _try(run: Path) -> dict[str, Any] | None:
    try:
        return _read(run)
    except (CompareError, OSError, ValueError):
        return None


# -- distributions ------------------------------------------------------------------------


def measured_bins(load_dir: Path) -> dict[tuple[str, str, str], dict[int, int]]:
    """The load run's HdrHistograms (µs) in the simulator's log bins, per cell and per
    operation-locality over all regions."""
    data = json.loads((load_dir / "recorder.json").read_text())
    out: dict[tuple[str, str, str], dict[int, int]] = {}
    merged: dict[tuple[str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for op, loc, region, text in data["histograms"]:
        hist = HdrHistogram.decode(base64.b64decode(text))
        values, counts = [], []
        for item in hist.get_recorded_iterator():
            values.append(item.value_iterated_to / 1000.0)
            counts.append(item.count_at_value_iterated_to)
        bins: dict[int, int] = defaultdict(int)
        idx = log_bin_index(np.array(values))
        for i, n in zip(idx.tolist(), counts, strict=True):
            bins[i] += n
            merged[(op, loc)][i] += n
        out[(op, loc, region)] = dict(bins)
    for (op, loc), bins in merged.items():
        out[(op, loc, "all")] = dict(bins)
    return out


def sim_bins(sim_dir: Path) -> dict[tuple[str, str, str], dict[int, int]]:
    path = sim_dir / "distributions.json"
    if not path.is_file():
        raise CompareError(f"{sim_dir}: no distributions.json (a run older than make compare)")
    data = json.loads(path.read_text())
    return {
        (op, loc, region): {int(k): v for k, v in counts.items()}
        for arch, op, loc, region, counts in data["cells"]
        if arch == "hybrid"
    }


def cdf(bins: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(upper bin edges in ms, cumulative share) of binned counts."""
    keys = np.array(sorted(bins))
    counts = np.array([bins[k] for k in keys], dtype=float)
    return LOG_BIN_LO_MS * LOG_BIN_RATIO ** (keys + 1), np.cumsum(counts) / counts.sum()


def percentile(bins: dict[int, int], q: float) -> float:
    keys = np.array(sorted(bins))
    counts = np.cumsum([bins[k] for k in keys])
    i = int(np.searchsorted(counts, q / 100 * counts[-1]))
    return float(log_bin_mid_ms(keys[min(i, len(keys) - 1)]))


def ks_two_sample(a: dict[int, int], b: dict[int, int]) -> tuple[float, float]:
    """Kolmogorov-Smirnov distance between two binned samples, and its asymptotic p-value
    (scipy's Kolmogorov distribution at D·sqrt(nm/(n+m)))."""
    keys = np.array(sorted(set(a) | set(b)))
    ca = np.cumsum([a.get(k, 0) for k in keys], dtype=float)
    cb = np.cumsum([b.get(k, 0) for k in keys], dtype=float)
    n, m = ca[-1], cb[-1]
    d = float(np.max(np.abs(ca / n - cb / m)))
    p = float(stats.kstwobign.sf(d * math.sqrt(n * m / (n + m))))
    return d, p


# -- steps ----------------------------------------------------------------------------------


def read_trace(load_dir: Path) -> dict[str, Any] | None:
    """The load run's trace; None when the run was not traced, or traced in a format this
    version does not read (recalibrate for the step detail)."""
    path = load_dir / "trace.json"
    if not path.is_file():
        return None
    trace: dict[str, Any] = json.loads(path.read_text())
    return trace if trace.get("format") in TRACE_FORMATS_READ else None


def read_traces(load_dirs: list[Path]) -> dict[str, Any] | None:
    """The pooled load runs' traces as one: every traced run's requests, run after run (in
    the order each completed them), so that the steps compared are those of the requests
    whose percentiles are compared; None when no run was traced in a format this version
    reads. `runs`: how many traces it pools."""
    traces = [t for t in map(read_trace, load_dirs) if t is not None]
    if not traces:
        return None
    requests = [row for t in traces for row in t["requests"]]
    return {**traces[0], "requests": requests, "runs": len(traces)}


def measured_steps(trace: dict[str, Any] | None) -> dict[tuple[str, str, str], dict[str, float]]:
    """Mean ms per request in each step (and `app.untraced`, the rest) per cell, from the
    load run's trace; empty without one."""
    if trace is None:
        return {}
    sums: dict[tuple[str, str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    splits: dict[tuple[str, str, str], list[tuple[float, ...]]] = defaultdict(list)
    each: dict[tuple[str, str, str], list[tuple[float, list[tuple[str, float]]]]] = defaultdict(
        list
    )
    for op, loc, region, latency, app_ms, _, client, steps in trace["requests"]:
        split = client[4:7] if len(client) >= 7 and client[4] is not None else None
        own = [(name, dur) for name, dur, *_ in steps]
        own.append(("app.untraced", latency - sum(s[1] for s in steps)))
        for key in ((op, loc, region), (op, loc, "all")):
            counts[key] += 1
            for name, dur in own:
                sums[key][name] += dur
            each[key].append((latency, own))
            # of which outside the server's own clock: HTTP, loopback, the load generator
            sums[key][OUTSIDE] += latency - app_ms
            sums[key][LATE] += client[0]  # the sender's wake-up: its thread's queue, its timer
            if split is not None:
                before, to_server, after = split
                splits[key].append((latency, client[0], before, to_server, app_ms, after))
    out: dict[tuple[str, str, str], dict[str, Any]] = {
        k: {s: v / counts[k] for s, v in d.items()} for k, d in sums.items()
    }
    for key, rows in splits.items():
        out[key][SPLIT] = latency_split(rows)
    for key, requests in each.items():
        n, tail = slowest_tenth_steps(requests)
        out[key][TAIL] = {step: ms / n for step, ms in tail.items()}
    return out


DB_STEP = "crdb."  # the database's steps; a transaction retried runs them again


def _retrying(counts: dict[tuple[str, str], list[int]]) -> dict[str, dict[str, Any]]:
    """Per operation that retried anywhere, and per locality: requests, retried, share,
    from [requests, retried] per (operation, locality)."""
    ops = {op for (op, _), (_, k) in counts.items() if k}
    out: dict[str, dict[str, Any]] = {}
    for (op, locality), (n, k) in sorted(counts.items()):
        if op in ops and n:
            out.setdefault(op, {})[locality] = {
                "requests": n, "retried": k, "share": round(k / n, 4),
            }  # fmt: skip
    return out


def measured_retries(trace: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Per operation and locality, the traced requests that ran one of the database's
    steps twice: a transaction the server retried after a serialization conflict (SQLSTATE
    40001, backing off 100-150 ms before the second attempt; server/storage.py).
    Operations that never retried are left out; empty without a trace."""
    if trace is None:
        return {}
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for op, locality, *_, steps in trace["requests"]:
        names = [name for name, *_ in steps if name.startswith(DB_STEP)]
        row = counts[op, locality]
        row[0] += 1
        row[1] += len(names) != len(set(names))
    return _retrying(counts)


def simulated_retries(sim: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The same from a simulation's summary: per operation and locality, the requests
    whose transaction the model retried (a calibrated profile's `retries`); operations it
    never retried are left out."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in sim.get("latency", []):
        if r["architecture"] == "hybrid" and r["region"] != "all":
            row = counts[r["operation"], r["locality"]]
            row[0] += r["n"]
            row[1] += r.get("retried", 0)
    return _retrying(counts)


def retry_note(result: dict[str, Any]) -> str | None:
    """The transactions retried after a conflict, measured against simulated, where the
    shares differ by more than ±15 % of the measured one and a request in a hundred."""
    retries = result.get("retries") or {}
    measured, simulated = retries.get("measured") or {}, retries.get("simulated") or {}
    off = []
    for op in sorted(set(measured) | set(simulated)):
        for locality in sorted(set(measured.get(op, {})) | set(simulated.get(op, {}))):
            m = measured.get(op, {}).get(locality)
            ms = m["share"] if m else 0.0
            ss = simulated.get(op, {}).get(locality, {}).get("share", 0.0)
            if abs(ss - ms) <= max(TOLERANCE * ms, 0.01):
                continue
            said = f"{m['retried']:,} of {m['requests']:,} ({ms:.1%})" if m else "none"
            off.append(f"{op} {locality}: measured {said}, simulated {ss:.1%}")
    if not off:
        return None
    never = (
        " The model retried none: its profile holds no conflicts (make calibrate measures "
        "them in its busier runs)"
        if not simulated
        else ""
    )
    return (
        "transactions retried after a serialization conflict (the database steps run again "
        "after a backoff of 100 ms or more, which shows as app.untraced): "
        + "; ".join(off)
        + "."
        + never
    )


def measured_spells(trace: dict[str, Any] | None) -> dict[str, float | None] | None:
    """The load run's slow spells (sim.stats.slow_spells, logins marked), from its trace
    (in the order the requests completed); None without one."""
    if trace is None or not trace["requests"]:
        return None
    rows = trace["requests"]
    latency = np.array([r[3] for r in rows], dtype=float)
    logins = np.array([r[0] == "login" for r in rows])
    return spell_shares(slow_spells(latency, logins))


OUTSIDE = "(outside the server)"
LATE = "(sender woke late)"
SPLIT = "(latency split)"
TAIL = "(slowest tenth)"  # mean ms per step over the slowest tenth of the cell's requests
SPLIT_PARTS = ("late", "before_socket", "to_server", "server", "after_server")


def latency_split(rows: list[tuple[float, ...]]) -> dict[str, dict[str, float]]:
    """Where the measured latency went, as mean ms per request over all requests and over
    the slowest tenth: the sender waking late, its thread until the request had a socket,
    from there to the server's clock, inside the server, and from its answer until the
    sender had read it. `rows`: the latency, then the parts in SPLIT_PARTS' order."""
    a = np.asarray(rows, dtype=float)
    order = a[:, 0] >= np.percentile(a[:, 0], 90)
    return {
        "n": {"all": float(len(a)), "slowest_tenth": float(order.sum())},
        **{
            part: {
                "all": round(float(a[:, i].mean()), 3),
                "slowest_tenth": round(float(a[order, i].mean()), 3),
            }
            for i, part in enumerate(SPLIT_PARTS, start=1)
        },
    }


def _sim_steps(row: dict[str, Any], key: str = "steps_mean_ms") -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for label, ms in (row.get(key) or {}).items():
        step = label.split("|")[0]
        # The model's waits for the load generator's thread belong to what the trace
        # counts as outside the steps.
        out["app.untraced" if step.startswith("client.") else step] += ms
    return out


def _widest_gap(mine: dict[str, float], theirs: dict[str, Any]) -> str:
    """The step whose mean ms per request differs most between the model and the trace."""
    labels = (set(mine) | set(theirs)) - {OUTSIDE, LATE, SPLIT, TAIL}
    diffs = {k: mine.get(k, 0.0) - theirs.get(k, 0.0) for k in labels}
    return max(diffs, key=lambda k: abs(diffs[k]))


# -- the comparison ---------------------------------------------------------------------------


def compare(pair: Pair) -> dict[str, Any]:
    meas, simd = pair.measured, pair.simulated
    trace = read_traces(pair.load_dirs)
    msteps = measured_steps(trace)
    sim_rows = {
        (r["operation"], r["locality"], r["region"]): r
        for r in pair.sim["latency"]
        if r["architecture"] == "hybrid"
    }
    rows = []
    for key in sorted(meas):
        m, s = meas[key], simd.get(key)
        n = sum(m.values())
        row: dict[str, Any] = {
            "operation": key[0], "locality": key[1], "region": key[2], "n_measured": n,
        }  # fmt: skip
        if s is None:
            row.update(verdict="no simulated requests", judged=False)
            rows.append(row)
            continue
        row["n_simulated"] = sum(s.values())
        srow = sim_rows.get(key, {})
        for q in PERCENTILES:
            mv, sv = percentile(m, q), percentile(s, q)
            row[f"p{q}_measured_ms"] = round(mv, 3)
            row[f"p{q}_simulated_ms"] = round(sv, 3)
            row[f"p{q}_error"] = round(sv / mv - 1, 4)
        if len(pair.measured_each) > 1:
            row.update(run_spread(m, [run[key] for run in pair.measured_each if key in run]))
        row["p50_simulated_ci_ms"] = srow.get("p50_ci_ms")
        row["p99_simulated_ci_ms"] = srow.get("p99_ci_ms")
        d, p = ks_two_sample(m, s)
        row["ks_d"], row["ks_p"] = round(d, 4), p
        judged = n >= MIN_SAMPLES
        ok = abs(row["p50_error"]) <= TOLERANCE and abs(row["p90_error"]) <= TOLERANCE
        row["judged"] = judged
        row["within_tolerance"] = ok
        row["verdict"] = (
            ("pass" if ok else "off") if judged else f"not judged (< {MIN_SAMPLES:,} measured)"
        )
        mine, theirs = _sim_steps(srow), msteps.get(key, {})
        if theirs and mine:
            worst = _widest_gap(mine, theirs)
            row["step_gap"] = {
                "step": worst,
                "simulated_mean_ms": round(mine.get(worst, 0.0), 3),
                "measured_mean_ms": round(theirs.get(worst, 0.0), 3),
            }
            tail_mine = _sim_steps(srow, "steps_tail_mean_ms")
            if tail_mine and theirs.get(TAIL):
                tail = _widest_gap(tail_mine, theirs[TAIL])
                row["tail_step_gap"] = {
                    "step": tail,
                    "simulated_mean_ms": round(tail_mine.get(tail, 0.0), 3),
                    "measured_mean_ms": round(theirs[TAIL].get(tail, 0.0), 3),
                }
            if worst == "app.untraced":
                row["step_gap"]["measured_outside_server_ms"] = round(theirs[OUTSIDE], 3)
                row["step_gap"]["measured_sender_late_ms"] = round(theirs[LATE], 3)
        if SPLIT in theirs:
            row["measured_split_ms"] = theirs[SPLIT]
        rows.append(row)
    judged = [r for r in rows if r.get("judged")]
    speed = furthest_speed(
        [machine_speed(pair.sim.get("calibration") or {}, load) for load in pair.loads]
    )
    waits = core_waits(pair.load, pair.sim)
    moves = core_moves(pair.loads, pair.sim)
    events = core_events(pair.loads, pair.sim)
    wake_preempts = core_wake_preempts(pair.loads, pair.sim)
    paces = machine_paces(pair)
    spells = {
        "measured": measured_spells(trace),
        "simulated": (pair.sim.get("slow_spells") or {}).get("hybrid"),
    }
    spreads = [r["run_spread"] for r in judged if "run_spread" in r]
    return {
        "kind": "compare",
        "simulation": pair.sim["run_id"],
        "load_run": pair.load["run_id"],
        # Every load run pooled, newest first; the trace's detail (steps, spells, waits,
        # the machine's speed) is the newest run's.
        "load_runs": [load["run_id"] for load in pair.loads],
        "run_spread": max(spreads) if spreads else None,
        "runs_repeat": all(x <= TOLERANCE for x in spreads) if spreads else None,
        "scenario": scenario_of_sim(pair.sim),
        "load_target_reached": (
            None
            if any(load.get("target_reached") is None for load in pair.loads)
            else all(load["target_reached"] for load in pair.loads)
        ),
        "tolerance": TOLERANCE,
        "min_samples": MIN_SAMPLES,
        "cells_judged": len(judged),
        "cells_within": sum(1 for r in judged if r["within_tolerance"]),
        "goal_met": bool(judged) and all(r["within_tolerance"] for r in judged),
        "cpu_per_request": speed,
        "core_waits": waits,
        "core_moves": moves,
        "core_events": events,
        "core_wake_preempts": wake_preempts,
        # The steps the server runs on its worker threads (the password hash).
        "threaded_steps": sorted((pair.sim.get("calibration") or {}).get("threaded_steps") or {}),
        "slow_spells": spells,
        "machine_pace": paces,
        # The machine's pace the simulation replayed (make simulate PACE=), or None.
        "simulation_pace": pair.sim.get("pace"),
        "retries": {"measured": measured_retries(trace), "simulated": simulated_retries(pair.sim)},
        "traced_runs": trace["runs"] if trace else 0,
        "rows": rows,
    }


def run_spread(pooled: dict[int, int], runs: list[dict[int, int]]) -> dict[str, Any]:
    """How far each load run's own p50 and p90 lie from the pooled ones: the measurement's
    repeatability, against which the model's error has to be read."""
    out: dict[str, Any] = {"runs_n": [sum(b.values()) for b in runs]}
    spread = 0.0
    for q in (50, 90):
        whole = percentile(pooled, q)
        each = [percentile(b, q) for b in runs]
        out[f"runs_p{q}_ms"] = [round(v, 3) for v in each]
        spread = max(spread, *(abs(v / whole - 1) for v in each))
    out["run_spread"] = round(spread, 4)
    return out


# The simulator's thread groups (sim.cores) that the measured waits belong to, and the
# load run's count of their moves to another core's run queue.
CORE_GROUP_OF = {
    "servers": "app/*/loop",
    "load_generator": "client/loop",
    "hashes": "app/*/edge.verify_password",
}
MIGRATIONS_OF = {"servers": "server_loop_migrations", "load_generator": "loadgen_migrations"}


def core_waits(load: dict[str, Any], sim: dict[str, Any] | None = None) -> dict[str, Any]:
    """How long the run's threads were runnable but waiting for a core (Linux's schedstat):
    the servers' event loops, the load generator's sending thread and the password hash's
    worker threads, per request offered
    and per ms of the CPU they used; beside it, per ms of CPU, the same in the calibration
    run the fitted times come from (that wait is inside them), and what the simulation's
    shared cores added. None where the run did not record it."""
    offered = offered_requests(load)
    fitted_run = (sim or {}).get("calibration") or {}
    fitted = next(
        (p for p in fitted_run.get("speed") or [] if p.get("run_id") == fitted_run.get("run_id")),
        {},
    )
    modelled = ((sim or {}).get("core_waits") or {}).get("hybrid") or {}
    out: dict[str, Any] = {}
    for part, wait_key, cpu_key in RUNQUEUE_WAITS:
        wait, cpu = load.get(wait_key), load.get(cpu_key)
        group = modelled.get(CORE_GROUP_OF[part]) or {}
        moved = load.get(MIGRATIONS_OF.get(part, ""))
        out[part] = (
            {
                "ms_per_request": round(1000.0 * wait / offered, 4),
                "per_cpu_ms": round(wait / cpu, 3),
                "calibration_per_cpu_ms": fitted.get(f"{part}_runqueue_wait_per_cpu_ms"),
                "simulated_per_cpu_ms": group.get("wait_per_cpu_ms"),
                # Moves to another core's run queue per second of the threads' CPU.
                "migrations_per_cpu_s": round(moved / cpu, 1) if moved is not None else None,
                "simulated_migrations_per_cpu_s": group.get("migrations_per_cpu_s"),
            }
            if wait is not None and cpu and offered
            else None
        )
    return out


MOVE_CHOICES = {
    # key in the sim's core_choices: (key in the kernel's trace, yes, no, what it is)
    "busy_wake": (
        "busy_wake",
        "moved",
        "stayed",
        "of the wake-ups with the thread's core busy and another idle, sent to the idle one",
    ),
    "idle_pull": (
        "idle_pull",
        "pulled",
        "left_idle",
        "of a core's going idle while a thread not cache-hot waited on another, pulling it",
    ),
}


def core_moves(loads: list[dict[str, Any]], sim: dict[str, Any]) -> dict[str, Any]:
    """The kernel's two choices of moves between cores, pooled over the load runs that
    traced the scheduler (loadgen.schedtrace), beside the per-core model's own (and the
    share the profile gave it, if measured): per choice {"kernel", "model", "profile"}
    shares, None where a side lacks it."""
    modelled = (sim.get("core_choices") or {}).get("hybrid") or {}
    sched = ((sim.get("calibration") or {}).get("scheduler")) or {}
    out: dict[str, Any] = {}
    for key, (trace_key, yes, no, _) in MOVE_CHOICES.items():
        counts = [
            (k[trace_key][yes], k[trace_key][no])
            for load in loads
            if (k := load.get("kernel_scheduler")) and trace_key in k
        ]
        n = sum(a + b for a, b in counts)
        out[key] = {
            "kernel": round(sum(a for a, _ in counts) / n, 4) if n else None,
            "model": (modelled.get(key) or {}).get("share"),
            "profile": sched.get(f"{key}_share"),
        }
    return out


# The kernel trace's thread class of each part (loadgen.schedtrace.stack_threads); the
# servers' other threads are mostly the password hash's workers.
TRACE_CLASS_OF = {"servers": "loop", "load_generator": "locust", "hashes": "server-thread"}
EVENT_KEYS = ("wakeups_per_cpu_s", "preemptions_per_cpu_s", "preempted_wait_share")
EVENT_PARTS = {
    "servers": "the servers' loops",
    "load_generator": "the load generator's thread",
    "hashes": "the servers' other threads (the hash's workers)",
}
# Who takes a core at a preemption, named alike on both sides: the kernel trace's thread
# classes (`store` in runs traced before Redis and PostgreSQL were told apart) and the
# model's thread groups, whose hand-offs stand for the store calls (and the way in and out).
TAKER_OF_GROUP = {
    "app/*/loop": "loops",
    "client/loop": "load_generator",
    "app/*/edge.verify_password": "hashes",
    HAND_OFFS: "stores",
    "other": "rest",
}
# (a class with no thread group of the model, the pace probe and the others, is the rest)
TAKER_OF_CLASS = {c: TAKER_OF_GROUP[g] for c, g in GROUP_OF_TRACE_CLASS.items()}
TAKERS = {
    "stores": "the stores",
    "load_generator": "the load generator",
    "loops": "the loops",
    "hashes": "the hash's workers",
    "rest": "the rest of the machine",
}


def _takers(shares: dict[str, float], names: dict[str, str]) -> dict[str, float]:
    """Shares of preemptions by who took the core, summed under the common names."""
    out: dict[str, float] = {}
    for who, share in shares.items():
        key = names.get(who, "rest")
        out[key] = out.get(key, 0.0) + share
    return out


def core_events(loads: list[dict[str, Any]], sim: dict[str, Any]) -> dict[str, Any]:
    """Per part, the wake-ups and preemptions per s of CPU and the share of the wait for a
    core that followed a preemption: the kernel's (the mean over the load runs that traced
    the scheduler) beside the model's; None where a side lacks it."""
    modelled = (sim.get("core_waits") or {}).get("hybrid") or {}
    out: dict[str, Any] = {}
    for part, trace_class in TRACE_CLASS_OF.items():
        seen = [
            t
            for load in loads
            if (t := ((load.get("kernel_scheduler") or {}).get("threads") or {}).get(trace_class))
            and t.get("cpu_s_per_s")
        ]
        group = modelled.get(CORE_GROUP_OF[part]) or {}
        out[part] = {
            "kernel": {
                "wakeups_per_cpu_s": _mean([t["wakeups_per_s"] / t["cpu_s_per_s"] for t in seen]),
                "preemptions_per_cpu_s": _mean(
                    [t["preemptions_per_s"] / t["cpu_s_per_s"] for t in seen]
                    if all("preemptions_per_s" in t for t in seen)
                    else []
                ),
                "preempted_wait_share": _mean([t.get("preempted_wait_share") for t in seen]),
            },
            "model": {k: group.get(k) for k in EVENT_KEYS},
            # Who took the core at its preemptions (shares; the kernel's the mean of its runs').
            "preempted_by": {
                "kernel": {
                    who: share
                    for who in TAKERS
                    if (
                        share := _mean(
                            [
                                _takers(t["preempted_by"], TAKER_OF_CLASS).get(who, 0.0)
                                for t in seen
                                if t.get("preempted_by")
                            ]
                        )
                    )
                    is not None
                },
                "model": {
                    who: round(share, 3)
                    for who, share in _takers(
                        group.get("preempted_by") or {}, TAKER_OF_GROUP
                    ).items()
                },
            },
        }
    return out


def _mean(values: list[float | None]) -> float | None:
    """The mean of the known values, to 3 places; None if none is known."""
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 3) if known else None


def core_events_note(result: dict[str, Any]) -> str | None:
    """A sentence setting the kernel's wake-ups and preemptions beside the model's."""
    parts = []
    for part, said in EVENT_PARTS.items():
        e = (result.get("core_events") or {}).get(part) or {}
        k, m = e.get("kernel") or {}, e.get("model") or {}
        if any(k.get(x) is None or m.get(x) is None for x in EVENT_KEYS):
            continue
        by = e.get("preempted_by") or {}
        taken = sorted((by.get("kernel") or {}).items(), key=lambda kv: -kv[1])[:3]
        takers = ", ".join(
            f"{TAKERS[who]} {share:.0%} ({(by.get('model') or {}).get(who, 0.0):.0%})"
            for who, share in taken
        )
        parts.append(
            f"{said} woke {k['wakeups_per_cpu_s']:.0f} and were preempted "
            f"{k['preemptions_per_cpu_s']:.0f} times per s of CPU, "
            f"{k['preempted_wait_share']:.0%} of their wait after a preemption (the model "
            f"{m['wakeups_per_cpu_s']:.0f}, {m['preemptions_per_cpu_s']:.0f}, "
            f"{m['preempted_wait_share']:.0%})"
            + (f", the core taken by {takers} (the model's in brackets)" if takers else "")
        )
    return "in the kernel's trace " + "; ".join(parts) if parts else None


def core_wake_preempts(loads: list[dict[str, Any]], sim: dict[str, Any]) -> dict[str, Any]:
    """Per pair of thread groups "<woken>><running>", of the wake-ups onto a core running
    another thread, the share that preempted it at once: the kernel's (pooled over the
    load runs that traced it; pairs with MIN_WAKES_ONTO_BUSY or more wake-ups), with how
    many it saw, beside the model's (None where a side lacks the pair)."""
    kernel = wake_preempt_counts(
        [(load.get("kernel_scheduler") or {}).get("wake_preempt") or {} for load in loads]
    )
    model = (sim.get("core_wake_preempts") or {}).get("hybrid") or {}
    return {
        pair: {
            "kernel": round(yes / (yes + no), 4),
            "kernel_wakes": yes + no,
            "model": (model.get(pair) or {}).get("share"),
        }
        for pair, (yes, no) in sorted(kernel.items(), key=lambda kv: -sum(kv[1]))
        if yes + no >= MIN_WAKES_ONTO_BUSY
    }


def wake_preempt_note(result: dict[str, Any], pairs: int = 4) -> str | None:
    """A sentence on the commonest pairs' wake-up preemptions, the kernel's beside the
    model's."""
    seen = list((result.get("core_wake_preempts") or {}).items())[:pairs]
    if not seen:
        return None

    def said(group: str) -> str:
        return TAKERS[TAKER_OF_GROUP.get(group, "rest")]

    parts = []
    for pair, p in seen:
        woken, _, running = pair.partition(">")
        model = "none" if p["model"] is None else f"{p['model']:.0%}"
        parts.append(
            f"{said(woken)} onto {said(running)} the kernel {p['kernel']:.0%} "
            f"(of {p['kernel_wakes']:,}), the model {model}"
        )
    return (
        "of the wake-ups onto a core running another thread, the share that preempted it "
        "at once: " + "; ".join(parts)
    )


def core_moves_note(result: dict[str, Any]) -> str | None:
    """A sentence setting the kernel's measured choices of moves beside the model's."""
    moves = result.get("core_moves") or {}
    parts = []
    for key, (*_, what) in MOVE_CHOICES.items():
        m = moves.get(key) or {}
        if m.get("kernel") is None or m.get("model") is None:
            continue
        given = (
            f", the profile's measured share {m['profile']:.0%}"
            if m.get("profile") is not None
            else ", from the kernel's rules (no measured share in the profile)"
        )
        parts.append(f"{what}: the kernel {m['kernel']:.0%}, the model {m['model']:.0%}{given}")
    return "moves between cores, " + "; ".join(parts) if parts else None


def core_wait_note(result: dict[str, Any]) -> str | None:
    """A sentence when the servers' loops waited for a core more than a tenth of the CPU
    they used, with what the calibration run held of it and what the model added."""
    waits = result.get("core_waits") or {}
    servers = waits.get("servers")
    if not servers or servers["per_cpu_ms"] < 0.1:
        return None

    def said(name: str, w: dict[str, Any]) -> str:
        text = (
            f"{name} {w['per_cpu_ms']:.2f} ms per ms of CPU "
            f"({w['ms_per_request']:.3f} ms per request"
        )
        if w.get("calibration_per_cpu_ms") is not None:
            text += (
                f"; {w['calibration_per_cpu_ms']:.2f} in the calibration run, inside the "
                "fitted times"
            )
        if w.get("simulated_per_cpu_ms") is not None:
            text += f"; the model's cores {w['simulated_per_cpu_ms']:.2f}"
        if w.get("migrations_per_cpu_s") is not None:
            text += f"; moved to another core {w['migrations_per_cpu_s']:.0f} times per s of CPU"
            if w.get("simulated_migrations_per_cpu_s") is not None:
                text += f", the model {w['simulated_migrations_per_cpu_s']:.0f}"
        return text + ")"

    client, hashes = waits.get("load_generator"), waits.get("hashes")
    parts = [said("the servers' event loops", servers)]
    if client:
        parts.append(said("the load generator's thread", client))
    if hashes:
        parts.append(said("the password hash's worker threads", hashes))
    return "waiting for a core: " + ", ".join(parts) + ". " + _wait_verdict(servers)


def _wait_verdict(servers: dict[str, Any]) -> str:
    """How the model's added wait for a core compares with the measured rise over the
    calibration run (whose wait the fitted times hold already)."""
    model, base = servers.get("simulated_per_cpu_ms"), servers.get("calibration_per_cpu_ms")
    if model is None:
        return (
            "The processes share the machine's cores, and this simulation had no model of "
            "them (calibrate again: the profile lacks the machine's cores)"
        )
    if base is None:
        return "The model shares the machine's cores among every thread it knows of"
    rise = servers["per_cpu_ms"] - base
    said = (
        f"the model's cores added {model:.2f} ms per ms of CPU where the loops' wait "
        f"rose {rise:.2f}"
    )
    if model < 0.8 * rise:
        return (
            f"Short of the measurement: {said}, so some waiting for a core is not in the model "
            "(the measured wait comes in bursts that slow every process at once)"
        )
    if model > 1.25 * rise:
        return f"Beyond the measurement: {said}, so the model's cores are busier than the machine's"
    return f"In the mean the model follows the measurement: {said}"


def machine_speed(calibration: dict[str, Any], load: dict[str, Any]) -> dict[str, Any]:
    """CPU per request offered, the load run's against what the profile expects at its
    load (the calibration's speed points, linear in QPS between them), for the servers'
    event loops and the load generator: how much faster or slower the machine ran its code
    than the model assumed. A ratio far from 1 is a change the model cannot know of."""
    points = sorted(
        (SpeedPoint.model_validate(p) for p in calibration.get("speed") or []),
        key=lambda p: p.qps,
    )
    qps = float(load.get("target_qps") or 0.0)
    capacity = calibration.get("capacity_qps")
    out: dict[str, Any] = {
        "calibration_run": calibration.get("run_id"),
        "speed_points_qps": [p.qps for p in points],
        "load_run": load.get("run_id"),
        # How busy the load keeps the machine, by the calibration's capacity.
        "busy_share": round(qps / capacity, 3) if capacity and qps else None,
    }
    at_load = expected_cpu_ms(points, qps)
    for part, now in run_cpu_per_request(load).items():
        expected = round(at_load[part], 4) if at_load else None
        out[part] = {
            "expected_ms": expected,
            "this_run_ms": now,
            "ratio": round(now / expected, 3) if now and expected else None,
        }
    return out


SPEED_WORDS = {"servers": "the servers' event loops", "load_generator": "the load generator"}


def _off(speed: dict[str, Any]) -> float:
    """How far a run's CPU per request lay from the expected, its furthest part."""
    ratios = [(speed.get(part) or {}).get("ratio") for part in SPEED_WORDS]
    return max((abs(r - 1) for r in ratios if r), default=0.0)


def furthest_speed(speeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Of the pooled runs' `machine_speed`, the one furthest from what the model expected,
    with every run's ratios beside it (`runs`): one slow run among three moves the pool."""
    worst = max(speeds, key=_off)
    if len(speeds) > 1:
        worst = {
            **worst,
            "runs": [
                {
                    "load_run": s["load_run"],
                    **{p: (s.get(p) or {}).get("ratio") for p in SPEED_WORDS},
                }
                for s in speeds
            ],
        }
    return worst


def queueing_factor(ratio: float, busy: float | None) -> float:
    """About how much a queue's mean latency moves when its work takes `ratio` times as
    long at a load that kept the server `busy` (a share of its capacity): the work itself
    x`ratio`, the queueing 1/(1 - busy) becomes 1/(1 - ratio busy) (one server, M/M/1);
    infinite at or beyond saturation. Without the share, `ratio`."""
    if busy is None:
        return ratio
    if ratio * busy >= 1:
        return float("inf")
    return ratio * (1 - busy) / (1 - ratio * busy)


def speed_note(result: dict[str, Any]) -> str | None:
    """A sentence on the machine's speed when this run's CPU per request differs from what
    the profile expects at its load by enough to move latency by more than the tolerance
    (`queueing_factor`: at 70 % of capacity 8 % more CPU is about a third more latency),
    else None."""
    speed = result.get("cpu_per_request") or {}
    busy = speed.get("busy_share")
    parts = [(part, speed[part]) for part in SPEED_WORDS if (speed.get(part) or {}).get("ratio")]
    moved = {part: queueing_factor(v["ratio"], busy) for part, v in parts}
    if not any(abs(f - 1) > TOLERANCE for f in moved.values()):
        return None
    figures = "; ".join(
        f"{SPEED_WORDS[part]} {v['this_run_ms']:.3f} ms against {v['expected_ms']:.3f} "
        f"(x{v['ratio']:.2f})"
        for part, v in parts
    )
    at = " and ".join(f"{q:g}" for q in speed["speed_points_qps"])
    runs = speed.get("runs") or []
    which = (
        f"in load run {speed['load_run']}, the furthest off of the {len(runs)} pooled (the "
        "servers' loops "
        + ", ".join(f"x{r['servers']:.2f}" for r in runs if r.get("servers"))
        + "),"
        if len(runs) > 1
        else "in this run"
    )
    worst = max(moved.values(), key=lambda f: abs(f - 1))
    effect = (
        f" At this load the machine is {busy:.0%} busy by the calibration's capacity, where "
        + (
            "that much more CPU saturates it"
            if worst == float("inf")
            else f"a queue's mean latency moves about x{worst:.2f} with it (M/M/1)"
        )
        + "."
        if busy is not None
        else ""
    )
    return (
        f"CPU per request {which} against what calibration run "
        f"{speed['calibration_run']} led the model to expect at this load (measured at {at} "
        f"QPS): {figures}.{effect} The machine ran its code at another speed than the model "
        "assumed, which it cannot know: on this machine CPU per request falls as the load "
        "rises (a busy process keeps its caches warm and serves several ready requests per "
        "wake-up) and drifts between runs"
    )


UNSTEADY = 0.02  # a run's share of slowed pieces this far beyond the calibration run's


def machine_paces(pair: Pair) -> dict[str, Any]:
    """The machine's pace (loadgen.pace) in every pooled load run, newest first, and in
    the calibration run nearest their load (the busier the machine, the warmer its cores,
    so only a run of about the same load says what is usual), where they recorded it."""
    cal = pair.sim.get("calibration") or {}
    qps = float(pair.load.get("target_qps") or 0.0)
    points = [(p["run_id"], float(p["qps"])) for p in cal.get("speed") or []]
    cal_id = min(points, key=lambda p: abs(p[1] - qps))[0] if points else cal.get("run_id")
    cal_summary = pair.load_dir.parent / str(cal_id) / "summary.json"
    calibration = None
    if cal_id and cal_summary.is_file():
        calibration = json.loads(cal_summary.read_text()).get("machine_pace")
    return {
        "runs": [
            {"load_run": load.get("run_id"), **load["machine_pace"]}
            for load in pair.loads
            if load.get("machine_pace")
        ],
        "calibration_run": cal_id,
        "calibration": calibration,
    }


def pace_note(result: dict[str, Any]) -> str | None:
    """A sentence on the machine's pace when a pooled run's cores wavered more than those
    of the calibration run nearest its load (more of the probe's pieces slowed by half:
    UNSTEADY beyond it, or beyond 5 % where that run has no figure), else None."""
    paces = result.get("machine_pace") or {}
    runs, cal = paces.get("runs") or [], paces.get("calibration")
    base = cal["slow_share"] if cal else 0.05 - UNSTEADY
    if not any(r["slow_share"] > base + UNSTEADY for r in runs):
        return None
    said = ", ".join(f"{r['slow_share']:.1%} (p90 x{r['p90_over_median']:.2f})" for r in runs)
    against = (
        f"; in calibration run {paces['calibration_run']} {cal['slow_share']:.1%} (p90 "
        f"x{cal['p90_over_median']:.2f})"
        if cal
        else ""
    )
    paced = result.get("simulation_pace") or {}
    suggest = (
        "; make simulate PACE=<the load runs> replays theirs, to tell the model's error from "
        "the machine's"
    )
    if paced.get("source") == "calibration":
        model = f"The model's cores replayed calibration run {paced['runs'][0]}'s pace{suggest}"
    elif paced:
        model = "The model's cores replayed theirs (PACE=)"
    else:
        model = f"The model's cores kept one pace{suggest}"
    return (
        "the machine's cores kept a less steady pace than in the calibration run nearest "
        "this load: a fixed piece of Python timed every 10 ms on its own CPU clock "
        f"(loadgen.pace) took over 1.5x its median time in {said} of the pieces in the load "
        f"runs pooled{against}. {model}"
    )


SPLIT_WORDS = {
    "late": "with the sender waking late",
    "before_socket": "in the load generator's thread before the request had a socket",
    "to_server": "from the socket to the server's clock (loopback, the server's event loop, "
    "HTTP parsing)",
    "server": "inside the server",
    "after_server": "from the server's answer until the sender had read it",
}


def spell_note(result: dict[str, Any]) -> str | None:
    """Slow spells, measured against simulated: where the measured run had more spells in
    which every request slowed together, the model lacks a cause of stalls; the logins'
    share in them says whether the password hash comes with them."""
    spells = result.get("slow_spells") or {}
    meas, sim = spells.get("measured"), spells.get("simulated")
    if not meas or meas.get("slow_share") is None:
        return None

    def said(s: dict[str, Any]) -> str:
        text = f"{s['slow_share']:.1%} of spells slow"
        if s.get("marked_share") and s.get("marked_share_in_slow") is not None:
            text += (
                f", logins {s['marked_share_in_slow'] / s['marked_share']:.1f}x as common in "
                "them as overall"
            )
        return text

    text = (
        f"slow spells ({SPELL} requests in a row whose median is over "
        f"{SLOW_SPELL_FACTOR:g}x the run's): measured {said(meas)}"
    )
    if sim and sim.get("slow_share") is not None:
        text += f"; simulated {said(sim)}"
        if meas["slow_share"] > 1.5 * sim["slow_share"]:
            text += (
                "; the measured run stalled (every request slowing together) more often "
                "than the model does: a cause of stalls is missing from the model"
            )
    return text


def repeat_note(result: dict[str, Any]) -> str | None:
    """With several load runs pooled: whether they agree with each other to the tolerance,
    and the judged cell where they agree least."""
    runs = result.get("load_runs") or []
    rows = [r for r in result["rows"] if r.get("judged") and "run_spread" in r]
    if len(runs) < 2 or not rows:
        return None
    worst = max(rows, key=lambda r: r["run_spread"])
    tol = result["tolerance"]
    cell = f"{worst['operation']} {worst['locality']} ({worst['region']})"
    per_run = "; ".join(
        f"p{q} "
        + ", ".join(f"{v:.2f}" for v in worst[f"runs_p{q}_ms"])
        + f" ms against {worst[f'p{q}_measured_ms']:.2f} pooled"
        for q in (50, 90)
    )
    if result.get("runs_repeat"):
        return (
            f"the {len(runs)} load runs pooled here repeat within ±{tol:.0%}: the furthest a "
            f"run's p50 or p90 lies from the pooled one is {worst['run_spread']:.0%}, at "
            f"{cell} ({per_run})"
        )
    return (
        f"the {len(runs)} load runs pooled here do not repeat within ±{tol:.0%}: at {cell} a "
        f"run's own percentile lies up to {worst['run_spread']:.0%} from the pooled one "
        f"({per_run}). The machine does not measure the same twice to this tolerance, so "
        "the verdict is against the pool, and no single run could judge the model to it"
    )


def explain(result: dict[str, Any]) -> list[str]:
    """One sentence per judged cell that is off: by how much, and which step differs;
    first, whether the pooled load runs repeat, then, when any cell is off, the machine's
    speed against the profile's expectation, its processes' wait for a core and the slow
    spells on both sides, where those are worth saying."""
    out = [n for n in (repeat_note(result),) if n]
    if not result.get("goal_met"):
        notes = (
            speed_note(result),
            pace_note(result),
            core_wait_note(result),
            core_moves_note(result),
            core_events_note(result),
            wake_preempt_note(result),
            spell_note(result),
            retry_note(result),
        )
        out += [n for n in notes if n]
    for r in result["rows"]:
        if not r.get("judged") or r["within_tolerance"]:
            continue
        text = (
            f"{r['operation']} {r['locality']} ({r['region']}): simulated p50 "
            f"{r['p50_simulated_ms']:.2f} vs measured {r['p50_measured_ms']:.2f} ms "
            f"({r['p50_error']:+.0%}), p90 {r['p90_simulated_ms']:.2f} vs "
            f"{r['p90_measured_ms']:.2f} ms ({r['p90_error']:+.0%})"
        )
        gap = r.get("step_gap")
        if gap:
            text += (
                f"; the step that differs most is {gap['step']}: {gap['simulated_mean_ms']:.2f} "
                f"ms simulated vs {gap['measured_mean_ms']:.2f} ms measured per request"
            )
            if "measured_outside_server_ms" in gap:
                text += (
                    f", {gap['measured_outside_server_ms']:.2f} ms of it outside the server's "
                    "own clock (HTTP parsing before the middleware, loopback, the load "
                    "generator's process, each waiting for a core), "
                    f"{gap.get('measured_sender_late_ms', 0.0):.2f} ms of that in the sender "
                    "waking late for its send"
                )
        text += _tail_gap_text(r, "; in the slowest tenth, where the p90 is off, it is ")
        split = r.get("measured_split_ms")
        if split:
            parts = ", ".join(
                f"{split[p]['slowest_tenth']:.2f} {SPLIT_WORDS[p]}" for p in SPLIT_PARTS
            )
            text += f". The slowest tenth of measured requests spent on average (ms): {parts}"
        out.append(text)
    return out


def table(result: dict[str, Any]) -> str:
    """The console table; with several load runs pooled, a column of how far the runs
    lie from the pool (`runs ±`)."""
    pooled = len(result.get("load_runs") or []) > 1
    head = (
        f"{'operation':<20}{'locality':<14}{'region':<9}{'n':>7}"
        f"{'p50 meas':>10}{'sim':>8}{'err':>7}{'p90 meas':>10}{'sim':>8}{'err':>7}"
        f"{'p99 meas':>10}{'sim':>8}{'KS D':>7}"
        + (f"{'runs ±':>8}" if pooled else "")
        + "  verdict"
    )
    lines = [head]
    for r in result["rows"]:
        if "p50_error" not in r:
            continue
        spread = f"{r['run_spread']:>8.0%}" if "run_spread" in r else " " * 8
        lines.append(
            f"{r['operation']:<20}{r['locality']:<14}{r['region']:<9}{r['n_measured']:>7}"
            f"{r['p50_measured_ms']:>10.2f}{r['p50_simulated_ms']:>8.2f}{r['p50_error']:>+7.0%}"
            f"{r['p90_measured_ms']:>10.2f}{r['p90_simulated_ms']:>8.2f}{r['p90_error']:>+7.0%}"
            f"{r['p99_measured_ms']:>10.2f}{r['p99_simulated_ms']:>8.2f}{r['ks_d']:>7.3f}"
            f"{spread if pooled else ''}  {r['verdict']}"
        )
    return "\n".join(lines)


def paced_said(paced: dict[str, Any] | None) -> str:
    """The pace the simulation's cores followed, for compare's first line."""
    if not paced:
        return "; its cores kept one steady pace (PACE=none, or a profile without a pace record)"
    if paced.get("source") == "calibration":
        return f"; its cores followed the pace calibration run {paced['runs'][0]} recorded"
    return (
        f"; its cores followed the pace recorded in {', '.join(paced['runs'])} (PACE=, "
        "a diagnostic: the model told how steady the machine was)"
    )


def runs_said(result: dict[str, Any]) -> str:
    """`load run X`, or `N load runs pooled (X, Y, ...)`, newest first."""
    runs = result.get("load_runs") or [result["load_run"]]
    if len(runs) == 1:
        return f"load run {runs[0]}"
    return f"{len(runs)} load runs pooled ({', '.join(runs)})"


def run_comparison(
    results: Path, sim_run: str = "", load_run: str = "", brief: bool = False
) -> dict[str, Any] | None:
    """Compare a simulation with load runs (as `find_pair` chooses them), write
    `compare.json` under `results` and print the comparison (`brief`: its first line, the
    count of cells within the tolerance and the cells that are off); the result, or None
    after printing a clear error."""
    from scenarios.results import new_run_dir, write_json

    try:
        pair = find_pair(results, sim_run, load_run)
        result = compare(pair)
    except (CompareError, OSError, KeyError, ValueError) as exc:
        print(f"authscale compare: error: {exc}", file=sys.stderr)
        return None
    run_dir = new_run_dir(results, "compare", f"{pair.sim['run_id']}")
    write_json(run_dir / "compare.json", result)
    paced = result.get("simulation_pace")
    print(
        f"authscale compare: simulation {result['simulation']} against "
        f"{runs_said(result)} ({result['scenario']['qps']:g} QPS on "
        f"{','.join(result['scenario']['regions'])})" + paced_said(paced)
    )
    if not brief:
        print(table(result))
    print(
        f"\n{result['cells_within']} of {result['cells_judged']} cells with >= "
        f"{MIN_SAMPLES:,} measured requests have simulated p50 and p90 within "
        f"±{TOLERANCE:.0%}: goal {'met' if result['goal_met'] else 'NOT met'}"
    )
    if brief:
        off = cells_off(result)
        if off:
            print(f"  off: {'; '.join(off)}")
    else:
        for line in explain(result):
            print(f"  - {line}")
    if result["load_target_reached"] is False:
        print("  note: a load run did not offer its target rate (see its summary)")
    print(f"results: {run_dir / 'compare.json'}")
    return result


def _off_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The judged cells outside the tolerance."""
    return [r for r in result["rows"] if r.get("judged") and not r["within_tolerance"]]


def cells_off(result: dict[str, Any]) -> list[str]:
    """Each judged cell outside the tolerance, as `operation locality region p50 +x % p90
    +y %`."""
    return [
        f"{r['operation']} {r['locality']} {r['region']} p50 {r['p50_error']:+.0%} "
        f"p90 {r['p90_error']:+.0%}"
        for r in _off_rows(result)
    ]


def _cells(result: dict[str, Any]) -> str:
    return f"{result['cells_within']} of {result['cells_judged']} cells"


def _speed_said(result: dict[str, Any]) -> str:
    """How much CPU per request the runs' event loops used against the calibration's
    expectation at their load: `x0.89-0.99` (several runs) or `x0.93`; '' when unknown."""
    speed = result.get("cpu_per_request") or {}
    ratios = [r["servers"] for r in speed.get("runs") or [] if r.get("servers")]
    if not ratios and (speed.get("servers") or {}).get("ratio"):
        ratios = [speed["servers"]["ratio"]]
    if not ratios:
        return ""
    lo, hi = min(ratios), max(ratios)
    return f"x{lo:.2f}" if round(lo, 2) == round(hi, 2) else f"x{lo:.2f}-{hi:.2f}"


def _off_with_step(result: dict[str, Any], keys: set[tuple[str, str, str]]) -> str:
    """The cells `keys` as the comparison judged them, one entry per operation and
    locality (its cell over all regions, else its first region's; the other regions named
    after it), each with the step the model and the trace differ most in."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in result["rows"]:
        if (r["operation"], r["locality"], r["region"]) in keys:
            groups.setdefault((r["operation"], r["locality"]), []).append(r)
    said = []
    for (operation, locality), rows in groups.items():
        head = next((r for r in rows if r["region"] == "all"), rows[0])
        text = (
            f"{operation} {locality} {head['region']} (p50 {head['p50_error']:+.0%}, "
            f"p90 {head['p90_error']:+.0%}"
        )
        gap = head.get("step_gap")
        if gap:
            text += (
                f"; most apart in {gap['step']}: {gap['simulated_mean_ms']:.2f} ms simulated, "
                f"{gap['measured_mean_ms']:.2f} measured"
            ) + _threads_wait(result, gap["step"])
        text += _tail_gap_text(head, "; its slowest tenth most apart in ")
        others = [r["region"] for r in rows if r is not head]
        said.append(text + (f"; also off in {', '.join(others)})" if others else ")"))
    return "; ".join(said)


def _tail_gap_text(row: dict[str, Any], lead: str) -> str:
    """Where a row's p90 is off: the step its slowest tenth differs most in, model against
    trace ('' where the p90 is within tolerance or either side has no steps)."""
    gap = row.get("tail_step_gap")
    if not gap or abs(row["p90_error"]) <= TOLERANCE:
        return ""
    return (
        f"{lead}{gap['step']}: {gap['simulated_mean_ms']:.2f} ms simulated, "
        f"{gap['measured_mean_ms']:.2f} measured per request"
    )


def _threads_wait(result: dict[str, Any], step: str) -> str:
    """For a step the server runs on its worker threads (the password hash), how long
    those threads waited for a core per ms of their CPU, measured and in the model: what
    makes such a step's time differ at the same CPU; '' for any other step."""
    threaded = result.get("threaded_steps") or []
    hashes = (result.get("core_waits") or {}).get("hashes") or {}
    measured, modelled = hashes.get("per_cpu_ms"), hashes.get("simulated_per_cpu_ms")
    if step not in threaded or measured is None or modelled is None:
        return ""
    return (
        f"; its worker threads waited {measured:.2f} ms per ms of their CPU for a core, "
        f"the model's {modelled:.2f}"
    )


def _off_keys(result: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(r["operation"], r["locality"], r["region"]) for r in _off_rows(result)}


def twin_verdict(predicted: dict[str, Any], diagnostic: dict[str, Any] | None) -> list[str]:
    """The check's last lines: the prediction's count, the diagnostic's, and which of the
    two the miss is (the machine's drift from the calibration, or the model itself), with
    the cells and steps the model misses even given the runs' speed and pace."""
    tol = f"±{predicted['tolerance']:.0%}"
    lines = [
        f"prediction (from the calibration alone): {_cells(predicted)} within {tol} "
        f"(p50 and p90, cells with >= {predicted['min_samples']:,} measured requests)"
    ]
    if diagnostic is not None:
        lines.append(
            f"diagnostic (given the runs' own CPU per request and pace): {_cells(diagnostic)}"
        )
    speed = _speed_said(predicted)
    speed_part = (
        f"the runs' event loops used {speed} the CPU per request the calibration expects at "
        "this load"
        if speed
        else "the runs' CPU per request is unknown"
    )
    if predicted["goal_met"]:
        own = _off_keys(diagnostic) if diagnostic is not None else set()
        lines.append(
            f"verdict: the twin holds at this load ({speed_part})"
            + (
                f"; given the runs' own speed and pace the model misses {len(own)} cell(s) "
                f"({_off_with_step(diagnostic, own)}), so there the calibration's speed or pace "
                "made up for the model's own error"
                if own and diagnostic is not None
                else ""
            )
        )
        return lines
    if diagnostic is None or not diagnostic["cells_judged"]:
        lines.append(
            "verdict: the twin is off at this load; without the diagnostic the model's own "
            f"error cannot be told from the machine's drift ({speed_part})"
        )
        return lines
    own, off = _off_keys(diagnostic), _off_keys(predicted)
    drift = off - own
    if not own:
        lines.append(
            "verdict: the twin is off at this load because the machine ran at another speed "
            f"or pace than in the calibration ({speed_part}); given the runs' own, the model "
            "holds: make calibrate again just before make twin, or see README, 'How far to "
            "trust it'"
        )
        return lines
    # Cells the prediction met that are off given the runs' own speed and pace: there the
    # calibration's speed or pace happened to make up for the model's own error.
    offset = own - off
    lines.append(
        f"verdict: the model itself is off at this load in {len(own)} cell(s), even given "
        f"the runs' speed and pace: {_off_with_step(diagnostic, own)}"
        + (
            f"; {len(drift)} more cell(s) are off only with the calibration's speed and pace "
            f"({speed_part})"
            if drift
            else ""
        )
        + (
            f"; {len(offset)} of the {len(own)} are within {tol} in the prediction only "
            "because the calibration's speed or pace made up for the model's own error there"
            + ("" if drift else f" ({speed_part})")
            if offset
            else ""
        )
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make compare", description=__doc__)
    p.add_argument("--sim", default="", help="a simulation run folder (default: newest calibrated)")
    p.add_argument(
        "--load",
        default="",
        help="load run folders, comma-separated (default: every run of the same load since "
        "the calibration, else the newest)",
    )
    p.add_argument("--results-dir", default=os.environ.get("AUTHSCALE_RESULTS", "results"))
    args = p.parse_args(argv)
    result = run_comparison(Path(args.results_dir), args.sim, args.load)
    return 0 if result is not None else 2


if __name__ == "__main__":
    sys.exit(main())
