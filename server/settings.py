"""Server settings from the environment, with the defaults `make server` uses."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass


def _int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not an integer") from None
    if value <= 0:
        raise ValueError(f"{name}={text} must be > 0")
    return value


@dataclass(frozen=True)
class Settings:
    redis_url: str
    database_url: str
    region: str = "us-east"
    survival: str | None = None  # CockroachDB survival goal; None: topology.toml's
    issuer: str = "http://127.0.0.1:8000"
    demo_data: bool = True
    session_ttl_s: int = 4 * 3600  # seed §3: session TTL cut from 24 h to 4 h
    challenge_ttl_s: int = 15 * 60  # seed: ChallengeStore entries live 15 min
    access_ttl_s: int = 600
    refresh_ttl_s: int = 30 * 86400
    user_cache_ttl_s: int = 3600  # seed §2.3: Redis TTL 5 min - 1 h
    par_ttl_s: int = 600  # seed: PARRequestStore entries live 10 min
    device_ttl_s: int = 600
    device_interval_s: int = 5  # RFC 8628: clients poll every 5 s unless told otherwise
    bench_routes: bool = False  # /bench/redis-get, the baseline of make bench-server
    rate_window_s: int = 60
    login_per_ip: int = 600
    login_per_account: int = 20
    token_per_ip: int = 6000
    token_per_client: int = 60000
    # STEP_CPU=1: steps also record the event loop's CPU (calibration); off by default,
    # since reading a thread's CPU clock is a system call per step.
    step_cpu: bool = False
    # How long an idle HTTP connection stays open: 75 s, nginx's default, rather than
    # uvicorn's 5 s; an edge in front of the provider keeps its connections to it pooled.
    keep_alive_s: int = 75

    @classmethod
    def from_env(cls, redis_url: str, database_url: str) -> Settings:
        port = _int("PORT", 8000)
        return cls(
            redis_url=redis_url,
            database_url=database_url,
            region=os.environ.get("REGION", "us-east"),
            survival=os.environ.get("SURVIVAL") or None,
            bench_routes=os.environ.get("AUTHSCALE_BENCH_ROUTES") == "1",
            issuer=os.environ.get("ISSUER", f"http://127.0.0.1:{port}"),
            login_per_ip=_int("LOGIN_PER_IP", 600),
            login_per_account=_int("LOGIN_PER_ACCOUNT", 20),
            token_per_ip=_int("TOKEN_PER_IP", 6000),
            token_per_client=_int("TOKEN_PER_CLIENT", 60000),
            step_cpu=os.environ.get("STEP_CPU") == "1",
            keep_alive_s=_int("KEEP_ALIVE_S", 75),
        )

    @property
    def database_url_redacted(self) -> str:
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", self.database_url)
