"""make bench-loadgen runs end to end and writes its numbers (speed goals are not tested)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_loadgen_measures_both_senders_and_the_stack(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loadgen.bench", "--seconds", "2", "--steps", "40",
         "--results-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "bench" / "latest" / "bench-loadgen.json").read_text())
    assert report["bare_fasthttpuser_requests_per_s"] > 0
    assert report["open_loop_user_requests_per_s"] > 0
    rate = report["open_loop_user_requests_per_s"] / report["bare_fasthttpuser_requests_per_s"]
    assert abs(report["ratio"] - rate) < 0.001
    (step,) = report["end_to_end"]
    assert step["qps"] == 40 and step["achieved_qps"] > 0
    assert "highest QPS sustained" in done.stdout
