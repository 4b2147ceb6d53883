"""`make calibrate`: fit the `local` latency profile from a traced load run.

`make calibrate` first runs `make loadtest TRACE=1` against the local stack; this module
then reads that run's `trace.json` (every response's Server-Timing record, see
`loadgen.trace`) and fits, for every step of the step lists, two service-time
distributions with scipy: the event loop's CPU time in the step, and the rest of the
step apart from the emulated wide-area wait. The same pair is fitted for each
operation's time outside its steps, and the CPU of the preparation requests; and the load
generator's own CPU per request, before the send, after the answer and after the latency
is taken (its senders share one thread, which the model queues like a loop). Cache hit
rates and step shares are counted from which steps the server performed. The result is
`scenarios/data/profiles/local.toml`, a `network = "emulated"` profile that names the run
it came from; `make simulate PROFILE=local` then models this machine at the run's QPS,
regions and mix.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, stats

from scenarios import DATA_DIR, ScenarioError, load_world
from scenarios.loader import load_model
from scenarios.profiles import Profile
from scenarios.results import (
    TRACE_FORMAT,
    TRACE_FORMATS_READ,
    offered_requests,
    run_cpu_per_request,
)
from scenarios.workload import LOCALITIES, OPERATIONS
from server.security import HASH_THREADS
from server.storage import BACKOFF_S, JITTER_S, MAX_ATTEMPTS
from sim.cli import main as simulate
from sim.cores import GROUP_OF_TRACE_CLASS
from sim.pace import calibration_record, sidecar_path

FLOOR_MS = 0.001  # the header's resolution: a zero is "below 1 µs"
MIN_SAMPLES = 1  # a step never performed: the pooled figures of its component stand in
SHAPE_MIN = 10  # fewer samples than this: their median, as a constant
GOOD_FIT = 0.05  # KS distance a fitted shape must reach; otherwise the quantiles are kept
QUANTILES = 100  # an empirical distribution keeps the 0th, 1st, ..., 100th percentiles


class CalibrationError(Exception):
    """The load run cannot be calibrated from; the message says why and what to do."""


@dataclass(frozen=True)
class Fit:
    """A fitted distribution as a scenario-file inline table, with its goodness of fit."""

    table: dict[str, Any]
    n: int
    ks: float
    mean_ms: float

    def toml(self) -> str:
        return _inline(self.table)


# The busier calibration run's load, as a share of the capacity the light run measured.
BUSY_SHARE = 0.7
# A busier run stands for 70 % of capacity when its load is this close to it; otherwise
# `make calibrate` measures again there. CPU per request beyond the busiest run is held,
# not extrapolated, and it keeps falling with load: 9 % beyond the busiest run the loops
# used 10 % less than held (and the model's median came out a third slow), so close.
BUSY_TOLERANCE = 0.05


def busy_load_to_measure(capacity_qps: float, measured_qps: list[float]) -> int | None:
    """The load of the next busier calibration run: 70 % of the capacity, unless a run
    already measured lies within BUSY_TOLERANCE of it (None: nothing left to measure)."""
    target = max(1, round(BUSY_SHARE * capacity_qps))
    if any(abs(q - target) <= BUSY_TOLERANCE * target for q in measured_qps):
        return None
    return target


def fit(samples: np.ndarray, what: str) -> Fit:
    """The better of a lognormal and a shifted lognormal (maximum likelihood, scipy) by the
    Kolmogorov-Smirnov distance to the samples; when neither comes within GOOD_FIT (the
    event loop's CPU clock often gives two modes: a warm and a cold path), the samples'
    percentiles as an empirical distribution; a constant when they hardly vary."""
    x = np.maximum(np.asarray(samples, dtype=float), FLOOR_MS)
    n = len(x)
    mean = float(x.mean())
    if n == 0:
        raise CalibrationError(f"no samples for {what}")
    if float(x.std()) <= 0.01 * mean or n < SHAPE_MIN:
        table = {"dist": "constant", "value_ms": round(float(np.median(x)), 4)}
        few = "" if n >= SHAPE_MIN else " (too few for a shape)"
        return Fit({**table, "source": f"{what}: median of n={n}{few}"}, n, 0.0, mean)
    candidates = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sigma, _, scale = stats.lognorm.fit(x, floc=0)
        candidates.append((float(sigma), 0.0, float(scale)))
        try:
            sigma, loc, scale = stats.lognorm.fit(x)
            if 0 <= loc < float(x.min()) and scale > 0:
                candidates.append((float(sigma), float(loc), float(scale)))
        except (ValueError, RuntimeError, stats.FitError):
            pass
    best = None
    for sigma, loc, scale in candidates:
        sigma = min(max(sigma, 1e-3), 3.0)
        ks = ks_distance(x, stats.lognorm(sigma, loc, scale).cdf)
        if best is None or ks < best[0]:
            best = (ks, sigma, loc, scale)
    assert best is not None
    ks, sigma, loc, scale = best
    if ks > GOOD_FIT:
        q = np.quantile(x, np.linspace(0.0, 1.0, QUANTILES + 1))
        emp_ks = ks_distance(x, _quantile_cdf(q))
        source = (
            f"{what}: percentiles of n={n} samples (the best fitted lognormal was off by KS "
            f"D={ks:.3f}; these by D={emp_ks:.3f})"
        )
        table = {"dist": "empirical", "quantiles_ms": [round(float(v), 4) for v in q]}
        return Fit({**table, "source": source}, n, emp_ks, float(np.mean(q[:-1] + q[1:]) / 2))
    shape = "shifted lognormal" if loc > 0 else "lognormal"
    table: dict[str, Any] = {
        "dist": "lognormal",
        "median_ms": round(scale, 5),
        "sigma": round(sigma, 4),
    }
    if loc > 0:
        table["shift_ms"] = round(loc, 5)
    table["source"] = f"{what}: {shape} fitted by maximum likelihood, n={n}, KS D={ks:.3f}"
    return Fit(table, n, ks, mean)


def ks_distance(x: np.ndarray, cdf: Any) -> float:
    """sup |F_n - F| between the samples' CDF and `cdf`, on both sides of every sample
    value, so that repeated values (the clock's resolution makes many) are judged as the
    atoms they are rather than as a continuous jump."""
    values, counts = np.unique(x, return_counts=True)
    right = np.cumsum(counts) / len(x)
    left = right - counts / len(x)
    f_right = np.asarray(cdf(values), dtype=float)
    f_left = np.asarray(cdf(np.nextafter(values, -np.inf)), dtype=float)
    return float(max(np.max(np.abs(right - f_right)), np.max(np.abs(left - f_left))))


def _quantile_cdf(q: np.ndarray) -> Any:
    """The CDF that inverse-transform sampling of quantiles `q` draws from; at a value that
    several quantiles share (an atom), the highest of their probabilities."""
    p = np.linspace(0.0, 1.0, len(q))
    values = np.unique(q)
    probs = p[np.searchsorted(q, values, side="right") - 1]
    if len(values) == 1:
        return lambda v: (np.asarray(v) >= values[0]).astype(float)
    return lambda v: np.interp(v, values, probs, left=0.0, right=1.0)


def _inline(table: dict[str, Any]) -> str:
    parts = []
    for key, value in table.items():
        if isinstance(value, list):
            parts.append(f"{key} = [" + ", ".join(repr(v) for v in value) + "]")
        elif isinstance(value, str):
            parts.append(f"{key} = {json.dumps(value)}")
        else:
            parts.append(f"{key} = {value!r}")
    return "{ " + ", ".join(parts) + " }"


def load_run(run: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """summary.json, load-config.json and trace.json of a traced load run, or a clear error."""
    summary_path = run / "summary.json"
    if not summary_path.is_file():
        raise CalibrationError(f"{run} is not a load run (no summary.json); give RUN=<run folder>")
    summary = json.loads(summary_path.read_text())
    if summary.get("kind") not in ("load", None):
        raise CalibrationError(
            f"{run} is not a load run (it is a {summary['kind']} run); give RUN=<load run folder>"
        )
    if summary.get("status") != "ok":
        raise CalibrationError(
            f"{run}: the load run did not finish ({summary.get('status')}: "
            f"{summary.get('error')}); calibrate from one that did"
        )
    trace_path = run / "trace.json"
    if not summary.get("traced") or not trace_path.is_file():
        raise CalibrationError(
            f"{run} was not traced: calibrate from a run of make loadtest TRACE=1 "
            "(make calibrate runs one)"
        )
    if summary.get("scenario"):
        raise CalibrationError(
            f"{run} ran the failure drill {summary['scenario']}: calibrate from a run without one"
        )
    trace = json.loads(trace_path.read_text())
    if trace.get("format") not in TRACE_FORMATS_READ:
        raise CalibrationError(
            f"{trace_path}: trace format {trace.get('format')!r}, not {TRACE_FORMAT!r} (an "
            "older run?): run make calibrate again"
        )
    if not trace["requests"]:
        raise CalibrationError(f"{trace_path}: no traced request succeeded; look at locust.log")
    if not any(r[5] > 0 for r in trace["requests"]):
        raise CalibrationError(
            f"{trace_path}: the servers recorded no CPU per step (they ran without "
            "STEP_CPU=1; with HOST=, start that server with STEP_CPU=1)"
        )
    config = json.loads((run / "load-config.json").read_text())
    return summary, config, trace


def _step_samples(trace: dict[str, Any]) -> dict[str, tuple[list[float], list[float]]]:
    """Per step: (cpu samples, rest-of-step samples)."""
    out: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for *_, steps in trace["requests"]:
        for name, dur, cpu, wan in steps:
            cpus, waits = out[name]
            cpus.append(cpu)
            waits.append(dur - cpu - wan)
    return out


def idle_busy_cores(summaries: list[dict[str, Any]]) -> float:
    """Cores' worth of CPU the machine is busy with, stack idle, beyond the load: the
    median of what the calibration's runs each measured before their load started (each
    a few seconds, which a burst can throw off: one such sample put 0.25 cores where its
    run's own CPU left 0.08 for the rest, and the model of 70 % load that ran 8 % busier
    than the machine missed every cell); 0 where none measured it."""
    values = [
        float(s["machine_idle_busy_cores"])
        for s in summaries
        if s.get("machine_idle_busy_cores") is not None
    ]
    return round(float(np.median(values)), 4) if values else 0.0


def machine_cpu_per_request(summary: dict[str, Any], idle: float | None = None) -> float | None:
    """The machine's CPU per request offered (/proc/stat, every process on it) beyond what
    it was busy with before the load started (`idle` cores; default: the run's own
    sample); None where the run did not record it."""
    offered = offered_requests(summary)
    if not (summary.get("machine_busy_s") and summary.get("machine_window_s") and offered):
        return None
    if idle is None:
        idle = summary.get("machine_idle_busy_cores") or 0.0
    load_busy = summary["machine_busy_s"] - idle * summary["machine_window_s"]
    return round(1000.0 * max(load_busy, 0.0) / offered, 4) or None


# A load run's summary keys for each part's time waiting for a core and its CPU.
RUNQUEUE_WAITS = (
    ("servers", "server_loop_runqueue_wait_s", "server_loop_cpu_s"),
    ("load_generator", "loadgen_runqueue_wait_s", "loadgen_cpu_s"),
    ("hashes", "server_hash_runqueue_wait_s", "server_hash_cpu_s"),
)


def speed_point(
    summary: dict[str, Any], config: dict[str, Any], idle: float | None = None
) -> dict[str, Any]:
    """A run's CPU per request offered, as a `[[calibration.speed]]` point (the machine's
    beyond `idle` cores, see machine_cpu_per_request)."""
    cpu = run_cpu_per_request(summary)
    if cpu["servers"] is None or cpu["load_generator"] is None:
        raise CalibrationError(
            f"run {summary.get('run_id')}: no event-loop or load-generator CPU in its summary"
        )
    point = {
        "run_id": summary["run_id"],
        "qps": float(config["qps"]),
        "servers_cpu_ms_per_request": cpu["servers"],
        "load_generator_cpu_ms_per_request": cpu["load_generator"],
    }
    machine = machine_cpu_per_request(summary, idle)
    if machine is not None:
        point["machine_cpu_ms_per_request"] = machine
    # The stack's own processes, read directly: the stores, and the servers' threads
    # beside their loops (HTTP, the hash workers).
    offered = offered_requests(summary)
    stores, servers = summary.get("stores_cpu_s"), summary.get("server_process_cpu_s")
    if stores is not None and servers is not None and offered:
        point["stores_cpu_ms_per_request"] = round(1000.0 * stores / offered, 4)
        other = servers - (summary.get("server_loop_cpu_s") or 0.0)
        point["servers_other_cpu_ms_per_request"] = round(1000.0 * max(other, 0.0) / offered, 4)
    # The password hash's CPU per verification, on the worker threads' own clocks.
    if summary.get("server_hashes") and summary.get("server_hash_cpu_s"):
        point["hash_cpu_ms"] = round(
            1000.0 * summary["server_hash_cpu_s"] / summary["server_hashes"], 4
        )
    for part, wait_key, cpu_key in RUNQUEUE_WAITS:
        if summary.get(wait_key) is not None and summary.get(cpu_key):
            point[f"{part}_runqueue_wait_per_cpu_ms"] = round(
                summary[wait_key] / summary[cpu_key], 4
            )
    return point


# Steps whose rest is CPU in the server's worker threads, with their threads per process.
THREADED_STEPS = {"edge.verify_password": HASH_THREADS}


def machine_lines(
    summary: dict[str, Any], trace: dict[str, Any], idle: float, idle_source: str
) -> list[str]:
    """The `[calibration]` lines that let the model share the machine's cores: how many
    it had, what was busy before the load, the steps run on worker threads and their CPU
    per request offered (the worker threads' own clocks; where the run lacks them, their
    whole rest, taken as CPU: the hash is all computation, but its rest also holds its
    waits for a core)."""
    cores = summary.get("machine_cores")
    if not cores:
        return []
    offered = offered_requests(summary)
    threaded_ms = (
        1000.0 * summary["server_hash_cpu_s"]
        if summary.get("server_hash_cpu_s")
        else sum(
            dur - cpu - wan
            for *_, steps in trace["requests"]
            for name, dur, cpu, wan in steps
            if name in THREADED_STEPS
        )
    )
    per_request = threaded_ms / offered if offered else 0.0
    answered = trace["requests"]
    stores = sum(
        1 for *_, steps in answered for name, *_ in steps if name.split(".")[0] in ("redis", "crdb")
    )
    hops = 2.0 + stores / len(answered) if answered else 0.0
    return [
        f"cores = {int(cores)}",
        f"idle_busy_cores = {idle!r}",
        f"idle_busy_source = {json.dumps(idle_source)}",
        "threaded_steps = { " + ", ".join(f'"{k}" = {v}' for k, v in THREADED_STEPS.items()) + " }",
        f"threaded_cpu_ms_per_request = {round(max(per_request, 0.0), 4)!r}",
        f"hops_per_request = {round(hops, 4)!r}",
    ]


BASE_SLICE_NS = Path("/sys/kernel/debug/sched/base_slice_ns")
TASK_SCHED = Path("/proc/self/sched")  # a task's scheduler state, `se.slice` in ns
KERNEL_BASE_SLICE_MS = 0.75  # EEVDF's sysctl_sched_base_slice before CPU scaling
TICK_FALLBACK_MS = 4.0  # CONFIG_HZ=250, the usual distribution kernel's


def _spin_on_cpu0(seconds: float, out: Any) -> None:
    """Spin on CPU 0 and send the gaps (ms) in which another thread had the core."""
    import time

    os.sched_setaffinity(0, {0})
    gaps = []
    end = time.perf_counter() + seconds
    last = time.perf_counter()
    while last < end:
        now = time.perf_counter()
        if now - last > 0.0005:
            gaps.append((now - last) * 1000.0)
        last = now
    out.put(gaps)


def measure_tick_ms(seconds: float = 0.6) -> float | None:
    """How long the scheduler lets one of two spinning processes on a core run before the
    other: the timer tick, where the slice is shorter (the median gap each one sees).
    None when it cannot be measured here (no CPU affinity, no gaps)."""
    import multiprocessing as mp

    if not hasattr(os, "sched_setaffinity"):
        return None
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    spinners = [ctx.Process(target=_spin_on_cpu0, args=(seconds, out)) for _ in range(2)]
    for p in spinners:
        p.start()
    gaps = [g for _ in spinners for g in out.get(timeout=seconds + 30)]
    for p in spinners:
        p.join()
    return round(float(np.median(gaps)), 3) if len(gaps) >= 10 else None


def task_slice_ms() -> float | None:
    """The slice the kernel gives this process (`se.slice` in /proc/self/sched, where the
    kernel shows it: EEVDF's base slice for a thread that asked for no other)."""
    try:
        for line in TASK_SCHED.read_text().splitlines():
            if line.startswith("se.slice"):
                return int(line.split(":")[1]) / 1e6
    except (OSError, ValueError, IndexError):
        return None
    return None


def kernel_slice_ms(cores: int) -> tuple[float, str]:
    """The kernel's base slice (ms) and where it was read: this process's (/proc/self/sched),
    else debugfs, else Linux's default scaled by the CPUs (0.75 ms times 1 + log2 of up to
    8)."""
    slice_ms = task_slice_ms()
    if slice_ms is not None:
        return slice_ms, f"se.slice of {TASK_SCHED}"
    try:
        return int(BASE_SLICE_NS.read_text()) / 1e6, f"{BASE_SLICE_NS}"
    except (OSError, ValueError):
        return KERNEL_BASE_SLICE_MS * (1 + int(np.log2(min(max(cores, 1), 8)))), (
            f"Linux's default base slice {KERNEL_BASE_SLICE_MS} ms scaled for {cores} CPUs "
            "(1 + log2 of up to 8; kernel/sched/fair.c, SCHED_TUNABLESCALING_LOG)"
        )


def kernel_moves(summaries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The kernel's two measured shares of moves between cores (loadgen.schedtrace), over
    the busiest of `summaries` whose run traced the scheduler (the share of a busy
    core's wake-ups sent to an idle core depends on the load; the busiest run is nearest
    the load the twin checks): {"busy_wake_share", "idle_pull_share", "moves_cores" (the
    machine's cores then), "moves_source"}, or
    None where no run could trace it (the model then follows the kernel's rules)."""
    traced = [
        s
        for s in summaries
        if (k := s.get("kernel_scheduler")) and k.get("busy_wake", {}).get("share") is not None
    ]
    if not traced:
        return None
    s = max(traced, key=lambda s: float(s.get("target_qps") or 0))
    k = s["kernel_scheduler"]
    wake, pull = k["busy_wake"], k["idle_pull"]
    preempts = wake_preempt_shares(k.get("wake_preempt") or {})
    return {
        "busy_wake_share": wake["share"],
        "idle_pull_share": pull["share"] if pull["share"] is not None else None,
        "wake_preempt_share": {pair: share for pair, (share, _) in preempts.items()} or None,
        "moves_cores": s.get("machine_cores"),
        "moves_source": (
            f"the kernel's trace of {k['seconds']:g} s of run {s.get('run_id')} "
            f"({float(s.get('target_qps') or 0):g} QPS; loadgen.schedtrace): of the stack's "
            f"wake-ups with their core busy and another idle, {wake['moved']} of "
            f"{wake['moved'] + wake['stayed']} went to the idle core; of the times a core went "
            f"idle while a thread not cache-hot waited on another, it pulled one "
            f"{pull['pulled']} of {pull['pulled'] + pull['left_idle']} times"
            + (
                "; wake-ups onto a core running another thread that preempted it at once: "
                + ", ".join(f"{pair} {n}" for pair, (_, n) in preempts.items())
                if preempts
                else ""
            )
        ),
    }


# A pair of thread groups needs this many wake-ups in the trace for its measured share of
# wake-up preemptions (fewer: the model follows EEVDF's rule for it).
MIN_WAKES_ONTO_BUSY = 30


def wake_preempt_counts(traces: list[dict[str, dict[str, Any]]]) -> dict[str, list[int]]:
    """The kernel's wake-ups onto a busy core (`kernel_scheduler.wake_preempt`: per
    "<woken class>><running class>", preempted at once or not), summed over `traces`, per
    pair of the model's thread groups (the stores' classes are its hand-offs): [preempted
    at once, not]."""
    counts: dict[str, list[int]] = {}
    for pair, seen in (item for traced in traces for item in traced.items()):
        woken, _, running = pair.partition(">")
        if woken not in GROUP_OF_TRACE_CLASS or running not in GROUP_OF_TRACE_CLASS:
            continue
        key = f"{GROUP_OF_TRACE_CLASS[woken]}>{GROUP_OF_TRACE_CLASS[running]}"
        total = counts.setdefault(key, [0, 0])
        total[0] += int(seen["at_once"])
        total[1] += int(seen["not"])
    return counts


def wake_preempt_shares(traced: dict[str, dict[str, Any]]) -> dict[str, tuple[float, str]]:
    """`wake_preempt_counts` as the share that preempted, with "k of n" said; pairs with
    fewer than MIN_WAKES_ONTO_BUSY wake-ups left out."""
    counts = wake_preempt_counts([traced])
    return {
        pair: (round(yes / (yes + no), 4), f"{yes} of {yes + no}")
        for pair, (yes, no) in sorted(counts.items())
        if yes + no >= MIN_WAKES_ONTO_BUSY
    }


def scheduler_lines(cores: int, moves: dict[str, Any] | None = None) -> list[str]:
    """The `[calibration.scheduler]` table: the kernel's base slice (this process's, as
    /proc/self/sched or debugfs shows it; else Linux's default scaled by the CPUs: 0.75 ms
    times 1 + log2 of up to 8), the tick, measured by two processes spinning on one
    core, and the kernel's measured shares of moves between cores (`kernel_moves`)."""
    slice_ms, slice_source = kernel_slice_ms(cores)
    tick = measure_tick_ms()
    tick_source = (
        "two processes spinning on one core took turns of this median length"
        if tick is not None
        else f"not measurable here; {TICK_FALLBACK_MS} ms, CONFIG_HZ=250"
    )
    table = {
        "slice_ms": round(slice_ms, 4),
        "tick_ms": tick if tick is not None else TICK_FALLBACK_MS,
        # Linux's run queue per core; "shared" models one queue every core serves.
        "queues": "per_core",
        "source": f"slice: {slice_source}; tick: {tick_source}",
    }
    if moves is not None:
        table.update({k: v for k, v in moves.items() if v is not None})
    return ["[calibration.scheduler]", *(f"{k} = {_toml(v)}" for k, v in table.items()), ""]


def _toml(value: Any) -> str:
    """A value as TOML: a dict as an inline table, anything else as JSON writes it."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def carried_qps(limit_ms_per_s: float, cost_ms: Callable[[np.ndarray], np.ndarray]) -> float:
    """The highest QPS at which `cost_ms(qps)` per request stays within `limit_ms_per_s`:
    the point of a fine grid before the demand first exceeds it (CPU per request falls with
    load here, so the demand is not a straight line)."""
    grid = np.linspace(1.0, 100_000.0, 100_000)
    demand = grid * cost_ms(grid)
    over = np.nonzero(demand > limit_ms_per_s)[0]
    return float(grid[over[0] - 1]) if over.size and over[0] > 0 else float(grid[-1])


def busier_run(run: Path, fitted: dict[str, Any], idle: float | None = None) -> dict[str, Any]:
    """The speed point of `run`, a traced run of the same stack and mix as the fitted one
    at another load, or a clear error."""
    summary_path = run / "summary.json"
    if not summary_path.is_file():
        raise CalibrationError(f"{run} is not a load run (no summary.json)")
    summary = json.loads(summary_path.read_text())
    config = json.loads((run / "load-config.json").read_text())
    why = None
    if summary.get("kind") not in ("load", None) or summary.get("status") != "ok":
        why = "it is not a finished load run"
    elif not summary.get("traced"):
        why = "it was not traced (TRACE=1): the servers' CPU differs without step timing"
    elif summary.get("scenario"):
        why = f"it ran the failure drill {summary['scenario']}"
    elif sorted(config["regions"]) != sorted(fitted["regions"]):
        why = f"its regions {config['regions']} are not the fitted run's {fitted['regions']}"
    elif config.get("only_operation") != fitted.get("only_operation"):
        why = "its mix is not the fitted run's"
    elif float(config["qps"]) == float(fitted["qps"]):
        why = f"it ran the fitted run's own load ({fitted['qps']} QPS)"
    if why:
        raise CalibrationError(f"{run} cannot add a speed point: {why}")
    return speed_point(summary, config, idle)


def outside_cpu_ms(summary: dict[str, Any], trace: dict[str, Any]) -> float:
    """Event-loop CPU per request spent before the middleware starts timing and after the
    response starts (HTTP parsing and writing): the servers' loop CPU over the run, per
    request answered, less what the requests' own `app` entries counted."""
    total_s = summary.get("server_loop_cpu_s") or 0.0
    requests = summary.get("server_requests_total") or 0
    inside = [r[5] for r in trace["requests"]] + [p[3] for p in trace["prepares"]]
    if not total_s or not requests or not inside:
        return 0.0
    return max(0.0, 1000.0 * total_s / requests - float(np.mean(inside)))


def client_samples(
    summary: dict[str, Any], trace: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, float]:
    """The load generator's CPU per request: on the path before the send and after the
    answer (each with half the hub's CPU per request: a request wakes its sender twice,
    for its send time and for its answer), and after the latency is taken: the rest of
    its process's CPU per request offered (the preparing requests, the senders' CPU off
    the path, the other greenlets', Locust's own timers and statistics), so that the three
    add up to the CPU per request the speed points scale. Where the run lacks its
    process's CPU, the clock's own figure (the senders off the path and the other
    greenlets, per request sent) stands in."""
    clock = trace["client_clock"]
    sent = sum(r["n"] + r["errors"] for r in summary["latency"]) + len(trace["prepares"])
    if not sent:
        raise CalibrationError("the load run sent no request")
    wake = clock["hub_ms"] / sent / 2
    rows = trace["requests"]
    send = np.array([r[6][1] for r in rows]) + wake
    receive = np.array([r[6][2] + r[6][3] for r in rows]) + wake
    clocked = (max(clock["sender_ms"] - clock["on_path_ms"], 0.0) + clock["other_ms"]) / sent
    total = run_cpu_per_request(summary)["load_generator"]
    if total is None:
        return send, receive, clocked
    return send, receive, max(total - float(send.mean()) - float(receive.mean()), clocked)


def _untraced_samples(
    trace: dict[str, Any], outside_ms: float
) -> dict[str, tuple[list[float], list[float]]]:
    """Per operation: CPU outside the steps (with the CPU outside the middleware), and the
    rest of the latency outside them (the load generator's own time included: the model
    adds only the wait for its thread, which grows with load)."""
    out: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for op, _, _, latency, _, app_cpu, _, steps in trace["requests"]:
        cpu = max(app_cpu - sum(s[2] for s in steps), 0.0) + outside_ms
        cpus, waits = out[op]
        cpus.append(cpu)
        waits.append(latency - sum(s[1] for s in steps) - cpu)
    return out


def _outcomes(world: Any, trace: dict[str, Any]) -> dict[str, dict[str, list[int]]]:
    """Per locality and cache: [lookups, hits], from whether a miss-only step ran."""
    catalog = world.operations.of("hybrid")
    counts: dict[str, dict[str, list[int]]] = {
        loc: defaultdict(lambda: [0, 0]) for loc in LOCALITIES
    }
    # Per operation: each lookup's step, its cache, and the steps that run only on a miss.
    lookups = {
        op: [
            (
                step.label,
                step.outcome,
                {s.label for s in o.steps if s.when == f"{step.outcome}:miss"},
            )
            for step in o.steps
            if step.outcome is not None
        ]
        for op, o in catalog.items()
    }
    for op, locality, *_, steps in trace["requests"]:
        performed = {s[0] for s in steps}
        for label, cache, miss_steps in lookups[op]:
            if label in performed:
                row = counts[locality][cache]
                row[0] += 1
                row[1] += not (miss_steps & performed)
    return counts


def _by_locality(
    runs: list[tuple[str, Any, dict[str, dict[str, list[int]]]]],
) -> Iterator[tuple[str, str, list[tuple[Any, ...]]]]:
    """Per locality and key (a cache, an operation) counted in any of `runs` (run id, a
    figure of the run, counts per locality and key), the runs' (id, figure, *counts) where
    the first count is not zero."""
    for locality in LOCALITIES:
        for key in sorted({k for _, _, counts in runs for k in counts[locality]}):
            rows = [
                (rid, figure, *counts[locality][key])
                for rid, figure, counts in runs
                if counts[locality].get(key, [0])[0] > 0
            ]
            yield locality, key, rows


def cache_misses(
    runs: list[tuple[str, int, dict[str, dict[str, list[int]]]]],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per locality and cache, misses as a count that every run starts with (keys not yet
    cached) plus a share of the lookups that miss however warm the cache is (an entry
    invalidated by a write, or expired): least squares over the runs' (requests offered,
    lookups, hits), at least two runs of different sizes; none where a cache was looked up
    in fewer than two of them. The hit rate then follows the run's size, as it does."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for locality, cache, rows in _by_locality(runs):
        if len(rows) < 2 or len({r[1] for r in rows}) < 2:
            continue
        requests = np.array([float(r[1]) for r in rows])
        lookups = np.array([float(r[2]) for r in rows])
        misses = lookups - np.array([float(r[3]) for r in rows])
        # misses = cold + steady * lookups, neither below zero.
        a = np.column_stack([np.ones_like(lookups), lookups])
        cold, steady = np.linalg.lstsq(a, misses, rcond=None)[0]
        if steady < 0:
            cold, steady = float(misses.mean()), 0.0
        elif cold < 0:
            cold, steady = 0.0, float(misses.sum() / lookups.sum())
        out.setdefault(locality, {})[cache] = {
            "cold_misses": round(float(cold), 3),
            "steady_miss_ratio": round(float(steady), 6),
            "lookups_per_request": round(float(lookups.sum() / requests.sum()), 6),
            "source": "; ".join(
                f"run {rid}: {int(n - h)} misses in {int(n)} lookups, {req} requests"
                for rid, req, n, h in rows
            ),
        }
    return out


def _attempts(world: Any, trace: dict[str, Any]) -> dict[str, dict[str, list[int]]]:
    """Per locality and operation with a transaction (a step with `retry_from`): [its
    attempts, those that conflicted], from how often the transaction's first step ran in
    each traced request (once, or again after each conflict). A request whose every
    attempt conflicted failed and is not in the trace, so the count leaves it out."""
    catalog = world.operations.of("hybrid")
    firsts = {
        op: f"crdb.{step.retry_from}"
        for op, o in catalog.items()
        for step in o.steps
        if step.retry_from is not None
    }
    counts: dict[str, dict[str, list[int]]] = {loc: {} for loc in LOCALITIES}
    for op, locality, *_, steps in trace["requests"]:
        first = firsts.get(op)
        if first is None:
            continue
        ran = sum(1 for s in steps if s[0] == first)
        if ran:
            row = counts[locality].setdefault(op, [0, 0])
            row[0] += ran
            row[1] += ran - 1
    return counts


def conflict_rate(q: np.ndarray, attempts: np.ndarray, conflicts: np.ndarray) -> float:
    """The k that maximises the likelihood of `conflicts` among `attempts` at loads `q`
    when an attempt conflicts with probability 1 - exp(-k q); 0 without a conflict."""
    if conflicts.sum() == 0:
        return 0.0

    def minus_log_likelihood(k: float) -> float:
        p = -np.expm1(-k * q)
        hit = conflicts * np.log(np.maximum(p, 1e-300))
        return float(-(hit - (attempts - conflicts) * k * q).sum())

    # At most a per-attempt probability of 1 - 1e-6 at the busiest run's load.
    top = -np.log(1e-6) / q.max()
    found = optimize.minimize_scalar(
        minus_log_likelihood, bounds=(0.0, top), method="bounded", options={"xatol": top * 1e-9}
    )
    return float(found.x)


def conflict_rates(
    runs: list[tuple[str, float, dict[str, dict[str, list[int]]]]],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per locality and operation, `per_qps` such that an attempt conflicts with
    probability 1 - exp(-per_qps * qps) (other transactions overlapping it, a stream in
    proportion to the load): maximum likelihood over the runs' (QPS, attempts,
    conflicts); 0 where no attempt conflicted."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for locality, op, rows in _by_locality(runs):
        rate = conflict_rate(
            np.array([r[1] for r in rows], dtype=float),
            np.array([r[2] for r in rows], dtype=float),
            np.array([r[3] for r in rows], dtype=float),
        )
        out.setdefault(locality, {})[op] = {
            "per_qps": float(f"{rate:.6g}"),
            "source": "; ".join(
                f"run {rid} ({qps:g} QPS): {int(c)} conflicts in {int(a)} attempts"
                for rid, qps, a, c in rows
            ),
        }
    return out


RETRY_POLICY = {
    "max_attempts": MAX_ATTEMPTS,
    "backoff_ms": BACKOFF_S * 1000,
    "jitter_ms": JITTER_S * 1000,
    "source": "the server's retry of a conflicting transaction (server/storage.py: "
    "MAX_ATTEMPTS, BACKOFF_S, JITTER_S)",
}


def _shares(world: Any, trace: dict[str, Any]) -> dict[str, list[int]]:
    """Per step share: [requests of its operation, requests that performed the step]."""
    catalog = world.operations.of("hybrid")
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for op, *_, steps in trace["requests"]:
        performed = {s[0] for s in steps}
        for step in catalog[op].steps:
            if step.share is not None:
                out[step.share][0] += 1
                out[step.share][1] += step.label in performed
    return out


def calibrate(run: Path, out: Path, speed_runs: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Fit the profile from `run` and write it to `out`, with the CPU per request of `run`
    and of each busier run in `speed_runs`; returns what it found."""
    summary, config, trace = load_run(run)
    # What the machine keeps busy with beyond the load: the median of every run's sample.
    sampled = [summary] + [
        json.loads(p.read_text()) for o in speed_runs if (p := o / "summary.json").is_file()
    ]
    idle = idle_busy_cores(sampled)
    idle_source = "the median of the idle stack's /proc/stat before the load of " + ", ".join(
        f"run {s.get('run_id')} ({s['machine_idle_busy_cores']:g})"
        for s in sampled
        if s.get("machine_idle_busy_cores") is not None
    )
    speed = [speed_point(summary, config, idle)]
    speed += [busier_run(other, config, idle) for other in speed_runs]
    speed.sort(key=lambda p: p["qps"])
    world = load_world("seed")
    run_id = summary["run_id"]
    where = f"run {run_id}"
    catalog = world.operations.of("hybrid")
    wanted = {s.label: s for op in catalog.values() for s in op.steps}
    samples = _step_samples(trace)
    fits: dict[str, tuple[Fit, Fit]] = {}
    pooled: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for label, (cpus, waits) in samples.items():
        component = label.split(".")[0]
        pooled[component][0].extend(cpus)
        pooled[component][1].extend(waits)
        if label in wanted and len(cpus) >= MIN_SAMPLES:
            fits[label] = (
                fit(np.array(cpus), f"{label} event-loop CPU, {where}"),
                fit(np.array(waits), f"{label} time outside the CPU and the emulated WAN, {where}"),
            )
    stand_ins: list[str] = []
    for label, step in wanted.items():
        if label in fits:
            continue
        cpus, waits = pooled.get(step.component, ([], []))
        if not cpus:
            raise CalibrationError(
                f"{run}: step {label} never ran, nor did any other {step.component} step: "
                "run a longer or busier calibration (DURATION=, QPS=)"
            )
        note = (
            f"{label} never ran in {where} (its share or miss rate there was 0, so the model "
            f"never takes it either); all {step.component} steps pooled stand in"
        )
        fits[label] = (fit(np.array(cpus), note + " (CPU)"), fit(np.array(waits), note))
        stand_ins.append(label)
    outside = outside_cpu_ms(summary, trace)
    send, receive, after = client_samples(summary, trace)
    client = {
        "send": fit(send, f"load generator CPU before the send (with half the hub's), {where}"),
        "receive": fit(
            receive,
            f"load generator CPU from the answer to the latency (with half the hub's), {where}",
        ),
        "after": Fit(
            {
                "dist": "constant",
                "value_ms": round(after, 4),
                "source": f"load generator CPU per request off the latency's path, {where}",
            },
            len(send),
            0.0,
            after,
        ),
    }
    rest = _untraced_samples(trace, outside)
    untraced: dict[str, tuple[Fit, Fit]] = {}
    for op, (cpus, waits) in rest.items():
        untraced[op] = (
            fit(np.array(cpus), f"{op}: event-loop CPU outside its steps, {where}"),
            fit(
                np.array(waits),
                f"{op}: latency outside its steps and that CPU (HTTP, the client), {where}",
            ),
        )
    ops_run = [op for op in OPERATIONS if op in untraced]
    missing = [op for op in OPERATIONS if op not in untraced]
    for op in missing:  # MIX=<one operation>: the others take the pooled figures
        cpus = [c for o in ops_run for c in rest[o][0]]
        waits = [w for o in ops_run for w in rest[o][1]]
        note = f"{op} was not sent in {where}; the other operations' figures stand in"
        untraced[op] = (fit(np.array(cpus), note + " (CPU)"), fit(np.array(waits), note))
    prepare: dict[str, Fit] = {}
    by_op: dict[str, list[float]] = defaultdict(list)
    for op, _, _, app_cpu in trace["prepares"]:
        by_op[op].append(app_cpu + outside)
    for op, cpus in by_op.items():
        prepare[op] = fit(
            np.array(cpus), f"event-loop CPU of the request that prepares a {op}, {where}"
        )
    hit_rates = _outcomes(world, trace)
    # With busier runs, the misses by a run's size (the cold keys, then a steady share),
    # and the transactions' conflicts by load.
    sized = [(run_id, offered_requests(summary), hit_rates)]
    loaded = [(run_id, float(config["qps"]), _attempts(world, trace))]
    for other in speed_runs:
        other_summary, other_config, other_trace = load_run(other)
        sized.append(
            (
                other_summary["run_id"],
                offered_requests(other_summary),
                _outcomes(world, other_trace),
            )
        )
        loaded.append(
            (other_summary["run_id"], float(other_config["qps"]), _attempts(world, other_trace))
        )
    misses = cache_misses(sized) if len(sized) > 1 else {}
    conflicts = conflict_rates(loaded)
    shares = _shares(world, trace)
    # The servers' capacity: one event loop per region, busy for the CPU the loops spent
    # in the run (their own clock, HTTP parsing and preparations included) per request
    # offered; the regions share the load by their traffic shares, evenly enough here.
    run_cpu = run_cpu_per_request(summary)
    if run_cpu["servers"] is None:
        raise CalibrationError(
            f"{run}: the servers reported no event-loop CPU (/metrics); rerun make calibrate"
        )
    cpu_per_request = run_cpu["servers"]
    regions = list(config["regions"])
    loop_capacity = len(regions) * 1000.0 / cpu_per_request
    # The machine's: every process shares its cores (the loops, the password hashes on
    # worker threads, Redis, PostgreSQL, the load generator itself); what it was busy with
    # before the load started is not the load's and leaves fewer cores for it.
    capacity, binding = loop_capacity, "the servers' event loops"
    machine_ms = machine_cpu_per_request(summary, idle)
    cores = (summary.get("machine_cores") or 1) - idle
    if machine_ms and cores * 1000.0 / machine_ms < capacity:
        capacity, binding = cores * 1000.0 / machine_ms, "the machine's cores"
    client_ms = sum(f.mean_ms for f in client.values())
    client_capacity = 1000.0 / client_ms
    if client_capacity < capacity:
        capacity, binding = client_capacity, "the load generator's thread"
    by_load = ""
    if len(speed) > 1:
        # With a busier run, each part's CPU per request follows the load (linear in QPS
        # between the runs, held beyond them), and so does what each part can carry.
        at = [p["qps"] for p in speed]

        fitted = next(p for p in speed if p["run_id"] == run_id)

        def follows(key: str, base: float) -> Callable[[np.ndarray], np.ndarray]:
            values = [p[key] / fitted[key] * base for p in speed]
            return lambda q: np.interp(q, at, values)

        limits = {
            "the servers' event loops": (
                len(regions) * 1000.0,
                follows("servers_cpu_ms_per_request", cpu_per_request),
            ),
            "the load generator's thread": (
                1000.0,
                follows("load_generator_cpu_ms_per_request", client_ms),
            ),
        }
        if machine_ms and all("machine_cpu_ms_per_request" in p for p in speed):
            limits["the machine's cores"] = (
                cores * 1000.0,
                follows("machine_cpu_ms_per_request", machine_ms),
            )
        carried = {name: carried_qps(*limit) for name, limit in limits.items()}
        binding = min(carried, key=lambda name: carried[name])
        capacity = carried[binding]
        by_load = (
            "; with CPU per request following the load (runs at "
            + " and ".join(f"{q:g}" for q in at)
            + " QPS, linear between, held beyond) they carry "
            + ", ".join(f"{name} {q:,.0f} QPS" for name, q in carried.items())
        )
    capacity_source = (
        f"run {run_id}: the event loops spent {cpu_per_request:.3f} ms of CPU per request "
        f"(/metrics), {loop_capacity:.0f} QPS for one loop per region"
        + (
            f"; the machine {machine_ms:.3f} ms per request beyond its idle "
            f"{idle:.2f} cores (/proc/stat)"
            if machine_ms
            else ""
        )
        + f"; the load generator {client_ms:.3f} ms per request on its one thread"
        + by_load
        + f"; {binding} bind first"
    )
    machine = machine_lines(summary, trace, idle, idle_source)

    def render(rest_scale: dict[str, dict[str, Any]] | None) -> str:
        return _render(
            run_id, summary, config, regions, capacity, capacity_source, fits, untraced,
            prepare, client, hit_rates, shares, world, speed, machine, misses, rest_scale,
            conflicts, sidecar_path(out).name if pace else None, kernel_moves(sampled),
        )  # fmt: skip

    # The cores' pace in each run, beside the profile: the model replays the nearest run's.
    pace_runs = [(run_id, float(config["qps"]), run, float(config["duration_s"]))]
    for other in speed_runs:
        other_summary = json.loads((other / "summary.json").read_text())
        pace_runs.append(
            (
                other_summary["run_id"],
                float(other_summary["target_qps"]),
                other,
                float(other_summary["duration_s"]),
            )
        )
    pace = calibration_record(pace_runs)

    def write_pace(profile: Path) -> None:
        if pace is not None:
            path = sidecar_path(profile)
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(pace))
            tmp.replace(path)

    # The measured rests hold the fitted run's own waits, which the model adds again:
    # simulate the fitted run's load, take out what it added, and check once more. The
    # trials are written aside, so that `out` is replaced only by the finished profile.
    rest_means = {op: wait.mean_ms for op, (_, wait) in untraced.items()}
    measured = measured_means(trace)
    with tempfile.TemporaryDirectory(prefix="authscale-profile-") as aside:
        trial = Path(aside) / out.name
        write_pace(trial)
        trial.write_text(render(None))
        first = own_queueing(trial, config, measured)
        rest_scale = rest_scales(first, rest_means, {}, run_id)
        trial.write_text(render(rest_scale))
        second = own_queueing(trial, config, measured)
        rest_scale = rest_scales(second, rest_means, rest_scale, run_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_pace(out)
    tmp = out.with_suffix(".toml.tmp")
    tmp.write_text(render(rest_scale))
    tmp.replace(out)
    return {
        "run_id": run_id,
        "requests": len(trace["requests"]),
        "capacity_qps": capacity,
        "cpu_per_request_ms": cpu_per_request,
        "machine_cpu_per_request_ms": machine_ms,
        "loop_capacity_qps": loop_capacity,
        "capacity_binding": binding,
        "outside_cpu_ms": outside,
        "client_ms": {k: f.mean_ms for k, f in client.items()},
        "stand_ins": stand_ins,
        "fits": {k: (c.table, w.table) for k, (c, w) in fits.items()},
        "worst_ks": max((f.ks, k) for k, pair in fits.items() for f in pair),
        "speed": speed,
        "own_queueing": {"before": first, "after_one_correction": second},
        "rest_scale": {op: f["value"] for op, f in rest_scale.items()},
        "conflicts": conflicts,
        "pace": None if pace is None else [(r["run_id"], r["qps"]) for r in pace["runs"]],
    }


# Operations with fewer measured requests than this take the others' excess in ms.
MIN_OWN_QUEUEING = 200
# The in-sample simulation: 480 s of the fitted run's load, in four replications. With 60 s
# the simulated means moved a rest's factor by up to 0.08 between two calibrations of the
# same runs (token_issue, 300 requests: x0.78 and x0.86).
OWN_QUEUEING_S = 480.0
OWN_QUEUEING_REPLICATIONS = 4


def measured_means(trace: dict[str, Any]) -> dict[str, tuple[int, float]]:
    """Per operation: how many same-region requests the trace holds, and their mean
    latency (ms). Same-region only: a cross-region request's 100 ms round trips would make
    the mean follow how many of them a short run happened to send."""
    sums: dict[str, list[float]] = defaultdict(list)
    for row in trace["requests"]:
        if row[1] == "same_region":
            sums[row[0]].append(row[3])
    return {op: (len(v), float(np.mean(v))) for op, v in sums.items()}


def own_queueing(
    profile: Path, config: dict[str, Any], measured: dict[str, tuple[int, float]]
) -> dict[str, dict[str, float]]:
    """Simulate the fitted run's load with `profile` (seed 1, OWN_QUEUEING_S simulated
    seconds in OWN_QUEUEING_REPLICATIONS replications) and set each operation's mean
    same-region latency against the measured one: in sample, the model's excess is the
    wait it adds on top of the fitted times, which hold the run's own. The simulated means
    are taken over many times the run's requests, so that the correction carries the
    measurement's noise and not the model's too."""
    with tempfile.TemporaryDirectory(prefix="authscale-selfcheck-") as tmp:
        args = ["--profile", str(profile), "--qps", f"{float(config['qps'])!r}"]
        args += ["--duration", f"{OWN_QUEUEING_S:g}"]
        args += ["--replications", str(OWN_QUEUEING_REPLICATIONS)]
        args += ["--seed", "1", "--arch", "hybrid", "--quiet", "--results-dir", tmp]
        if simulate(args) != 0:
            raise CalibrationError(f"{profile}: the model did not run on the fitted profile")
        sim = json.loads((Path(tmp) / "sim" / "latest" / "summary.json").read_text())
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row in sim["latency"]:
        if (
            row["architecture"] == "hybrid"
            and row["locality"] == "same_region"
            and row["region"] != "all"
            and row["n"]
        ):
            sums[row["operation"]][0] += row["n"] * row["mean_ms"]
            sums[row["operation"]][1] += row["n"]
    return {
        op: {
            "measured_n": n,
            "measured_mean_ms": round(mean, 4),
            "simulated_mean_ms": round(sums[op][0] / sums[op][1], 4),
        }
        for op, (n, mean) in measured.items()
        if sums[op][1]
    }


def rest_scales(
    check: dict[str, dict[str, float]],
    rest_means: dict[str, float],
    before: dict[str, dict[str, Any]],
    run_id: str,
) -> dict[str, dict[str, Any]]:
    """Each operation's factor on its rest that takes out the model's excess over the
    measured mean (`check`), from the factors `before` it; an operation with fewer than
    MIN_OWN_QUEUEING requests takes the request-weighted excess (ms) of the others."""
    excess = {
        op: c["simulated_mean_ms"] - c["measured_mean_ms"]
        for op, c in check.items()
        if c["measured_n"] >= MIN_OWN_QUEUEING
    }
    weights = {op: check[op]["measured_n"] for op in excess}
    pooled = (
        sum(excess[op] * weights[op] for op in excess) / sum(weights.values()) if excess else 0.0
    )
    out: dict[str, dict[str, Any]] = {}
    for op, mean in rest_means.items():
        was = before.get(op, {}).get("value", 1.0)
        gap = excess.get(op, pooled)
        # Never more than three quarters of a rest: an excess beyond that is not the
        # model's own waiting, and shows in the in-sample check that calibrate prints.
        value = min(max((mean * was - gap) / mean, 0.25), 4.0) if mean > 0 else 1.0
        said = (
            f"the fitted run's load simulated{' again' if before else ''} gave a same-region "
            f"mean of {check[op]['simulated_mean_ms']:.3f} ms against "
            f"{check[op]['measured_mean_ms']:.3f} measured"
            if op in excess
            else f"too few of its requests to tell; the others' excess, {pooled:+.3f} ms"
        )
        out[op] = {
            "value": round(value, 4),
            "source": (
                f"the model's own waits at the load of run {run_id}, taken out of the "
                f"measured rest (mean {mean:.3f} ms): {said}"
            ),
        }
    return out


def _render(
    run_id: str,
    summary: dict[str, Any],
    config: dict[str, Any],
    regions: list[str],
    capacity: float,
    capacity_source: str,
    fits: dict[str, tuple[Fit, Fit]],
    untraced: dict[str, tuple[Fit, Fit]],
    prepare: dict[str, Fit],
    client: dict[str, Fit],
    hit_rates: dict[str, dict[str, list[int]]],
    shares: dict[str, list[int]],
    world: Any,
    speed: list[dict[str, Any]],
    machine: list[str],
    misses: dict[str, dict[str, dict[str, Any]]],
    rest_scale: dict[str, dict[str, Any]] | None = None,
    conflicts: dict[str, dict[str, dict[str, Any]]] | None = None,
    pace_file: str | None = None,
    moves: dict[str, Any] | None = None,
) -> str:
    lines = [
        "# Written by `make calibrate` from a traced load run of this machine's stack; do not",
        "# edit by hand (calibrate again). Every figure names the run it was fitted from.",
        'name = "local"',
        f"description = \"this machine's stack as measured in load run {run_id}: one server "
        f'process per region ({", ".join(regions)}), fitted step times, emulated WAN"',
        'network = "emulated"',
        'write_quorum = "emulated"',
        "",
        "[calibration]",
        f'run_id = "{run_id}"',
        "regions = [" + ", ".join(f'"{r}"' for r in regions) + "]",
        f"qps = {float(config['qps'])!r}",
        f"duration_s = {float(config['duration_s'])!r}",
    ]
    if config.get("only_operation"):
        lines.append(f'only_operation = "{config["only_operation"]}"')
    lines += [
        f"requests = {summary['latency'] and sum(r['n'] for r in summary['latency'])}",
        "servers_per_region = 1",
        *machine,
        f"capacity_qps = {round(capacity, 1)!r}",
        f"capacity_source = {json.dumps(capacity_source)}",
        *([f"pace_file = {json.dumps(pace_file)}"] if pace_file else []),
        "",
    ]
    cores = summary.get("machine_cores")
    if cores:
        lines += scheduler_lines(int(cores), moves)
    for point in speed:
        lines.append("[[calibration.speed]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in point.items()]
        lines.append("")
    for locality in LOCALITIES:
        lines.append(f"[calibration.cache_hit_rate.{locality}]")
        for cache, figure in world.workload.cache_hit_rate[locality].items():
            lookups, hits = hit_rates[locality].get(cache, [0, 0])
            if lookups:
                value = hits / lookups
                source = f"{hits} hits in {lookups} lookups in run {run_id}"
            else:
                value = figure.value
                source = f"no {locality} {cache} lookup in run {run_id}; the workload's figure"
            lines.append(f"{cache} = {_inline({'value': round(value, 6), 'source': source})}")
        lines.append("")
    for locality, caches in misses.items():
        lines.append(f"[calibration.cache_misses.{locality}]")
        lines += [f"{cache} = {_inline(fitted)}" for cache, fitted in caches.items()]
        lines.append("")
    if conflicts:
        lines.append("[calibration.retry_policy]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in RETRY_POLICY.items()]
        lines.append("")
        for locality, ops in conflicts.items():
            lines.append(f"[calibration.retries.{locality}]")
            lines += [f"{op} = {_inline(fitted)}" for op, fitted in ops.items()]
            lines.append("")
    lines.append("[calibration.step_share]")
    for name, figure in world.workload.step_share.items():
        n, k = shares.get(name, [0, 0])
        value, source = (
            (k / n, f"{k} of {n} requests in run {run_id}")
            if n
            else (figure.value, f"no request with this step in run {run_id}; the workload's figure")
        )
        lines.append(f"{name} = {_inline({'value': round(value, 6), 'source': source})}")
    lines.append("")
    if rest_scale:
        lines.append("[calibration.rest_scale]")
        lines += [f"{op} = {_inline(figure)}" for op, figure in sorted(rest_scale.items())]
        lines.append("")
    for label, (cpu, wait) in sorted(fits.items()):
        lines += [f'[steps."{label}"]', f"cpu = {cpu.toml()}", f"wait = {wait.toml()}", ""]
    for op, (cpu, wait) in sorted(untraced.items()):
        lines += [f"[untraced.{op}]", f"cpu = {cpu.toml()}", f"wait = {wait.toml()}", ""]
    if prepare:
        lines.append("[prepare]")
        lines += [f"{op} = {f.toml()}" for op, f in sorted(prepare.items())]
        lines.append("")
    lines.append("[client]")
    lines += [f"{part} = {f.toml()}" for part, f in client.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make calibrate", description=__doc__)
    p.add_argument("--run", default="", help="a traced load run folder (default: the newest)")
    p.add_argument("--results-dir", default=os.environ.get("AUTHSCALE_RESULTS", "results"))
    p.add_argument("--out", default=str(DATA_DIR / "profiles" / "local.toml"))
    p.add_argument(
        "--speed-run",
        action="append",
        default=[],
        help="a traced run at another load, for CPU per request by load (default --run: "
        "the profile's own fitted run)",
    )
    p.add_argument(
        "--busy-qps",
        action="store_true",
        help="print 70 %% of the profile's capacity (the load of the busier run) and stop",
    )
    p.add_argument(
        "--unmeasured",
        action="store_true",
        help="with --busy-qps: print nothing when one of the profile's runs was already "
        "within 5 %% of that load",
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    try:
        if args.busy_qps:
            cal = load_model(Profile, out).calibration
            if cal is None:
                raise CalibrationError(f"{out} is not a calibrated profile: make calibrate")
            measured = [p.qps for p in cal.speed] if args.unmeasured else []
            busy = busy_load_to_measure(cal.capacity_qps, measured)
            if busy is not None:
                print(busy)
            return 0
        if args.run:
            run = Path(args.run)
        elif args.speed_run:  # refit the profile's own run, now with the busier ones
            if not out.is_file():
                raise CalibrationError(f"{out} does not exist yet: calibrate a light run first")
            cal = load_model(Profile, out).calibration
            if cal is None:
                raise CalibrationError(f"{out} is not a calibrated profile: make calibrate")
            run = Path(args.results_dir) / "load" / cal.run_id
        else:
            run = Path(args.results_dir) / "load" / "latest"
        speed_runs = tuple(Path(r).resolve() for r in args.speed_run)
        found = calibrate(run.resolve(), out, speed_runs)
        load_model(Profile, out)  # what was written loads
    except (CalibrationError, ScenarioError, OSError, KeyError, ValueError) as exc:
        print(f"authscale calibrate: error: {exc}", file=sys.stderr)
        return 2
    ks, worst = found["worst_ks"]
    client = found["client_ms"]
    print(
        f"authscale calibrate: fitted {len(found['fits'])} steps from {found['requests']:,} "
        f"traced requests of run {found['run_id']}\n"
        f"  event-loop CPU per request {found['cpu_per_request_ms']:.3f} ms (the loops alone "
        f"would carry {found['loop_capacity_qps']:,.0f} QPS); {found['capacity_binding']} "
        f"saturate first, near {found['capacity_qps']:,.0f} QPS "
        f"(70 % = {0.7 * found['capacity_qps']:,.0f} QPS); of that CPU, "
        f"{found['outside_cpu_ms']:.3f} ms is HTTP work outside the traced window\n"
        f"  load generator CPU per request: {client['send']:.3f} ms before the send, "
        f"{client['receive']:.3f} ms after the answer, {client['after']:.3f} ms off the "
        "latency's path\n"
        f"  worst fit: {worst} (KS D = {ks:.3f})"
    )
    for label in found["stand_ins"]:
        print(f"  {label}: never ran; its component's pooled figures stand in")
    for point in found["speed"]:
        print(
            f"  CPU per request at {point['qps']:g} QPS (run {point['run_id']}): "
            f"{point['servers_cpu_ms_per_request']:.3f} ms in the servers' loops, "
            f"{point['load_generator_cpu_ms_per_request']:.3f} ms in the load generator"
        )
    for locality, ops in found["conflicts"].items():
        for op, fitted in ops.items():
            print(
                f"  {op} {locality}: a transaction's attempt conflicts with probability "
                f"1 - exp(-{fitted['per_qps']:.3g} x QPS) ({fitted['source']})"
            )
    if found["pace"]:
        print(
            f"  the cores' pace recorded in {len(found['pace'])} runs "
            f"({sidecar_path(out).name}): the model replays the one nearest the load it "
            "simulates (PACE=none: one steady pace)"
        )
    else:
        print("  a run recorded no pace (loadgen.pace): the model keeps one steady pace")
    print("  " + own_queueing_line(found))
    print(f"  wrote {args.out}; next: make simulate PROFILE=local && make report")
    return 0


def own_queueing_line(found: dict[str, Any]) -> str:
    """What the model added at the fitted run's load, before and after the correction."""

    def said(check: dict[str, dict[str, float]]) -> str:
        return ", ".join(
            f"{op} {c['simulated_mean_ms'] - c['measured_mean_ms']:+.2f}"
            for op, c in sorted(check.items())
            if c["measured_n"] >= MIN_OWN_QUEUEING
        )

    own = found["own_queueing"]
    scales = ", ".join(f"{op} x{v:.2f}" for op, v in sorted(found["rest_scale"].items()))
    return (
        f"the model's own waits at the fitted load (mean ms over measured): "
        f"{said(own['before'])}; after taking them out of the rests once: "
        f"{said(own['after_one_correction'])}; rests now {scales}"
    )


if __name__ == "__main__":
    sys.exit(main())
