"""The failure engine: component state over time, and the routes requests take through it.

Each event of a scenario runs as a SimPy process that changes component state at the
times the scenario's timings give (a primary dies, the cluster is marked FAIL after the
node timeout, a replica is promoted after its election delay; a lease expires; health
checks fail and geo routing moves a region's traffic). Every visit a request makes to a
queued component asks the engine for its route: the station the key hashes to when all
is well; a live node after a lease moved, waiting for the expiry if the lease has not yet
moved; another region; or no route at all, and then the step's own rule decides: a cache
lookup falls back to the database (`miss`), a cache fill or fail-open limiter is skipped
(`skip`), anything else fails the request with an error kind. Latency is never added to
results: it comes from the queues and round trips of the routes taken.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from scenarios.faults import (
    CrdbNodeLoss,
    CrdbRegionLoss,
    DurableObjectReshard,
    FailureScenario,
    NetworkPartition,
    RedisClusterLoss,
    RedisPrimaryFailure,
    RegionOutage,
)
from scenarios.loader import World
from scenarios.operations import Step
from sim.errors import SimulationError
from sim.queues import FcfsStation
from sim.sampling import Stream, stream_of
from sim.timeline import Timeline

INF = math.inf


class Warmth:
    """The share of a key space present in a store that restarted empty.

    A key is present once it has been looked up (and refilled, or moved) since the restart.
    Lookups touch the N keys uniformly, so after n lookups a given key has been touched
    with probability 1 - exp(-n / N); before any restart the store is fully warm.
    """

    __slots__ = ("cold", "keys", "touches")

    def __init__(self, keys: float) -> None:
        self.keys = max(keys, 1.0)
        self.touches = 0
        self.cold = False

    def restart(self) -> None:
        self.cold = True
        self.touches = 0

    def value(self) -> float:
        if not self.cold:
            return 1.0
        return 1.0 - math.exp(-self.touches / self.keys)


@dataclass
class EventRecord:
    """What happened to one event, in simulated seconds from the start of the run."""

    index: int
    component: str
    target: str
    start_s: float
    end_s: float
    detected_s: float | None = None
    recovered_s: float | None = None
    lost_writes: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class _Reshard:
    at_ms: float
    end_ms: float
    stations: list[FcfsStation]
    regions: list[str]
    warm: list[bool]
    migrated: Warmth
    forward: frozenset[str]


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
        self.reshards: dict[str, _Reshard] = {}
        self.warmth: dict[tuple[str, str], Warmth] = {}
        self.redis_only: dict[FcfsStation, deque[tuple[float, float]]] = {}
        self.moved = 0
        self._u = rng.random

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
            process = self._event_process(i, ev)
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
        return targets[0] if len(targets) == 1 else targets[int(self._u() * len(targets))]

    def _redis(self, request: Any, st: Any, t: float) -> tuple[float, str | None] | None:
        region = st.region
        if region in self.backend_down:
            return self._timeout_ms, "backend_unreachable"
        targets = st.targets
        route = []
        down = self.redis_unavailable.get(region, 0) > 0
        for _ in range(st.count):
            index = int(self._u() * len(targets))
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
                return self._to_region(request, st, self._nearest_healthy(gateway), 0.0)
            if expiry == INF:
                # No quorum anywhere (ZONE survival): the statement hangs until the client
                # gives up.
                return self._timeout_ms, "crdb_unavailable"
            new = self._nearest_healthy(region)
            return self._to_region(request, st, new, max(expiry - t, 0.0))
        targets = st.targets
        live = [i for i in range(len(targets)) if (region, i) not in self.crdb_dead]
        route = []
        for _ in range(st.count):
            index = int(self._u() * len(targets))
            wait = 0.0
            dead_until = self.crdb_dead.get((region, index))
            if dead_until is not None:
                if not live:
                    return self._timeout_ms, "crdb_unavailable"
                if kind != "follower_read" and t < dead_until:
                    wait = dead_until - t  # the range waits for its lease to expire
                if kind == "follower_read" or t >= dead_until or wait:
                    index = live[int(self._u() * len(live))]
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
            (stations[int(self._u() * len(stations))], network, wait) for _ in range(st.count)
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

    def _nearest_healthy(self, region: str) -> str | None:
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
        index = int(self._u() * len(rs.stations))
        station, region = rs.stations[index], rs.regions[index]
        network = model.network.access("do", st.src, region)
        extra = 0.0
        if not rs.warm[index]:
            extra += self._cold_start()
            rs.warm[index] = True
        route = [(station, network, 0.0)]
        moving = st.step.action in rs.forward and t < rs.end_ms
        if moving and self._u() >= rs.migrated.value():
            # The new object does not hold the key yet: it looks in its storage, then asks
            # the object that held the key before the change, and keeps the answer.
            extra += self._storage_read()
            old = int(self._u() * len(st.targets))
            old_region = model.durable_objects[st.step.object].regions[old]
            forward = model.network.access("do", region, old_region)
            route.insert(0, (st.targets[old][0], forward, 0.0))
        if moving:
            rs.migrated.touches += 1
        request.route = route
        request.extra = extra
        return None

    # -- state changes -----------------------------------------------------------------
    def _event_process(self, i: int, ev: Any) -> Generator[simpy.Event, Any, None] | None:
        target = getattr(ev, "region", None) or "-".join(getattr(ev, "regions", ())) or ""
        if isinstance(ev, DurableObjectReshard):
            target = ev.namespace
        rec = EventRecord(i, ev.component, target, ev.at_s, ev.end_s)
        self.records.append(rec)
        handlers: dict[type, Callable[[Any, EventRecord], Generator[Any, Any, None]]] = {
            RegionOutage: self._region_outage,
            RedisPrimaryFailure: self._redis_primary,
            RedisClusterLoss: self._redis_cluster,
            CrdbNodeLoss: self._crdb_node,
            CrdbRegionLoss: self._crdb_region,
            NetworkPartition: self._partition,
            DurableObjectReshard: self._reshard,
        }
        handler = handlers.get(type(ev))
        if handler is None:  # traffic: the arrival process carries it
            rec.recovered_s = ev.end_s
            return None
        return handler(ev, rec)

    def _at(self, t_ms: float) -> simpy.Event:
        return self.env.timeout(max(t_ms - self.env.now, 0.0))

    def _note(self, rec: EventRecord, text: str) -> None:
        t = self.env.now / 1000
        rec.notes.append(f"{t:8.3f} s  {text}")
        self.log.append((t, f"events[{rec.index}] {rec.component} {rec.target}: {text}"))

    def _region_outage(self, ev: RegionOutage, rec: EventRecord) -> Generator[Any, Any, None]:
        tm = self.timings
        assert tm.health_check_interval_s and tm.health_check_failures
        interval = tm.health_check_interval_s.value * 1000
        checks = int(tm.health_check_failures.value)
        yield self._at(ev.at_s * 1000)
        self.backend_down.add(ev.region)
        if self.survival == "region":
            self.crdb_region_dead[ev.region] = self.env.now + self._lease_ms()
        self._note(rec, f"{ev.region}'s Redis and database unreachable")
        # The first failed check comes at a uniform phase of the interval.
        detect = self._u() * interval + (checks - 1) * interval
        yield self._at(self.env.now + detect)
        backend = self._nearest_healthy(ev.region)
        if backend is not None:
            self.routing[ev.region] = backend
            for edge, b in list(self.routing.items()):
                if b == ev.region:
                    self.routing[edge] = backend
        rec.detected_s = self.env.now / 1000
        self._note(rec, f"health checks failed {checks}x: {ev.region}'s traffic goes to {backend}")
        yield self._at(ev.end_s * 1000)
        self.backend_down.discard(ev.region)
        self.crdb_region_dead.pop(ev.region, None)
        self._note(rec, f"{ev.region} reachable again")
        back = self._u() * interval + (checks - 1) * interval
        yield self._at(self.env.now + back)
        self.routing.pop(ev.region, None)
        rec.recovered_s = self.env.now / 1000
        self._note(rec, f"health checks pass {checks}x: {ev.region}'s traffic returns")

    def _redis_primary(
        self, ev: RedisPrimaryFailure, rec: EventRecord
    ) -> Generator[Any, Any, None]:
        tm = self.timings
        assert (
            tm.redis_node_timeout_s
            and tm.redis_election_delay
            and tm.redis_replica_rank
            and tm.redis_replication_lag
            and tm.redis_moved_window_s
        )
        key = (ev.region, ev.shard)
        yield self._at(ev.at_s * 1000)
        self.redis_dead.add(key)
        lag = stream_of(tm.redis_replication_lag, self.rng)()
        station = self.model.redis[ev.region].stations[ev.shard]
        rec.lost_writes = self._lost_since(station, self.env.now - lag, by_lifetime=False)
        self._note(
            rec,
            f"primary {ev.region}/{ev.shard} dies; {rec.lost_writes} Redis-only writes of the "
            f"last {lag:.2f} ms were not yet on its replica",
        )
        yield self._at(self.env.now + tm.redis_node_timeout_s.value * 1000)
        self._down(ev.region, +1)
        rec.detected_s = self.env.now / 1000
        self._note(rec, "marked FAIL by a majority: CLUSTERDOWN on every slot")
        election = stream_of(tm.redis_election_delay, self.rng)()
        election += tm.redis_replica_rank.value * 1000
        yield self._at(self.env.now + election)
        self._down(ev.region, -1)
        self.redis_dead.discard(key)
        self.redis_moved_until[key] = self.env.now + tm.redis_moved_window_s.value * 1000
        rec.recovered_s = self.env.now / 1000
        self._note(rec, f"replica promoted after {election:.0f} ms of election; MOVED follows")

    def _redis_cluster(self, ev: RedisClusterLoss, rec: EventRecord) -> Generator[Any, Any, None]:
        yield self._at(ev.at_s * 1000)
        self._down(ev.region, +1)
        rec.lost_writes = sum(
            self._lost_since(s, self.env.now, by_lifetime=True)
            for s in self.model.redis[ev.region].stations
        )
        rec.detected_s = self.env.now / 1000
        self._note(
            rec, f"cluster lost with its replicas; {rec.lost_writes} live Redis-only writes gone"
        )
        yield self._at(ev.end_s * 1000)
        self._down(ev.region, -1)
        for (region, _), w in self.warmth.items():
            if region == ev.region:
                w.restart()
        rec.recovered_s = self.env.now / 1000
        self._note(rec, "cluster back, empty: every cache lookup misses until refilled")

    def _crdb_node(self, ev: CrdbNodeLoss, rec: EventRecord) -> Generator[Any, Any, None]:
        yield self._at(ev.at_s * 1000)
        expiry = self.env.now + self._lease_ms()
        self.crdb_dead[(ev.region, ev.node)] = expiry
        self._note(
            rec, f"node {ev.region}/{ev.node} lost; its leases expire in {self._lease_ms():.0f} ms"
        )
        yield self._at(expiry)
        rec.detected_s = rec.recovered_s = self.env.now / 1000
        self._note(rec, "leases expired: its ranges are served by the surviving replicas")
        yield self._at(ev.end_s * 1000)
        self.crdb_dead.pop((ev.region, ev.node), None)
        self._note(rec, "node rejoins")

    def _crdb_region(self, ev: CrdbRegionLoss, rec: EventRecord) -> Generator[Any, Any, None]:
        yield self._at(ev.at_s * 1000)
        zone = self.survival == "zone"
        self.crdb_region_dead[ev.region] = INF if zone else self.env.now + self._lease_ms()
        self._note(
            rec,
            f"all nodes of {ev.region} lost ("
            + (
                "ZONE survival: its rows have no quorum until it returns"
                if zone
                else "REGION survival: leases move to another region"
            )
            + ")",
        )
        if not zone:
            yield self._at(self.crdb_region_dead[ev.region])
            rec.detected_s = rec.recovered_s = self.env.now / 1000
            self._note(rec, f"leases expired: rows move to {self._nearest_healthy(ev.region)}")
        yield self._at(ev.end_s * 1000)
        self.crdb_region_dead.pop(ev.region, None)
        if zone:
            rec.detected_s = ev.at_s
            rec.recovered_s = self.env.now / 1000
        self._note(rec, "region back")

    def _partition(self, ev: NetworkPartition, rec: EventRecord) -> Generator[Any, Any, None]:
        tm = self.timings
        assert tm.db_attempt_timeout_s
        pair = frozenset(ev.regions)
        yield self._at(ev.at_s * 1000)
        self.partitions.add(pair)
        rec.detected_s = ev.at_s + tm.db_attempt_timeout_s.value
        self._note(rec, f"{ev.regions[0]} and {ev.regions[1]} cannot reach each other")
        yield self._at(ev.end_s * 1000)
        self.partitions.discard(pair)
        rec.recovered_s = self.env.now / 1000
        self._note(rec, "partition healed")

    def _reshard(self, ev: DurableObjectReshard, rec: EventRecord) -> Generator[Any, Any, None]:
        regions = self.world.topology.regions
        stations = [FcfsStation(f"do/{ev.namespace}.new/{i}") for i in range(ev.shards)]
        keys = (
            self.users
            * self.world.workload.active_session_share.value
            / self.model.config.reduction
        )
        self.reshards[ev.namespace] = _Reshard(
            ev.at_s * 1000,
            ev.end_s * 1000,
            stations,
            [regions[i % len(regions)] for i in range(ev.shards)],
            [False] * ev.shards,
            Warmth(keys),
            frozenset(ev.forward_actions),
        )
        self.reshards[ev.namespace].migrated.restart()
        self.model.extra_stations.extend(stations)
        yield self._at(ev.at_s * 1000)
        rec.detected_s = ev.at_s
        self._note(rec, f"{ev.namespace} now routes keys over {ev.shards} new, cold objects")
        yield self._at(ev.end_s * 1000)
        w = self.reshards[ev.namespace].migrated
        rec.recovered_s = self.env.now / 1000
        self._note(rec, f"forwarding ends; {w.value():.1%} of keys had moved lazily")

    # -- helpers ---------------------------------------------------------------------
    def _down(self, region: str, delta: int) -> None:
        self.redis_unavailable[region] = self.redis_unavailable.get(region, 0) + delta

    def _lease_ms(self) -> float:
        assert self.timings.crdb_lease_expiry_s is not None
        return self.timings.crdb_lease_expiry_s.value * 1000

    def _lost_since(self, station: FcfsStation, since: float, by_lifetime: bool) -> int:
        ring = self.redis_only.get(station, ())
        now = self.env.now
        if by_lifetime:
            return sum(1 for t, keeps in ring if now - t < keeps)
        return sum(1 for t, _ in ring if t > since)

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
