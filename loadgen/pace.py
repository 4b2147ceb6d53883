"""The machine's pace during a load run: a fixed piece of Python timed on its own CPU clock.

`make loadtest` starts this probe in a process of its own beside Locust. Every PERIOD_S it
runs the same small piece of work (JSON and a SHA-256 over a token-sized dict, about
0.1 ms) and notes when, and how much CPU time the piece took. On a steady machine that
time hardly varies; where the machine is slowed from outside (a virtual machine whose
host runs others on the same physical cores, a frequency change, caches flushed), the
same piece takes longer, which no count inside the machine shows. The thread's CPU clock
leaves out the time the probe waited for a core inside the machine, so what it shows is
the pace of the cores themselves. The probe costs about 1 % of one core.

    python -m loadgen.pace --out pace.json --seconds 90
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

from scenarios.results import pace_record

PERIOD_S = 0.01
SLOW = 1.5  # a piece over 1.5x the run's median time ran at under two thirds of the pace
PAYLOAD = {"sub": "0f8fad5b-d9cb-469f-a165-70867728950e", "scope": "openid profile email"}


def piece() -> None:
    """The fixed work: what a token check does most of, a few times over."""
    for i in range(8):
        text = json.dumps({**PAYLOAD, "i": i}, sort_keys=True)
        json.loads(text)
        hashlib.sha256(text.encode()).digest()


def run(out: Path, seconds: float) -> int:
    """Time the piece every PERIOD_S for `seconds` (or until SIGTERM); write `out`."""
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    piece()  # the first run pays for imports and caches
    samples: list[tuple[float, float]] = []
    end = time.monotonic() + seconds
    next_at = time.monotonic()
    while not stopping and time.monotonic() < end:
        at = time.time()
        c0 = time.thread_time()
        piece()
        samples.append((round(at, 4), round((time.thread_time() - c0) * 1e6, 1)))
        next_at += PERIOD_S
        time.sleep(max(0.0, next_at - time.monotonic()))
    out.write_text(json.dumps({"period_s": PERIOD_S, "samples": samples}))
    return len(samples)


def pace_stats(run_dir: Path, duration_s: float) -> dict[str, Any] | None:
    """The probe's pieces within a load run's measured window (scenarios.results
    `pace_record`): how many, their median CPU time, the 90th and 99th percentiles as
    multiples of it, and the share over SLOW times it. None without a usable record."""
    try:
        _, samples = pace_record(run_dir, duration_s)
    except (OSError, ValueError):
        return None
    us = samples[:, 1]
    median = float(np.median(us))
    return {
        "pieces": len(us),
        "median_us": round(median, 1),
        "p90_over_median": round(float(np.percentile(us, 90)) / median, 3),
        "p99_over_median": round(float(np.percentile(us, 99)) / median, 3),
        "slow_share": round(float(np.mean(us > SLOW * median)), 4),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadgen.pace", description=__doc__)
    p.add_argument("--out", required=True, help="where to write the samples (JSON)")
    p.add_argument("--seconds", type=float, required=True, help="how long to probe at most")
    args = p.parse_args(argv)
    if args.seconds <= 0:
        p.error(f"--seconds must be positive, got {args.seconds}")
    run(Path(args.out), args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
