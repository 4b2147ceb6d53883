"""Every request records the steps it performs: component, action, region, duration.

The names are those of `scenarios/data/operations.toml`, so a test can hold the server's
recorded sequence against the step list the simulator walks. The record travels back in a
standard `Server-Timing` header (`redis.get_session;desc="us-east";dur=0.412`).
"""

from __future__ import annotations

import time
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

    def step(self, component: str, action: str, region: str | None = None) -> _Timed:
        return _Timed(self, component, action, region or self.region)

    def header(self) -> str:
        return ", ".join(
            f'{s.component}.{s.action};desc="{s.region}";dur={s.ms:.3f}' for s in self.steps
        )


class _Timed:
    """`async with recorder.step(...)`: times the block and records it, even on error.

    A plain class rather than @asynccontextmanager: this runs several times per request.
    """

    __slots__ = ("action", "component", "rec", "region", "t0")

    def __init__(self, rec: Recorder, component: str, action: str, region: str) -> None:
        self.rec, self.component, self.action, self.region = rec, component, action, region
        self.t0 = 0.0

    async def __aenter__(self) -> None:
        self.t0 = time.perf_counter()

    async def __aexit__(self, *exc: object) -> None:
        ms = (time.perf_counter() - self.t0) * 1e3
        self.rec.steps.append(StepRecord(self.component, self.action, self.region, ms))


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
