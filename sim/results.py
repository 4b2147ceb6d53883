"""Writes a run's folder under results/: the scenario as run, CSV rows, summary.json.

The folder is created and the scenario written before the simulation starts, so a run
that fails part-way still leaves a summary saying how it ended; `latest` is repointed
only after a run succeeds.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from scenarios.results import new_run_dir, point_latest, write_json

__all__ = ["CSV_FIELDS", "new_run_dir", "point_latest", "write_json", "write_latency_csv"]

CSV_FIELDS = (
    "architecture",
    "operation",
    "locality",
    "region",
    "n",
    "errors",
    "mean_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "p999_ms",
    "p50_ci_low_ms",
    "p50_ci_high_ms",
    "p99_ci_low_ms",
    "p99_ci_high_ms",
    "seed_low_ms",
    "seed_high_ms",
    "inside_seed_range",
    "dominant_step",
)


def write_latency_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        out.writeheader()
        for row in rows:
            flat = {k: row.get(k) for k in CSV_FIELDS}
            for key, lo, hi in (
                ("p50_ci_ms", "p50_ci_low_ms", "p50_ci_high_ms"),
                ("p99_ci_ms", "p99_ci_low_ms", "p99_ci_high_ms"),
                ("seed_range_ms", "seed_low_ms", "seed_high_ms"),
            ):
                pair = row.get(key) or [None, None]
                flat[lo], flat[hi] = pair
            out.writerow(flat)
