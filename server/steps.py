"""Every request records the steps it performs: component, action, region, duration.

The names are those of `scenarios/data/operations.toml`, so a test can hold the server's
recorded sequence against the step list the simulator walks. The record travels back in a
standard `Server-Timing` header (`redis.get_session;desc="us-east";dur=0.412`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class StepRecord:
    component: str
    action: str
    region: str
    ms: float


@dataclass
class Recorder:
    region: str
    started: float = field(default_factory=time.perf_counter)
    steps: list[StepRecord] = field(default_factory=list)

    def handled(self) -> None:
        """The edge step: request parsing up to here."""
        self.steps.append(
            StepRecord("edge", "handle", self.region, (time.perf_counter() - self.started) * 1e3)
        )

    @asynccontextmanager
    async def step(
        self, component: str, action: str, region: str | None = None
    ) -> AsyncIterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            ms = (time.perf_counter() - t0) * 1e3
            self.steps.append(StepRecord(component, action, region or self.region, ms))

    def header(self) -> str:
        return ", ".join(
            f'{s.component}.{s.action};desc="{s.region}";dur={s.ms:.3f}' for s in self.steps
        )


_current: ContextVar[Recorder | None] = ContextVar("authscale_steps", default=None)


def current() -> Recorder:
    rec = _current.get()
    if rec is None:  # outside a request (start-up work): record nowhere
        rec = Recorder("-")
    return rec


def begin(region: str) -> Recorder:
    rec = Recorder(region)
    _current.set(rec)
    return rec


def parse_server_timing(header: str) -> list[tuple[str, str, str]]:
    """(component, action, region) of each step in a Server-Timing header."""
    out = []
    for part in filter(None, (p.strip() for p in header.split(","))):
        name, *params = part.split(";")
        component, _, action = name.partition(".")
        region = next((p[6:-1] for p in params if p.startswith('desc="')), "")
        out.append((component, action, region))
    return out
