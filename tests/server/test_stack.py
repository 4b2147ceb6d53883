"""make stack: real server processes per region, each with its own Redis, one database."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from server.infra import PostgresServer, RedisServer, free_port, free_port_block
from server.stack import Stack
from server.steps import parse_server_timing

REPO = Path(__file__).resolve().parents[2]


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, dict(r.headers), r.read()


def test_stack_runs_one_server_per_region(
    tmp_path: Path, stores: tuple[RedisServer, PostgresServer]
) -> None:
    _, pg = stores
    base = free_port_block(2)
    stack = Stack(["ap-ne", "us-west"], base, pg.url, run_dir=tmp_path / "stack").start()
    try:
        for i, region in enumerate(["ap-ne", "us-west"]):
            assert stack.url(region) == f"http://127.0.0.1:{base + i}"
            status, headers, body = _get(stack.url(region) + "/healthz")
            assert status == 200 and json.loads(body)["region"] == region
            status, headers, body = _get(stack.url(region) + "/login")
            steps = parse_server_timing({k.lower(): v for k, v in headers.items()}["server-timing"])
            assert steps == [("edge", "handle", region), ("redis", "issue_challenge", region)]
        # Each region has its own Redis: the stores differ.
        assert len({s.url for s in stack.stores}) == 2
        # An idle connection outlives uvicorn's default keep-alive (5 s): KEEP_ALIVE_S,
        # 75 s unless set, as an edge keeps its connections to the provider pooled.
        conn = http.client.HTTPConnection("127.0.0.1", base, timeout=5)
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() and conn.sock is not None
        sock = conn.sock
        time.sleep(6)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200 and conn.sock is sock
        conn.close()
        processes = list(stack.processes.values())
    finally:
        stack.stop()
    assert all(p.poll() is not None for p in processes)


def test_stack_refuses_an_unknown_region(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown REGION='atlantis'"):
        Stack(["ap-ne", "atlantis"], free_port(), run_dir=tmp_path).start()


def test_make_stop_with_nothing_running(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server.stop"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0 and "nothing to stop" in done.stdout


def test_stack_ports_stay_clear_of_each_other(monkeypatch: pytest.MonkeyPatch) -> None:
    # The block sits below the ephemeral range, every port of it free to bind.
    base = free_port_block(4)
    assert base >= 20000 and base + 3 < 32000
    for port in range(base, base + 4):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    # A store never takes a port a region's server is about to listen on: the kernel's
    # first answer here is one of them, and free_port asks again.
    answers = iter([base, base + 1, base + 7])

    class OneSocket(socket.socket):
        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", next(answers))

    monkeypatch.setattr(socket, "socket", OneSocket)
    assert free_port(frozenset({base, base + 1})) == base + 7
