"""Failure scenarios: a timeline of component failures and the timings of their recovery.

A scenario file in `scenarios/failures/` names the architecture it drills, how long the
run lasts, the load, and its events: at `at_s` seconds, `component` fails for `for_s`
seconds. How the system notices and recovers (health-check intervals, the Redis node
timeout and election, CockroachDB lease expiry, client timeouts and retries) is given in
the file's `[timings]` table, every figure with its source. Validation rejects unknown
components, overlapping failures of one component, negative or zero durations and events
that run past the end, naming the file, the event and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scenarios.distributions import Dist, Figure
from scenarios.errors import ScenarioError

FAILURES_DIR = Path(__file__).parent / "failures"

EVENT_KINDS: tuple[str, ...] = (
    "region",
    "redis_primary",
    "redis_cluster",
    "crdb_node",
    "crdb_region",
    "partition",
    "traffic",
    "do_reshard",
)

# The timings each kind of event needs from the file's [timings] table.
TIMINGS_NEEDED: dict[str, tuple[str, ...]] = {
    "region": ("health_check_interval_s", "health_check_failures"),
    "redis_primary": (
        "redis_node_timeout_s",
        "redis_election_delay",
        "redis_replica_rank",
        "redis_replication_lag",
        "redis_moved_window_s",
    ),
    "redis_cluster": (),
    "crdb_node": ("crdb_lease_expiry_s",),
    "crdb_region": ("crdb_lease_expiry_s",),
    "partition": ("db_attempt_timeout_s", "db_retries", "db_retry_backoff"),
    "traffic": (),
    "do_reshard": ("do_cold_start", "do_storage_read"),
}


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    at_s: float = Field(ge=0, description="when the failure starts, seconds into the run")
    for_s: float = Field(gt=0, description="how long the component stays failed")
    note: str | None = None

    def key(self) -> tuple[str, ...]:
        """The component this event fails: two events on one key must not overlap."""
        raise NotImplementedError

    @property
    def end_s(self) -> float:
        return self.at_s + self.for_s


class RegionOutage(_Event):
    """A region's backend (its Redis cluster and CockroachDB nodes) becomes unreachable.

    Geo routing notices after the health checks fail and sends the region's traffic to the
    nearest healthy region; after recovery the checks pass again and traffic returns.
    """

    component: Literal["region"]
    region: str

    def key(self) -> tuple[str, ...]:
        return ("region", self.region)


class RedisPrimaryFailure(_Event):
    """One primary of a regional Redis Cluster dies; its replica is promoted by election."""

    component: Literal["redis_primary"]
    region: str
    shard: int = Field(default=0, ge=0)

    def key(self) -> tuple[str, ...]:
        return ("redis", self.region, str(self.shard))


class RedisClusterLoss(_Event):
    """A whole regional cluster (primaries and replicas) is lost and restarts empty."""

    component: Literal["redis_cluster"]
    region: str

    def key(self) -> tuple[str, ...]:
        return ("redis", self.region)


class CrdbNodeLoss(_Event):
    component: Literal["crdb_node"]
    region: str
    node: int = Field(default=0, ge=0)

    def key(self) -> tuple[str, ...]:
        return ("crdb", self.region, str(self.node))


class CrdbRegionLoss(_Event):
    component: Literal["crdb_region"]
    region: str

    def key(self) -> tuple[str, ...]:
        return ("crdb", self.region)


class NetworkPartition(_Event):
    """Two regions cannot reach each other; calls between them time out and fail."""

    component: Literal["partition"]
    regions: tuple[str, str]

    @model_validator(mode="after")
    def _two(self) -> NetworkPartition:
        if self.regions[0] == self.regions[1]:
            raise ValueError(f"a partition needs two different regions, got {self.regions}")
        return self

    def key(self) -> tuple[str, ...]:
        return ("partition", *sorted(self.regions))


class TrafficSpike(_Event):
    """The offered load changes to the preset's peak (or a factor of the base) and back."""

    component: Literal["traffic"]
    load: Literal["peak"] | None = None
    factor: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one(self) -> TrafficSpike:
        if (self.load is None) == (self.factor is None):
            raise ValueError("a traffic event needs exactly one of load = 'peak' or factor")
        return self

    def key(self) -> tuple[str, ...]:
        return ("traffic",)


class DurableObjectReshard(_Event):
    """A namespace grows to `shards` new objects, which start cold.

    Keys written before the change still live in the old objects: a new object that does
    not hold a key yet forwards the read to the old one and keeps the answer (lazy
    migration). `for_s` is how long the old objects stay reachable for forwarding; after
    it the keys still unmoved are assumed copied by a background job (not modelled).
    """

    component: Literal["do_reshard"]
    namespace: str
    shards: int = Field(ge=1)
    forward_actions: tuple[str, ...] = Field(min_length=1)

    def key(self) -> tuple[str, ...]:
        return ("do", self.namespace)


Event = Annotated[
    RegionOutage
    | RedisPrimaryFailure
    | RedisClusterLoss
    | CrdbNodeLoss
    | CrdbRegionLoss
    | NetworkPartition
    | TrafficSpike
    | DurableObjectReshard,
    Field(discriminator="component"),
]


