"""The components of the modelled system; each owns its stations and service streams.

- `Network`: round trips between an edge and a component, from the profile (layer
  figures) or from the topology's RTT matrix (physics), plus client CPU per call.
- `RedisCluster`: one region's primaries, single-threaded, keys routed by hash slot.
- `CockroachRegion`: one region's nodes, each a vCPU pool; reads/writes cost CPU.
- `DurableObjectNamespace`: single-threaded shards spread over the regions.
- `D1Database`: one single-threaded primary.
Edge workers are auto-scaled (infinite servers), so an edge step is a pure delay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scenarios.loader import World
from sim.queues import FcfsStation
from sim.sampling import Stream, stream_of, uniform01


@dataclass
class Delay:
    """A sum of independent delays: streams plus a fixed part, in ms."""

    streams: tuple[Stream, ...]
    fixed_ms: float = 0.0

    def next(self) -> float:
        total = self.fixed_ms
        for s in self.streams:
            total += s.next()
        return total

    @property
    def is_zero(self) -> bool:
        return not self.streams and self.fixed_ms == 0.0


class Network:
    """Round trip from the edge in region `src` to `component` in region `dst`."""

    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self._world = world
        self._rng = rng
        prof, topo = world.profile, world.topology
        self._intra = stream_of(topo.rtt.intra_region_ms, rng)
        self._jitter = stream_of(topo.rtt.jitter_ms, rng)
        self._client = {c: stream_of(d, rng) for c, d in prof.client_cpu.items()}
        self._same = {c: stream_of(f.same_region, rng) for c, f in prof.access.items()}
        self._cross = {
            c: stream_of(f.cross_region, rng)
            for c, f in prof.access.items()
            if f.cross_region is not None
        }
        self._cache: dict[tuple[str, str, str], Delay] = {}

    def access(self, component: str, src: str, dst: str) -> Delay:
        key = (component, src, dst)
        if key not in self._cache:
            self._cache[key] = self._build(component, src, dst)
        return self._cache[key]

    def _build(self, component: str, src: str, dst: str) -> Delay:
        parts: list[Stream] = []
        fixed = 0.0
        if self._world.profile.network == "layer_figures":
            table = self._same if src == dst else self._cross
            parts.append(table[component])
        else:
            parts.append(self._same.get(component, self._intra))
            if src != dst:
                fixed += self._world.topology.rtt.between(src, dst)
                parts.append(self._jitter)
        if component in self._client:
            parts.append(self._client[component])
        return Delay(tuple(parts), fixed)

    def write_quorum(self, leaseholder_region: str) -> Delay:
        """Extra wait for a Raft quorum after a write is applied at its leaseholder."""
        if self._world.profile.write_quorum == "included":
            return Delay(())
        topo = self._world.topology
        if topo.crdb.survival == "zone":
            return Delay((self._intra,))
        nearest = topo.nearest_other_region(leaseholder_region)
        return Delay((self._jitter,), topo.rtt.between(leaseholder_region, nearest))


class _Pool:
    """Stations reached by hash routing: every key lands on one uniformly."""

    def __init__(self, stations: Sequence[FcfsStation], rng: np.random.Generator) -> None:
        self.stations = list(stations)
        self._u = uniform01(rng)

    def pick(self) -> FcfsStation:
        n = len(self.stations)
        return self.stations[0] if n == 1 else self.stations[int(self._u.next() * n)]


class RedisCluster(_Pool):
    def __init__(self, region: str, shards: int, world: World, rng: np.random.Generator) -> None:
        super().__init__([FcfsStation(f"redis/{region}/{i}") for i in range(shards)], rng)
        self.service = stream_of(world.topology.redis.service, rng)


class CockroachRegion(_Pool):
    def __init__(self, region: str, nodes: int, world: World, rng: np.random.Generator) -> None:
        vcpus = world.topology.crdb.vcpus_per_node
        super().__init__([FcfsStation(f"crdb/{region}/{i}", vcpus) for i in range(nodes)], rng)
        self.read_cpu = stream_of(world.topology.crdb.read_cpu, rng)
        self.write_cpu = stream_of(world.topology.crdb.write_cpu, rng)


class DurableObjectNamespace:
    """Shards spread round-robin over the regions; a key hashes to one uniformly."""

    def __init__(self, name: str, shards: int, world: World, rng: np.random.Generator) -> None:
        regions = world.topology.regions
        self.name = name
        self.stations = [FcfsStation(f"do/{name}/{i}") for i in range(shards)]
        self.regions = [regions[i % len(regions)] for i in range(shards)]
        self.service = stream_of(world.topology.durable_objects.service, rng)
        self._u = uniform01(rng)

    def pick(self) -> tuple[FcfsStation, str]:
        i = int(self._u.next() * len(self.stations))
        return self.stations[i], self.regions[i]


class D1Database:
    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self.region = world.topology.d1.primary_region
        self.station = FcfsStation(f"d1/{self.region}")
        self.service = stream_of(world.topology.d1.service, rng)
