"""The system model: arrivals, request processes walking their step lists, recording.

Time is in milliseconds. Requests arrive as one Poisson stream at the scenario's rate,
split by edge region, locality, home region and operation. Each request walks its
operation's compiled step list: edge steps are pure delays (the workers are
auto-scaled), every other step travels the network to a station chosen by hash routing
and queues there. A request is one SimPy event, scheduled once per station visit with
every delay since its previous visit merged into that one wait.
"""

from __future__ import annotations

import gc
import math
from array import array
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import simpy

from scenarios.loader import World
from scenarios.operations import Step
from scenarios.workload import LOCALITIES, OPERATIONS
from sim.components import (
    CockroachRegion,
    D1Database,
    DurableObjectNamespace,
    Network,
    RedisCluster,
    delay_of,
)
from sim.cores import CorePool, CoreThread, FairCorePool, SharedFairCorePool
from sim.errors import SimulationError
from sim.queues import FcfsStation, TurnStation
from sim.sampling import Stream, stream_of, uniform01

# Requests that record their per-step times (for "which step dominates"): every request of
# a cell until it has TRACE_MIN of them, so rare cells are covered, then one in TRACE_EVERY.
TRACE_MIN = 1000
TRACE_EVERY = 64
ARRIVAL_BLOCK = 1024  # arrivals drawn and scheduled at once

# A station a request visits: one whose departures are known on arrival, or a thread on
# the machine's shared cores (the local stack), which calls back when its work is done.
Station = FcfsStation | CoreThread | CorePool


@dataclass(frozen=True)
class RunConfig:
    """One replication of one architecture."""

    architecture: str
    qps: float
    duration_ms: float
    warmup_ms: float
    batches: int
    reduction: int
    seed: int
    replication: int
    # Piecewise-constant offered load as (start_ms, end_ms, qps); empty: `qps` throughout.
    rate_schedule: tuple[tuple[float, float, float], ...] = ()
    # The local stack only: the machine's pace replayed on the cores (sim.pace).
    pace: tuple[float, ...] = ()
    pace_period_ms: float = 10.0
    # ... and the CPU per request those runs measured, over what the profile expects at
    # this load: factors on the servers' and the load generator's CPU (sim.pace).
    speed: tuple[float, float] = (1.0, 1.0)


@dataclass(slots=True)
class CompiledStep:
    label: str
    queued: bool
    delay: Stream | None = None
    count: int = 1
    targets: Sequence[tuple[Station, Stream]] = field(default_factory=list)
    service: Stream | None = None
    post: Stream | None = None
    outcome: int | None = None
    hit_rate: float = 0.0
    when: int | None = None
    when_hit: bool = False
    share: float = 1.0
    # Failure scenarios only: `guard` decides each visit's route from component state.
    guard: Callable[[_Request, CompiledStep, float], Any] | None = None
    step: Step | None = None
    src: str = ""
    gateway: str = ""
    region: str = ""
    warmth: Any = None
    # The local stack's second visit of one step (to a worker thread, to the cores): it
    # runs exactly when the step before it ran.
    with_previous: bool = False
    # The end of a transaction that conflicts with probability `retry` per attempt: then
    # the request backs off and goes back to step `retry_to`, where the transaction began.
    retry: float = 0.0
    retry_to: int = 0
    # The local stack's steps on the server's event loop: where the model's wait for the
    # loop is recorded. On the server a step that awaits (a store call, the password hash
    # on a worker thread) keeps its clock running until its coroutine is back on the loop,
    # and the steps that only compute run on without waiting; before the first await the
    # middleware's clock has not started (the time outside the steps). The model queues
    # each step's CPU at the loop, so it records the wait under the label of the last step
    # that awaited, or as outside the steps (`yields`: this step awaits).
    on_loop: bool = False
    yields: bool = False
    # A step of the loop that only computes, run in the same visit as the step after it:
    # the server's coroutine runs on from one to the next without giving the loop up, so
    # it waits for the loop once, where the model would otherwise queue each step's CPU
    # behind other requests' (`_Request.carry` holds its CPU until that visit).
    joins_next: bool = False


class _Request(simpy.Event):
    """The state of one request in flight, and the event that carries it between stations.

    A request is scheduled with `env.schedule` once per station visit, its callbacks list
    reset each time: one long-lived event per request instead of a new Timeout (and list)
    per visit, which is most of what a visit would otherwise cost.
    """

    __slots__ = (
        "attempts",
        "carried",
        "carry",
        "done_unqueued",
        "extra",
        "hits",
        "last_awaited",
        "pending",
        "post",
        "queued",
        "route",
        "rtype",
        "spent",
        "station",
        "step",
        "step_start",
        "t0",
        "visits",
    )

    def __init__(
        self,
        env: simpy.Environment,
        t0: float,
        rtype: RequestType,
        hits: list[bool],
        spent: list[tuple[str, float]] | None,
    ) -> None:
        self.env = env
        self._ok = True
        self._value = None
        self.t0 = t0
        self.rtype = rtype
        self.hits = hits
        self.spent = spent
        self.pending = 0.0
        self.step = 0
        self.visits = 0
        self.step_start = 0.0
        self.station: Station | None = None
        self.route: list[tuple[Station, Stream, float]] | None = None
        self.extra = 0.0
        self.post: Stream | None = None
        self.attempts = 1
        # Traced requests at a step `on_loop`: when the visit would end had it not waited
        # for the loop (its arrival plus its work), and the step's waits so far.
        self.done_unqueued = 0.0
        self.queued = 0.0
        # The label of the last step that awaited: the next wait for the loop is recorded
        # under it (see CompiledStep.on_loop; empty: the time outside the steps).
        self.last_awaited = ""
        # CPU of the steps that join the next one (CompiledStep.joins_next), to be served
        # in its first visit; `carried`: how much that visit served, which its step's own
        # time leaves out (it is booked under the steps that ran it).
        self.carry = 0.0
        self.carried = 0.0


