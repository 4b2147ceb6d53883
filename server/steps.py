"""Every request records the steps it performs: component, action, region, duration.

The names are those of `scenarios/data/operations.toml`, so a test can hold the server's
recorded sequence against the step list the simulator walks. The record travels back in a
standard `Server-Timing` header (`redis.get_session;desc="us-east";dur=0.412;cpu=0.081`):
`dur` is the step's wall time, `cpu` the event-loop thread's CPU time inside it, and
`wan` (when not zero) the round trip the region emulation waited in it. A last entry
`app;dur=…;cpu=…` covers the request from the middleware to the response's first byte,
so calibration can tell the steps' time from the rest (`make calibrate`).

`cpu` and the `app` entry's cpu are there only when the server runs with STEP_CPU=1
(make calibrate's stack does): reading a thread's CPU clock is a system call per step.
With them the `app` entry carries `t0`, the server's time.perf_counter() in seconds when
the middleware took the request: CLOCK_MONOTONIC, one clock for every process on a Linux
machine, so a load generator on the same machine can tell its own part of the latency
from the time before the server's clock started and after it stopped.
`cpu` is the thread's CPU clock, which also counts any other request that ran on the
event loop while this step awaited: exact when requests do not overlap (a light load),
as calibration runs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class StepRecord:
    component: str
    action: str
    region: str
    ms: float
    cpu_ms: float = 0.0
    wan_ms: float = 0.0


def _no_clock() -> float:
    return 0.0


@dataclass
class Recorder:
    region: str
    # time.thread_time with STEP_CPU=1; otherwise a clock that always reads 0
    cpu_clock: Callable[[], float] = _no_clock
    started: float = field(default_factory=time.perf_counter)
    started_cpu: float = 0.0
    steps: list[StepRecord] = field(default_factory=list)
    wan_ms: float = 0.0  # emulated round trips waited so far in this request
    # Loop CPU that ran during off-loop steps: other requests', left out of `app`'s cpu.
    others_cpu_ms: float = 0.0

    def handled(self) -> None:
        """The edge step: request parsing up to here."""
        self.steps.append(
            StepRecord(
                "edge",
                "handle",
                self.region,
                (time.perf_counter() - self.started) * 1e3,
                (self.cpu_clock() - self.started_cpu) * 1e3,
            )
        )

    def waited(self, ms: float, loop_cpu_ms: float) -> None:
        """The region emulation waited `ms` of wide-area round trip in the current step,
        during which the event loop spent `loop_cpu_ms` on other requests."""
        self.wan_ms += ms
        self.others_cpu_ms += loop_cpu_ms

    def step(
        self, component: str, action: str, region: str | None = None, on_loop: bool = True
    ) -> _Timed:
        """Time a step. `on_loop=False`: its work runs on another thread (the password
        hash), so its event-loop CPU is recorded as 0; the clock would otherwise count the
        other requests the loop served meanwhile."""
        return _Timed(self, component, action, region or self.region, on_loop)

    def header(self) -> str:
        total = (time.perf_counter() - self.started) * 1e3
        with_cpu = self.cpu_clock is not _no_clock
        parts = [
            f'{s.component}.{s.action};desc="{s.region}";dur={s.ms:.3f}'
            + (f";cpu={s.cpu_ms:.3f}" if with_cpu else "")
            + (f";wan={s.wan_ms:.3f}" if s.wan_ms else "")
            for s in self.steps
        ]
        app = f"app;dur={total:.3f}"
        if with_cpu:
            cpu = (self.cpu_clock() - self.started_cpu) * 1e3 - self.others_cpu_ms
            app += f";cpu={cpu:.3f};t0={self.started:.6f}"
        return ", ".join([*parts, app])


class _Timed:
    """`async with recorder.step(...)`: times the block and records it, even on error.

    A plain class rather than @asynccontextmanager: this runs several times per request.
    """

    __slots__ = ("action", "component", "cpu0", "on_loop", "others0", "rec", "region", "t0", "wan0")

    def __init__(
        self, rec: Recorder, component: str, action: str, region: str, on_loop: bool
    ) -> None:
        self.rec, self.component, self.action, self.region = rec, component, action, region
        self.on_loop = on_loop
        self.t0 = self.cpu0 = self.wan0 = self.others0 = 0.0

    async def __aenter__(self) -> None:
        self.wan0 = self.rec.wan_ms
        self.others0 = self.rec.others_cpu_ms
        self.cpu0 = self.rec.cpu_clock()
        self.t0 = time.perf_counter()

    async def __aexit__(self, *exc: object) -> None:
        ms = (time.perf_counter() - self.t0) * 1e3
        rec = self.rec
        # Less what the loop spent on other requests while this one slept (emulated WAN).
        cpu = (rec.cpu_clock() - self.cpu0) * 1e3 - (rec.others_cpu_ms - self.others0)
        if not self.on_loop:
            rec.others_cpu_ms += cpu
            cpu = 0.0
        rec.steps.append(
            StepRecord(self.component, self.action, self.region, ms, cpu, rec.wan_ms - self.wan0)
        )


_current: ContextVar[Recorder | None] = ContextVar("authscale_steps", default=None)


def current() -> Recorder:
    rec = _current.get()
    if rec is None:  # outside a request (start-up work): record nowhere
        rec = Recorder("-")
    return rec


def begin(region: str, cpu: bool = False) -> Recorder:
    rec = Recorder(region, time.thread_time) if cpu else Recorder(region)
    rec.started_cpu = rec.cpu_clock()
    _current.set(rec)
    return rec


def parse_server_timing(header: str) -> list[tuple[str, str, str]]:
    """(component, action, region) of each step in a Server-Timing header."""
    out = []
    for part in filter(None, (p.strip() for p in header.split(","))):
        name, *params = part.split(";")
        component, _, action = name.partition(".")
        if not action:  # the request's own `app` entry, not a step
            continue
        region = next((p[6:-1] for p in params if p.startswith('desc="')), "")
        out.append((component, action, region))
    return out
