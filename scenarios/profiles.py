"""Latency profiles: how long each step takes apart from queueing.

`network = "layer_figures"` takes a component's round trip from the profile itself, one
figure for the same region and one for a cross-region call (the seed's own figures).
`network = "rtt"` builds it from physics: the intra-region round trip, plus the topology's
RTT matrix and jitter when the component sits in another region; `access` then adds a
fixed cost on top where a component has one (a Durable Object's own round trip).
`write_quorum = "survival"` makes CockroachDB writes wait for a Raft quorum as the
topology's survival goal places it; `"included"` means the figure already covers it.

`network = "emulated"` (with `write_quorum = "emulated"`) is the profile `make calibrate`
writes: it models the local stack, one server process per region. Each step's time is
split as measured: `cpu`, the server's event-loop CPU, which queues at that region's
server process (one FCFS station: an event loop runs one ready callback at a time, in
order); `wait`, the rest of the step apart from the emulated wide-area round trip; and
that round trip itself, exactly as the server's region emulation waits it (the RTT to a
row's home region, and a quorum under REGION survival). `untraced` covers each
operation's time outside its steps (HTTP parsing, the response, the client), `prepare`
the CPU of the unmeasured requests a login or a token request needs first, `client` the
load generator's own CPU (its senders share one thread, which queues like a server's
event loop), and `calibration` the load run the figures came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from scenarios.distributions import Dist, Figure


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AccessFigures(_Frozen):
    same_region: Dist
    cross_region: Dist | None = None


class StepCost(_Frozen):
    """A measured step: CPU on the server's event loop, then the rest of its time."""

    cpu: Dist
    wait: Dist


class LoadClient(_Frozen):
    """The calibration run's load generator: one process (a traced run has one), whose
    senders' CPU queues on its one thread in order (one FCFS station). `send` is a
    request's CPU before it leaves, `receive` its CPU from the answer until the latency is
    taken (each with its share of the scheduler's wake-ups), and `after` the CPU that
    follows a request without delaying it: recording, preparing the next one, the load
    generator's other work."""

    send: Dist
    receive: Dist
    after: Dist


class SpeedPoint(_Frozen):
    """CPU per request offered in one traced load run of the calibration (its totals: the
    servers' event loops from /metrics, the load generator's process)."""

    run_id: str = Field(min_length=1)
    qps: float = Field(gt=0)
    servers_cpu_ms_per_request: float = Field(gt=0)
    load_generator_cpu_ms_per_request: float = Field(gt=0)
    # Every process on the machine (/proc/stat) beyond its idle stack's.
    machine_cpu_ms_per_request: float | None = Field(default=None, gt=0)
    # The stack's processes read directly: Redis and PostgreSQL, and the servers' threads
    # beside their event loops (HTTP, the password-hash workers).
    stores_cpu_ms_per_request: float | None = Field(default=None, ge=0)
    servers_other_cpu_ms_per_request: float | None = Field(default=None, ge=0)
    # Time runnable but waiting for a core (schedstat) per ms of the CPU used.
    servers_runqueue_wait_per_cpu_ms: float | None = Field(default=None, ge=0)
    load_generator_runqueue_wait_per_cpu_ms: float | None = Field(default=None, ge=0)
    hashes_runqueue_wait_per_cpu_ms: float | None = Field(default=None, ge=0)
    # The password hash's CPU per verification (the worker threads' own clocks).
    hash_cpu_ms: float | None = Field(default=None, gt=0)


def expected_cpu_ms(points: Sequence[SpeedPoint], qps: float) -> dict[str, float] | None:
    """CPU per request expected at `qps` from speed points in rising QPS: linear in QPS
    between them, held at the nearest point beyond them. None without points."""
    if not points:
        return None
    at = [p.qps for p in points]
    out = {
        "servers": float(np.interp(qps, at, [p.servers_cpu_ms_per_request for p in points])),
        "load_generator": float(
            np.interp(qps, at, [p.load_generator_cpu_ms_per_request for p in points])
        ),
    }
    for key, figures in (
        ("machine", [p.machine_cpu_ms_per_request for p in points]),
        ("stores", [p.stores_cpu_ms_per_request for p in points]),
        ("servers_other", [p.servers_other_cpu_ms_per_request for p in points]),
        ("hash", [p.hash_cpu_ms for p in points]),
    ):
        if all(m is not None for m in figures):
            out[key] = float(np.interp(qps, at, figures))  # type: ignore[arg-type]
    return out


