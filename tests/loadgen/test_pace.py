"""The pace probe: a fixed piece timed every 10 ms, and what a run's summary says of it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadgen.pace import PERIOD_S, main, pace_stats
from scenarios.results import CLOCK_FILE, PACE_FILE


def test_the_probe_times_its_piece_every_period(tmp_path: Path) -> None:
    out = tmp_path / "pace.json"
    done = subprocess.run(
        [sys.executable, "-m", "loadgen.pace", "--out", str(out), "--seconds", "0.5"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["period_s"] == PERIOD_S
    times = [t for t, _ in data["samples"]]
    assert 30 <= len(times) <= 51 and times == sorted(times)
    assert all(us > 0 for _, us in data["samples"])
    stats = pace_stats(tmp_path, 0.5)  # a folder without clock-start: every sample
    assert stats is not None and stats["pieces"] == len(times)


def test_a_stopped_probe_keeps_what_it_timed(tmp_path: Path) -> None:
    out = tmp_path / "pace.json"
    probe = subprocess.Popen(
        [sys.executable, "-m", "loadgen.pace", "--out", str(out), "--seconds", "60"]
    )
    try:
        time.sleep(1.5)  # started (an interpreter, numpy) and timing
    finally:
        probe.terminate()
    assert probe.wait(timeout=10) == 0
    assert len(json.loads(out.read_text())["samples"]) >= 20


def test_pace_stats_take_the_measured_window(tmp_path: Path) -> None:
    # 100 pieces of 100 us, every tenth of them 200 us (slowed by half: over 1.5x), then
    # 50 pieces outside the window.
    inside = [(1000.0 + 0.01 * i, 200.0 if i % 10 == 0 else 100.0) for i in range(100)]
    outside = [(2000.0 + 0.01 * i, 900.0) for i in range(50)]
    run = tmp_path / "run"
    run.mkdir()
    (run / PACE_FILE).write_text(json.dumps({"period_s": 0.01, "samples": inside + outside}))
    (run / CLOCK_FILE).write_text("1000.0")
    stats = pace_stats(run, 1.0)
    assert stats == {
        "pieces": 100,
        "median_us": 100.0,
        "p90_over_median": pytest.approx(1.1),
        "p99_over_median": 2.0,
        "slow_share": 0.1,
    }
    (run / CLOCK_FILE).unlink()  # no window known: every sample
    assert pace_stats(run, 0)["pieces"] == 150  # type: ignore[index]
    (run / CLOCK_FILE).write_text("5000.0")
    assert pace_stats(run, 1.0) is None  # nothing in that window
    assert pace_stats(tmp_path / "missing", 1.0) is None
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / PACE_FILE).write_text("{not json")
    assert pace_stats(bad, 1.0) is None


def test_the_probe_refuses_a_length_it_cannot_run(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--out", "x.json", "--seconds", "0"])
    assert exc.value.code == 2
    assert "--seconds must be positive, got 0.0" in capsys.readouterr().err
