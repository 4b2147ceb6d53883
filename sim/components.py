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

import itertools
from collections.abc import Sequence

import numpy as np

from scenarios.loader import World
from sim.queues import FcfsStation
from sim.sampling import Stream, constant_value, stream_of


def delay_of(parts: Sequence[Stream], fixed_ms: float = 0.0) -> Stream:
    """A sum of independent delays (streams plus a fixed part) as one stream, in ms."""
    constant = fixed_ms
    random_parts = []
    for part in parts:
        value = constant_value(part)
        if value is None:
            random_parts.append(part)
        else:
            constant += value
    if not random_parts:
        return itertools.repeat(constant).__next__
    if len(random_parts) == 1 and constant == 0.0:
        return random_parts[0]
    if len(random_parts) == 1:
        only = random_parts[0]
        return lambda: constant + only()
    streams = tuple(random_parts)

    def total() -> float:
        t = constant
        for s in streams:
            t += s()
        return t

    return total


class Network:
    """Round trip from the edge in region `src` to `component` in region `dst`."""

    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self._world = world
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
        self._cache: dict[tuple[str, str, str], Stream] = {}

    def access(self, component: str, src: str, dst: str) -> Stream:
        key = (component, src, dst)
        if key not in self._cache:
            self._cache[key] = self._build(component, src, dst)
        return self._cache[key]

    def _build(self, component: str, src: str, dst: str) -> Stream:
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
        return delay_of(parts, fixed)

    def write_quorum(self, leaseholder_region: str) -> Stream | None:
        """Extra wait for a Raft quorum after a write is applied at its leaseholder."""
        if self._world.profile.write_quorum == "included":
            return None
        topo = self._world.topology
        if topo.crdb.survival == "zone":
            return self._intra
        nearest = topo.nearest_other_region(leaseholder_region)
        return delay_of((self._jitter,), topo.rtt.between(leaseholder_region, nearest))


class _Pool:
    """Interchangeable stations that keys reach by hash routing (uniformly)."""

    def __init__(self, stations: Sequence[FcfsStation]) -> None:
        self.stations = list(stations)


class RedisCluster(_Pool):
    def __init__(self, region: str, shards: int, world: World, rng: np.random.Generator) -> None:
        super().__init__([FcfsStation(f"redis/{region}/{i}") for i in range(shards)])
        self.service = stream_of(world.topology.redis.service, rng)


class CockroachRegion(_Pool):
    def __init__(self, region: str, nodes: int, world: World, rng: np.random.Generator) -> None:
        vcpus = world.topology.crdb.vcpus_per_node
        super().__init__([FcfsStation(f"crdb/{region}/{i}", vcpus) for i in range(nodes)])
        self.read_cpu = stream_of(world.topology.crdb.read_cpu, rng)
        self.write_cpu = stream_of(world.topology.crdb.write_cpu, rng)


class DurableObjectNamespace:
    """Shards spread round-robin over the regions; a key hashes to one of them."""

    def __init__(self, name: str, shards: int, world: World, rng: np.random.Generator) -> None:
        regions = world.topology.regions
        self.name = name
        self.stations = [FcfsStation(f"do/{name}/{i}") for i in range(shards)]
        self.regions = [regions[i % len(regions)] for i in range(shards)]
        self.service = stream_of(world.topology.durable_objects.service, rng)


class D1Database:
    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self.region = world.topology.d1.primary_region
        self.station = FcfsStation(f"d1/{self.region}/0")
        self.service = stream_of(world.topology.d1.service, rng)
