"""Runs independent replications of the model across processes and pools their samples.

Each replication simulates its own warm-up (discarded) and then DURATION / replications
seconds of measured time, with its own random stream derived from (seed, replication),
so the pooled result does not depend on how many processes ran it: a seeded run is
reproducible bit for bit. Work is spread over the cores; progress is reported while the
replications run.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scenarios.loader import World
from sim.cores import FairCorePool, _KernelPool
from sim.model import RunConfig, SystemModel
from sim.stats import slow_spells, slowest_tenth_steps

Cell = tuple[str, str, str]  # (operation, locality, edge region)


@dataclass(frozen=True)
class SimulationPlan:
    """What to simulate, per architecture: (architecture, qps, reduction)."""

    profile: str
    runs: tuple[tuple[str, float, int], ...]
    duration_s: float
    warmup_s: float = 0.5
    replications: int = 2
    batches: int = 10
    seed: int = 1
    workers: int = 0
    # The local stack only: factors on CPU work, one per `pace_period_ms` (sim.pace).
    pace: tuple[float, ...] = ()
    pace_period_ms: float = 10.0
    speed: tuple[float, float] = (1.0, 1.0)

    def configs(self) -> list[RunConfig]:
        per_rep_ms = self.duration_s * 1000 / self.replications
        return [
            RunConfig(
                arch,
                qps,
                per_rep_ms,
                self.warmup_s * 1000,
                self.batches,
                red,
                self.seed,
                rep,
                pace=self.pace,
                pace_period_ms=self.pace_period_ms,
                speed=self.speed,
            )
            for arch, qps, red in self.runs
            for rep in range(self.replications)
        ]


@dataclass
class CellSamples:
    batches: list[np.ndarray] = field(default_factory=list)
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    traced: int = 0
    step_ms: dict[str, float] = field(default_factory=dict)
    # Requests whose transaction conflicted and was retried at least once.
    retried: int = 0
    # The local stack's runs: the slowest tenth of each replication's traced requests in
    # this cell (sim.stats.slowest_tenth_steps): how many, and their ms per step.
    tail_traced: int = 0
    tail_step_ms: dict[str, float] = field(default_factory=dict)

    def add_steps(
        self, traced: int, step_ms: dict[str, float], tail_traced: int, tail_ms: dict[str, float]
    ) -> None:
        """Add another replication's or region's traced requests and their ms per step (all
        of them, and its slowest tenth's)."""
        self.traced += traced
        for label, ms in step_ms.items():
            self.step_ms[label] = self.step_ms.get(label, 0.0) + ms
        self.tail_traced += tail_traced
        for label, ms in tail_ms.items():
            self.tail_step_ms[label] = self.tail_step_ms.get(label, 0.0) + ms

    @property
    def errors(self) -> int:
        return sum(self.errors_by_kind.values())

    @property
    def n(self) -> int:
        return sum(len(b) for b in self.batches)


@dataclass
class ArchitectureResult:
    architecture: str
    qps: float
    reduction: int
    cells: dict[Cell, CellSamples]
    utilisation: dict[str, float]
    simulated_requests: int
    cpu_s: float
    # The local stack's shared cores: per thread group, [ms of CPU, ms waiting for a core,
    # moves to another core's run queue (None where the model has one queue for all),
    # wake-ups, preemptions, ms waited after a preemption (None for processor sharing)]
    # summed over the replications (sim.cores).
    core_time: dict[str, list[float | None]] = field(default_factory=dict)
    # The local stack's slow spells (sim.stats.slow_spells, logins marked), summed likewise.
    spells: dict[str, float] = field(default_factory=dict)
    # The per-core model's two choices of moves (sim.cores.FairCorePool), summed likewise:
    # a thread waking with its core busy and another idle [moved, stayed]; a core going
    # idle while a thread that is not cache-hot waits on another's queue [pulled, left].
    core_choices: dict[str, list[int]] = field(default_factory=dict)
    # Per thread group, the groups that took its core at its preemptions, and how often.
    preempted_for: dict[str, dict[str, int]] = field(default_factory=dict)
    # Per "<woken group>><running group>", wake-ups onto a core running another thread:
    # [preempted it at once, did not] (the per-core model), summed likewise.
    wake_preempts: dict[str, list[int]] = field(default_factory=dict)


def _run_one(
    world: World,
    config: RunConfig,
    report: Callable[[float, int], None] | None,
    faults: Any = None,
) -> dict[str, Any]:
    started = time.process_time()
    model = SystemModel(world, config, faults)
    model.run(report)
    b = config.batches
    cells = {}
    for i, cell in enumerate(model.cells):
        steps = {label: ms for (c, label), ms in model.step_ms.items() if c == i}
        tail_n, tail_ms = (
            slowest_tenth_steps(model.traced_rows[i]) if model.traced_rows else (0, {})
        )
        cells[cell] = {
            "batches": [
                np.frombuffer(model.latencies[i * b + k], dtype=float).copy() for k in range(b)
            ],
            "errors_by_kind": model.error_kinds[i],
            "traced": model.traced[i],
            "retried": model.retried[i],
            "step_ms": steps,
            "tail_traced": tail_n,
            "tail_step_ms": tail_ms,
        }
    elapsed = config.warmup_ms + config.duration_ms
    util: dict[str, float] = {}
    for station in model.stations():
        if station.served == 0:
            continue
        group = station.name.rsplit("/", 1)[0]
        util[group] = max(util.get(group, 0.0), station.utilisation(elapsed))
    cores = getattr(model, "cores", None)
    kernel = isinstance(cores, _KernelPool)  # (processor sharing has no wake-ups to count)
    # Moves between cores' run queues, where the model has a queue per core.
    moves = getattr(cores, "migrations_by", None)
    spells = {}
    if model.in_order is not None:
        latency, cell_of = model.in_order
        logins = np.array([c[0] == "login" for c in model.cells])
        spells = slow_spells(
            np.frombuffer(latency, dtype=float), logins[np.frombuffer(cell_of, dtype="i")]
        )
    return {
        "spells": spells,
        "cells": cells,
        "core_time": (
            {
                g: [
                    cpu,
                    cores.wait_by.get(g, 0.0),
                    moves.get(g, 0) if moves is not None else None,
                    *(
                        (
                            cores.wakeups_by.get(g, 0),
                            cores.preempted_by.get(g, 0),
                            cores.preempted_wait_by.get(g, 0.0),
                        )
                        if kernel
                        else (None, None, None)
                    ),
                ]
                for g, cpu in cores.cpu_by.items()
            }
            if cores is not None
            else {}
        ),
        "utilisation": util,
        "core_choices": (
            {"busy_wake": list(cores.busy_wakes), "idle_pull": list(cores.idle_pulls)}
            if isinstance(cores, FairCorePool)
            else {}
        ),
        "preempted_for": cores.preempted_for if isinstance(cores, _KernelPool) else {},
        "wake_preempts": (
            {f"{w}>{r}": list(c) for (w, r), c in cores.wakes_onto_busy.items()}
            if isinstance(cores, FairCorePool)
            else {}
        ),
        "requests": model.completed,
        "arrived": model.arrived,
        "cpu_s": time.process_time() - started,
    }


Report = Callable[[float, int], None]
Job = Callable[[Any, Report], dict[str, Any]]

# Set in the parent just before the pool forks, so every worker runs the very job (and
# the World it closes over, which may differ from the files on disk) without pickling it.
_PROGRESS: Any = None
_JOB: Job | None = None


def _worker(job: tuple[int, Any]) -> tuple[int, dict[str, Any]]:
    index, payload = job
    assert _JOB is not None

    def report(fraction: float, completed: int) -> None:
        _PROGRESS.put((index, fraction, completed))

    return index, _JOB(payload, report)


def run_plan(
    world: World,
    plan: SimulationPlan,
    on_progress: Callable[[float, int], None] | None = None,
) -> dict[str, ArchitectureResult]:
    """Run every replication of every architecture in the plan and pool the samples."""
    configs = plan.configs()

    def job(config: RunConfig, report: Report) -> dict[str, Any]:
        return _run_one(world, config, report)

    return _pool(configs, run_jobs(configs, job, plan.workers, on_progress))


def run_jobs(
    payloads: list[Any],
    job: Job,
    workers: int = 0,
    on_progress: Callable[[float, int], None] | None = None,
) -> dict[int, dict[str, Any]]:
    """Run `job(payload, report)` for every payload, in processes when there are cores.

    Each output must carry `requests` (completed so far) for the progress line.
    """
    workers = workers or min(len(payloads), os.cpu_count() or 1)
    if workers > 1:
        return _run_parallel(payloads, job, workers, on_progress)
    outputs: dict[int, dict[str, Any]] = {}
    done_before = 0
    for i, payload in enumerate(payloads):

        def report(fraction: float, completed: int, i: int = i, base: int = done_before) -> None:
            if on_progress is not None:
                on_progress((i + fraction) / len(payloads), base + completed)

        outputs[i] = job(payload, report)
        done_before += outputs[i]["requests"]
    return outputs


def _run_parallel(
    payloads: list[Any],
    job: Job,
    workers: int,
    on_progress: Callable[[float, int], None] | None,
) -> dict[int, dict[str, Any]]:
    global _PROGRESS, _JOB
    ctx = mp.get_context("fork")
    _PROGRESS, _JOB = ctx.Queue(), job
    progress = _PROGRESS
    configs = payloads
    fractions = [0.0] * len(configs)
    completed = [0] * len(configs)
    outputs: dict[int, dict[str, Any]] = {}
    with ctx.Pool(workers) as pool:
        results = pool.imap_unordered(_worker, list(enumerate(configs)))
        while len(outputs) < len(configs):
            try:
                index, out = results.next(timeout=0.5)
            except mp.TimeoutError:
                pass
            else:
                outputs[index] = out
                fractions[index] = 1.0
                completed[index] = out["requests"]
            _drain(progress, fractions, completed, on_progress, len(configs))
    return outputs


def _drain(
    progress: Any,
    fractions: list[float],
    completed: list[int],
    on_progress: Callable[[float, int], None] | None,
    total: int,
) -> None:
    while True:
        try:
            i, f, c = progress.get_nowait()
        except queue.Empty:
            break
        if fractions[i] < 1.0:
            fractions[i], completed[i] = f, c
    if on_progress is not None:
        on_progress(sum(fractions) / total, sum(completed))


def _pool(
    configs: list[RunConfig], outputs: dict[int, dict[str, Any]]
) -> dict[str, ArchitectureResult]:
    results: dict[str, ArchitectureResult] = {}
    for i, cfg in enumerate(configs):
        out = outputs[i]
        res = results.get(cfg.architecture)
        if res is None:
            res = results[cfg.architecture] = ArchitectureResult(
                cfg.architecture, cfg.qps, cfg.reduction, {}, {}, 0, 0.0
            )
        res.simulated_requests += out["requests"]
        res.cpu_s += out["cpu_s"]
        for group, u in out["utilisation"].items():
            res.utilisation[group] = max(res.utilisation.get(group, 0.0), u)
        for key, count in out["spells"].items():
            res.spells[key] = res.spells.get(key, 0.0) + count
        for key, pair in out.get("core_choices", {}).items():
            total_pair = res.core_choices.setdefault(key, [0, 0])
            total_pair[0] += pair[0]
            total_pair[1] += pair[1]
        for pair, (yes, no) in out.get("wake_preempts", {}).items():
            total_pair = res.wake_preempts.setdefault(pair, [0, 0])
            total_pair[0] += yes
            total_pair[1] += no
        for (off, on), n in out.get("preempted_for", {}).items():
            by = res.preempted_for.setdefault(off, {})
            by[on] = by.get(on, 0) + n
        for group, times in out["core_time"].items():
            total = res.core_time.setdefault(group, [0.0] * len(times))
            for i, value in enumerate(times):
                total[i] = None if value is None or total[i] is None else total[i] + value
        for cell, data in out["cells"].items():
            samples = res.cells.setdefault(cell, CellSamples())
            samples.batches.extend(data["batches"])
            for kind, n in data["errors_by_kind"].items():
                samples.errors_by_kind[kind] = samples.errors_by_kind.get(kind, 0) + n
            samples.retried += data["retried"]
            samples.add_steps(
                data["traced"], data["step_ms"], data["tail_traced"], data["tail_step_ms"]
            )
    return results
