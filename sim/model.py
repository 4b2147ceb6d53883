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
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
)
from sim.errors import SimulationError
from sim.queues import FcfsStation
from sim.sampling import Stream, stream_of, uniform01

# Requests that record their per-step times (for "which step dominates"): every request of
# a cell until it has TRACE_MIN of them, so rare cells are covered, then one in TRACE_EVERY.
TRACE_MIN = 1000
TRACE_EVERY = 64
ARRIVAL_BLOCK = 1024  # arrivals drawn and scheduled at once


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


@dataclass(slots=True)
class CompiledStep:
    label: str
    queued: bool
    delay: Stream | None = None
    count: int = 1
    targets: list[tuple[FcfsStation, Stream]] = field(default_factory=list)
    service: Stream | None = None
    post: Stream | None = None
    outcome: int | None = None
    hit_rate: float = 0.0
    when: int | None = None
    when_hit: bool = False
    share: float = 1.0


class _Request(simpy.Event):
    """The state of one request in flight, and the event that carries it between stations.

    A request is scheduled with `env.schedule` once per station visit, its callbacks list
    reset each time: one long-lived event per request instead of a new Timeout (and list)
    per visit, which is most of what a visit would otherwise cost.
    """

    __slots__ = (
        "hits",
        "pending",
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
        self.station: FcfsStation | None = None


@dataclass(slots=True)
class RequestType:
    """One (edge region, home region, operation) combination, compiled for speed."""

    cell: int
    steps: list[CompiledStep]
    outcomes: int


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

    def __init__(self, world: World, config: RunConfig) -> None:
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
        self._build_components()
        self.cells = [
            (op, loc, region)
            for op in OPERATIONS
            for loc in self._localities()
            for region in world.topology.regions
        ]
        self._cell_index = {c: i for i, c in enumerate(self.cells)}
        self.types = self._compile_types()
        b = config.batches
        self.latencies = [array("d") for _ in range(len(self.cells) * b)]
        self.timeouts = [0] * len(self.cells)
        self.step_ms: dict[tuple[int, str], float] = {}
        self.traced = [0] * len(self.cells)
        self.arrived = 0
        self.completed = 0
        self._timeout_ms = world.workload.client_timeout_ms.value
        # Shared by every request: SimPy only reads an event's callbacks list.
        self._on_arrival: list[Callable[[Any], None]] = [self._resume]

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
        self.edge = {a: stream_of(dist, rng) for a, dist in self.world.profile.edge.items()}

    def stations(self) -> list[FcfsStation]:
        out: list[FcfsStation] = []
        for pool in [*self.redis.values(), *self.crdb.values()]:
            out.extend(pool.stations)
        for ns in self.durable_objects.values():
            out.extend(ns.stations)
        out.append(self.d1.station)
        return out

    def _compile_types(self) -> list[RequestType]:
        world, arch = self.world, self.config.architecture
        catalog = world.operations.of(arch)
        types = []
        for edge in world.topology.regions:
            for home in world.topology.regions:
                locality = "same_region" if home == edge else "cross_region"
                for op in OPERATIONS:
                    cell_loc = locality if arch == "hybrid" else "all"
                    cell = self._cell_index[(op, cell_loc, edge)]
                    steps = self._compile_steps(catalog[op].steps, edge, home, locality)
                    outcomes = len({s.outcome for s in steps if s.outcome is not None})
                    types.append(RequestType(cell, steps, outcomes))
        return types

    def _compile_steps(
        self, steps: tuple[Step, ...], edge: str, home: str, locality: str
    ) -> list[CompiledStep]:
        outcomes: dict[str, int] = {}
        hit_rates = self.world.workload.cache_hit_rate[locality]
        compiled = []
        for step in steps:
            c = self._compile_step(step, edge, home)
            if step.outcome is not None:
                c.outcome = outcomes.setdefault(step.outcome, len(outcomes))
                c.hit_rate = hit_rates[step.outcome].value
            if step.when is not None:
                name, branch = step.when.split(":")
                c.when, c.when_hit = outcomes[name], branch == "hit"
            if step.share is not None:
                c.share = self.world.workload.step_share[step.share].value
            compiled.append(c)
        return compiled

    def _compile_step(self, step: Step, edge: str, home: str) -> CompiledStep:
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
        target = {"local": edge, "home": home, "primary": self.d1.region}.get(step.at, edge)
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
        mean_gap = 1000.0 * cfg.reduction / cfg.qps
        end = cfg.warmup_ms + cfg.duration_ms
        draw_types = self._type_sampler()
        types = self.types
        t = 0.0
        while t < end:
            times = (t + np.cumsum(self.rng.exponential(mean_gap, ARRIVAL_BLOCK))).tolist()
            kinds = draw_types(ARRIVAL_BLOCK).tolist()
            for t0, kind in zip(times, kinds, strict=True):
                if t0 >= end:
                    break
                self.arrived += 1
                rtype = types[kind]
                trace = self.arrived % TRACE_EVERY == 0 or self.traced[rtype.cell] < TRACE_MIN
                request = _Request(env, t0, rtype, [False] * rtype.outcomes, [] if trace else None)
                self._advance(request, t0)
            t = times[-1]
            yield env.timeout(min(t, end) - env.now)

    def _resume(self, event: simpy.Event) -> None:
        """Callback of a request's event: it has reached the station of its next step."""
        request: _Request = event  # type: ignore[assignment]
        now = self.env.now
        st = request.rtype.steps[request.step]
        pending = request.station.finish(now, st.service()) - now  # type: ignore[misc,union-attr]
        if st.post is not None:
            pending += st.post()
        request.pending = pending
        request.visits -= 1
        if request.visits == 0:
            if st.outcome is not None:
                request.hits[st.outcome] = self._u() < st.hit_rate
            if request.spent is not None:
                request.spent.append((st.label, now + pending - request.step_start))
            request.step += 1
        self._advance(request, now)

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
        while i < n_steps:
            st = steps[i]
            if st.when is not None and request.hits[st.when] != st.when_hit:
                i += 1
                continue
            if st.share < 1.0 and request.visits == 0 and self._u() >= st.share:
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
        if t0 < cfg.warmup_ms:
            return
        if latency > self._timeout_ms:
            self.timeouts[cell] += 1
            return
        batch = int((t0 - cfg.warmup_ms) * cfg.batches / cfg.duration_ms)
        self.latencies[cell * cfg.batches + min(batch, cfg.batches - 1)].append(latency)
        if spent is not None:
            self.traced[cell] += 1
            for label, ms in spent:
                key = (cell, label)
                self.step_ms[key] = self.step_ms.get(key, 0.0) + ms

    def run(self, on_progress: Callable[[float, int], None] | None = None) -> None:
        """Run to the end of the arrivals, then drain the requests still in flight."""
        self.env.process(self._arrivals())
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
