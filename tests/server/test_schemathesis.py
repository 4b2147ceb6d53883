"""Schemathesis generates requests from /openapi.json against a running server process:
no 5xx for any input, and every response conforms to the documented schema."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from server.infra import PostgresServer, RedisServer, free_port, wait_http

REPO = Path(__file__).resolve().parents[2]
CHECKS = ",".join(
    (
        "not_a_server_error",
        "response_schema_conformance",
        "status_code_conformance",
        "content_type_conformance",
    )
)


def test_generated_requests_find_no_server_error(
    tmp_path: Path, stores: tuple[RedisServer, PostgresServer]
) -> None:
    redis_server, pg = stores
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "REDIS_URL": redis_server.url,
        "DATABASE_URL": pg.url,
        "AUTHSCALE_RUN_DIR": str(tmp_path),
        # Generated logins must reach the code behind the limiter, not only the 429.
        "LOGIN_PER_IP": "1000000",
        "LOGIN_PER_ACCOUNT": "1000000",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "server"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 30, server, "the server")
        st = Path(sys.executable).with_name("st")
        done = subprocess.run(
            [
                str(st),
                "run",
                f"http://127.0.0.1:{port}/openapi.json",
                "-c",
                CHECKS,
                "-n",
                "25",
                "--generation-deterministic",
                "--phases",
                "coverage,fuzzing",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,  # its cache goes there, not into the source tree
        )
    finally:
        server.terminate()
        server.wait(timeout=15)
    assert done.returncode == 0, done.stdout[-3000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert counts is not None, done.stdout[-2000:]
    assert int(counts.group(1)) == int(counts.group(2)) > 200
