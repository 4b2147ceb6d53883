"""Writes a run's folder under results/: the scenario as run, CSV rows, summary.json.

The folder is created and the scenario written before the simulation starts, so a run
that fails part-way still leaves a summary saying how it ended; `latest` is repointed
only after a run succeeds.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def new_run_dir(root: Path, kind: str, tag: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
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


def point_latest(run_dir: Path) -> None:
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    tmp.replace(link)