class Scheduler(_Frozen):
    """How the machine's kernel shares a core (EEVDF): the base slice a thread is given
    before others are due, and the timer tick at which a running thread is reconsidered.
    `queues`: one per core with Linux's rules for moving threads between them
    (`per_core`, sim.cores.FairCorePool, the default: it reproduces the kernel's waits
    and moves, and came closer at 70 % of this machine's capacity on every calibration
    since calibrate measures there), or one run queue every core serves (`shared`,
    sim.cores.SharedFairCorePool; see the README)."""

    slice_ms: float = Field(gt=0)
    tick_ms: float = Field(gt=0)
    queues: Literal["shared", "per_core"] = "per_core"
    source: str = Field(min_length=3)
    # Measured from the kernel's trace of a calibration run (loadgen.schedtrace), for the
    # per-core queues: the share of wake-ups of a thread whose core was busy, with another
    # idle, that went to the idle core; and the share of the times a core went idle while
    # a thread that was not cache-hot waited on another core's queue that it pulled one.
    # Absent, or measured on a machine of other than the profile's cores (`moves_cores`):
    # the model follows the kernel's rules for both (SIS_UTIL; newidle balancing).
    busy_wake_share: float | None = Field(default=None, ge=0, le=1)
    idle_pull_share: float | None = Field(default=None, ge=0, le=1)
    # Measured likewise: of the wake-ups of a thread onto a core running another, per
    # "<woken group>><running group>" (the model's thread groups), the share that preempted
    # the running thread at once; where a pair has one, the model decides wake-up
    # preemption by it instead of EEVDF's rule (sim.cores.FairCorePool).
    wake_preempt_share: dict[str, float] = Field(default_factory=dict)
    moves_cores: int | None = Field(default=None, ge=1)
    moves_source: str = ""

    @model_validator(mode="after")
    def _wake_pairs(self) -> Scheduler:
        for pair, share in self.wake_preempt_share.items():
            woken, _, running = pair.partition(">")
            if not woken or not running:
                raise ValueError(
                    f"calibration.scheduler.wake_preempt_share: {pair!r} is not "
                    "'<woken group>><running group>'; calibrate again"
                )
            if not 0.0 <= share <= 1.0:
                raise ValueError(
                    f"calibration.scheduler.wake_preempt_share.{pair}: {share} is not in [0, 1]"
                )
        return self


class CacheMisses(_Frozen):
    """A cache's misses in a load run of the local stack: the keys every run starts
    without (a count), then a share of the lookups however warm (an invalidated or expired
    entry). Fitted by `make calibrate` from runs of different sizes."""

    cold_misses: float = Field(ge=0)
    steady_miss_ratio: float = Field(ge=0, le=1)
    lookups_per_request: float = Field(gt=0)
    source: str = Field(min_length=3)

    def hit_rate(self, qps: float, duration_s: float) -> float:
        """The expected hit rate of a run of `duration_s` seconds at `qps`."""
        lookups = self.lookups_per_request * qps * duration_s
        miss = self.steady_miss_ratio + (self.cold_misses / lookups if lookups > 0 else 1.0)
        return max(0.0, 1.0 - min(miss, 1.0))


class Conflicts(_Frozen):
    """How often an attempt of a transaction conflicts with a concurrent one and is
    retried (SQLSTATE 40001) on the local stack: each attempt conflicts with probability
    1 - exp(-per_qps * qps), the chance that a Poisson stream of other transactions, in
    proportion to the load, overlaps it. Fitted by `make calibrate` (maximum likelihood
    over its runs' attempts and retries)."""

    per_qps: float = Field(ge=0)
    source: str = Field(min_length=3)

    def per_attempt(self, qps: float) -> float:
        """The probability that one attempt conflicts at `qps`."""
        return float(-np.expm1(-self.per_qps * qps))


