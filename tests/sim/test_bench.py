"""`make bench-sim` runs both loops and writes its numbers (speed targets are not tested)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.bench import bare_mm1_rate, main, model_rate


def test_both_loops_report_a_rate() -> None:
    assert bare_mm1_rate(2000) > 0
    assert model_rate(5000.0, 0.5) > 0


def test_bench_writes_its_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "--qps",
                "5000",
                "--duration",
                "0.5",
                "--customers",
                "2000",
                "--results-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "ratio:" in out and "bare SimPy M/M/1" in out
    (bench,) = (tmp_path / "bench").glob("*/bench.json")
    data = json.loads(bench.read_text())
    assert data["ratio"] == pytest.approx(
        data["model_requests_per_s"] / data["bare_mm1_customers_per_s"], rel=0.01
    )
    assert data["ratio_goal"] == 0.4