@dataclass(slots=True)
class RequestType:
    """One (edge region, home region, operation) combination, compiled for speed."""

    cell: int
    steps: list[CompiledStep]
    outcomes: int
    edge: str = ""
    home: str = ""
    operation: str = ""
    backend: str = ""


def node_counts(world: World, architecture: str) -> dict[str, int]:
    """How many interchangeable stations each hash-routed pool has in the full system."""
    topo = world.topology
    if architecture == "hybrid":
        return {
            "redis primaries per region": topo.redis.primaries_per_region,
            "crdb nodes per region": topo.crdb.nodes_per_region,
        }
    counts = {f"{n} shards": ns.shards for n, ns in topo.durable_objects.namespaces.items()}
    counts["d1 primaries"] = 1
    return counts


def max_reduction(world: World, architecture: str) -> int:
    """Largest factor that divides every pool: the finest exact reduction."""
    return math.gcd(*node_counts(world, architecture).values())


class SystemModel:
    """Builds the components for one architecture and runs one replication."""

    def __init__(self, world: World, config: RunConfig, faults: Any = None) -> None:
        full = max_reduction(world, config.architecture)
        if config.reduction < 1 or full % config.reduction:
            raise SimulationError(
                f"reduction {config.reduction} does not divide every node pool of the "
                f"{config.architecture} design {node_counts(world, config.architecture)}; "
                f"use a divisor of {full}"
            )
        self.world = world
        self.config = config
        self.env = simpy.Environment()
        self.rng = np.random.default_rng([config.seed, config.replication])
        self.network = Network(world, self.rng)
        self._u = uniform01(self.rng)
        self.faults = faults
        if faults is not None:
            faults.bind(self)
        self._build_components()
        if faults is not None and self.cores is not None:
            raise SimulationError(
                "failure drills model the hyperscale designs; the local profile has none"
            )
        self.cells = [
            (op, loc, region)
            for op in OPERATIONS
            for loc in self._localities()
            for region in world.topology.regions
        ]
        self._cell_index = {c: i for i, c in enumerate(self.cells)}
        self._types_by_key: dict[tuple[str, str, str, str], RequestType] = {}
        self.types = self._compile_types()
        b = config.batches
        self.latencies = [array("d") for _ in range(len(self.cells) * b)]
        self.error_kinds: list[dict[str, int]] = [{} for _ in self.cells]
        self.step_ms: dict[tuple[int, str], float] = {}
        self.traced = [0] * len(self.cells)
        self.retried = [0] * len(self.cells)  # requests whose transaction was retried
        self.arrived = 0
        self.completed = 0
        # The local stack's runs keep every measured request's latency and cell in the
        # order they completed, as the load generator's trace does: for slow spells.
        self.in_order: tuple[array[float], array[int]] | None = (
            (array("d"), array("i")) if self.cores is not None else None
        )
        # ... and every traced request's latency and steps per cell, for the steps of each
        # cell's slowest tenth (sim.stats.slowest_tenth_steps), as `make compare` reads the trace's.
        self.traced_rows: list[list[tuple[float, list[tuple[str, float]]]]] | None = (
            [[] for _ in self.cells] if self.cores is not None else None
        )
        self._timeout_ms = world.workload.client_timeout_ms.value
        # Shared by every request: SimPy only reads an event's callbacks list.
        self._on_arrival: list[Callable[[Any], None]] = [self._resume]
        self.timeline: Any = None
        if faults is not None:
            self._on_arrival = [self._resume_faulty]
            faults.attach(self)

    # -- construction --------------------------------------------------------------
    def _localities(self) -> tuple[str, ...]:
        return LOCALITIES if self.config.architecture == "hybrid" else ("all",)

    def _build_components(self) -> None:
        topo, d, rng = self.world.topology, self.config.reduction, self.rng
        self.redis = {
            r: RedisCluster(r, topo.redis.primaries_per_region // d, self.world, rng)
            for r in topo.regions
        }
        self.crdb = {
            r: CockroachRegion(r, topo.crdb.nodes_per_region // d, self.world, rng)
            for r in topo.regions
        }
        self.durable_objects = {
            n: DurableObjectNamespace(n, ns.shards // d, self.world, rng)
            for n, ns in topo.durable_objects.namespaces.items()
        }
        self.d1 = D1Database(self.world, rng)
        self.extra_stations: list[FcfsStation] = []  # added by failure scenarios
        self.edge = {a: stream_of(dist, rng) for a, dist in self.world.profile.edge.items()}
        prof = self.world.profile
        self.app: dict[str, Station] = {}
        self.cpu_scale = {"servers": 1.0, "load_generator": 1.0, "hash": 1.0}
        self.cores: CorePool | None = None
        self.hop_ms = 0.0
        self.hop: Stream = _ZERO
        self.threaded: dict[str, dict[str, CoreThread]] = {}
        if prof.emulated:
            # The local stack: one server process per region, whose event loop runs one
            # ready callback at a time in the order they became ready (FCFS).
            cal = prof.calibration
            assert cal is not None
            servers = cal.servers_per_region
            if cal.cores is None:
                self.app = {r: FcfsStation(f"app/{r}/loop", servers) for r in topo.regions}
            else:
                # ... and every thread of the machine waits for one of its cores, shared
                # as the kernel shares them (EEVDF to the tick; one run queue for all the
                # cores or one per core, as the profile says; sim.cores), or equally
                # where the profile lacks the scheduler's figures.
                sched = cal.scheduler
                # The kernel's measured shares of moves hold for the cores they were
                # measured on; a profile edited to other cores follows the kernel's rules.
                measured = sched is not None and sched.moves_cores == cal.cores
                cores = self.cores = (
                    CorePool(self.env, cal.cores)
                    if sched is None
                    else SharedFairCorePool(self.env, cal.cores, sched.slice_ms, sched.tick_ms)
                    if sched.queues == "shared"
                    else FairCorePool(
                        self.env,
                        cal.cores,
                        sched.slice_ms,
                        sched.tick_ms,
                        busy_wake_share=sched.busy_wake_share if measured else None,
                        idle_pull_share=sched.idle_pull_share if measured else None,
                        wake_preempt_share=(
                            {
                                tuple(pair.split(">", 1)): share  # type: ignore[misc]
                                for pair, share in sched.wake_preempt_share.items()
                            }
                            if measured
                            else None
                        ),
                        # (a stream of its own: the other draws stay as they were)
                        chance=uniform01(
                            np.random.default_rng([self.config.seed, self.config.replication, 7])
                        ),
                    )
                )
                self.app = {r: CoreThread(f"app/{r}/loop", cores, servers) for r in topo.regions}
                if self.config.pace:
                    cores.pace = self._pace()
                self.threaded = {
                    label: {
                        r: CoreThread(f"app/{r}/{label}", cores, threads * servers)
                        for r in topo.regions
                    }
                    for label, threads in cal.threaded_steps.items()
                }
                if cal.hops_per_request:
                    # The rest of the machine's CPU rides on the hand-offs between
                    # processes (a store call, the way in and out), which wait for a core
                    # on the request's path: an exponential piece of its mean per hand-off.
                    hop_ms = cal.rest_cpu_ms(self.config.qps) / cal.hops_per_request
                    self.hop_ms = hop_ms
                    self.hop = lambda: float(rng.exponential(hop_ms))
            # CPU per request falls with load on the machine measured: the fitted run's CPU
            # times, scaled to this load between the calibration's speed points.
            scale = cal.cpu_scale(self.config.qps)
            servers_speed, client_speed = self.config.speed
            if (servers_speed, client_speed) != (1.0, 1.0):
                scale = {
                    **scale,
                    "servers": scale["servers"] * servers_speed,
                    "load_generator": scale["load_generator"] * client_speed,
                }
            self.cpu_scale = scale
            srv = scale["servers"]
            self.measured = {
                label: (stream_of(c.cpu, rng, srv), stream_of(c.wait, rng))
                for label, c in prof.steps.items()
            }
            rest = {op: f.value for op, f in cal.rest_scale.items()}
            self.untraced = {
                op: (stream_of(c.cpu, rng, srv), stream_of(c.wait, rng, rest.get(op, 1.0)))
                for op, c in prof.untraced.items()
            }
            if prof.client is not None:
                # The load generator: its senders share one thread.
                client = prof.client
                self.client_loop: Station = (
                    TurnStation("client/loop")
                    if self.cores is None
                    else CoreThread("client/loop", self.cores, turn=True)
                )
                self.client_cpu = tuple(
                    stream_of(d, rng, scale["load_generator"])
                    for d in (client.send, client.receive, client.after)
                )

    def _pace(self) -> Callable[[float], float]:
        """The factor on CPU work started at a time: the replayed record, this replication
        taking up where the one before it stopped (cyclically)."""
        cfg = self.config
        factors, period = cfg.pace, cfg.pace_period_ms
        n = len(factors)
        offset = int(cfg.replication * (cfg.warmup_ms + cfg.duration_ms) / period)
        return lambda now: factors[(offset + int(now / period)) % n]

    def stations(self) -> list[Station | CorePool]:
        out: list[Station | CorePool] = []
        for pool in [*self.redis.values(), *self.crdb.values()]:
            out.extend(pool.stations)
        for ns in self.durable_objects.values():
            out.extend(ns.stations)
        out.append(self.d1.station)
        out.extend(self.extra_stations)
        out.extend(self.app.values())
        if self.app and self.world.profile.client is not None:
            out.append(self.client_loop)
        for threads in self.threaded.values():
            out.extend(threads.values())
        if self.cores is not None:
            out.append(self.cores)
        return out

    def _compile_types(self) -> list[RequestType]:
        world = self.world
        return [
            self.type_for(edge, edge, home, op)
            for edge in world.topology.regions
            for home in world.topology.regions
            for op in OPERATIONS
        ]

    def type_for(self, edge: str, backend: str, home: str, op: str) -> RequestType:
        """The compiled type of `op` taken by `edge`'s workers and served by `backend`'s
        Redis and database replicas (the edge's own region unless geo routing moved it)."""
        key = (edge, backend, home, op)
        found = self._types_by_key.get(key)
        if found is not None:
            return found
        arch = self.config.architecture
        catalog = self.world.operations.of(arch)
        locality = "same_region" if home == edge == backend else "cross_region"
        cell_loc = locality if arch == "hybrid" else "all"
        cell = self._cell_index[(op, cell_loc, edge)]
        steps = self._compile_steps(op, catalog[op].steps, edge, home, locality, backend)
        outcomes = len({s.outcome for s in steps if s.outcome is not None})
        rtype = RequestType(cell, steps, outcomes, edge, home, op, backend)
        self._types_by_key[key] = rtype
        return rtype

    def _compile_steps(
        self, op: str, steps: tuple[Step, ...], edge: str, home: str, locality: str, backend: str
    ) -> list[CompiledStep]:
        outcomes: dict[str, int] = {}
        hit_rates = self.world.workload.cache_hit_rate[locality]
        compiled: list[CompiledStep] = []
        begins: dict[int, CompiledStep] = {}  # a step's index -> its first compiled visit
        ends: list[tuple[CompiledStep, CompiledStep]] = []  # (transaction's end, its start)
        for i, step in enumerate(steps):
            c = self._compile_step(step, edge, home, backend)
            if self.app:
                c.on_loop = True
                c.yields = step.component != "edge" or step.label in self.threaded
            begins[i] = c
            if self.faults is not None:
                self.faults.prepare(c, step, edge, home, backend)
            if step.outcome is not None:
                c.outcome = outcomes.setdefault(step.outcome, len(outcomes))
                c.hit_rate = hit_rates[step.outcome].value
            if step.when is not None:
                name, branch = step.when.split(":")
                c.when, c.when_hit = outcomes[name], branch == "hit"
            if step.share is not None:
                c.share = self.world.workload.step_share[step.share].value
            compiled.append(c)
            if self.cores is not None:
                compiled.extend(self._on_cores(step, c, edge, home))
            if step.retry_from is not None and self.app:
                conflicts = self._conflicts(op, locality)
                if conflicts > 0:
                    first = self.world.operations.of("hybrid")[op].transaction_start(i)
                    assert first is not None  # checked when the catalog loaded
                    compiled[-1].retry = conflicts
                    ends.append((compiled[-1], begins[first]))
        if self.app:
            cpu, wait = self.untraced[op]
            label = f"app.untraced|{edge}"
            if self.hop_ms:
                # The request's way in and out: the HTTP threads and the kernel, each a
                # hand-off that waits for a core.
                assert self.cores is not None
                hop: list[tuple[Station, Stream]] = [(self.cores, _ZERO)]
                wait = self._less_hop(wait, 0.0, 2)
                compiled.insert(0, CompiledStep(label, True, targets=hop, service=self.hop))
                compiled.append(CompiledStep(label, True, targets=hop, service=self.hop))
            compiled.append(
                CompiledStep(
                    label, True, targets=[(self.app[edge], _ZERO)], service=cpu, post=wait,
                    on_loop=True,
                )
            )  # fmt: skip
            if self.world.profile.client is not None:
                # The load generator's CPU on the path is part of the measured `untraced`
                # time already (its distribution as one light-load whole); what load adds is
                # the wait for the sender's thread, before the send, before the socket and for
                # the answer: a TurnStation, where a request waits for its turn and its CPU
                # (and what follows the latency) keeps the thread busy behind it.
                send, receive, after = self.client_cpu
                loop: list[tuple[Station, Stream]] = [(self.client_loop, _ZERO)]
                compiled.insert(0, CompiledStep("client.send", True, targets=loop, service=send))
                # The sender gives the thread up once more before its request has a socket:
                # the pool checks an idle connection with gevent's select(), which yields to
                # the hub even with a timeout of 0 (gevent.select.select ends in sleep(0)),
                # so the request waits again behind every sender ready by then.
                # Measured at 1,518 QPS: 0.64 ms a request between the call and the socket
                # beyond the sender's own CPU, 4.4 ms in the slowest tenth; 0.02 ms at 100.
                compiled.insert(1, CompiledStep("client.socket", True, targets=loop, service=_ZERO))
                compiled.append(
                    CompiledStep(
                        "client.receive", True, targets=loop,
                        service=lambda: receive() + after(),
                    )
                )  # fmt: skip
        for end, start in ends:  # indices only now: steps were inserted before them
            end.retry_to = next(k for k, c in enumerate(compiled) if c is start)
        if self.app and self.faults is None:
            for step_, next_ in pairwise(compiled):
                step_.joins_next = (
                    step_.on_loop and not step_.yields and step_.retry == 0.0
                    and next_.on_loop and not next_.with_previous
                    and next_.when is None and next_.share == 1.0
                )  # fmt: skip
        return compiled

    def _conflicts(self, op: str, locality: str) -> float:
        """The calibrated probability that an attempt of `op`'s transaction conflicts at
        the modelled load (0 where the profile measured none)."""
        cal = self.world.profile.calibration
        found = cal.retries.get(locality, {}).get(op) if cal is not None else None
        return found.per_attempt(self.config.qps) if found is not None else 0.0

    def _compile_step(self, step: Step, edge: str, home: str, backend: str) -> CompiledStep:
        if self.app:
            return self._compile_measured(step, edge, home)
        net = self.network
        comp = step.component
        if comp == "edge":
            return CompiledStep(
                f"edge.{step.action}",
                queued=False,
                delay=self.edge[step.action],
                count=step.count,
            )
        if comp == "kv":
            return CompiledStep(
                f"kv.{step.action}",
                queued=False,
                delay=net.access("kv", edge, edge),
                count=step.count,
            )
        target = {"local": backend, "home": home, "primary": self.d1.region}.get(step.at, edge)
        where = f"{step.label}|{edge}→{target}"
        if comp == "redis":
            cluster = self.redis[target]
            targets = [(s, net.access("redis", edge, target)) for s in cluster.stations]
            return CompiledStep(
                where, True, count=step.count, targets=targets, service=cluster.service
            )
        if comp == "crdb":
            region = self.crdb[target]
            write = step.kind == "write"
            return CompiledStep(
                where,
                True,
                count=step.count,
                targets=[(s, net.access("crdb", edge, target)) for s in region.stations],
                service=region.write_cpu if write else region.read_cpu,
                post=net.write_quorum(target) if write else None,
            )
        if comp == "do":
            assert step.object is not None
            ns = self.durable_objects[step.object]
            targets = [
                (s, net.access("do", edge, r)) for s, r in zip(ns.stations, ns.regions, strict=True)
            ]
            return CompiledStep(
                f"{step.label} ({step.object})",
                True,
                count=step.count,
                targets=targets,
                service=ns.service,
            )
        targets = [(self.d1.station, net.access("d1", edge, self.d1.region))]
        return CompiledStep(where, True, count=step.count, targets=targets, service=self.d1.service)

    def _compile_measured(self, step: Step, edge: str, home: str) -> CompiledStep:
        """A step of the local stack: its CPU queues at the edge region's server process,
        then its measured rest and the wide-area wait the region emulation adds."""
        cpu, wait = self.measured[step.label]
        wan = self._wan(step, edge, home)
        target = home if wan else edge
        return CompiledStep(
            f"{step.label}|{edge}→{target}",
            True,
            count=step.count,
            targets=[(self.app[edge], _ZERO)],
            service=cpu,
            post=delay_of((wait,), wan),
        )

    def _wan(self, step: Step, edge: str, home: str) -> float:
        """The wide-area wait the region emulation adds to a step (a home-region write)."""
        if step.component == "crdb" and step.at == "home":
            return emulated_wan_ms(self.world, edge, home, step.kind == "write")
        return 0.0

    def _on_cores(self, step: Step, c: CompiledStep, edge: str, home: str) -> list[CompiledStep]:
        """A local-stack step's second visit when the model shares the machine's cores: a
        step run in the server's worker threads (the password hash) takes its measured
        rest there as CPU; a store call wakes the store, whose CPU waits for a core."""
        assert self.cores is not None
        threads = self.threaded.get(step.label)
        if threads is not None:
            rest, c.post = c.post, None
            assert rest is not None
            scale = self._threaded_scale(step.label)
            return [
                CompiledStep(
                    c.label, True, targets=[(threads[edge], _ZERO)],
                    service=rest if scale == 1.0 else (lambda: rest() * scale),
                    with_previous=True,
                )
            ]  # fmt: skip
        if self.hop_ms and step.component in ("redis", "crdb"):
            _, wait = self.measured[step.label]
            c.post = None
            return [
                CompiledStep(
                    c.label, True, count=step.count, targets=[(self.cores, _ZERO)],
                    service=self.hop, post=self._less_hop(wait, self._wan(step, edge, home)),
                    with_previous=True,
                )
            ]  # fmt: skip
        return []

    def _threaded_scale(self, label: str) -> float:
        """The factor on a worker-thread step's measured rest (its wall time in the fitted
        run) that makes its mean the CPU per verification the worker threads' own clocks
        measured at the modelled load: the rest also held the thread's waits for a core,
        which the model's cores add themselves. Without that figure, the CPU per
        verification's trend with load alone (`cpu_scale`)."""
        cal = self.world.profile.calibration
        expected = cal.expected_cpu_ms(self.config.qps) if cal is not None else None
        rest_ms = float(self.world.profile.steps[label].wait.mean_ms)
        if not expected or "hash" not in expected or rest_ms <= 0:
            return self.cpu_scale["hash"]
        return expected["hash"] / rest_ms

    def _less_hop(self, wait: Stream, wan: float, hops: int = 1) -> Stream:
        """A fitted wait less the mean hand-off CPU that the model now queues for a core
        (the fitted wait held it already, as it ran at light load), never below zero."""
        hop = self.hop_ms * hops
        return lambda: max(wait() - hop, 0.0) + wan

    def _background(
        self, station: Station | CorePool, qps: float, cpu: Stream
    ) -> Generator[Any, Any, None]:
        """Work that no timed request waits for, Poisson at `qps`: the requests the clients
        send that nobody times (a login's challenge, a token request's authorization code),
        which only keep a server busy, and the rest of the machine's CPU on its cores."""
        env, cfg = self.env, self.config
        end = cfg.warmup_ms + cfg.duration_ms
        mean_gap = 1000.0 / qps
        while env.now < end:
            yield env.timeout(float(self.rng.exponential(mean_gap)))
            if isinstance(station, CorePool):
                station.run(cpu(), None, "other")
            elif station.deferred:
                station.submit(cpu(), None)  # type: ignore[union-attr]
            else:
                station.finish(env.now, cpu())  # type: ignore[union-attr]

    def _start_background(self) -> None:
        world, cfg = self.world, self.config
        for op, dist in world.profile.prepare.items():
            share = world.workload.mix[op].value
            for region, station in self.app.items():
                qps = cfg.qps * world.workload.region_share[region] * share
                if qps > 0:
                    cpu = stream_of(dist, self.rng, self.cpu_scale["servers"])
                    self.env.process(self._background(station, qps, cpu))
        cal = world.profile.calibration
        if self.cores is not None and cal is not None and cfg.qps > 0:
            # What was busy before the load, and the rest of the stack's CPU where no
            # hand-offs carry it: one exponential piece of work per request, which no
            # timed request waits for.
            rest_ms = (
                0.0 if self.hop_ms else cal.rest_cpu_ms(cfg.qps)
            ) + cal.idle_busy_cores * 1000.0 / cfg.qps
            if rest_ms > 0:
                rng = self.rng
                self.env.process(
                    self._background(self.cores, cfg.qps, lambda: float(rng.exponential(rest_ms)))
                )

    # -- running ---------------------------------------------------------------------
    def _type_sampler(self) -> Callable[[int], np.ndarray]:
        """Draw request types: edge region, then locality and home, then operation."""
        world = self.world
        regions = world.topology.regions
        n_ops = len(OPERATIONS)
        region_p = np.array([world.workload.region_share[r] for r in regions])
        mix_p = np.array([world.workload.mix[o].value for o in OPERATIONS])
        cross = world.workload.cross_region_share.value
        n_reg = len(regions)
        # Row e: cumulative shares of the home regions of edge e's cross-region users.
        home_cdf = np.zeros((n_reg, n_reg))
        for e, edge in enumerate(regions):
            weights = [world.workload.cross_region_home.shares(edge).get(h, 0.0) for h in regions]
            home_cdf[e] = np.cumsum(weights)
            # From the last region with a share on, exactly 1: rounding must never let a
            # draw fall through to a zero-weight region (such as the edge itself).
            home_cdf[e, max(i for i, w in enumerate(weights) if w > 0) :] = 1.0

        def draw(n: int) -> np.ndarray:
            edge = self.rng.choice(n_reg, size=n, p=region_p)
            is_cross = self.rng.random(n) < cross
            u = self.rng.random(n)
            travel_home = (u[:, None] >= home_cdf[edge]).sum(axis=1)
            home = np.where(is_cross, travel_home, edge)
            op = self.rng.choice(n_ops, size=n, p=mix_p)
            return (edge * n_reg + home) * n_ops + op

        return draw

    def _arrivals(self) -> Generator[simpy.Event, Any, None]:
        """Poisson arrivals, a block at a time.

        Nothing happens at the instant a request arrives except drawing its delays, so the
        process schedules each request's first station visit straight from the block of
        arrival times and then sleeps to the block's end: one event per request fewer.
        Station state still changes only inside events, in time order.
        """
        env, cfg = self.env, self.config
        draw_types = self._type_sampler()
        types = self.types
        reroute = self.faults.reroute if self.faults is not None else None
        for start, end, qps in self.rate_segments():
            # A Poisson process restarted at each change of rate is still Poisson there.
            mean_gap = 1000.0 * cfg.reduction / qps
            t = start
            while t < end:
                times = (t + np.cumsum(self.rng.exponential(mean_gap, ARRIVAL_BLOCK))).tolist()
                kinds = draw_types(ARRIVAL_BLOCK).tolist()
                for t0, kind in zip(times, kinds, strict=True):
                    if t0 >= end:
                        break
                    self.arrived += 1
                    rtype = types[kind]
                    if reroute is not None:
                        rtype = reroute(rtype, t0)
                    trace = self.arrived % TRACE_EVERY == 0 or self.traced[rtype.cell] < TRACE_MIN
                    request = _Request(
                        env, t0, rtype, [False] * rtype.outcomes, [] if trace else None
                    )
                    self._advance(request, t0)
                t = times[-1]
                yield env.timeout(max(min(t, end) - env.now, 0.0))

    def rate_segments(self) -> list[tuple[float, float, float]]:
        """(start_ms, end_ms, qps) pieces covering warm-up and the measured time."""
        cfg = self.config
        end = cfg.warmup_ms + cfg.duration_ms
        if not cfg.rate_schedule:
            return [(0.0, end, cfg.qps)]
        return [(a, min(b, end), q) for a, b, q in cfg.rate_schedule if a < end]

    def _resume(self, event: simpy.Event) -> None:
        """Callback of a request's event: it has reached the station of its next step."""
        request: _Request = event  # type: ignore[assignment]
        now = self.env.now
        st = request.rtype.steps[request.step]
        station = request.station
        service = st.service()  # type: ignore[misc]
        if st.on_loop:
            # The CPU as the cores run it: with the machine's pace replayed, the time it
            # takes is its work times the pace (taken as it arrives), which the step's own
            # time and its wait for the loop are reckoned against.
            cores = self.cores
            pace = cores.pace(now) if cores is not None and cores.pace is not None else 1.0
            if request.carry:
                service += request.carry
                request.carried += request.carry * pace
                request.carry = 0.0
            request.done_unqueued = now + service * pace
        if station.deferred:  # type: ignore[union-attr]
            # A thread on the shared cores: the request goes on when its work is done.
            station.submit(service, lambda t: self._served(request, st, t))  # type: ignore[union-attr]
            return
        pending = station.finish(now, service) - now  # type: ignore[union-attr]
        self._served(request, st, now, pending)

    def _served(
        self, request: _Request, st: CompiledStep, now: float, pending: float = 0.0
    ) -> None:
        """The request has had its service at the step's station; `pending` more ms follow."""
        if st.on_loop and request.spent is not None:
            # The wait for the loop (traced requests only): from reaching it until the work
            # was done, less the work; summed over a step's visits (`count`).
            request.queued += max(now + pending - request.done_unqueued, 0.0)
        if st.post is not None:
            pending += st.post()
        request.pending = pending
        request.visits -= 1
        if request.visits == 0:
            if st.outcome is not None:
                request.hits[st.outcome] = st.hit_rate >= 1.0 or self._u() < st.hit_rate
            carried, request.carried = request.carried, 0.0
            if request.spent is not None:
                queued, request.queued = request.queued, 0.0
                if queued:
                    before = request.last_awaited or f"app.untraced|{request.rtype.edge}"
                    request.spent.append((before, queued))
                request.spent.append(
                    (st.label, now + pending - request.step_start - queued - carried)
                )
                if st.yields:
                    request.last_awaited = st.label
            request.step += 1
            if st.retry and self._u() < st.retry:
                if not self._retry(request, st):
                    return
                pending = request.pending
        self._advance(request, now)

    def _retry(self, request: _Request, st: CompiledStep) -> bool:
        """The transaction that `st` ends conflicted: back off and begin it again, or, after
        the last attempt the policy allows, fail the request (the server's 503). False if
        the request failed."""
        policy = self.world.profile.calibration.retry_policy  # type: ignore[union-attr]
        assert policy is not None  # a profile with conflicts has one (checked as it loads)
        if request.attempts >= policy.max_attempts:
            self._fail(request, "conflict")
            return False
        if request.attempts == 1 and request.t0 >= self.config.warmup_ms:
            self.retried[request.rtype.cell] += 1
        backoff = policy.backoff(request.attempts, self._u())
        request.attempts += 1
        request.pending += backoff
        if request.spent is not None:
            # Outside every step, as on the server: its trace shows the backoff there.
            request.spent.append((f"app.untraced|{request.rtype.edge}", backoff))
        request.step = st.retry_to
        return True

    def _advance(self, request: _Request, now: float) -> None:
        """Walk delays until the next station visit; schedule it, or finish the request.

        `now` is the request's current time: the simulation clock, or its arrival time when
        the arrival process schedules it ahead. Using the request itself as the event,
        rather than a Process, saves a process's start and end events per request; the last
        delay needs no event at all, since nothing waits for it.
        """
        steps = request.rtype.steps
        spent = request.spent
        i = request.step
        pending = request.pending
        n_steps = len(steps)
        skipped = False  # the step before `i` did not run
        while i < n_steps:
            st = steps[i]
            if st.with_previous and skipped and request.visits == 0:
                i += 1
                continue
            skipped = True
            if st.when is not None and request.hits[st.when] != st.when_hit:
                i += 1
                continue
            if st.share < 1.0 and request.visits == 0 and self._u() >= st.share:
                i += 1
                continue
            skipped = False
            if st.joins_next:
                cpu = st.service()  # type: ignore[misc]
                for _ in range(st.count - 1):
                    cpu += st.service()  # type: ignore[misc]
                after = 0.0
                if st.post is not None:
                    for _ in range(st.count):
                        after += st.post()
                request.carry += cpu
                pending += after
                if spent is not None:
                    spent.append((st.label, cpu + after))
                i += 1
                continue
            if not st.queued:
                delay = st.delay
                d = delay()  # type: ignore[misc]
                for _ in range(st.count - 1):
                    d += delay()  # type: ignore[misc]
                pending += d
                if spent is not None:
                    spent.append((st.label, d))
                i += 1
                continue
            if st.guard is not None:
                if request.visits == 0:
                    verdict = st.guard(request, st, now + pending)
                    if verdict is not None:
                        # (extra ms, None): skip the step; (extra ms, "miss"): a cache
                        # lookup that failed over to the database; (extra ms, kind): fail.
                        extra, what = verdict
                        pending += extra
                        if what is None or what == "miss":
                            if what == "miss":
                                request.hits[st.outcome] = False  # type: ignore[index]
                            i += 1
                            continue
                        self._fail(request, what)
                        return
                    request.visits = len(request.route)  # type: ignore[arg-type]
                    request.step_start = now + pending
                station, network, wait = request.route.pop()  # type: ignore[union-attr]
                pending += wait
            else:
                if request.visits == 0:
                    request.visits = st.count
                    request.step_start = now + pending
                targets = st.targets
                station, network = (
                    targets[0] if len(targets) == 1 else targets[int(self._u() * len(targets))]
                )
            request.station = station
            request.step = i
            env = self.env
            request.callbacks = self._on_arrival
            env.schedule(request, simpy.events.NORMAL, now - env.now + pending + network())
            return
        self._record(request.t0, request.rtype.cell, now + pending - request.t0, spent)

    def _record(
        self, t0: float, cell: int, latency: float, spent: list[tuple[str, float]] | None
    ) -> None:
        cfg = self.config
        self.completed += 1
        if latency > self._timeout_ms:
            self._count_error(t0, cell, "timeout")
            return
        if self.timeline is not None:
            self.timeline.ok(t0, cell, latency)
        if t0 < cfg.warmup_ms:
            return
        batch = int((t0 - cfg.warmup_ms) * cfg.batches / cfg.duration_ms)
        self.latencies[cell * cfg.batches + min(batch, cfg.batches - 1)].append(latency)
        if self.in_order is not None:
            self.in_order[0].append(latency)
            self.in_order[1].append(cell)
        if spent is not None:
            self.traced[cell] += 1
            if self.traced_rows is not None:
                self.traced_rows[cell].append((latency, spent))
            for label, ms in spent:
                key = (cell, label)
                self.step_ms[key] = self.step_ms.get(key, 0.0) + ms

    def _fail(self, request: _Request, kind: str) -> None:
        """The request ends with an error; `kind` names the cause, however long it took."""
        self.completed += 1
        self._count_error(request.t0, request.rtype.cell, kind)

    def _count_error(self, t0: float, cell: int, kind: str) -> None:
        if self.timeline is not None:
            self.timeline.error(t0, cell, kind)
        if t0 < self.config.warmup_ms:
            return
        kinds = self.error_kinds[cell]
        kinds[kind] = kinds.get(kind, 0) + 1

    def _resume_faulty(self, event: simpy.Event) -> None:
        """`_resume` for failure scenarios: a route may add service (a cold object) or
        replace the quorum wait (a moved leaseholder); component state sees each visit."""
        request: _Request = event  # type: ignore[assignment]
        now = self.env.now
        st = request.rtype.steps[request.step]
        station = request.station
        assert station is not None
        service = st.service() + request.extra  # type: ignore[misc]
        request.extra = 0.0
        pending = station.finish(now, service) - now  # type: ignore[union-attr]
        post = request.post if request.post is not None else st.post
        if post is not None:
            pending += post()
        request.pending = pending
        request.visits -= 1
        self.faults.visited(st, station, now)
        if request.visits == 0:
            request.post = None
            if st.outcome is not None:
                rate = st.hit_rate if st.warmth is None else st.hit_rate * st.warmth.value()
                hit = rate >= 1.0 or self._u() < rate
                request.hits[st.outcome] = hit
                if st.warmth is not None:
                    st.warmth.touches += 1
                    self.timeline.lookup(now, st.region, hit)
            if request.spent is not None:
                request.spent.append((st.label, now + pending - request.step_start))
            request.step += 1
        self._advance(request, now)

    def run(self, on_progress: Callable[[float, int], None] | None = None) -> None:
        """Run to the end of the arrivals, then drain the requests still in flight."""
        self.env.process(self._arrivals())
        if self.app:
            self._start_background()
        end = self.config.warmup_ms + self.config.duration_ms
        step = max(end / 50, 1.0)
        t = 0.0
        with _relaxed_gc():
            while t < end:
                t = min(t + step, end)
                self.env.run(until=t)
                if on_progress is not None:
                    on_progress(t / end, self.completed)
            self.env.run()


def _zero() -> float:
    return 0.0


_ZERO: Stream = _zero


def emulated_wan_ms(world: World, edge: str, home: str, write: bool) -> float:
    """What the server's region emulation waits for a database step at the row's home:
    the round trip there, and under REGION survival a quorum in the nearest other region
    (the full topology's, as the server reads it)."""
    topo = world.full_topology or world.topology
    ms = topo.rtt.between(edge, home) if home != edge else 0.0
    if write and topo.crdb.survival == "region":
        ms += topo.rtt.between(home, topo.nearest_other_region(home))
    return ms


@contextmanager
def _relaxed_gc() -> Iterator[None]:
    """Collect cycles rarely while the model runs.

    Requests, timeouts and sample lists form no reference cycles, yet they are allocated
    by the million, so the default thresholds run a collection every few hundred requests
    for nothing: measured, that costs about a quarter of the run time.
    """
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
