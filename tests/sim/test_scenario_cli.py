"""`make simulate SCENARIO=` and `make scenarios`: results folder, console, clear errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from scenarios.workload import OPERATIONS
from sim.cli import main
from sim.timeline import CSV_FIELDS, ERROR_KINDS

REPO = Path(__file__).resolve().parents[2]


def _args(tmp_path: Path, *extra: str) -> list[str]:
    return ["--mau", "10M", "--workers", "1", "--quiet", "--results-dir", str(tmp_path), *extra]


def test_scenario_run_writes_timeline_and_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_args(tmp_path, "--scenario", "crdb-region-loss")) == 0
    out = capsys.readouterr().out
    assert "CockroachDB ZONE survival" in out and "CockroachDB REGION survival" in out
    assert "Survival goals side by side" in out
    assert "worst one-minute p99" in out and "availability" in out
    run = (tmp_path / "sim" / "latest").resolve()
    assert {p.name for p in run.iterdir()} == {"scenario.json", "summary.json", "timeline.csv"}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["scenario"] == "crdb-region-loss"
    assert summary["mau"] == "10M" and summary["profile"] == "cited"
    zone, region = summary["variants"]
    assert (zone["survival"], region["survival"]) == ("zone", "region")
    for v in (zone, region):
        for key in (
            "availability",
            "failed",
            "lost_writes",
            "worst_minute_p99_ms",
            "errors_by_kind",
            "extra_load",
            "cache_hit_rate",
            "db_utilisation",
        ):
            assert key in v
        (ev,) = v["events"]
        assert {"detected_after_s", "recovered_after_s", "measured_recovery_s"} <= set(ev)
    assert zone["failed"] > 0 and region["failed"] == 0
    with (run / "timeline.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == ("survival", *CSV_FIELDS)
    assert {f"errors_{k}" for k in ERROR_KINDS} <= set(rows[0])
    per_variant = 50 * 5 * (len(OPERATIONS) + 1)  # seconds x (4 regions + all) x (ops + all)
    assert len(rows) == 2 * per_variant
    totals = [r for r in rows if r["region"] == "all" and r["operation"] == "all"]
    assert sum(int(r["errors"]) for r in totals if r["survival"] == "zone") == zone["failed"]
    assert all(int(r["offered"]) == int(r["completed"]) + int(r["errors"]) for r in rows)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--scenario", "meteor-strike"], "unknown SCENARIO='meteor-strike'"),
        (["--scenario", "traffic-spike", "--duration", "30"], "DURATION does not apply"),
        (["--scenario", "traffic-spike", "--qps", "30"], "QPS does not apply"),
        (["--scenario", "traffic-spike", "--arch", "legacy"], "drills the hybrid design"),
        (["--scenario", "traffic-spike", "--region", "moon"], "unknown REGION='moon'"),
        (["--scenario", "traffic-spike", "--profile", "fast"], "unknown PROFILE='fast'"),
        (["--scenario", "traffic-spike", "--replications", "0"], "REPLICATIONS=0 must be >= 1"),
    ],
)
def test_bad_scenario_flags_fail_with_one_line_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main(_args(tmp_path, *flags)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "sim").exists()


def test_make_scenarios_lists_every_drill() -> None:
    proc = subprocess.run(
        ["make", "--no-print-directory", "scenarios"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    for name in (
        "region-outage",
        "redis-primary-failover",
        "redis-region-loss",
        "crdb-node-loss",
        "crdb-region-loss",
        "network-partition",
        "traffic-spike",
        "legacy-reshard-cold-start",
    ):
        assert name in proc.stdout


def test_make_simulate_scenario_fails_cleanly(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["make", "--no-print-directory", "simulate", "SCENARIO=meteor-strike"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "AUTHSCALE_RESULTS": str(tmp_path)},
    )
    assert proc.returncode != 0
    assert "unknown SCENARIO='meteor-strike'" in proc.stderr
    assert not (tmp_path / "sim").exists()
