"""The failure engine: component state over time, and the routes requests take through it.

Each event of a scenario runs as a SimPy process (`sim.fault_events`) that changes this
state at the times the scenario's timings give (a primary dies, the cluster is marked
FAIL after the node timeout, a replica is promoted after its election delay; a lease
expires; health checks fail and geo routing moves a region's traffic). Every visit a
request makes to a queued component asks the engine for its route: the station the key
hashes to when all
is well; a live node after a lease moved, waiting for the expiry if the lease has not yet
moved; another region; or no route at all, and then the step's own rule decides: a cache
lookup falls back to the database (`miss`), a cache fill or fail-open limiter is skipped
(`skip`), anything else fails the request with an error kind. Latency is never added to
results: it comes from the queues and round trips of the routes taken.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from scenarios.faults import (
    CrdbNodeLoss,
    FailureScenario,
    RedisClusterLoss,
    RedisPrimaryFailure,
)
from scenarios.loader import World
from scenarios.operations import Step
from sim.errors import SimulationError
from sim.fault_events import EventRecord, Reshard, Warmth, event_process
from sim.queues import FcfsStation
from sim.sampling import Stream, stream_of
from sim.timeline import Timeline

INF = math.inf


class FaultEngine:
    """Component state for one replication of a scenario, consulted on every visit."""

    def __init__(
        self,
        world: World,
        scenario: FailureScenario,
        users: float,
        seconds: int,
        rng: np.random.Generator,
    ) -> None:
        self.world = world
        self.scenario = scenario
        self.users = users
        self.rng = rng
        self.timeline = Timeline(seconds, world.topology.regions)
        self.timings = scenario.timings
        self.records: list[EventRecord] = []
        self.log: list[tuple[float, str]] = []
        self.survival = world.topology.crdb.survival
        # State.
        self.backend_down: set[str] = set()
        self.routing: dict[str, str] = {}  # edge region -> backend region serving it
        self.redis_unavailable: dict[str, int] = {}  # region -> reasons (clusterdown, lost)
        self.redis_dead: set[tuple[str, int]] = set()
        self.redis_moved_until: dict[tuple[str, int], float] = {}
        self.crdb_dead: dict[tuple[str, int], float] = {}  # node -> lease expiry (ms)
        self.crdb_region_dead: dict[str, float] = {}  # region -> lease expiry (ms), zone: inf
        self.partitions: set[frozenset[str]] = set()
        self.reshards: dict[str, Reshard] = {}
        self.warmth: dict[tuple[str, str], Warmth] = {}
        self.redis_only: dict[FcfsStation, deque[tuple[float, float]]] = {}
        self.moved = 0
        self.uniform = rng.random

    # -- hooks the model calls ---------------------------------------------------------
    def bind(self, model: Any) -> None:
        """Called first by the model, before it compiles its steps."""
        self.model = model
        self.env: simpy.Environment = model.env

    def attach(self, model: Any) -> None:
        """Called by the model once it is built: start the events and the sampler."""
        model.timeline = self.timeline
        self.timeline.bind_cells(model.cells)
        self._timeout_ms = self.world.workload.client_timeout_ms.value
        self._check_indices()
        self._watch_redis_only()
        for i, ev in enumerate(self.scenario.events):
            process = event_process(self, i, ev)
            if process is not None:
                self.env.process(process)
        self.env.process(self._sample_db())

    def prepare(self, c: Any, step: Step, edge: str, home: str, backend: str) -> None:
        """Give a compiled step what the engine needs to route it."""
        c.step = step
        c.src = edge
        c.gateway = backend
        c.region = {"local": backend, "home": home}.get(step.at, "")
        if step.component in ("redis", "crdb", "do", "d1"):
            c.guard = self.guard
        if step.outcome is not None and step.component == "redis" and self._fillable(step):
            key = (c.region, step.outcome)
            if key not in self.warmth:
                self.warmth[key] = Warmth(self._keys_in(c.region))
            c.warmth = self.warmth[key]

    def reroute(self, rtype: Any, t0: float) -> Any:
        backend = self.routing.get(rtype.edge)
        if backend is None:
            return rtype
        return self.model.type_for(rtype.edge, backend, rtype.home, rtype.operation)

    def visited(self, st: Any, station: FcfsStation, now: float) -> None:
        step: Step = st.step
        comp = step.component
        tl = self.timeline
        if comp == "redis":
            tl.visit(now, "redis")
            if step.redis_only_keeps_s is not None:
                ring = self.redis_only.get(station)
                if ring is not None:
                    ring.append((now, step.redis_only_keeps_s * 1000))
                    if len(ring) > 4096 and now - ring[0][0] > 120_000:
                        while ring and now - ring[0][0] > 120_000:
                            ring.popleft()
        elif comp == "crdb":
            tl.visit(now, "crdb_write" if step.kind == "write" else "crdb_read")
        elif comp == "do":
            tl.visit(now, "do")
        elif comp == "d1":
            tl.visit(now, "d1_write" if step.action.startswith("write") else "d1_read")

    # -- routing ---------------------------------------------------------------------
    def guard(self, request: Any, st: Any, t: float) -> tuple[float, str | None] | None:
        comp = st.step.component
        if comp == "redis":
            return self._redis(request, st, t)
        if comp == "crdb":
            return self._crdb(request, st, t)
        if comp == "do" and st.step.object in self.reshards:
            return self._do(request, st, t)
        request.route = [(*self._pick(st.targets), 0.0) for _ in range(st.count)]
        return None

    def _pick(self, targets: list[tuple[FcfsStation, Stream]]) -> tuple[FcfsStation, Stream]:
        return targets[0] if len(targets) == 1 else targets[int(self.uniform() * len(targets))]

    def _redis(self, request: Any, st: Any, t: float) -> tuple[float, str | None] | None:
        region = st.region
        if region in self.backend_down:
            return self._timeout_ms, "backend_unreachable"
        targets = st.targets
        route = []
        down = self.redis_unavailable.get(region, 0) > 0
        for _ in range(st.count):
            index = int(self.uniform() * len(targets))
            if down or (region, index) in self.redis_dead:
                return self._unavailable(st, targets[index][1](), t)
            station, network = targets[index]
            wait = 0.0
            if self.redis_moved_until.get((region, index), -1.0) > t:
                wait = network()  # a MOVED reply, then the request again at the new primary
                self.moved += 1
            route.append((station, network, wait))
        request.route = route
        return None

    def _unavailable(self, st: Any, round_trip: float, t: float) -> tuple[float, str | None]:
        rule = st.step.unavailable_rule
        if rule == "miss":
            if st.warmth is not None:
                self.timeline.lookup(t, st.region, False)
            return round_trip, "miss"
        if rule == "skip":
            return round_trip, None
        return round_trip, f"{st.step.component}_unavailable"

    def _crdb(self, request: Any, st: Any, t: float) -> tuple[float, str | None] | None:
        region, gateway, kind = st.region, st.gateway, st.step.kind
        if gateway in self.backend_down:
            return self._timeout_ms, "backend_unreachable"
        if frozenset((gateway, region)) in self.partitions:
            return self._partition_delay(), "partition"
        expiry = self.crdb_region_dead.get(region)
        if region in self.backend_down and expiry is None:
            expiry = INF
        if expiry is not None:
            if kind == "follower_read":
                # The region's replicas are gone; a non-voting replica elsewhere answers.
                return self._to_region(request, st, self.nearest_healthy(gateway), 0.0)
            if expiry == INF:
                # No quorum anywhere (ZONE survival): the statement hangs until the client
                # gives up.
                return self._timeout_ms, "crdb_unavailable"
            new = self.nearest_healthy(region)
            return self._to_region(request, st, new, max(expiry - t, 0.0))
        targets = st.targets
        live = [i for i in range(len(targets)) if (region, i) not in self.crdb_dead]
        route = []
        for _ in range(st.count):
            index = int(self.uniform() * len(targets))
            wait = 0.0
            dead_until = self.crdb_dead.get((region, index))
            if dead_until is not None:
                if not live:
                    return self._timeout_ms, "crdb_unavailable"
                if kind != "follower_read" and t < dead_until:
                    wait = dead_until - t  # the range waits for its lease to expire
                if kind == "follower_read" or t >= dead_until or wait:
                    index = live[int(self.uniform() * len(live))]
            station, network = targets[index]
            route.append((station, network, wait))
        request.route = route
        request.post = self._quorum(region, st)
        return None

    def _to_region(
        self, request: Any, st: Any, new: str | None, wait: float
    ) -> tuple[float, str | None] | None:
        if new is None:
            return self._timeout_ms, "crdb_unavailable"
        if frozenset((st.gateway, new)) in self.partitions:
            return self._partition_delay(), "partition"
        model = self.model
        network = model.network.access("crdb", st.src, new)
        stations = model.crdb[new].stations
        request.route = [
            (stations[int(self.uniform() * len(stations))], network, wait) for _ in range(st.count)
        ]
        request.post = self._quorum(new, st)
        return None

    def _quorum(self, leaseholder: str, st: Any) -> Stream | None:
        """A write's quorum wait from `leaseholder`, around failed or cut-off regions."""
        if st.post is None or self.survival != "region":
            return None
        topo = self.world.topology
        others = [
            r
            for r in topo.regions
            if r != leaseholder
            and r not in self.backend_down
            and r not in self.crdb_region_dead
            and frozenset((leaseholder, r)) not in self.partitions
        ]
        if not others:
            return None
        nearest = min(others, key=lambda r: topo.rtt.between(leaseholder, r))
        if nearest == topo.nearest_other_region(leaseholder):
            return None  # the compiled quorum wait already goes there
        jitter = self.model.network._jitter
        fixed = topo.rtt.between(leaseholder, nearest)
        return lambda: fixed + jitter()

    def nearest_healthy(self, region: str) -> str | None:
        topo = self.world.topology
        healthy = [
            r
            for r in topo.regions
            if r != region and r not in self.backend_down and r not in self.crdb_region_dead
        ]
        if not healthy:
            return None
        return min(healthy, key=lambda r: topo.rtt.between(region, r))

    def _partition_delay(self) -> float:
        tm = self.timings
        assert tm.db_attempt_timeout_s and tm.db_retries and tm.db_retry_backoff
        retries = int(tm.db_retries.value)
        backoff = self._backoff
        waits = sum(float(backoff()) * 2**n for n in range(retries))
        return float((retries + 1) * tm.db_attempt_timeout_s.value * 1000 + waits)

    def _do(self, request: Any, st: Any, t: float) -> tuple[float, str | None] | None:
        rs = self.reshards[st.step.object]
        if t < rs.at_ms:
            request.route = [(*self._pick(st.targets), 0.0)]
            return None
        model = self.model
        index = int(self.uniform() * len(rs.stations))
        station, region = rs.stations[index], rs.regions[index]
        network = model.network.access("do", st.src, region)
        extra = 0.0
        if not rs.warm[index]:
            extra += self._cold_start()
            rs.warm[index] = True
        route = [(station, network, 0.0)]
        moving = st.step.action in rs.forward and t < rs.end_ms
        if moving and self.uniform() >= rs.migrated.value():
            # The new object does not hold the key yet: it looks in its storage, then asks
            # the object that held the key before the change, and keeps the answer.
            extra += self._storage_read()
            old = int(self.uniform() * len(st.targets))
            old_region = model.durable_objects[st.step.object].regions[old]
            forward = model.network.access("do", region, old_region)
            route.insert(0, (st.targets[old][0], forward, 0.0))
        if moving:
            rs.migrated.touches += 1
        request.route = route
        request.extra = extra
        return None

    # -- state changes -----------------------------------------------------------------
    def _watch_redis_only(self) -> None:
        for ev in self.scenario.events:
            if isinstance(ev, RedisPrimaryFailure | RedisClusterLoss):
                for st in self.model.redis[ev.region].stations:
                    self.redis_only.setdefault(st, deque())

    def _check_indices(self) -> None:
        for i, ev in enumerate(self.scenario.events):
            if isinstance(ev, RedisPrimaryFailure):
                n = len(self.model.redis[ev.region].stations)
                if ev.shard >= n:
                    raise SimulationError(
                        f"events[{i}]: shard {ev.shard} is not simulated (only {n} per region "
                        "at this reduction); set exact_scale = true in the scenario file"
                    )
            if isinstance(ev, CrdbNodeLoss):
                n = len(self.model.crdb[ev.region].stations)
                if ev.node >= n or n < 2:
                    raise SimulationError(
                        f"events[{i}]: node {ev.node} of {n} simulated nodes: a node loss needs "
                        "the full pool; set exact_scale = true in the scenario file"
                    )

    def _fillable(self, step: Step) -> bool:
        catalog = self.world.operations.of(self.model.config.architecture)
        return any(s.fills == step.outcome for op in catalog.values() for s in op.steps)

    def _keys_in(self, region: str) -> float:
        work = self.world.workload
        return float(
            self.users
            * work.active_session_share.value
            * work.region_share[region]
            / self.model.config.reduction
        )

    def _sample_db(self) -> Generator[simpy.Event, Any, None]:
        """Once a second: busy time and capacity of each region's database."""
        model, tl = self.model, self.timeline
        regions = self.world.topology.regions
        if model.config.architecture == "hybrid":
            pools = {r: model.crdb[r].stations for r in regions}
        else:
            pools = {model.d1.region: [model.d1.station]}
        last = {r: sum(s.busy_ms for s in pools.get(r, [])) for r in regions}
        second = 0
        while second < tl.seconds:
            yield self.env.timeout(1000.0)
            for ri, r in enumerate(regions):
                stations = pools.get(r, [])
                if not stations:
                    continue
                busy = sum(s.busy_ms for s in stations)
                tl.db_busy_ms[second, ri] += busy - last[r]
                last[r] = busy
                alive = [
                    s
                    for i, s in enumerate(stations)
                    if (r, i) not in self.crdb_dead
                    and r not in self.crdb_region_dead
                    and r not in self.backend_down
                ]
                tl.db_capacity_ms[second, ri] += 1000.0 * sum(s.servers for s in alive)
            second += 1

    # Streams drawn lazily so scenarios without these timings need not define them.
    @property
    def _backoff(self) -> Stream:
        if not hasattr(self, "_backoff_stream"):
            assert self.timings.db_retry_backoff is not None
            self._backoff_stream = stream_of(self.timings.db_retry_backoff, self.rng)
        return self._backoff_stream

    def _cold_start(self) -> float:
        if not hasattr(self, "_cold_stream"):
            assert self.timings.do_cold_start is not None
            self._cold_stream = stream_of(self.timings.do_cold_start, self.rng)
        return float(self._cold_stream())

    def _storage_read(self) -> float:
        if not hasattr(self, "_read_stream"):
            assert self.timings.do_storage_read is not None
            self._read_stream = stream_of(self.timings.do_storage_read, self.rng)
        return float(self._read_stream())
