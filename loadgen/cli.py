"""`make loadtest`: start the stack, seed users, run Locust headless, write results/load/.

Everything the run starts (the stack's servers, Redis and PostgreSQL) is stopped when it
ends, also on Ctrl-C or failure. Bad input stops it before any load is sent.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from loadgen import schedtrace
from loadgen.faults import Action, FaultDriver, FaultError, plan, rate_segments
from loadgen.identity import seed_users
from loadgen.pace import pace_stats
from loadgen.recorder import Recorder, new_histogram
from loadgen.servers import (
    HASH_CPU,
    HASH_WAIT,
    HASHES,
    LOOP_CPU,
    LOOP_MOVES,
    LOOP_WAIT,
    MACHINE_BUSY,
    SERVERS_CPU,
    STORES_CPU,
    WALL,
    machine_busy_s,
)
from scenarios import ScenarioError, load_world
from scenarios.faults import load_scenario
from scenarios.results import (
    CLOCK_FILE,
    PACE_FILE,
    SCHED_FILE,
    new_run_dir,
    point_latest,
    write_json,
)
from scenarios.workload import OPERATIONS
from server.infra import free_port
from server.stack import Stack

PERCENTILES = {"p50_ms": 50, "p90_ms": 90, "p95_ms": 95, "p99_ms": 99, "p999_ms": 99.9}
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
# How busy the machine is with the stack idle, before a traced run: the median of short
# windows, so that a burst in one (a store's checkpoint, a process still starting) does not
# pass for what the machine keeps busy with; the windows go in the summary.
IDLE_SAMPLE_S = 3.0
IDLE_WINDOWS = 6


def idle_busy_windows(seconds: float, windows: int) -> list[float]:
    """Cores' worth of CPU the whole machine was busy with (/proc/stat) in each of
    `windows` back-to-back windows over `seconds`."""
    each = seconds / windows
    out = []
    last = machine_busy_s()
    for _ in range(windows):
        time.sleep(each)
        now = machine_busy_s()
        out.append(round((now - last) / each, 4))
        last = now
    return out


class UsageError(Exception):
    pass


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="make loadtest")
    p.add_argument("--qps", default="500", help="target requests per second (open loop)")
    p.add_argument("--duration", default="", help="measured seconds (30, or the scenario's)")
    p.add_argument("--regions", default="ap-ne", help="regions of the stack, comma-separated")
    p.add_argument("--host", default="", help="a running server (one region) instead of a stack")
    p.add_argument("--seed", default="1")
    p.add_argument("--identities", default="20", help="signed-in users per region")
    p.add_argument("--workers", default="1", help="Locust worker processes (1: no master)")
    p.add_argument("--mix", default="default", help="default, or one operation to send alone")
    p.add_argument(
        "--closed-loop", action="store_true", help="send back to back, timed from the send"
    )
    p.add_argument(
        "--web", action="store_true", help="Locust's web UI on 127.0.0.1:8089 instead of headless"
    )
    p.add_argument(
        "--scenario", default="", help="a failure timeline: a name in scenarios/failures/ or a file"
    )
    p.add_argument(
        "--trace", action="store_true", help="keep every response's step record (trace.json)"
    )
    p.add_argument("--results-dir", default=os.environ.get("AUTHSCALE_RESULTS", "results"))
    return p.parse_args(argv)


def _positive(name: str, text: str, kind: type = float) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a number") from None
    if value <= 0:
        raise UsageError(f"{name}={text} must be > 0")
    return value


def validate(args: argparse.Namespace) -> dict[str, Any]:
    world = load_world("seed")
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    unknown = [r for r in regions if r not in world.topology.regions]
    if unknown or not regions:
        raise UsageError(
            f"unknown REGIONS={args.regions!r}: choose from {', '.join(world.topology.regions)}"
        )
    if args.mix != "default" and args.mix not in OPERATIONS:
        raise UsageError(
            f"unknown MIX={args.mix!r}: choose default or one of {', '.join(OPERATIONS)}"
        )
    scenario = None
    actions: list[Action] = []
    if args.scenario:
        if args.host:
            raise UsageError("SCENARIO acts on the harness's own stack: drop HOST")
        try:
            path = Path(args.scenario)
            if path.suffix == ".toml":  # a drill file anywhere, not only scenarios/failures/
                if not path.is_file():
                    raise UsageError(f"SCENARIO={args.scenario}: file not found")
                scenario = load_scenario(path.stem, path.parent)
            else:
                scenario = load_scenario(args.scenario)
            actions = plan(scenario, args.scenario, regions)
        except (ScenarioError, FaultError) as exc:
            raise UsageError(str(exc).splitlines()[0]) from None
    duration = args.duration or (f"{scenario.duration_s:g}" if scenario else "30")
    if args.web and (scenario is not None or int(args.workers) > 1):
        raise UsageError("the web UI runs without SCENARIO and with one worker")
    config: dict[str, Any] = {
        "qps": _positive("QPS", args.qps),
        "duration_s": _positive("DURATION", duration),
        "seed": int(args.seed),
        "identities_per_region": _positive("IDENTITIES", args.identities, int),
        "workers": _positive("WORKERS", args.workers, int),
        "mode": "closed" if args.closed_loop else "open",
        "only_operation": None if args.mix == "default" else args.mix,
        "web": args.web,
        "regions": regions,
        "trace": args.trace,
        # servers on this machine: their monotonic clock is the load generator's
        "same_host": not args.host,
    }
    if args.trace and (int(args.workers) > 1 or args.web or args.closed_loop):
        raise UsageError(
            "TRACE=1 runs headless and open-loop with one worker (drop WORKERS, CLOSED, the web UI)"
        )
    if scenario is not None:
        ends = max(e.end_s for e in scenario.events)
        if ends > config["duration_s"]:
            raise UsageError(
                f"SCENARIO={args.scenario} runs to {ends:g} s; DURATION={duration} is shorter"
            )
        config["scenario"] = args.scenario
        config["rate_segments"] = rate_segments(scenario, config["qps"])
        config["actions"] = actions
    if args.web:
        config["duration_s"] = 365 * 86400.0  # until the UI stops it
    if args.host:
        if len(regions) != 1:
            raise UsageError("HOST is one running server: give the one region it serves, REGIONS=")
        try:
            with urllib.request.urlopen(args.host.rstrip("/") + "/healthz", timeout=3) as r:
                health = json.loads(r.read())
        except (OSError, ValueError) as exc:
            raise UsageError(f"HOST={args.host} does not answer /healthz: {exc}") from None
        if health.get("region") != regions[0]:
            raise UsageError(f"HOST={args.host} serves {health.get('region')}, not {regions[0]}")
    return config


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        config = validate(args)
    except UsageError as exc:
        print(f"authscale loadtest: error: {exc}", file=sys.stderr)
        return 2
    run_dir = new_run_dir(
        Path(args.results_dir), "load", f"q{config['qps']:g}-{'-'.join(config['regions'])}"
    )
    stack: Stack | None = None
    driver: FaultDriver | None = None
    actions = config.pop("actions", [])
    config["clock_file"] = str(run_dir / CLOCK_FILE)
    try:
        if args.host:
            config["urls"] = {config["regions"][0]: args.host.rstrip("/")}
            database_url = os.environ.get("DATABASE_URL", "")
            if not database_url:
                raise UsageError("with HOST, set DATABASE_URL so the users can be seeded")
        else:
            print(f"authscale loadtest: starting the stack for {','.join(config['regions'])} ...")
            stack = Stack(
                config["regions"],
                run_dir=Path(os.environ.get("AUTHSCALE_RUN_DIR", ".run")) / "loadtest",
                limits=_limits(config),
            ).start()
            config["urls"] = {r: stack.url(r) for r in config["regions"]}
            # Whose CPU the run reads at its start and end (loadgen.servers).
            config["pids"] = {
                "servers": [p.pid for p in stack.processes.values()],
                "stores": [s.process.pid for s in stack.stores if s.process is not None],
            }
            assert stack.database_url is not None
            database_url = stack.database_url
            if actions:
                driver = FaultDriver(stack, actions, Path(config["clock_file"]))
                driver.start()
        seeded = seed_users(database_url, config["regions"], config["identities_per_region"])
        if config["trace"]:  # calibration: how busy the machine is with the stack idle
            windows = idle_busy_windows(IDLE_SAMPLE_S, IDLE_WINDOWS)
            config["idle_busy_windows"] = windows
            config["idle_busy_cores"] = round(float(statistics.median(windows)), 4)
        what = (
            f"open-loop users send {config['qps']:g} QPS; start and stop in the web UI"
            if config["web"]
            else f"running {config['qps']:g} QPS for {config['duration_s']:g} s"
            + (" closed-loop (no schedule)" if config["mode"] == "closed" else "")
        )
        print(f"authscale loadtest: {seeded} users seeded; {what}")
        recorder = _run_locust(config, run_dir)
    except (UsageError, RuntimeError, OSError) as exc:
        write_json(run_dir / "summary.json", {"status": "failed", "error": str(exc)})
        print(f"authscale loadtest: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        write_json(run_dir / "summary.json", {"status": "interrupted"})
        return 130
    finally:
        if driver is not None:
            driver.stop_event.set()
            driver.join(timeout=30)
            driver.undo_all()
        if stack is not None:
            stack.stop()
    summary = summarise(config, recorder, run_dir)
    summary["scenario"] = config.get("scenario")
    summary["faults"] = driver.log if driver is not None else []
    write_json(run_dir / "summary.json", summary)
    _write_timeline(run_dir / "timeline.csv", recorder)
    point_latest(run_dir)
    _print(summary, run_dir)
    return 0


def _limits(config: dict[str, Any]) -> dict[str, str]:
    """Rate limits high enough that the workload measures operations, not the limiter."""
    high = str(max(100_000, int(config["qps"] * 600)))
    limits = {"LOGIN_PER_IP": high, "LOGIN_PER_ACCOUNT": high, "TOKEN_PER_IP": high}
    if config.get("trace"):
        limits["STEP_CPU"] = "1"  # the servers' step records carry their loop CPU
    return limits


def _run_locust(config: dict[str, Any], run_dir: Path) -> Recorder:
    """Run Locust headless: one process, or a master and WORKERS worker processes."""
    workers = config["workers"]
    # Enough senders that a second-long stall still leaves free ones for the next slots.
    users = math.ceil(config["qps"] * 1.5) + 8 * workers
    config = {**config, "out": str(run_dir / "recorder.json")}
    (run_dir / "load-config.json").write_text(json.dumps(config, indent=2))
    setup_s = 5 + users / 50 + 0.5 * len(config["regions"]) * config["identities_per_region"] / 10
    run_time = int(config["duration_s"] + setup_s + 3)
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
    user_class = "ClosedLoopUser" if config["mode"] == "closed" else "OpenLoopUser"
    if config.get("web"):
        # The web UI: the user picks the class and the numbers; the run lasts until stopped.
        # The load shapes are offered in the UI only: in a headless run a shape in the
        # locustfile would take over from -u, -r and -t.
        files = f"{LOCUSTFILE},{LOCUSTFILE.with_name('shapes.py')}"
        main_cmd = [sys.executable, "-m", "locust", "-f", files, "--loglevel", "WARNING"]
        main_cmd += ["--class-picker", "--web-host", "127.0.0.1", "--web-port", "8089"]
        main_cmd += ["-u", str(users), "-r", str(min(users, 200)), "--csv", str(run_dir / "locust")]
    else:
        main_cmd = [
            *base,
            "--headless",
            "-u", str(users),
            "-r", str(min(users, 200)),
            "-t", f"{run_time}s",
            "--stop-timeout", "10",
            "--csv", str(run_dir / "locust"),
            "--html", str(run_dir / "locust.html"),
            "--only-summary",
            user_class,
        ]  # fmt: skip
    env = {**os.environ, "AUTHSCALE_LOAD": str(run_dir / "load-config.json")}
    started = time.monotonic()
    helpers: list[subprocess.Popen[bytes]] = []
    sched: dict[str, Any] = {}
    tracer: threading.Thread | None = None
    probe = None
    if not config.get("web"):
        # The machine's pace beside the run (loadgen.pace), in a process of its own.
        probe = subprocess.Popen(
            [
                *(sys.executable, "-m", "loadgen.pace"),
                *("--out", str(run_dir / PACE_FILE), "--seconds", str(run_time + 30)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(run_dir / "pace.log").open("ab"),
        )
    try:
        if workers > 1:
            port = free_port()
            main_cmd += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port"]
            main_cmd += [str(port), "--expect-workers", str(workers)]
            for i in range(workers):
                log = (run_dir / f"locust-worker{i}.log").open("ab")
                helpers.append(
                    subprocess.Popen(
                        [
                            *base,
                            "--worker",
                            "--master-host",
                            "127.0.0.1",
                            "--master-port",
                            str(port),
                        ],
                        env={**env, "AUTHSCALE_WORKER_INDEX": str(i)},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        if config.get("trace") and not config.get("web") and "pids" in config:
            # The kernel's own scheduling decisions in the middle of the run (root only).
            tracer = threading.Thread(
                target=lambda: sched.update(
                    schedtrace.record(
                        Path(config["clock_file"]),
                        config["duration_s"],
                        config["pids"]["servers"],
                        config["pids"]["stores"],
                    )
                ),
                daemon=True,
            )
            tracer.start()
        if config.get("web"):
            print("authscale loadtest: Locust's web UI on http://127.0.0.1:8089 (Ctrl-C to stop)")
            done = subprocess.run(main_cmd, env=env, text=True)
            done.stdout = done.stderr = ""
        else:
            done = _run_showing_progress(main_cmd, env)
    finally:
        for proc in helpers:
            try:
                proc.wait(timeout=20)  # workers quit when the master does
            except subprocess.TimeoutExpired:
                proc.kill()
        if probe is not None:
            probe.terminate()  # it writes what it has and quits
            try:
                probe.wait(timeout=10)
            except subprocess.TimeoutExpired:
                probe.kill()
    if tracer is not None:
        tracer.join(timeout=schedtrace.TRACE_S + 10)
        write_json(run_dir / SCHED_FILE, sched or {"unavailable": "the trace did not finish"})
    (run_dir / "locust.log").write_text(done.stdout + done.stderr)
    out = run_dir / "recorder.json"
    if not out.exists():
        raise RuntimeError(f"Locust wrote no recorder ({done.returncode}): {done.stderr[-600:]}")
    print(f"authscale loadtest: Locust ran for {time.monotonic() - started:.0f} s")
    recorder = Recorder.from_json(json.loads(out.read_text()))
    for worker_file in run_dir.glob("recorder.worker*.json"):  # the workers' own CPU
        own = json.loads(worker_file.read_text())
        recorder.cpu_s += own.get("cpu_s", 0.0)
        recorder.connections += own.get("connections", 0)
    return recorder


def _run_showing_progress(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run Locust, echoing its progress lines as they come and keeping all the output."""
    lines: list[str] = []
    with subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("authscale progress:"):
                print(line.rstrip(), flush=True)
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines), "")


