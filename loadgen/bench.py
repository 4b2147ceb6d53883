"""`make bench-loadgen`: how fast one Locust worker core sends, and what this machine sustains.

Part 1, in one run: a trivial ASGI route served by granian on core 0; on core 1, first a
bare FastHttpUser loop, then the project's open-loop user (schedule, sleep to the intended
time, HdrHistogram recording) asked for far more than one core can send. Both rates are
requests per second of one Locust process; the ratio is the open-loop user's overhead.
Part 2: the real stack at rising QPS until late starts reach 1 %: the highest QPS this
machine sustains end to end.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from loadgen import cli
from scenarios.results import new_run_dir, point_latest, write_json
from server.infra import free_port, serve_pinned, wait_http

GOAL = 0.9
TRIVIAL_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})
"""
BARE_USER = """
from locust import FastHttpUser, constant, task


class BareUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/session")
"""


def _locust(args: list[str], env: dict[str, str], cwd: Path) -> None:
    cmd = ["taskset", "-c", "1", sys.executable, "-m", "locust", "--headless", "--only-summary",
           "--loglevel", "WARNING", *args]  # fmt: skip
    subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=True)


def _bare_rate(base: str, seconds: int, work: Path) -> float:
    (work / "bare.py").write_text(BARE_USER)
    _locust(["-f", "bare.py", "-u", "50", "-r", "50", "-t", f"{seconds}s", "--host", base,
             "--csv", "bare"], dict(os.environ), work)  # fmt: skip
    with (work / "bare_stats.csv").open() as fh:
        row = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    return float(row["Requests/s"])


def _open_loop_rate(base: str, seconds: int, work: Path) -> float:
    config = {
        "qps": 50_000.0,  # far beyond one core: the user sends as fast as it can
        "duration_s": float(seconds),
        "seed": 1,
        "identities_per_region": 1,
        "regions": ["ap-ne"],
        "urls": {"ap-ne": base},
        "workers": 1,
        "mode": "open",
        "only_operation": "session_validation",
        "bench": True,
        "out": str(work / "recorder.json"),
        "clock_file": str(work / "clock"),
    }
    (work / "config.json").write_text(json.dumps(config))
    env = {**os.environ, "AUTHSCALE_LOAD": str(work / "config.json")}
    _locust(["-f", str(cli.LOCUSTFILE), "-u", "50", "-r", "50", "-t", f"{seconds + 3}s",
             "OpenLoopUser"], env, work)  # fmt: skip
    sent = json.loads((work / "recorder.json").read_text())["sent"]
    return float(sent) / seconds


def _sustained(steps: list[float], seconds: int, results_dir: Path) -> list[dict[str, Any]]:
    out = []
    for qps in steps:
        code = cli.main(["--qps", f"{qps:g}", "--duration", str(seconds), "--regions",
                         "ap-ne,us-west", "--identities", "10", "--results-dir",
                         str(results_dir)])  # fmt: skip
        if code != 0:
            break
        s = json.loads((results_dir / "load" / "latest" / "summary.json").read_text())
        out.append(
            {
                "qps": qps,
                "achieved_qps": s["achieved_qps"],
                "late_start_share": s["late_start_share"],
                "ok": s["target_reached"],
            }
        )
        if not s["target_reached"]:
            break
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make bench-loadgen")
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--steps", default="200,400,600,800,1000,1200")
    p.add_argument("--results-dir", default=os.environ.get("AUTHSCALE_RESULTS", "results"))
    args = p.parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        print("authscale bench-loadgen: needs two cores (server on one, Locust on the other)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="authscale-bench-loadgen-"))
    (work / "trivial.py").write_text(TRIVIAL_APP)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve_pinned("trivial:app", port, core=0, cwd=work)
    try:
        wait_http(base + "/", 30, server, "granian")
        print(f"bare FastHttpUser loop for {args.seconds} s ...", file=sys.stderr)
        bare = _bare_rate(base, args.seconds, work)
        print(f"open-loop user for {args.seconds} s ...", file=sys.stderr)
        open_loop = _open_loop_rate(base, args.seconds, work)
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    steps = [float(x) for x in args.steps.split(",") if x]
    print("end to end against the stack, rising QPS ...", file=sys.stderr)
    scratch = Path(tempfile.mkdtemp(prefix="authscale-bench-e2e-"))
    try:
        sustained = _sustained(steps, args.seconds, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    best = max((s["qps"] for s in sustained if s["ok"]), default=None)
    ratio = round(open_loop / bare, 3) if bare else None
    report = {
        "kind": "bench-loadgen",
        "bare_fasthttpuser_requests_per_s": round(bare, 1),
        "open_loop_user_requests_per_s": round(open_loop, 1),
        "ratio": ratio,
        "ratio_goal": GOAL,
        "goal_met": ratio is not None and ratio >= GOAL,
        "end_to_end": sustained,
        "highest_sustained_qps": best,
    }
    print(f"bare FastHttpUser loop:  {bare:>9,.0f} req/s on one core")
    print(f"open-loop user:          {open_loop:>9,.0f} req/s on one core")
    print(
        f"ratio:                   {ratio}  "
        f"(goal >= {GOAL}: {'met' if report['goal_met'] else 'MISSED'})"
    )
    for s in sustained:
        print(
            f"  {s['qps']:>6g} QPS: achieved {s['achieved_qps']:.1f}, "
            f"late starts {s['late_start_share']:.2%}"
        )
    print(f"highest QPS sustained end to end with < 1 % late starts: {best}")
    run_dir = new_run_dir(Path(args.results_dir), "bench", "loadgen")
    write_json(run_dir / "bench-loadgen.json", report)
    point_latest(run_dir)
    print(f"written: {run_dir / 'bench-loadgen.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
