"""`make twin`: the twin's check at about 70 % of this machine's capacity, in one command.

After `make calibrate`, this runs `RUNS` traced load runs (3 by default, `DURATION` s
each) at the load the profile names as 70 % of the machine's capacity (or `QPS=`), on the
profile's regions; then the model of that load twice, `REPLICATIONS` (8) runs of the same
length each, cold at its start like a load run: first given the runs' own CPU per request
and pace (`PACE=<the runs>`, a diagnostic of the model's own error), then from the
calibration alone (the prediction); each compared with the runs pooled. Its last lines say
how many cells each met and whether a miss is the machine's drift since the calibration or
the model itself, naming the cells and steps. Each step is the project's own command
(loadgen, sim, report.compare) with its own output; a step that fails stops the check and
says which.

The runs follow the calibration within minutes on purpose: this machine's speed drifts,
and at 70 % of capacity a few per cent of CPU per request moves latency several times as
much (README, "The machine as a run measured it").
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from loadgen.cli import main as loadtest
from report.calibrate import busy_load_to_measure
from report.compare import run_comparison, twin_verdict
from scenarios import DATA_DIR, ScenarioError
from scenarios.loader import load_model
from scenarios.profiles import Profile
from scenarios.results import run_started
from sim.cli import main as simulate

# A calibration older than this is worth a word before the runs: this machine's speed has
# moved by 9-12 % within minutes (README, "The calibration's pace, replayed").
STALE_MIN = 30.0


class TwinError(Exception):
    """The check cannot start (no calibrated profile, a bad number) or a step failed."""


@dataclass(frozen=True)
class Check:
    """What one `make twin` runs: the load, where, how many runs of how long, and the
    model's replications."""

    profile: Path
    qps: float
    regions: tuple[str, ...]
    runs: int
    duration_s: float
    replications: int
    # Minutes since the calibration's newest run started (None: its id holds no time).
    age_min: float | None = None

    def said(self) -> str:
        return (
            f"{self.runs} load run(s) of {self.duration_s:g} s at {self.qps:g} QPS on "
            f"{','.join(self.regions)}, then the model of {self.replications} x "
            f"{self.duration_s:g} s on {self.profile}, then the comparison"
        )


def _count(name: str, text: str, kind: type[int] | type[float]) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise TwinError(f"{name}={text!r} is not a number") from None
    if not value > 0:
        raise TwinError(f"{name}={text!r}: give a number above 0")
    return value


def plan(args: argparse.Namespace) -> Check:
    """The check `args` ask for, from the calibrated profile, or a clear error."""
    profile = Path(args.profile)
    if not profile.is_file():
        raise TwinError(f"{profile} does not exist: run make calibrate first")
    try:
        cal = load_model(Profile, profile).calibration
    except (ScenarioError, OSError) as exc:
        raise TwinError(f"{profile} cannot be read: {exc}") from None
    if cal is None:
        raise TwinError(f"{profile} is not a calibrated profile: run make calibrate first")
    if args.qps:
        qps = float(_count("QPS", args.qps, float))
    else:
        busy = busy_load_to_measure(cal.capacity_qps, [])
        assert busy is not None  # nothing measured: always a load
        qps = float(busy)
    started = [t for t in map(run_started, [cal.run_id, *(p.run_id for p in cal.speed)]) if t]
    age = (datetime.now(UTC) - max(started)).total_seconds() / 60 if started else None
    return Check(
        profile,
        qps,
        tuple(cal.regions),
        int(_count("RUNS", args.runs, int)),
        float(_count("DURATION", args.duration, float)),
        int(_count("REPLICATIONS", args.replications, int)),
        round(age, 1) if age is not None else None,
    )


