"""The folders under results/: one per run, written atomically, with a `latest` link.

Shared by every producer (the simulator, the server's benchmark, the load generator);
the files' schema is results/README.md, the contract with the reports.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# A run folder's name starts with the time it was made, UTC: `YYYYMMDD-HHMMSS-<tag>`.
RUN_STAMP = "%Y%m%d-%H%M%S"


def run_started(run_id: str) -> datetime | None:
    """When a run started, from its id (its folder's name), or None where it holds no time."""
    try:
        return datetime.strptime(run_id[:15], RUN_STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def new_run_dir(root: Path, kind: str, tag: str) -> Path:
    stamp = datetime.now(UTC).strftime(RUN_STAMP)
    base = root / kind / f"{stamp}-{tag}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    path.mkdir(parents=True)
    return path


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)


def point_latest(run_dir: Path) -> None:
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    tmp.replace(link)


# Latency distributions as sparse log-binned counts (`distributions.json` of a simulator
# run): bin i holds values in [LO * RATIO**i, LO * RATIO**(i+1)) ms, 1 % wide, so a
# percentile read from the bins is off by at most 1 %.
# `trace.json` of a traced load run (written by loadgen.trace, read by report.calibrate and
# report.compare): format 2 added each request's client-side record; format 3 its split
# of the latency around the server's clock (before the write, to the server, after it).
TRACE_FORMAT = "authscale-trace-3"
TRACE_FORMATS_READ = ("authscale-trace-2", TRACE_FORMAT)  # 2 lacks only the split

LOG_BIN_LO_MS = 0.001
LOG_BIN_RATIO = 1.01


def log_bin_index(values_ms: Any) -> Any:
    """The shared log bin of each of `values_ms` (an array), as an int64 array."""
    import numpy as np

    v = np.maximum(np.asarray(values_ms, dtype=float), LOG_BIN_LO_MS)
    return np.floor(np.log(v / LOG_BIN_LO_MS) / np.log(LOG_BIN_RATIO)).astype(np.int64)


def log_bins(values_ms: Any) -> dict[int, int]:
    """Sparse counts of `values_ms` (an array) in the shared log bins."""
    import numpy as np

    idx = log_bin_index(values_ms)
    keys, counts = np.unique(idx, return_counts=True)
    return {int(k): int(c) for k, c in zip(keys, counts, strict=True)}


def log_bin_mid_ms(index: Any) -> Any:
    """The geometric middle of bin(s) `index`, in ms."""
    return LOG_BIN_LO_MS * LOG_BIN_RATIO ** (index + 0.5)


# What a load run's folder holds about its measured window and the machine in it
# (written by loadgen, read by report and sim.pace).
CLOCK_FILE = "clock-start"  # when the measured window began, epoch seconds
PACE_FILE = "pace.json"  # the cores' pace beside the run (loadgen.pace)
SCHED_FILE = "scheduler.json"  # the kernel's scheduling decisions mid-run (loadgen.schedtrace)


def offered_requests(summary: dict[str, Any]) -> int:
    """Requests a load run offered: answered or failed, over every cell."""
    return sum(r["n"] + r["errors"] for r in summary.get("latency") or [])


def run_cpu_per_request(summary: dict[str, Any]) -> dict[str, float | None]:
    """CPU per request offered in a load run, from the run's own totals: the servers'
    event loops (/metrics) and the load generator's process. None where a run lacks it."""
    offered = offered_requests(summary)

    def per_request(total_s: Any) -> float | None:
        return round(1000.0 * total_s / offered, 4) if total_s and offered else None

    return {
        "servers": per_request(summary.get("server_loop_cpu_s")),
        "load_generator": per_request(summary.get("loadgen_cpu_s")),
    }


def pace_record(run_dir: Path, duration_s: float) -> tuple[float, Any]:
    """A load run's pace record: the probe's period (s) and its samples (time, µs) within
    the measured window [clock-start, clock-start + duration_s] (every sample where the run
    has no clock-start). OSError without the file; ValueError, naming what is wrong, for a
    record that cannot be read or has fewer than 10 samples in the window."""
    import numpy as np

    path = run_dir / PACE_FILE
    try:
        data = json.loads(path.read_text())
        samples = np.array(data["samples"], dtype=float).reshape(-1, 2)
        period_s = float(data["period_s"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a pace record ({exc})") from exc
    try:
        start = float((run_dir / CLOCK_FILE).read_text())
        samples = samples[(samples[:, 0] >= start) & (samples[:, 0] <= start + duration_s)]
    except (OSError, ValueError):
        pass  # no window known: every sample
    if len(samples) < 10:
        raise ValueError(f"{path}: fewer than 10 samples in the run's measured window")
    if period_s <= 0:
        raise ValueError(f"{path}: period_s must be positive, got {period_s}")
    return period_s, samples


def pace_factors(pieces: Any) -> list[float]:
    """The probe's piece times as factors on CPU work, mean 1 (what the model's cores
    replay: sim.pace), rounded to 0.1 %."""
    import numpy as np

    x = np.asarray(pieces, dtype=float)
    return [round(float(v), 3) for v in x / x.mean()]
