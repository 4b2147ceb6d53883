"""make loadtest against the real stack: a complete summary whose counts agree with the
servers' own /metrics, and clear errors for bad input before any load is sent."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from loadgen.cli import main
from scenarios.workload import OPERATIONS


def _run(tmp_path: Path, *flags: str) -> Path:
    """Run make loadtest's main with small numbers; the run's folder."""
    assert main([*flags, "--identities", "4", "--results-dir", str(tmp_path)]) == 0
    return (tmp_path / "load" / "latest").resolve()


ROW_KEYS = {
    "operation",
    "locality",
    "region",
    "n",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "p999_ms",
    "errors",
    "errors_by_kind",
}


def test_headless_run_writes_results_that_agree_with_the_servers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run(tmp_path, "--qps", "30", "--duration", "5", "--regions", "ap-ne,us-west")
    assert "authscale progress:" in capsys.readouterr().out  # shown while it runs
    names = {p.name for p in run.iterdir()}
    assert {"summary.json", "timeline.csv", "locust_stats.csv", "locust.html"} <= names
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["workers"] == 1
    assert summary["target_qps"] == 30 and summary["achieved_qps"] > 0
    assert summary["target_reached"] in (True, False) and "late_starts" in summary
    for row in summary["latency"]:
        assert set(row) >= ROW_KEYS
        assert row["region"] in ("ap-ne", "us-west")
    # What we measured is what the servers say they answered, operation by operation.
    assert summary["measured_counts"] == summary["server_counts"]
    assert sum(summary["measured_counts"].values()) > 100
    assert set(summary["server_counts"]) == set(OPERATIONS)
    # The senders share their connections: a few per region, not one or more per sender
    # (53 senders here; the request count is about 150).
    opened = summary["loadgen_connections_opened"]
    assert 2 <= opened <= 0.2 * sum(summary["measured_counts"].values())
    with (run / "timeline.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    totals = [r for r in rows if r["region"] == "all" and r["operation"] == "all"]
    assert sum(int(r["offered"]) for r in totals) == sum(summary["measured_counts"].values())
    detail = [r for r in rows if r["region"] != "all" and r["operation"] != "all"]
    assert sum(int(r["offered"]) for r in detail) == sum(summary["measured_counts"].values())
    assert {"availability", "cache_hit_rate", "db_utilisation"} <= set(rows[0])
    # The machine's pace beside the run, over its measured 5 s: a piece every 10 ms.
    pace = summary["machine_pace"]
    assert 400 <= pace["pieces"] <= 510 and pace["median_us"] > 0
    assert 1.0 <= pace["p90_over_median"] <= pace["p99_over_median"]
    # The stack was stopped: nothing answers on its ports any more.
    config = json.loads((run / "load-config.json").read_text())
    import urllib.request

    for url in config["urls"].values():
        with pytest.raises(OSError):
            urllib.request.urlopen(url + "/healthz", timeout=1)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--regions", "ap-ne,atlantis"], "unknown REGIONS='ap-ne,atlantis'"),
        (["--qps", "0"], "QPS=0 must be > 0"),
        (["--qps", "fast"], "QPS='fast' is not a number"),
        (["--duration", "-3"], "DURATION=-3 must be > 0"),
        (["--host", "http://127.0.0.1:9"], "HOST=http://127.0.0.1:9 does not answer"),
        (
            ["--scenario", "redis-primary-failover", "--regions", "us-east"],
            "one Redis per region without replicas",
        ),
        (["--scenario", "network-partition", "--regions", "us-east,eu-west"], "loopback"),
        (["--scenario", "redis-region-loss", "--regions", "ap-ne"], "not in REGIONS=ap-ne"),
        (["--scenario", "traffic-spike", "--duration", "10"], "runs to 30 s; DURATION=10"),
        (["--scenario", "meteor-strike"], "unknown SCENARIO='meteor-strike'"),
        (["--scenario", "traffic-spike", "--host", "http://127.0.0.1:9"], "drop HOST"),
        (["--trace", "--closed-loop"], "open-loop with one worker"),
        (["--trace", "--workers", "2"], "open-loop with one worker"),
    ],
)
def test_bad_input_and_unappliable_scenarios_fail_before_any_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main([*flags, "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "load").exists()


PAUSE = """
description = "pause ap-ne's server for one second"
duration_s = 6
[[events]]
component = "region"
region = "ap-ne"
at_s = 3
for_s = 1
[timings]
health_check_interval_s = { value = 10, source = "test" }
health_check_failures = { value = 2, source = "test" }
"""


def test_a_paused_server_shows_in_latency_from_the_intended_time(tmp_path: Path) -> None:
    """Coordinated omission: requests due while the server is paused wait for it, and the
    recorded latency, measured from the intended send time, includes that wait."""
    drill = tmp_path / "pause.toml"
    drill.write_text(PAUSE)
    run = _run(
        tmp_path, "--qps", "40", "--duration", "6", "--regions", "ap-ne", "--scenario", str(drill)
    )
    summary = json.loads((run / "summary.json").read_text())
    phases = [(f["phase"], round(float(f["t_s"]))) for f in summary["faults"]]
    assert phases == [("start", 3), ("end", 4)]
    with (run / "timeline.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["operation"] == "session_validation"]
    p99 = {int(r["t_s"]): float(r["p99_ms"]) for r in rows if r["p99_ms"]}
    assert p99[3] >= 900  # due during the pause: up to a second of waiting
    assert p99[1] < 200 and p99[5] < 200  # before and after: milliseconds
    # Locust's own statistic times each request from its actual send instead.
    with (run / "locust_stats.csv").open() as fh:
        locust = next(r for r in csv.DictReader(fh) if r["Name"] == "session_validation")
    assert float(locust["Max Response Time"]) <= max(p99.values()) + 100


def test_two_workers_merge_exactly(tmp_path: Path) -> None:
    run = _run(tmp_path, "--qps", "40", "--duration", "5", "--regions", "ap-ne", "--workers", "2")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["workers"] == 2
    from loadgen.recorder import Recorder

    merged = Recorder.from_json(json.loads((run / "recorder.json").read_text()))
    parts = [
        Recorder.from_json(json.loads((run / f"recorder.worker{i}.json").read_text()))
        for i in (0, 1)
    ]
    assert all(p.sent > 0 for p in parts)  # both workers sent
    for key, hist in merged.histograms.items():
        expected = sum(p.histograms[key].get_total_count() for p in parts if key in p.histograms)
        assert hist.get_total_count() == expected, key
    assert sum(h.get_total_count() for h in merged.histograms.values()) == sum(
        h.get_total_count() for p in parts for h in p.histograms.values()
    )
    assert summary["measured_counts"] == summary["server_counts"]


def test_closed_loop_mode_sends_back_to_back(tmp_path: Path) -> None:
    code = main(
        [
            "--qps",
            "20",
            "--duration",
            "3",
            "--regions",
            "ap-ne",
            "--identities",
            "2",
            "--closed-loop",
            "--results-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    summary = json.loads((tmp_path / "load" / "latest" / "summary.json").read_text())
    assert summary["mode"] == "closed" and summary["late_starts"] == 0
    # Nothing paces closed-loop senders: they offer far more than the 20 QPS target.
    assert summary["achieved_qps"] > 60
    assert summary["measured_counts"] == summary["server_counts"]


def test_web_ui_offers_both_user_classes_and_stops_everything(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loadgen",
            "--web",
            "--regions",
            "ap-ne",
            "--identities",
            "2",
            "--results-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        page = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "OpenLoopUser" not in page:
            try:
                with urllib.request.urlopen("http://127.0.0.1:8089/", timeout=2) as r:
                    page = r.read().decode()
            except OSError:
                time.sleep(0.5)
        assert "OpenLoopUser" in page and "ClosedLoopUser" in page
        assert "StepShape" in page and "SpikeShape" in page
        config = json.loads(next((tmp_path / "load").glob("*/load-config.json")).read_text())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    for url in config["urls"].values():  # the stack it started is gone
        with pytest.raises(OSError):
            urllib.request.urlopen(url + "/healthz", timeout=1)
