"""`make bench-server`: requests per second of one server core, measured by wrk.

granian serves the app with one worker pinned to core 0; wrk runs pinned to core 1; the
benchmark's own Redis and PostgreSQL share the machine. In one run it measures a baseline
route that does one Redis GET, then session validation (cache hit), userinfo (cache hit)
and token issue (authorization code grant: rate limit, GETDEL, two ES256 signatures, one
database insert), and compares each with the baseline. The routes take turns (four
turns of 2 s each by default), so that the machine's own drift during the run, which is
large on a shared virtual machine, falls on every route alike rather than on whichever
was measured last. For each route it also records the server's CPU per request and
how busy each core was, so a reader can see that the server's core, not wrk's or the
stores', set the rate. Ratios measured in one run are
what to compare: absolute rates move with the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import redis

from scenarios.results import new_run_dir, point_latest, write_json
from server.app import DEMO_USER
from server.client import REDIRECT, sign_in
from server.infra import (
    PostgresServer,
    RedisServer,
    free_port,
    serve_pinned,
    tree_cpu_seconds,
    wait_http,
)
from server.security import b64url

GOALS = {"session_validation": 0.8, "userinfo": 0.6, "token_issue": 0.25}

TOKEN_LUA = """
local codes = {}
for line in io.lines("%s") do codes[#codes + 1] = line end
local i = 0
request = function()
  i = i + 1
  local body = "grant_type=authorization_code&client_id=demo-spa&redirect_uri=%s"
    .. "&code_verifier=%s&code=" .. codes[i]
  return wrk.format("POST", "/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, body)
end
"""


def _core_ticks() -> list[tuple[int, int]]:
    """(busy, total) jiffies of each core from /proc/stat."""
    out = []
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(f) for f in fields[:8]]
            idle = ticks[3] + ticks[4]  # idle + iowait
            out.append((sum(ticks) - idle, sum(ticks)))
    return out


def _wrk(
    url: str, seconds: int, connections: int, headers: dict[str, str], script: Path | None
) -> dict[str, Any]:
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)

    def ms(m: re.Match[str] | None) -> float | None:
        if m is None:
            return None
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    assert rate is not None, out
    count = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
    assert count is not None, out
    return {
        "requests": int(count.group(1)),
        "seconds": float(count.group(2)) * {"ms": 1e-3, "s": 1.0, "m": 60.0}[count.group(3)],
        "requests_per_s": float(rate.group(1)),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "p50_ms": ms(p50) or 0.0,
        "p99_ms": ms(p99) or 0.0,
    }


def _combine(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """One route's turns as one result: rates and CPU over all of them, the median turn's
    p50, the worst turn's p99."""
    done = sum(t["requests"] for t in turns)
    seconds = sum(t["seconds"] for t in turns)
    cores = len(turns[0]["ticks"])
    return {
        "requests": done,
        "requests_per_s": round(done / seconds, 1),
        "turns_requests_per_s": [t["requests_per_s"] for t in turns],
        "non_2xx": sum(t["non_2xx"] for t in turns),
        "p50_ms": sorted(t["p50_ms"] for t in turns)[len(turns) // 2],
        "p99_ms": max(t["p99_ms"] for t in turns),
        "server_cpu_us_per_request": round(1e6 * sum(t["server_cpu_s"] for t in turns) / done, 1),
        "stores_cpu_us_per_request": round(1e6 * sum(t["stores_cpu_s"] for t in turns) / done, 1),
        "core_busy": [
            round(
                sum(t["ticks"][c][0] for t in turns) / max(1, sum(t["ticks"][c][1] for t in turns)),
                3,
            )
            for c in range(cores)
        ],
    }


def ensure_wrk() -> None:
    """Install Debian's wrk when it is missing (apt-get update first if it must)."""
    if shutil.which("wrk"):
        return
    print("authscale bench-server: wrk is missing; installing Debian's wrk ...", file=sys.stderr)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    install = [*sudo, "apt-get", "install", "-y", "wrk"]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update"], capture_output=True)
        done = subprocess.run(install, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"authscale bench-server: could not install wrk: {done.stderr[-300:]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make bench-server")
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--rounds", type=int, default=4, help="turns each route takes (default 4)")
    p.add_argument("--results-dir", default=os.environ.get("AUTHSCALE_RESULTS", "results"))
    args = p.parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        print("authscale bench-server: needs two cores (server on one, wrk on the other)")
        return 2
    ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="authscale-bench-"))
    redis_server = RedisServer(work / "redis").start()
    try:
        pg = PostgresServer(work / "pg").start()
    except BaseException:
        redis_server.stop()  # nothing this benchmark started is left running
        raise
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "DATABASE_URL": pg.url,
        "ISSUER": base,
        "AUTHSCALE_BENCH_ROUTES": "1",
        "TOKEN_PER_IP": "100000000",
        "TOKEN_PER_CLIENT": "100000000",
    }
    # The routes take turns, `rounds` times, so that the machine's own drift over the run
    # (it moves by a fifth within a minute here) falls on every route alike.
    rounds = max(1, min(args.rounds, args.seconds))
    turn_s = args.seconds // rounds
    server = serve_pinned("server.asgi:app", port, core=0, env=env)
    results: dict[str, dict[str, Any]] = {}
    try:
        wait_http(base + "/healthz", 60, server, "granian serving the app")
        alice = sign_in(base, *DEMO_USER, scope="openid profile email")
        sid, access, sub = alice.sid, alice.access_token, alice.sub
        r = redis.Redis.from_url(redis_server.url)
        r.set("bench:key", "value")
        # Single-use codes for the token runs, written the way /authorize writes them.
        n_codes = 20_000 * turn_s + 1000  # per turn, far more than one core can consume
        codes = [secrets.token_urlsafe(24) for _ in range(n_codes * rounds)]
        # The public client's default path: PKCE S256 and ES256 tokens (one verifier for
        # every code: each code is still used once).
        verifier = secrets.token_urlsafe(48)
        challenge = b64url(hashlib.sha256(verifier.encode()).digest())
        record = json.dumps(
            {
                "client_id": "demo-spa",
                "redirect_uri": REDIRECT,
                "sub": sub,
                "scope": "openid",
                "nonce": "",
                "code_challenge": challenge,
                "auth_time": int(time.time()),
                "home": "us-east",
            }
        )
        pipe = r.pipeline(transaction=False)
        for code in codes:
            pipe.set(f"code:{{{code}}}", record, ex=3600)
        pipe.execute()
        token_scripts = []
        for turn in range(rounds):
            codes_file = work / f"codes-{turn}.txt"
            codes_file.write_text("\n".join(codes[turn * n_codes : (turn + 1) * n_codes]) + "\n")
            token_scripts.append(work / f"token-{turn}.lua")
            token_scripts[-1].write_text(
                TOKEN_LUA % (codes_file, urllib.parse.quote(REDIRECT, safe=""), verifier)
            )
        runs = {
            "baseline_redis_get": ("/bench/redis-get", {}),
            "session_validation": ("/session", {"Cookie": f"sid={sid}"}),
            "userinfo": ("/userinfo", {"Authorization": f"Bearer {access}"}),
            "token_issue": ("/token", {}),
        }
        stores = [p.process.pid for p in (redis_server, pg) if p.process is not None]
        turns: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
        for turn in range(rounds):
            for name, (path, headers) in runs.items():
                print(
                    f"measuring {name} for {turn_s} s (turn {turn + 1} of {rounds}) ...",
                    file=sys.stderr,
                )
                script = token_scripts[turn] if name == "token_issue" else None
                server0, stores0 = tree_cpu_seconds([server.pid]), tree_cpu_seconds(stores)
                ticks0 = _core_ticks()
                res = _wrk(base + path, turn_s, args.connections, headers, script)
                res["server_cpu_s"] = tree_cpu_seconds([server.pid]) - server0
                res["stores_cpu_s"] = tree_cpu_seconds(stores) - stores0
                res["ticks"] = [
                    (b1 - b0, t1 - t0)
                    for (b0, t0), (b1, t1) in zip(ticks0, _core_ticks(), strict=True)
                ]
                turns[name].append(res)
        results = {name: _combine(done) for name, done in turns.items()}
    finally:
        server.terminate()
        server.wait(timeout=15)
        redis_server.stop()
        pg.remove()
        shutil.rmtree(work, ignore_errors=True)
    baseline = results["baseline_redis_get"]["requests_per_s"]
    ratios = {k: round(results[k]["requests_per_s"] / baseline, 3) for k in GOALS}
    report = {
        "kind": "bench-server",
        "server": "granian, 1 worker pinned to core 0",
        "load": (
            f"wrk -t1 -c{args.connections} pinned to core 1, {args.seconds} s per route "
            f"in {rounds} turns, the routes taking turns"
        ),
        "results": results,
        "ratios_to_baseline": ratios,
        "goals": GOALS,
        "goals_met": {k: ratios[k] >= g for k, g in GOALS.items()},
    }
    print(
        f"{'route':<22}{'req/s':>10}{'cpu us':>8}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}"
        f"{'ratio':>8}{'goal':>7}"
    )
    for name, res in results.items():
        ratio = ratios.get(name)
        goal = GOALS.get(name)
        print(
            f"{name:<22}{res['requests_per_s']:>10,.0f}{res['server_cpu_us_per_request']:>8.0f}"
            f"{res['p50_ms']:>9.2f}{res['p99_ms']:>9.2f}"
            f"{res['non_2xx']:>9}{'' if ratio is None else f'{ratio:.2f}':>8}"
            f"{'' if goal is None else f'>={goal}':>7}"
            + ("" if goal is None else ("  met" if ratio >= goal else "  MISSED"))  # type: ignore[operator]
        )
    run_dir = new_run_dir(Path(args.results_dir), "bench", "server")
    write_json(run_dir / "bench-server.json", report)
    point_latest(run_dir)
    busy = {k: v["core_busy"] for k, v in results.items()}
    print("cpu us: the server's CPU per request; cores busy per route: " + json.dumps(busy))
    print(f"written: {run_dir / 'bench-server.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
