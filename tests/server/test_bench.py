"""make bench-server runs end to end and writes its numbers (speed goals are not tested).

It installs wrk itself when it is missing, as `make bench-server` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_server_measures_every_route(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server.bench", "--seconds", "1", "--results-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "bench" / "latest" / "bench-server.json").read_text())
    assert set(report["results"]) == {
        "baseline_redis_get",
        "session_validation",
        "userinfo",
        "token_issue",
    }
    for name, result in report["results"].items():
        assert result["requests_per_s"] > 0, name
        assert result["non_2xx"] == 0, name  # every measured request succeeded
        # The server's CPU per request is measured, and each core's busy share is a share.
        assert 0 < result["server_cpu_us_per_request"] < 1e6, name
        assert result["stores_cpu_us_per_request"] > 0, name
        assert len(result["core_busy"]) == os.cpu_count(), name
        assert all(0 <= b <= 1 for b in result["core_busy"]), name
    assert set(report["ratios_to_baseline"]) == set(report["goals"])
    assert "ratio" in done.stdout
