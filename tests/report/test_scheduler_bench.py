"""`make bench-scheduler`: the kernel's and the model's waits for a light thread (the
figures are the machine's; only that both sides run and are reported is tested)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import psutil
import pytest

from report.scheduler_bench import main, measure, model, share_waited


def test_share_waited_counts_delays_beyond_the_timer() -> None:
    share, mean = share_waited(np.array([0.05, 0.1, 3.0, 5.0]))
    assert share == pytest.approx(50.0)
    assert mean == pytest.approx(4.0)
    assert share_waited(np.array([0.05, 0.2])) == (0.0, 0.0)


def test_the_machine_side_pins_a_spinner_and_cleans_up() -> None:
    before = os.sched_getaffinity(0)
    children = {p.pid for p in psutil.Process().children()}
    delays = measure(0.1, 40)
    assert len(delays) == 40 and (delays >= 0).all()
    assert os.sched_getaffinity(0) == before  # unpinned again
    # The spinner is gone: no child of this process is left beyond those it had.
    assert {p.pid for p in psutil.Process().children()} <= children


def test_the_model_side_waits_rarely_for_short_bursts_and_often_for_long_ones() -> None:
    short = share_waited(model(0.1, 1500, 1.4, 4.0, 0.07))[0]
    long = share_waited(model(1.5, 1500, 1.4, 4.0, 0.07))[0]
    assert short < 2.0 < 15.0 < long


def test_bench_writes_both_sides_per_burst(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--wakes", "20", "--bursts", "0.1,0.5", "--results-dir", str(tmp_path)]) == 0
    (bench,) = tmp_path.glob("bench/*-scheduler/bench.json")
    out = json.loads(bench.read_text())
    assert [r["burst_ms"] for r in out["bursts"]] == [0.1, 0.5]
    for row in out["bursts"]:
        assert 0 <= row["machine_waited_pct"] <= 100 and 0 <= row["model_waited_pct"] <= 100
    assert out["slice_ms"] > 0 and out["tick_ms"] > 0
    assert "machine waited" in capsys.readouterr().out


def test_bench_refuses_bad_bursts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--bursts", "0.1,-1"]) == 2
    assert "bursts must be positive" in capsys.readouterr().err