class RetryPolicy(_Frozen):
    """What the server does after a conflict: `max_attempts` in all, and before attempt
    n + 1 a backoff of backoff_ms * 2**(n - 1) plus up to jitter_ms more, drawn evenly."""

    max_attempts: int = Field(ge=1)
    backoff_ms: float = Field(ge=0)
    jitter_ms: float = Field(ge=0)
    source: str = Field(min_length=3)

    def backoff(self, retry: int, u: float) -> float:
        """The wait before retry number `retry` (1 for the second attempt), `u` in [0, 1)."""
        return self.backoff_ms * 2.0 ** (retry - 1) + u * self.jitter_ms


class Calibration(_Frozen):
    """The load run an `emulated` profile was fitted from, and what that run offered.

    `speed` holds the CPU per request of the fitted run and of any busier run measured
    with it: on this kind of machine a request's CPU falls as the load rises (a busy
    process keeps its caches warm and serves several ready requests per wake-up), so the
    model scales the fitted CPU times to the load it simulates (`cpu_scale`).
    """

    run_id: str = Field(min_length=1)
    regions: tuple[str, ...] = Field(min_length=1)
    qps: float = Field(gt=0)
    duration_s: float = Field(gt=0)
    only_operation: str | None = None
    requests: int = Field(ge=1)
    servers_per_region: int = Field(default=1, ge=1)
    capacity_qps: float = Field(gt=0)
    capacity_source: str = Field(min_length=3)
    speed: tuple[SpeedPoint, ...] = ()
    # Beside the profile: its runs' records of the cores' pace (sim.pace), which the model
    # replays from the run nearest the load it simulates.
    pace_file: str | None = Field(default=None, min_length=1)
    # The machine's cores during the run. With them the model runs every thread on those
    # cores, shared (sim.cores): the loops, the load generator, the `threaded_steps`, and
    # the rest of the machine's CPU (speed points' machine CPU less all of those).
    cores: int | None = Field(default=None, ge=1)
    # With it, the cores are shared as the kernel does (sim.cores.FairCorePool); without
    # it, in equal shares (processor sharing).
    scheduler: Scheduler | None = None
    # Cores' worth of CPU the machine was busy with before the load started (the median
    # of the calibration's runs' samples), and which runs' samples those were.
    idle_busy_cores: float = Field(default=0.0, ge=0)
    idle_busy_source: str = ""
    # Steps whose measured rest is CPU in a pool of the server's worker threads (the
    # password hash), with the pool's threads per server process, and what that CPU came
    # to per request offered in the fitted run.
    threaded_steps: dict[str, int] = Field(default_factory=dict)
    threaded_cpu_ms_per_request: float = Field(default=0.0, ge=0)
    # Hand-offs per request offered that wake another thread (a store call, the way in
    # and out): the rest of the machine's CPU is spread over them.
    hops_per_request: float = Field(default=0.0, ge=0)
    cache_hit_rate: dict[str, dict[str, Figure]]
    # Where two runs measured a cache: its misses by the run's size (stands in for
    # `cache_hit_rate` in a simulation of a given load and length).
    cache_misses: dict[str, dict[str, CacheMisses]] = Field(default_factory=dict)
    step_share: dict[str, Figure] = Field(default_factory=dict)
    # Per locality and operation, how often a transaction's attempt conflicts (operations
    # whose steps mark a transaction with `retry_from`), and what the server does then.
    retries: dict[str, dict[str, Conflicts]] = Field(default_factory=dict)
    retry_policy: RetryPolicy | None = None
    # Per operation, a factor on its `untraced` rest: the measured rest holds the fitted
    # run's own waits (the loop's queue, the cores), which the model adds again as it runs;
    # calibrate simulates the fitted run's load and takes out what the model added.
    rest_scale: dict[str, Figure] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _speed_points(self) -> Calibration:
        for op, figure in self.rest_scale.items():
            if not 0 < figure.value <= 4:
                raise ValueError(f"calibration.rest_scale.{op}: {figure.value} is not in (0, 4]")
        if self.retries and self.retry_policy is None:
            raise ValueError("calibration.retries needs calibration.retry_policy")
        for label, threads in self.threaded_steps.items():
            if threads < 1:
                raise ValueError(f"calibration.threaded_steps: {label} needs at least 1 thread")
        if self.speed:
            qps = [p.qps for p in self.speed]
            if qps != sorted(set(qps)):
                raise ValueError("calibration.speed: points must have distinct, rising qps")
            if not any(p.run_id == self.run_id for p in self.speed):
                raise ValueError(
                    f"calibration.speed: no point for the fitted run {self.run_id}; calibrate again"
                )
        return self

    def expected_cpu_ms(self, qps: float) -> dict[str, float] | None:
        """CPU per request expected at `qps` (see the module's `expected_cpu_ms`)."""
        return expected_cpu_ms(self.speed, qps)

    def cpu_scale(self, qps: float) -> dict[str, float]:
        """How much the fitted run's CPU times are scaled to model `qps`: the expected CPU
        per request there over the fitted run's, for the servers and the load generator,
        and per verification for the password hash (1 without speed points, with only the
        fitted run's, or where the points lack the hash's CPU)."""
        expected = self.expected_cpu_ms(qps)
        base = next((p for p in self.speed if p.run_id == self.run_id), None)
        if expected is None or base is None:
            return {"servers": 1.0, "load_generator": 1.0, "hash": 1.0}
        return {
            "servers": expected["servers"] / base.servers_cpu_ms_per_request,
            "load_generator": expected["load_generator"] / base.load_generator_cpu_ms_per_request,
            "hash": (
                expected["hash"] / base.hash_cpu_ms
                if "hash" in expected and base.hash_cpu_ms
                else 1.0
            ),
        }

    def rest_cpu_ms(self, qps: float) -> float:
        """CPU per request the machine spends at `qps` beyond the servers' loops, their
        worker threads' steps and the load generator: Redis, PostgreSQL, the servers' HTTP
        threads. Read from those processes where the runs did; otherwise the machine's
        whole figure less the others (which holds the kernel's loopback path too, but is a
        small difference of large, noisy numbers). 0 without either."""
        expected = self.expected_cpu_ms(qps)
        if expected is None:
            return 0.0
        threaded = self.threaded_cpu_ms_per_request * self.cpu_scale(qps)["hash"]
        if "stores" in expected and "servers_other" in expected:
            direct = expected["stores"] + expected["servers_other"]
            return max(direct - threaded, 0.0)
        if "machine" not in expected:
            return 0.0
        rest = expected["machine"] - expected["servers"] - expected["load_generator"] - threaded
        return max(rest, 0.0)