def stale_note(check: Check) -> str | None:
    """A word when the calibration is older than STALE_MIN minutes, else None."""
    if check.age_min is None or check.age_min <= STALE_MIN:
        return None
    return (
        f"the calibration's newest run started {check.age_min:.0f} minutes ago; this "
        "machine's speed drifts by several per cent within that, and at 70 % of capacity that "
        "moves latency several times as much: make calibrate first for a fair check"
    )


def _model(check: Check, results: Path, pace: str = "") -> Path | None:
    """The model of the check's load (`pace`: PACE=, load run folders), its run folder, or
    None after a failure (printed)."""
    flags = [
        *("--profile", str(check.profile), "--qps", f"{check.qps:g}"),
        *("--duration", f"{check.replications * check.duration_s:g}"),
        *("--replications", str(check.replications), "--results-dir", str(results)),
        *(("--pace", pace) if pace else ()),
    ]
    if simulate(flags) != 0:
        return None
    return (results / "sim" / "latest").resolve()


def run(check: Check, results: Path, strict: bool = False) -> int:
    """Run `check`, writing under `results`: 0 when it ran to its verdict (met or not, or
    met only with `strict`), 1 after a failed load run or model, 2 when the comparison
    could not be made, 3 with `strict` when the prediction missed the goal."""
    print(f"authscale twin: {check.said()}", flush=True)
    note = stale_note(check)
    if note:
        print(f"authscale twin: note: {note}", flush=True)
    runs = []
    for i in range(1, check.runs + 1):
        print(f"authscale twin: load run {i} of {check.runs}", flush=True)
        flags = [
            *("--qps", f"{check.qps:g}", "--duration", f"{check.duration_s:g}"),
            *("--regions", ",".join(check.regions), "--trace", "--results-dir", str(results)),
        ]
        if loadtest(flags) != 0:
            print(f"authscale twin: error: load run {i} failed (above); stopped", file=sys.stderr)
            return 1
        runs.append((results / "load" / "latest").resolve())
    loads = ",".join(str(r) for r in runs)
    # The diagnostic first, so that the prediction is the newest calibrated simulation
    # (the one make report and make compare take).
    print(
        "authscale twin: the diagnostic: the model given the runs' own CPU per request and "
        "pace (the model's error apart from the machine's drift)",
        flush=True,
    )
    diagnostic = None
    diag_sim = _model(check, results, pace=loads)
    if diag_sim is None:
        print("authscale twin: the diagnostic's model failed (above); going on", flush=True)
    else:
        diagnostic = run_comparison(results, str(diag_sim), loads, brief=True)
    print("authscale twin: the prediction: the model from the calibration alone", flush=True)
    sim_run = _model(check, results)
    if sim_run is None:
        print("authscale twin: error: the simulation failed (above); stopped", file=sys.stderr)
        return 1
    predicted = run_comparison(results, str(sim_run), loads)
    if predicted is None:
        return 2
    print()
    for line in twin_verdict(predicted, diagnostic):
        print(f"authscale twin: {line}")
    if strict and not predicted["goal_met"]:
        print("authscale twin: the prediction missed the goal (STRICT=1): exit 3", file=sys.stderr)
        return 3
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="make twin", description=__doc__)
    p.add_argument("--profile", default=str(DATA_DIR / "profiles" / "local.toml"))
    p.add_argument("--qps", default="", help="the load (default: 70 %% of the profile's capacity)")
    p.add_argument("--runs", default="3", help="load runs, pooled in the comparison")
    p.add_argument("--duration", default="60", help="seconds per load run (and per replication)")
    p.add_argument("--replications", default="8", help="the model's runs of the same length")
    p.add_argument("--results-dir", default=os.environ.get("AUTHSCALE_RESULTS", "results"))
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 3 when the prediction misses the goal (for CI-style use; default: 0)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        check = plan(args)
    except TwinError as exc:
        print(f"authscale twin: error: {exc}", file=sys.stderr)
        return 2
    return run(check, Path(args.results_dir), args.strict)


if __name__ == "__main__":
    sys.exit(main())