def _row(op: str, locality: str, region: str, hist: Any, errors: dict[str, int]) -> dict[str, Any]:
    n = hist.get_total_count() if hist is not None else 0
    row: dict[str, Any] = {"operation": op, "locality": locality, "region": region, "n": n}
    for name, q in PERCENTILES.items():
        row[name] = round(hist.get_value_at_percentile(q) / 1000, 3) if n else None
    row["errors"] = sum(errors.values())
    row["errors_by_kind"] = dict(errors)
    return row


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _kernel_scheduler(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / SCHED_FILE
    return json.loads(path.read_text()) if path.exists() else None


def summarise(config: dict[str, Any], rec: Recorder, run_dir: Path) -> dict[str, Any]:
    keys = sorted(set(rec.histograms) | set(rec.errors))
    rows = [_row(*k, rec.histograms.get(k), rec.errors.get(k, {})) for k in keys]
    offered = sum(r["n"] + r["errors"] for r in rows)
    errors_by_kind: dict[str, int] = {}
    for r in rows:
        for kind, n in r["errors_by_kind"].items():
            errors_by_kind[kind] = errors_by_kind.get(kind, 0) + n
    achieved = offered / config["duration_s"]
    late_share = rec.late_starts / max(offered, 1)
    # A Poisson count below its mean by more than 3 sigma did not come from the target rate.
    expected = config["qps"] * config["duration_s"]
    reached = offered >= expected - 3 * math.sqrt(expected) and late_share < 0.01
    if config["mode"] == "closed":
        reached = True  # no target: closed-loop senders offer what the server lets them
    measured = {
        op: sum(r["n"] + r["errors"] for r in rows if r["operation"] == op) for op in OPERATIONS
    }
    return {
        "status": "ok",
        "kind": "load",
        "run_id": run_dir.name,
        "regions": config["regions"],
        "target_qps": config["qps"],
        "achieved_qps": round(achieved, 2),
        "duration_s": config["duration_s"],
        "late_starts": rec.late_starts,
        "late_start_share": round(late_share, 5),
        "target_reached": reached,
        "target_note": None
        if reached
        else (
            f"achieved {achieved:.1f} of {config['qps']:g} QPS with {late_share:.1%} late "
            "starts (slots taken after their time because every sender was busy): the target "
            "was not offered as scheduled; latencies are of what was sent, from its intended time"
        ),
        "errors_by_kind": errors_by_kind,
        "workers": config["workers"],
        "mode": config["mode"],
        "traced": bool(config.get("trace")),
        "only_operation": config.get("only_operation"),
        "loadgen_cpu_s": round(rec.cpu_s, 2),
        "loadgen_connections_opened": rec.connections,
        "requests_per_loadgen_cpu_s": round(offered / rec.cpu_s, 1) if rec.cpu_s else None,
        "server_counts": {op: int(rec.server_counts.get(op, 0)) for op in OPERATIONS},
        # Every request the servers answered during the run (preparations and the
        # harness's /metrics reads included) and the CPU their event loops spent on them.
        "server_requests_total": int(
            sum(n for op, n in rec.server_counts.items() if not op.startswith("("))
        ),
        "server_loop_cpu_s": round(rec.server_counts.get(LOOP_CPU, 0.0), 4),
        # Time runnable but waiting for a core, in the run: the servers' event loops and
        # the load generator's sending threads (Linux's schedstat).
        "server_loop_runqueue_wait_s": round(rec.server_counts.get(LOOP_WAIT, 0.0), 4),
        "loadgen_runqueue_wait_s": round(rec.runqueue_wait_s, 4),
        # ... and the times the kernel moved them to another core's run queue.
        "server_loop_migrations": int(rec.server_counts.get(LOOP_MOVES, 0)),
        "loadgen_migrations": rec.migrations,
        # The password hashes the servers' worker threads ran in the run, and their CPU.
        "server_hashes": int(rec.server_counts.get(HASHES, 0)),
        "server_hash_cpu_s": round(rec.server_counts.get(HASH_CPU, 0.0), 4),
        # ... and the hash worker threads' time runnable but waiting for a core.
        "server_hash_runqueue_wait_s": round(rec.server_counts.get(HASH_WAIT, 0.0), 4),
        # The machine's busy CPU seconds over the run, what it was busy with before any
        # load (cores' worth), and its cores: calibration's machine-wide capacity.
        "machine_busy_s": round(rec.server_counts.get(MACHINE_BUSY, 0.0), 3),
        # The stack's own processes over the run (none with HOST=): the servers' every
        # thread (the loops, the HTTP threads, the hash workers) and Redis with PostgreSQL.
        "server_process_cpu_s": _rounded(rec.server_counts.get(SERVERS_CPU)),
        "stores_cpu_s": _rounded(rec.server_counts.get(STORES_CPU)),
        "machine_window_s": round(rec.server_counts.get(WALL, 0.0), 3),
        "machine_idle_busy_cores": config.get("idle_busy_cores"),
        "machine_idle_busy_windows": config.get("idle_busy_windows"),
        "machine_cores": os.cpu_count(),
        # The cores' own pace over the measured window (loadgen.pace): a fixed piece of
        # Python's CPU time, its spread, and the share of pieces slowed by half or more.
        "machine_pace": pace_stats(run_dir, config["duration_s"]),
        # The kernel's scheduling decisions mid-run (traced runs as root; loadgen.schedtrace).
        "kernel_scheduler": _kernel_scheduler(run_dir),
        "measured_counts": measured,
        "latency": rows,
    }


def _write_timeline(path: Path, rec: Recorder) -> None:
    """Per second, region and operation, with `all` rows, in the simulator's columns.

    Cache hit rate and database utilisation are not visible from the client: blank.
    """
    kinds = sorted({k for per in rec.second_errors.values() for k in per})
    seconds = sorted({s for s, _, _ in rec.seconds})
    regions = sorted({r for _, r, _ in rec.seconds})
    fields = ["t_s", "region", "operation", "offered", "completed", "errors"]
    fields += [f"errors_{k}" for k in kinds]
    fields += ["availability", "p50_ms", "p99_ms", "cache_hit_rate", "db_utilisation"]
    with path.open("w", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=fields)
        out.writeheader()
        for second in seconds:
            for region in [*regions, "all"]:
                for op in [*OPERATIONS, "all"]:
                    keys = [
                        (second, r, o)
                        for r in (regions if region == "all" else [region])
                        for o in (OPERATIONS if op == "all" else [op])
                        if (second, r, o) in rec.seconds
                    ]
                    if not keys:
                        continue
                    offered = sum(rec.seconds[k][0] for k in keys)
                    completed = sum(rec.seconds[k][1] for k in keys)
                    hist = new_histogram()
                    for k in keys:
                        if k in rec.second_hist:
                            hist.add(rec.second_hist[k])
                    row: dict[str, Any] = {
                        "t_s": second, "region": region, "operation": op,
                        "offered": offered, "completed": completed,
                        "errors": offered - completed,
                        "availability": f"{completed / offered:.5f}" if offered else "",
                        "p50_ms": "", "p99_ms": "", "cache_hit_rate": "", "db_utilisation": "",
                    }  # fmt: skip
                    for kind in kinds:
                        row[f"errors_{kind}"] = sum(
                            rec.second_errors.get(k, {}).get(kind, 0) for k in keys
                        )
                    if hist.get_total_count():
                        row["p50_ms"] = f"{hist.get_value_at_percentile(50) / 1000:.3f}"
                        row["p99_ms"] = f"{hist.get_value_at_percentile(99) / 1000:.3f}"
                    out.writerow(row)


def _print(summary: dict[str, Any], run_dir: Path) -> None:
    print(
        f"\n{summary['achieved_qps']:.1f} of {summary['target_qps']:g} QPS offered over "
        f"{summary['duration_s']:g} s; late starts {summary['late_starts']} "
        f"({summary['late_start_share']:.2%}); errors {summary['errors_by_kind'] or 'none'}"
    )
    if summary["target_note"]:
        print(f"NOT REACHED: {summary['target_note']}")
    print(
        f"{'operation':<20}{'locality':<14}{'region':<9}{'n':>7}{'p50':>9}{'p99':>9}"
        f"{'p99.9':>9}  ms, from the intended send time"
    )
    for r in summary["latency"]:

        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}"

        print(
            f"{r['operation']:<20}{r['locality']:<14}{r['region']:<9}{r['n']:>7}"
            f"{f(r['p50_ms']):>9}{f(r['p99_ms']):>9}{f(r['p999_ms']):>9}"
        )
    print(f"results: {run_dir}  (summary.json, timeline.csv, locust_stats.csv, locust.html)")


if __name__ == "__main__":
    sys.exit(main())
