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
