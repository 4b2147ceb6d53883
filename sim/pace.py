"""The machine's pace on the model's cores: as the calibration recorded it (the default
with a calibrated profile), or as given load runs measured it (`make simulate
PROFILE=local PACE=<load run>[,<load run>…]`, a diagnostic).

The calibration's pace: `make calibrate` keeps each of its runs' pace records, as factors
of mean 1, beside the profile (`local.pace.json`, named by the profile's `pace_file`), and
the model of a load replays the record of the calibration run nearest that load, with the
profile's CPU. The cores of this kind of machine slow down and speed up together from one
10 ms to the next; work that meets a slow spell queues behind it, which the fitted step
times, drawn one by one, do not carry. `PACE=none` keeps one steady pace.

Two things a load run measures that the model cannot know beforehand: how fast the
machine ran its code in it (CPU per request, against what the profile's speed points
expect at that load), and how steady its cores' pace was from one moment to the next (a
fixed piece of Python timed every 10 ms on its own CPU clock: `pace.json`,
loadgen.pace). Given the runs, the model scales the servers' and the load generator's CPU
to the runs' CPU per request, and runs every piece of work on its cores at each moment's
pace relative to the runs' mean (the record's factors average 1). A replication takes up
the record where the one before it stopped (cyclically), so that the replications
together follow the runs as they were.

Given load runs, the model is a diagnostic, not a prediction: it tells the model's own
error from the machine's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scenarios.profiles import Calibration
from scenarios.results import PACE_FILE, pace_factors, pace_record, run_cpu_per_request
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
    # "calibration": recorded by the profile's calibration run nearest the load (a
    # prediction's input); "load runs": PACE=, the runs compared against (a diagnostic).
    source: str = "load runs"

    def said(self) -> dict[str, Any]:
        f = np.array(self.factors)
        return {
            "source": self.source,
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
        tuple(pace_factors(pieces)),
        round(1000.0 * records[0][0], 3),
        (
            round(float(np.mean([s[0] for s in speeds])), 4),
            round(float(np.mean([s[1] for s in speeds])), 4),
        ),
        tuple(run.name for run in folders),
    )


# Beside a calibrated profile `x.toml`: `x.pace.json`, the pace records of its runs.
SIDECAR_FORMAT = 1


def sidecar_path(profile: Path) -> Path:
    return profile.with_name(profile.stem + ".pace.json")


def calibration_record(runs: list[tuple[str, float, Path, float]]) -> dict[str, Any] | None:
    """The pace records of the calibration's runs, (run id, QPS, folder, measured s) each,
    for the sidecar; None when a run recorded none (runs from before the probe)."""
    out, period = [], None
    for run_id, qps, folder, duration_s in runs:
        try:
            period_s, samples = pace_record(folder, duration_s)
        except (OSError, ValueError):
            return None
        period = period if period is not None else period_s
        out.append({"run_id": run_id, "qps": qps, "factors": pace_factors(samples[:, 1])})
    if period is None:
        return None
    return {"format": SIDECAR_FORMAT, "period_ms": round(1000.0 * period, 3), "runs": out}


def calibration_pace(calibration: Calibration, profile: Path, qps: float) -> Pace | None:
    """The pace the calibration recorded in its run nearest `qps`, with the profile's CPU
    (speed 1); None for a profile that names no pace record."""
    if not calibration.pace_file:
        return None
    path = profile.parent / calibration.pace_file
    hint = "run make calibrate again, or give PACE=none for one steady pace"
    try:
        data = json.loads(path.read_text())
        if data.get("format") != SIDECAR_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, not {SIDECAR_FORMAT}")
        runs = [(str(r["run_id"]), float(r["qps"]), r["factors"]) for r in data["runs"]]
        period_ms = float(data["period_ms"])
    except OSError:
        missing = f"{profile} names its pace record {path}, which is missing"
        raise PaceError(f"{missing}: {hint}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise PaceError(f"{path} is not a calibration's pace record ({exc}): {hint}") from None
    if not runs or period_ms <= 0 or any(len(f) < 10 for _, _, f in runs):
        raise PaceError(f"{path} holds no usable pace record: {hint}")
    run_id, _, factors = min(runs, key=lambda r: (abs(r[1] - qps), -r[1]))
    return Pace(tuple(float(f) for f in factors), period_ms, (1.0, 1.0), (run_id,), "calibration")
