"""The machine as it ran in given load runs, on the model's cores: `make simulate
PROFILE=local PACE=<load run>[,<load run>…]`.

Two things a load run measures that the model cannot know beforehand: how fast the
machine ran its code in it (CPU per request, against what the profile's speed points
expect at that load), and how steady its cores' pace was from one moment to the next (a
fixed piece of Python timed every 10 ms on its own CPU clock: `pace.json`,
loadgen.pace). Given the runs, the model scales the servers' and the load generator's CPU
to the runs' CPU per request, and runs every piece of work on its cores at each moment's
pace relative to the runs' mean (the record's factors average 1). A replication takes up
the record where the one before it stopped (cyclically), so that the replications
together follow the runs as they were.

This is a diagnostic, not a prediction: it tells the model's own error from the
machine's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scenarios.profiles import Calibration
from scenarios.results import PACE_FILE, pace_record, run_cpu_per_request
from sim.errors import SimulationError


class PaceError(SimulationError):
    """A pace record cannot be used (missing, unreadable, from no calibration run)."""


@dataclass(frozen=True)
class Pace:
    """Factors on CPU work, one per `period_ms` (mean 1), the CPU per request the runs
    measured over the profile's expectation (servers, load generator), and the runs."""

    factors: tuple[float, ...]
    period_ms: float
    speed: tuple[float, float]
    runs: tuple[str, ...]

    def said(self) -> dict[str, Any]:
        f = np.array(self.factors)
        return {
            "runs": list(self.runs),
            "servers_speed": self.speed[0],
            "load_generator_speed": self.speed[1],
            "period_ms": self.period_ms,
            "p90_factor": round(float(np.percentile(f, 90)), 4),
            "p99_factor": round(float(np.percentile(f, 99)), 4),
        }


def measured_window(run: Path, summary: dict[str, Any]) -> tuple[float, np.ndarray]:
    """A load run's pace record within its measured window (period in s, samples of
    time and µs), or a clear error."""
    if not (run / PACE_FILE).is_file():
        raise PaceError(
            f"{run} has no {PACE_FILE}: its load run recorded no pace (runs since the probe "
            "was added do; run make loadtest again)"
        )
    try:
        return pace_record(run, float(summary["duration_s"]))
    except (OSError, ValueError, KeyError) as exc:
        raise PaceError(str(exc)) from exc


def measured_speed(
    run: Path, summary: dict[str, Any], calibration: Calibration
) -> tuple[float, float]:
    """A load run's CPU per request offered over what the profile expects at its load:
    (the servers' event loops, the load generator)."""
    cpu = run_cpu_per_request(summary)
    expected = calibration.expected_cpu_ms(float(summary.get("target_qps") or 0.0))
    loops, client = cpu["servers"], cpu["load_generator"]
    if not (expected and loops and client):
        raise PaceError(
            f"{run}: its summary lacks the CPU totals (server_loop_cpu_s, loadgen_cpu_s) or "
            "the profile has no speed points: calibrate again and repeat the run"
        )
    return (
        round(loops / expected["servers"], 4),
        round(client / expected["load_generator"], 4),
    )


def paced(calibration: Calibration, qps: float, runs: list[str]) -> Pace:
    """The machine as `runs` (load run folders, in order) measured it, for the model of
    `qps` on the profile of `calibration`."""
    folders = [Path(name.strip()) for name in runs]
    records, speeds = [], []
    for run in folders:
        if not run.is_dir():
            raise PaceError(f"PACE: {run} is not a load run folder")
        try:
            summary = json.loads((run / "summary.json").read_text())
        except (OSError, ValueError) as exc:
            raise PaceError(f"PACE: {run}: no readable summary.json ({exc})") from exc
        if float(summary.get("target_qps") or 0.0) != qps:
            raise PaceError(
                f"PACE: {run} ran {summary.get('target_qps')} QPS, not the {qps:g} QPS modelled"
            )
        records.append(measured_window(run, summary))
        speeds.append(measured_speed(run, summary, calibration))
    pieces = np.concatenate([samples[:, 1] for _, samples in records])
    return Pace(
        tuple(np.round(pieces / pieces.mean(), 4).tolist()),
        round(1000.0 * records[0][0], 3),
        (
            round(float(np.mean([s[0] for s in speeds])), 4),
            round(float(np.mean([s[1] for s in speeds])), 4),
        ),
        tuple(run.name for run in folders),
    )