class Timings(BaseModel):
    """Detection and recovery timings, each with its source."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    health_check_interval_s: Figure | None = None
    health_check_failures: Figure | None = None
    redis_node_timeout_s: Figure | None = None
    redis_election_delay: Dist | None = None
    redis_replica_rank: Figure | None = None
    redis_replication_lag: Dist | None = None
    redis_moved_window_s: Figure | None = None
    crdb_lease_expiry_s: Figure | None = None
    db_attempt_timeout_s: Figure | None = None
    db_retries: Figure | None = None
    db_retry_backoff: Dist | None = None
    do_cold_start: Dist | None = None
    do_storage_read: Dist | None = None


class FailureScenario(BaseModel):
    """One drill: what fails when, on which architecture, under which load."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    description: str = Field(min_length=3)
    architecture: Literal["hybrid", "legacy"] = "hybrid"
    duration_s: float = Field(gt=0, le=3600)
    mau: str = "200M"
    load: Literal["average", "peak"] = "average"
    profile: str | None = Field(
        default=None, description="latency profile the drill is meant for (PROFILE overrides)"
    )
    survival: tuple[Literal["zone", "region"], ...] = Field(default=(), max_length=2)
    exact_scale: bool = Field(
        default=False,
        description="simulate every node of every pool (no reduction): needed when one "
        "node of a pool fails, since the failed fraction depends on the pool's size",
    )
    events: tuple[Event, ...] = Field(min_length=1)
    timings: Timings = Timings()

    @model_validator(mode="after")
    def _coherent(self) -> FailureScenario:
        seen: dict[tuple[str, ...], list[tuple[int, _Event]]] = {}
        for i, ev in enumerate(self.events):
            if ev.end_s > self.duration_s:
                raise ValueError(
                    f"events[{i}] ({ev.component}) runs from {ev.at_s:g} s to {ev.end_s:g} s, "
                    f"past the end of the run (duration_s = {self.duration_s:g}); shorten "
                    "for_s or lengthen duration_s"
                )
            for j, other in seen.get(ev.key(), []):
                if ev.at_s < other.end_s and other.at_s < ev.end_s:
                    raise ValueError(
                        f"events[{j}] and events[{i}] fail the same component "
                        f"({'/'.join(ev.key())}) at overlapping times "
                        f"({other.at_s:g}-{other.end_s:g} s and {ev.at_s:g}-{ev.end_s:g} s); "
                        "merge them into one event or move one"
                    )
            seen.setdefault(ev.key(), []).append((i, ev))
            for name in TIMINGS_NEEDED[ev.component]:
                if getattr(self.timings, name) is None:
                    raise ValueError(
                        f"events[{i}] ({ev.component}) needs timings.{name} (with its source)"
                    )
        if len(set(self.survival)) != len(self.survival):
            raise ValueError(f"survival lists a goal twice: {list(self.survival)}")
        return self


def available_scenarios(directory: Path = FAILURES_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.toml"))


def load_scenario(name: str, directory: Path = FAILURES_DIR) -> FailureScenario:
    """Load `scenarios/failures/<name>.toml`, or say which names exist."""
    from scenarios.loader import load_model

    path = directory / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(available_scenarios(directory)) or "(none)"
        raise ScenarioError(
            f"unknown SCENARIO={name!r}: no file {path}; choose one of {known} "
            "(make scenarios lists them)"
        )
    return load_model(FailureScenario, path)


def check_against_world(scenario: FailureScenario, name: str, world: object) -> None:
    """Every region, shard, node and namespace an event names must exist in the topology."""
    from scenarios.loader import World

    assert isinstance(world, World)
    topo = world.topology
    where = f"scenarios/failures/{name}.toml"
    hybrid_only = {"region", "redis_primary", "redis_cluster", "crdb_node", "crdb_region"}
    for i, ev in enumerate(scenario.events):
        here = f"{where}: events[{i}] ({ev.component})"
        regions = getattr(ev, "regions", None) or ((ev.region,) if hasattr(ev, "region") else ())
        for region in regions:
            if region not in topo.regions:
                raise ScenarioError(
                    f"{here}: unknown region {region!r}; choose one of {', '.join(topo.regions)}"
                )
        if ev.component in hybrid_only and scenario.architecture != "hybrid":
            raise ScenarioError(f"{here}: {ev.component} exists only in the hybrid design")
        if isinstance(ev, RedisPrimaryFailure) and ev.shard >= topo.redis.primaries_per_region:
            n = topo.redis.primaries_per_region
            raise ScenarioError(
                f"{here}: shard {ev.shard} does not exist; a regional cluster has "
                f"{n} primaries (0-{n - 1})"
            )
        if isinstance(ev, CrdbNodeLoss) and ev.node >= topo.crdb.nodes_per_region:
            raise ScenarioError(
                f"{here}: node {ev.node} does not exist; a region has "
                f"{topo.crdb.nodes_per_region} nodes (0-{topo.crdb.nodes_per_region - 1})"
            )
        if isinstance(ev, DurableObjectReshard):
            if scenario.architecture != "legacy":
                raise ScenarioError(f"{here}: Durable Objects exist only in the legacy design")
            namespaces = topo.durable_objects.namespaces
            if ev.namespace not in namespaces:
                raise ScenarioError(
                    f"{here}: unknown namespace {ev.namespace!r}; choose one of "
                    f"{', '.join(namespaces)}"
                )
            actions = {
                s.action
                for op in world.operations.legacy.values()
                for s in op.steps
                if s.object == ev.namespace
            }
            unknown = sorted(set(ev.forward_actions) - actions)
            if unknown:
                raise ScenarioError(
                    f"{here}: forward_actions {unknown} are not steps on {ev.namespace}; "
                    f"its steps are {sorted(actions)}"
                )
    if scenario.mau not in world.workload.mau:
        raise ScenarioError(
            f"{where}: unknown mau {scenario.mau!r}; choose one of {', '.join(world.workload.mau)}"
        )
