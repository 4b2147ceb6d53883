"""The events of a failure scenario: SimPy processes that change component state.

Each process waits for its event's start, changes the engine's state, and then follows
the scenario's timings (the Redis node timeout and election, the lease expiry, health
checks) to recovery, noting what happened and when in the event's record. The routes
requests take through that state are the engine's (`sim.faults`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import simpy

from scenarios.faults import (
    CrdbNodeLoss,
    CrdbRegionLoss,
    DurableObjectReshard,
    NetworkPartition,
    RedisClusterLoss,
    RedisPrimaryFailure,
    RegionOutage,
)
from sim.queues import FcfsStation
from sim.sampling import stream_of

if TYPE_CHECKING:
    from sim.faults import FaultEngine

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
class Reshard:
    at_ms: float
    end_ms: float
    stations: list[FcfsStation]
    regions: list[str]
    warm: list[bool]
    migrated: Warmth
    forward: frozenset[str]


def event_process(engine: FaultEngine, i: int, ev: Any) -> Generator[simpy.Event, Any, None] | None:
    target = getattr(ev, "region", None) or "-".join(getattr(ev, "regions", ())) or ""
    if isinstance(ev, DurableObjectReshard):
        target = ev.namespace
    rec = EventRecord(i, ev.component, target, ev.at_s, ev.end_s)
    engine.records.append(rec)
    handlers: dict[type, Callable[[FaultEngine, Any, EventRecord], Generator[Any, Any, None]]] = {
        RegionOutage: region_outage,
        RedisPrimaryFailure: redis_primary,
        RedisClusterLoss: redis_cluster,
        CrdbNodeLoss: crdb_node,
        CrdbRegionLoss: crdb_region,
        NetworkPartition: partition,
        DurableObjectReshard: reshard,
    }
    handler = handlers.get(type(ev))
    if handler is None:  # traffic: the arrival process carries it
        rec.recovered_s = ev.end_s
        return None
    return handler(engine, ev, rec)


def at(engine: FaultEngine, t_ms: float) -> simpy.Event:
    return engine.env.timeout(max(t_ms - engine.env.now, 0.0))


def note(engine: FaultEngine, rec: EventRecord, text: str) -> None:
    t = engine.env.now / 1000
    rec.notes.append(f"{t:8.3f} s  {text}")
    engine.log.append((t, f"events[{rec.index}] {rec.component} {rec.target}: {text}"))


def region_outage(
    engine: FaultEngine, ev: RegionOutage, rec: EventRecord
) -> Generator[Any, Any, None]:
    tm = engine.timings
    assert tm.health_check_interval_s and tm.health_check_failures
    interval = tm.health_check_interval_s.value * 1000
    checks = int(tm.health_check_failures.value)
    yield at(engine, ev.at_s * 1000)
    engine.backend_down.add(ev.region)
    if engine.survival == "region":
        engine.crdb_region_dead[ev.region] = engine.env.now + lease_ms(engine)
    note(engine, rec, f"{ev.region}'s Redis and database unreachable")
    # The first failed check comes at a uniform phase of the interval.
    detect = engine.uniform() * interval + (checks - 1) * interval
    yield at(engine, engine.env.now + detect)
    backend = engine.nearest_healthy(ev.region)
    if backend is not None:
        engine.routing[ev.region] = backend
        for edge, b in list(engine.routing.items()):
            if b == ev.region:
                engine.routing[edge] = backend
    rec.detected_s = engine.env.now / 1000
    note(engine, rec, f"health checks failed {checks}x: {ev.region}'s traffic goes to {backend}")
    yield at(engine, ev.end_s * 1000)
    engine.backend_down.discard(ev.region)
    engine.crdb_region_dead.pop(ev.region, None)
    note(engine, rec, f"{ev.region} reachable again")
    back = engine.uniform() * interval + (checks - 1) * interval
    yield at(engine, engine.env.now + back)
    engine.routing.pop(ev.region, None)
    rec.recovered_s = engine.env.now / 1000
    note(engine, rec, f"health checks pass {checks}x: {ev.region}'s traffic returns")


def redis_primary(
    engine: FaultEngine, ev: RedisPrimaryFailure, rec: EventRecord
) -> Generator[Any, Any, None]:
    tm = engine.timings
    assert (
        tm.redis_node_timeout_s
        and tm.redis_election_delay
        and tm.redis_replica_rank
        and tm.redis_replication_lag
        and tm.redis_moved_window_s
    )
    key = (ev.region, ev.shard)
    yield at(engine, ev.at_s * 1000)
    engine.redis_dead.add(key)
    lag = stream_of(tm.redis_replication_lag, engine.rng)()
    station = engine.model.redis[ev.region].stations[ev.shard]
    rec.lost_writes = lost_since(engine, station, engine.env.now - lag, by_lifetime=False)
    note(
        engine,
        rec,
        f"primary {ev.region}/{ev.shard} dies; {rec.lost_writes} Redis-only writes of the "
        f"last {lag:.2f} ms were not yet on its replica",
    )
    yield at(engine, engine.env.now + tm.redis_node_timeout_s.value * 1000)
    down(engine, ev.region, +1)
    rec.detected_s = engine.env.now / 1000
    note(engine, rec, "marked FAIL by a majority: CLUSTERDOWN on every slot")
    election = stream_of(tm.redis_election_delay, engine.rng)()
    election += tm.redis_replica_rank.value * 1000
    yield at(engine, engine.env.now + election)
    down(engine, ev.region, -1)
    engine.redis_dead.discard(key)
    engine.redis_moved_until[key] = engine.env.now + tm.redis_moved_window_s.value * 1000
    rec.recovered_s = engine.env.now / 1000
    note(engine, rec, f"replica promoted after {election:.0f} ms of election; MOVED follows")


def redis_cluster(
    engine: FaultEngine, ev: RedisClusterLoss, rec: EventRecord
) -> Generator[Any, Any, None]:
    yield at(engine, ev.at_s * 1000)
    down(engine, ev.region, +1)
    rec.lost_writes = sum(
        lost_since(engine, s, engine.env.now, by_lifetime=True)
        for s in engine.model.redis[ev.region].stations
    )
    rec.detected_s = engine.env.now / 1000
    note(
        engine,
        rec,
        f"cluster lost with its replicas; {rec.lost_writes} live Redis-only writes gone",
    )
    yield at(engine, ev.end_s * 1000)
    down(engine, ev.region, -1)
    for (region, _), w in engine.warmth.items():
        if region == ev.region:
            w.restart()
    rec.recovered_s = engine.env.now / 1000
    note(engine, rec, "cluster back, empty: every cache lookup misses until refilled")


def crdb_node(engine: FaultEngine, ev: CrdbNodeLoss, rec: EventRecord) -> Generator[Any, Any, None]:
    yield at(engine, ev.at_s * 1000)
    expiry = engine.env.now + lease_ms(engine)
    engine.crdb_dead[(ev.region, ev.node)] = expiry
    note(
        engine,
        rec,
        f"node {ev.region}/{ev.node} lost; its leases expire in {lease_ms(engine):.0f} ms",
    )
    yield at(engine, expiry)
    rec.detected_s = rec.recovered_s = engine.env.now / 1000
    note(engine, rec, "leases expired: its ranges are served by the surviving replicas")
    yield at(engine, ev.end_s * 1000)
    engine.crdb_dead.pop((ev.region, ev.node), None)
    note(engine, rec, "node rejoins")


def crdb_region(
    engine: FaultEngine, ev: CrdbRegionLoss, rec: EventRecord
) -> Generator[Any, Any, None]:
    yield at(engine, ev.at_s * 1000)
    zone = engine.survival == "zone"
    engine.crdb_region_dead[ev.region] = INF if zone else engine.env.now + lease_ms(engine)
    note(
        engine,
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
        yield at(engine, engine.crdb_region_dead[ev.region])
        rec.detected_s = rec.recovered_s = engine.env.now / 1000
        note(engine, rec, f"leases expired: rows move to {engine.nearest_healthy(ev.region)}")
    yield at(engine, ev.end_s * 1000)
    engine.crdb_region_dead.pop(ev.region, None)
    if zone:
        rec.detected_s = ev.at_s
        rec.recovered_s = engine.env.now / 1000
    note(engine, rec, "region back")


def partition(
    engine: FaultEngine, ev: NetworkPartition, rec: EventRecord
) -> Generator[Any, Any, None]:
    tm = engine.timings
    assert tm.db_attempt_timeout_s
    pair = frozenset(ev.regions)
    yield at(engine, ev.at_s * 1000)
    engine.partitions.add(pair)
    rec.detected_s = ev.at_s + tm.db_attempt_timeout_s.value
    note(engine, rec, f"{ev.regions[0]} and {ev.regions[1]} cannot reach each other")
    yield at(engine, ev.end_s * 1000)
    engine.partitions.discard(pair)
    rec.recovered_s = engine.env.now / 1000
    note(engine, rec, "partition healed")


def reshard(
    engine: FaultEngine, ev: DurableObjectReshard, rec: EventRecord
) -> Generator[Any, Any, None]:
    regions = engine.world.topology.regions
    stations = [FcfsStation(f"do/{ev.namespace}.new/{i}") for i in range(ev.shards)]
    keys = (
        engine.users
        * engine.world.workload.active_session_share.value
        / engine.model.config.reduction
    )
    engine.reshards[ev.namespace] = Reshard(
        ev.at_s * 1000,
        ev.end_s * 1000,
        stations,
        [regions[i % len(regions)] for i in range(ev.shards)],
        [False] * ev.shards,
        Warmth(keys),
        frozenset(ev.forward_actions),
    )
    engine.reshards[ev.namespace].migrated.restart()
    engine.model.extra_stations.extend(stations)
    yield at(engine, ev.at_s * 1000)
    rec.detected_s = ev.at_s
    note(engine, rec, f"{ev.namespace} now routes keys over {ev.shards} new, cold objects")
    yield at(engine, ev.end_s * 1000)
    w = engine.reshards[ev.namespace].migrated
    rec.recovered_s = engine.env.now / 1000
    note(engine, rec, f"forwarding ends; {w.value():.1%} of keys had moved lazily")


# -- helpers ---------------------------------------------------------------------


def down(engine: FaultEngine, region: str, delta: int) -> None:
    engine.redis_unavailable[region] = engine.redis_unavailable.get(region, 0) + delta


def lease_ms(engine: FaultEngine) -> float:
    assert engine.timings.crdb_lease_expiry_s is not None
    return engine.timings.crdb_lease_expiry_s.value * 1000


def lost_since(engine: FaultEngine, station: FcfsStation, since: float, by_lifetime: bool) -> int:
    ring = engine.redis_only.get(station, ())
    now = engine.env.now
    if by_lifetime:
        return sum(1 for t, keeps in ring if now - t < keeps)
    return sum(1 for t, _ in ring if t > since)
