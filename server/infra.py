"""Real Redis and PostgreSQL servers started by the harness itself, on ports of their own.

`make server` uses them when REDIS_URL / DATABASE_URL are not set, and the fault tests
use them because they must stop a server without touching the machine's own. The
binaries are the machine's (`redis-server` or `valkey-server`, and PostgreSQL's `initdb`,
`pg_ctl`, `postgres`); PostgreSQL refuses to run as root, so as root its data directory
belongs to an unprivileged system user created for the purpose.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

PG_USER = "authscale"
PG_ROOT = Path(tempfile.gettempdir()) / "authscale-pg"


class InfraError(Exception):
    pass


def free_port(avoid: frozenset[int] = frozenset()) -> int:
    """A port the kernel just found free on loopback, never one of `avoid`."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port


def free_port_block(n: int, low: int = 20000, high: int = 32000) -> int:
    """The first of `n` consecutive free loopback ports between `low` and `high`.

    Below the kernel's ephemeral range (32768+ here), so neither `free_port` nor an
    outgoing connection can take one of them between this check and their use.
    """
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(low, high - n)
        if all(_bindable(base + i) for i in range(n)):
            return base
    raise InfraError(f"no {n} consecutive free ports between {low} and {high} on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_port(port: int, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise InfraError(f"{what} did not start listening on 127.0.0.1:{port} within {timeout:g} s")


def _binary(*names: str, hint: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    for name in names:
        for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            if (base / name).exists():
                return str(base / name)
    raise InfraError(f"none of {', '.join(names)} is installed; {hint}")


@dataclass
class RedisServer:
    """A redis-server that keeps nothing on disk (a restart starts it empty)."""

    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = _binary(
            "redis-server", "valkey-server", hint="install Debian's redis-server, or set REDIS_URL"
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _wait_port(self.port, "redis-server")
        (self.directory / "redis.pid").write_text(str(self.process.pid))
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def _pg_user() -> tuple[int, int] | None:
    """As root: the uid/gid PostgreSQL runs as (created if missing). Otherwise None."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(PG_USER)
    return entry.pw_uid, entry.pw_gid


@dataclass
class PostgresServer:
    """A PostgreSQL cluster in `directory`, trust auth on 127.0.0.1 only."""

    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    pid_dir: Path | None = None  # where `make stop` finds the pid: the caller's folder

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> PostgresServer:
        hint = "install PostgreSQL's server binaries, or set DATABASE_URL"
        initdb = _binary("initdb", hint=hint)
        postgres = _binary("postgres", hint=hint)
        ids = _pg_user()
        self.pid_dir = self.pid_dir or self.directory
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        user, group = ids if ids is not None else (None, None)
        extra_groups: list[int] | None = [] if ids is not None else None
        if ids is not None and not self.directory.is_relative_to(PG_ROOT):
            # The unprivileged user may not be able to enter the caller's folder (a 0700
            # temporary folder, a private clone): keep the cluster under /tmp instead,
            # in a folder named after the caller's, so a restart finds it again.
            key = hashlib.sha1(str(self.directory.resolve()).encode()).hexdigest()[:12]
            self.directory.mkdir(parents=True, exist_ok=True)
            self.directory = PG_ROOT / key
            PG_ROOT.mkdir(mode=0o755, exist_ok=True)
            self.directory.mkdir(mode=0o700, exist_ok=True)
            os.chown(self.directory, *ids)
        self.directory.mkdir(parents=True, exist_ok=True)
        data = self.directory / "data"
        if not (data / "PG_VERSION").exists():
            done = subprocess.run(
                [initdb, "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8"],
                capture_output=True,
                text=True,
                user=user,
                group=group,
                extra_groups=extra_groups,
            )
            if done.returncode != 0:
                raise InfraError(f"initdb failed in {data}: {done.stderr.strip()[-500:]}")
        self.port = self.port or free_port()
        log = (self.directory / "postgres.log").open("ab")
        if ids is not None:
            os.chown(self.directory / "postgres.log", *ids)
        self.process = subprocess.Popen(
            [
                postgres,
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.directory}",
                "-c",
                "fsync=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=user,
            group=group,
            extra_groups=extra_groups,
        )
        _wait_port(self.port, "postgres")
        (self.pid_dir / "postgres.pid").write_text(str(self.process.pid))
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: PostgreSQL's smart shutdown
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def remove(self) -> None:
        """Stop and delete the cluster's files."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def wait_http(
    url: str, timeout: float, process: subprocess.Popen[bytes] | None = None, what: str = ""
) -> None:
    """Until `url` answers 200; an InfraError if it does not in time or `process` exits."""
    what = what or url
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise InfraError(f"{what} exited ({process.returncode}) before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise InfraError(f"{what} did not answer {url} within {timeout:g} s")


def serve_pinned(
    app: str, port: int, core: int, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """granian serving the ASGI `app` ("module:attr") with one worker pinned to `core`."""
    granian = shutil.which("granian", path=str(Path(sys.executable).parent)) or "granian"
    return subprocess.Popen(
        ["taskset", "-c", str(core), granian, "--interface", "asgi", "--workers", "1",
         "--host", "127.0.0.1", "--port", str(port), "--no-log", app],
        env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def tree_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes and all their descendants (threads included);
    a process gone meanwhile counts nothing."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                t = proc.cpu_times()
                total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total
