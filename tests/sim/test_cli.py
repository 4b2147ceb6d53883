"""`make simulate`: flags, the results folder and its schema, clear errors on bad input."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from sim.cli import main

ROW_KEYS = {
    "architecture",
    "operation",
    "locality",
    "region",
    "n",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "p999_ms",
    "p50_ci_ms",
    "p99_ci_ms",
    "errors",
}
REPO = Path(__file__).resolve().parents[2]


def _small(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--qps",
        "3000",
        "--duration",
        "2",
        "--warmup",
        "0.2",
        "--workers",
        "1",
        "--quiet",
        "--results-dir",
        str(tmp_path),
        *extra,
    ]


def test_run_writes_a_complete_results_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_small(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "session_validation" in out and "cells have their p50 inside" in out
    latest = tmp_path / "sim" / "latest"
    assert latest.is_symlink()
    run = latest.resolve()
    assert {p.name for p in run.iterdir()} == {
        "scenario.json",
        "summary.json",
        "latency.csv",
        "distributions.json",
    }
    # The cells' latencies in log bins: as many as the rows counted.
    dists = json.loads((run / "distributions.json").read_text())
    rows = json.loads((run / "summary.json").read_text())["latency"]
    n_rows = {(r["architecture"], r["operation"], r["locality"], r["region"]): r["n"] for r in rows}
    for arch, op, loc, region, counts in dists["cells"]:
        if (arch, op, loc, region) in n_rows:
            assert sum(counts.values()) == n_rows[(arch, op, loc, region)]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "ok"
    assert summary["target_qps"] == 3000 and summary["duration_s"] == 2
    assert summary["profile"] == "seed" and summary["mau"] == "200M"
    assert summary["reduction"] == {"hybrid": 3, "legacy": 1}
    rows = summary["latency"]
    assert len(rows) == 15 * 5
    for row in rows:
        assert set(row) >= ROW_KEYS
        assert row["architecture"] in ("hybrid", "legacy")
        assert row["locality"] in (
            ("same_region", "cross_region") if row["architecture"] == "hybrid" else ("all",)
        )
    assert {r["region"] for r in rows} == {"us-west", "us-east", "eu-west", "ap-ne", "all"}
    with (run / "latency.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    scenario = json.loads((run / "scenario.json").read_text())
    assert scenario["scenario"]["profile"]["name"] == "seed"
    assert scenario["plan"]["runs"][0] == ["hybrid", 3000.0, 3]


def test_region_reports_only_that_region(tmp_path: Path) -> None:
    assert (
        main(_small(tmp_path, "--region", "ap-ne", "--arch", "hybrid", "--profile", "cited")) == 0
    )
    summary = json.loads((tmp_path / "sim" / "latest" / "summary.json").read_text())
    assert {r["region"] for r in summary["latency"]} == {"ap-ne"}
    assert {r["architecture"] for r in summary["latency"]} == {"hybrid"}
    assert summary["profile"] == "cited"


def test_peak_load_selects_the_seeds_peak(tmp_path: Path) -> None:
    assert (
        main(
            [
                "--load",
                "peak",
                "--duration",
                "0.05",
                "--warmup",
                "0.01",
                "--arch",
                "hybrid",
                "--workers",
                "1",
                "--quiet",
                "--results-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "sim" / "latest" / "summary.json").read_text())
    assert summary["target_qps"] == 500_000


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--region", "mars"],
            "unknown REGION='mars': choose one of all, us-west, us-east, eu-west, ap-ne",
        ),
        (["--mau", "5M"], "unknown MAU='5M'"),
        (["--load", "huge"], "unknown LOAD='huge'"),
        (["--qps", "-5"], "QPS=-5 must be > 0"),
        (["--qps", "lots"], "QPS='lots' is not a number"),
        (["--duration", "0"], "DURATION=0 must be > 0"),
        (["--profile", "fast"], "unknown PROFILE='fast'"),
        (["--arch", "mainframe"], "unknown ARCH='mainframe'"),
        (["--seed", "-1"], "SEED=-1 must be >= 0"),
    ],
)
def test_bad_flags_fail_with_one_line_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main(_small(tmp_path, *flags)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert message in err
    assert not (tmp_path / "sim").exists()


def test_make_simulate_passes_flags_and_fails_cleanly(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["make", "--no-print-directory", "simulate", "REGION=atlantis"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "AUTHSCALE_RESULTS": str(tmp_path)},
    )
    assert proc.returncode != 0
    assert "unknown REGION='atlantis'" in proc.stderr
    assert not (tmp_path / "sim").exists()