class Profile(_Frozen):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    description: str = Field(min_length=3)
    network: Literal["layer_figures", "rtt", "emulated"]
    write_quorum: Literal["included", "survival", "emulated"]
    edge: dict[str, Dist] = Field(default_factory=dict)
    access: dict[str, AccessFigures] = Field(default_factory=dict)
    client_cpu: dict[str, Dist] = Field(default_factory=dict)
    calibration: Calibration | None = None
    steps: dict[str, StepCost] = Field(default_factory=dict)
    untraced: dict[str, StepCost] = Field(default_factory=dict)
    prepare: dict[str, Dist] = Field(default_factory=dict)
    client: LoadClient | None = None

    @model_validator(mode="after")
    def _emulated_has_measurements(self) -> Profile:
        emulated = self.network == "emulated"
        if emulated != (self.write_quorum == "emulated"):
            raise ValueError('network = "emulated" goes with write_quorum = "emulated"')
        if emulated and (self.calibration is None or not self.steps):
            raise ValueError(
                'network = "emulated" needs [calibration] and [steps] (written by make calibrate)'
            )
        if not emulated and (self.calibration is not None or self.steps or self.client):
            raise ValueError(
                '[calibration], [steps] and [client] belong to network = "emulated" only'
            )
        return self

    @property
    def emulated(self) -> bool:
        return self.network == "emulated"
