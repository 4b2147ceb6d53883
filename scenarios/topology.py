"""Regions, the round-trip-time matrix and the capacity of every component."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scenarios.distributions import Dist, Figure, Source


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RttMatrix(_Frozen):
    """Round-trip times between regions in ms, written as the upper triangle."""

    source: Source
    pairs_ms: dict[str, dict[str, float]]
    jitter_ms: Dist
    intra_region_ms: Dist

    def between(self, a: str, b: str) -> float:
        if a == b:
            return 0.0
        row = self.pairs_ms.get(a, {})
        return row[b] if b in row else self.pairs_ms[b][a]


class RedisCluster(_Frozen):
    primaries_per_region: int = Field(ge=1)
    replicas_per_primary: int = Field(ge=0)
    service: Dist


class Cockroach(_Frozen):
    nodes_per_region: int = Field(ge=1)
    vcpus_per_node: int = Field(ge=1)
    survival: Literal["zone", "region"]
    survival_source: Source
    read_cpu: Dist
    write_cpu: Dist


class DurableObjectNamespace(_Frozen):
    shards: int = Field(ge=1)
    source: Source


class DurableObjects(_Frozen):
    service: Dist
    memory_limit_mb: Figure
    namespaces: dict[str, DurableObjectNamespace]


class D1(_Frozen):
    primary_region: str
    primary_region_source: Source
    service: Dist


class Topology(_Frozen):
    regions: tuple[str, ...]
    rtt: RttMatrix
    redis: RedisCluster
    crdb: Cockroach
    durable_objects: DurableObjects
    d1: D1
    edge_workers_autoscaled: Figure

    @model_validator(mode="after")
    def _regions_consistent(self) -> Topology:
        known = set(self.regions)
        for a, row in self.rtt.pairs_ms.items():
            for b, ms in row.items():
                for name in (a, b):
                    if name not in known:
                        raise ValueError(
                            f"rtt.pairs_ms names region {name!r}; known regions: {sorted(known)}"
                        )
                if ms <= 0:
                    raise ValueError(f"rtt.pairs_ms.{a}.{b} must be > 0 ms, got {ms}")
        for i, a in enumerate(self.regions):
            for b in self.regions[i + 1 :]:
                if b not in self.rtt.pairs_ms.get(a, {}) and a not in self.rtt.pairs_ms.get(b, {}):
                    raise ValueError(f"rtt.pairs_ms has no round-trip time for {a} <-> {b}")
        if self.d1.primary_region not in known:
            raise ValueError(
                f"d1.primary_region {self.d1.primary_region!r} is not one of {sorted(known)}"
            )
        return self

    def nearest_other_region(self, region: str) -> str:
        others = [r for r in self.regions if r != region]
        return min(others, key=lambda r: self.rtt.between(region, r))
