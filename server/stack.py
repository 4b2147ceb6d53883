"""`make stack REGIONS=ap-ne,us-west`: one server per region, one Redis per region, one
shared PostgreSQL, all on this machine; each server emulates the RTTs of its region.

Ports: region i listens on BASE_PORT + i (8001, 8002, ...). Every server shares one issuer,
so a token issued in one region is accepted in another. `make stop` stops it all.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from server.emulation import Emulation
from server.infra import InfraError, PostgresServer, RedisServer, free_port, wait_http

RUN_DIR = Path(".run/stack")


@dataclass
class Stack:
    regions: list[str]
    base_port: int = 8001
    database_url: str | None = None
    survival: str | None = None
    run_dir: Path = RUN_DIR
    issuer: str = "http://127.0.0.1:8000"
    limits: dict[str, str] = field(default_factory=dict)  # env overrides, e.g. LOGIN_PER_IP
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    stores: list[RedisServer | PostgresServer] = field(default_factory=list)
    redis: dict[str, RedisServer] = field(default_factory=dict)
    postgres: PostgresServer | None = None  # when the stack started its own

    def url(self, region: str) -> str:
        return f"http://127.0.0.1:{self.base_port + self.regions.index(region)}"

    def start(self, timeout: float = 60.0) -> Stack:
        for region in self.regions:
            Emulation.load(region, self.survival)  # unknown region or goal: fail first
        if len(set(self.regions)) != len(self.regions):
            raise ValueError(f"a region is listed twice: {','.join(self.regions)}")
        # A store's port is never one a region's server is about to listen on.
        ours = frozenset(self.base_port + i for i in range(len(self.regions)))
        try:
            if not self.database_url:
                pg = PostgresServer(self.run_dir / "postgres", free_port(ours)).start()
                self.stores.append(pg)
                self.postgres = pg
                self.database_url = pg.url
            for region in self.regions:
                redis = RedisServer(self.run_dir / region / "redis", free_port(ours)).start()
                self.stores.append(redis)
                self.redis[region] = redis
                env = {
                    **os.environ,
                    "REGION": region,
                    "REDIS_URL": redis.url,
                    "DATABASE_URL": self.database_url,
                    "PORT": str(self.base_port + self.regions.index(region)),
                    "ISSUER": self.issuer,
                    "AUTHSCALE_RUN_DIR": str(self.run_dir / region),
                    **({"SURVIVAL": self.survival} if self.survival else {}),
                    **self.limits,
                }
                log = (self.run_dir / region / "server.log").open("ab")
                self.processes[region] = subprocess.Popen(
                    [sys.executable, "-m", "server"], env=env, stdout=log, stderr=subprocess.STDOUT
                )
                # One at a time: the first applies the schema and creates the demo data.
                self._wait_healthy(region, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self, region: str, timeout: float) -> None:
        proc = self.processes[region]
        try:
            wait_http(self.url(region) + "/healthz", timeout, proc, f"the {region} server")
        except InfraError as exc:
            if proc.poll() is None:
                raise
            log = (self.run_dir / region / "server.log").read_text()[-800:]
            raise InfraError(f"{exc}:\n{log}") from None

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.processes.clear()
        for store in reversed(self.stores):
            store.stop()
        self.stores.clear()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make stack")
    p.add_argument("--regions", default="ap-ne,us-west")
    p.add_argument("--base-port", type=int, default=8001)
    p.add_argument("--survival", default=None)
    args = p.parse_args(argv)
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    stack = Stack(regions, args.base_port, os.environ.get("DATABASE_URL") or None, args.survival)
    try:
        stack.start()
    except (InfraError, ValueError) as exc:
        print(f"authscale stack: error: {exc}", file=sys.stderr)
        return 2
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    (RUN_DIR / "stack.pid").write_text(str(os.getpid()))
    print("authscale stack: up (Ctrl-C or make stop to stop)")
    for region in regions:
        print(f"  {region:<8} {stack.url(region)}")
    stopping = False

    def on_signal(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while not stopping:
            for region, proc in stack.processes.items():
                if proc.poll() is not None:
                    print(f"authscale stack: the {region} server exited", file=sys.stderr)
                    stopping = True
            time.sleep(0.5)
    finally:
        stack.stop()
        (RUN_DIR / "stack.pid").unlink(missing_ok=True)
        print("authscale stack: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
