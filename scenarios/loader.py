"""Reads the TOML files, validates them into immutable models and cross-checks them.

Errors name the file, the field path, the bad value and what is allowed.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from scenarios.distributions import Figure
from scenarios.errors import ScenarioError
from scenarios.operations import ARCHITECTURES, OperationCatalog
from scenarios.profiles import Profile
from scenarios.topology import Topology
from scenarios.workload import LOCALITIES, OPERATIONS, Workload

DATA_DIR = Path(__file__).parent / "data"
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class World:
    """Everything the model needs, validated and consistent with itself."""

    topology: Topology
    workload: Workload
    operations: OperationCatalog
    profile: Profile
    files: dict[str, Path]
    # A world cut down to some regions (the local stack's) keeps the whole topology here:
    # the server's emulation finds a quorum's nearest region among all of them.
    full_topology: Topology | None = None

    def as_dict(self) -> dict[str, Any]:
        """The scenario as run, for results folders."""
        return {
            "topology": self.topology.model_dump(mode="json"),
            "workload": self.workload.model_dump(mode="json"),
            "operations": self.operations.model_dump(mode="json"),
            "profile": self.profile.model_dump(mode="json"),
        }


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ScenarioError(f"{path}: file not found")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc


def _format_validation(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = err.get("input")
        shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
        if len(shown) > 60:
            shown = shown[:57] + "..."
        lines.append(f"{path}: {loc}: {err['msg']} (got {shown})")
    more = len(exc.errors()) - 5
    if more > 0:
        lines.append(f"... and {more} more")
    return "\n".join(lines)


def load_model(model: type[M], path: Path) -> M:
    """Validate one TOML file into `model`; a ScenarioError names file, field and value."""
    data = _read_toml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_format_validation(path, exc)) from exc


def available_profiles(data_dir: Path = DATA_DIR) -> list[str]:
    return sorted(p.stem for p in (data_dir / "profiles").glob("*.toml"))


def profile_path(profile: str, data_dir: Path = DATA_DIR) -> Path:
    """The file of a profile: a name in the profiles folder, or a path (`….toml`)."""
    if profile.endswith(".toml"):
        return Path(profile)
    return data_dir / "profiles" / f"{profile}.toml"


def load_world(profile: str = "seed", data_dir: Path = DATA_DIR) -> World:
    """Load and cross-check topology, workload, operations and one latency profile: a name
    in the profiles folder, or the path of a profile file (`….toml`)."""
    profile_file = profile_path(profile, data_dir)
    if profile.endswith(".toml"):
        if not profile_file.is_file():
            raise ScenarioError(f"profile file {profile} not found")
    elif profile not in available_profiles(data_dir):
        profiles = available_profiles(data_dir)
        raise ScenarioError(
            f"unknown profile {profile!r}: choose one of {', '.join(profiles) or '(none found)'}"
            f" (files in {data_dir / 'profiles'})"
        )
    files = {
        "topology": data_dir / "topology.toml",
        "workload": data_dir / "workload.toml",
        "operations": data_dir / "operations.toml",
        "profile": profile_file,
    }
    world = World(
        topology=load_model(Topology, files["topology"]),
        workload=load_model(Workload, files["workload"]),
        operations=load_model(OperationCatalog, files["operations"]),
        profile=load_model(Profile, files["profile"]),
        files=files,
    )
    _cross_check(world)
    return world


def _cross_check(world: World) -> None:
    topo, work, ops, prof = world.topology, world.workload, world.operations, world.profile
    if set(work.region_share) != set(topo.regions):
        raise ScenarioError(
            f"{world.files['workload']}: region_share must name exactly the topology's regions "
            f"{list(topo.regions)}, got {sorted(work.region_share)}"
        )
    homes = work.cross_region_home.weights
    for edge in topo.regions:
        row = homes.get(edge)
        if row is None:
            raise ScenarioError(
                f"{world.files['workload']}: cross_region_home.weights has no row for region "
                f"{edge!r}; give the weights of the regions its cross-region users come from"
            )
        wrong = sorted(set(row) - set(topo.regions) | ({edge} & set(row)))
        if wrong or any(w < 0 for w in row.values()) or sum(row.values()) <= 0:
            raise ScenarioError(
                f"{world.files['workload']}: cross_region_home.weights.{edge} = {row}: weights "
                f"must be >= 0, not all zero, for other regions only (bad: {wrong or 'values'})"
            )
    if set(homes) - set(topo.regions):
        raise ScenarioError(
            f"{world.files['workload']}: cross_region_home.weights names unknown regions "
            f"{sorted(set(homes) - set(topo.regions))}; known: {list(topo.regions)}"
        )
    for arch in ARCHITECTURES:
        catalog = ops.of(arch)
        if set(catalog) != set(OPERATIONS):
            raise ScenarioError(
                f"{world.files['operations']}: [{arch}] must define exactly {list(OPERATIONS)}, "
                f"got {sorted(catalog)}"
            )
        if prof.emulated and arch != "hybrid":
            continue  # a calibrated profile measured the hybrid server only
        for name, op in catalog.items():
            if prof.emulated and name not in prof.untraced:
                raise ScenarioError(
                    f"{world.files['profile']}: no [untraced.{name}] figures; run make calibrate"
                )
            for i, step in enumerate(op.steps):
                where = f"{world.files['operations']}: {arch}.{name}.steps[{i}] ({step.label})"
                if prof.emulated:
                    if step.label not in prof.steps:
                        raise ScenarioError(
                            f"{where}: profile {prof.name!r} measured no step {step.label!r}; "
                            "run make calibrate again (its load run never performed it)"
                        )
                elif step.component == "edge" and step.action not in prof.edge:
                    raise ScenarioError(
                        f"{where}: profile {prof.name!r} has no edge time for action "
                        f"{step.action!r}; add it under [edge] in {world.files['profile']}"
                    )
                if step.component != "edge" and prof.network == "layer_figures":
                    fig = prof.access.get(step.component)
                    needs_cross = step.at != "local"
                    if fig is None or (needs_cross and fig.cross_region is None):
                        wanted = "same_region and cross_region" if needs_cross else "same_region"
                        raise ScenarioError(
                            f"{where}: profile {prof.name!r} needs [access.{step.component}] "
                            f"with {wanted} figures in {world.files['profile']}"
                        )
                if step.component == "do" and step.object not in topo.durable_objects.namespaces:
                    raise ScenarioError(
                        f"{where}: unknown Durable Object namespace {step.object!r}; known: "
                        f"{sorted(topo.durable_objects.namespaces)}"
                    )
                if step.share is not None and step.share not in work.step_share:
                    raise ScenarioError(
                        f"{where}: share {step.share!r} is not defined; add "
                        f"[step_share.{step.share}] with a value and a source to "
                        f"{world.files['workload']}"
                    )
                if step.outcome is not None:
                    for locality, caches in work.cache_hit_rate.items():
                        if step.outcome not in caches:
                            raise ScenarioError(
                                f"{where}: outcome {step.outcome!r} has no hit rate in "
                                f"{world.files['workload']} [cache_hit_rate.{locality}]"
                            )


def calibrated_world(
    world: World, qps: float | None = None, duration_s: float | None = None
) -> World:
    """The world of a calibrated (`network = "emulated"`) profile: the load run's regions
    (traffic shares renormalised over them, cross-region users homed evenly in the others,
    as the load generator draws them), its mix, and the hit rates and step shares it
    measured. Given the load and length to model, a cache measured in runs of two sizes
    takes the hit rate of a run of that size (`calibration.cache_misses`)."""
    cal = world.profile.calibration
    if cal is None:
        return world
    topo, work = world.topology, world.workload
    unknown = [r for r in cal.regions if r not in topo.regions]
    if unknown:
        raise ScenarioError(
            f"{world.files['profile']}: calibration.regions names unknown regions {unknown}"
        )
    catalog = world.operations.of("hybrid")
    for loc, ops in cal.retries.items():
        if loc not in LOCALITIES:
            raise ScenarioError(
                f"{world.files['profile']}: calibration.retries.{loc}: not a locality "
                f"({', '.join(LOCALITIES)})"
            )
        for op in ops:
            if op not in catalog or not any(s.retry_from for s in catalog[op].steps):
                raise ScenarioError(
                    f"{world.files['profile']}: calibration.retries.{loc}.{op}: no operation "
                    f"of that name has a transaction (a step with retry_from) in "
                    f"{world.files['operations']}"
                )
    regions = tuple(r for r in topo.regions if r in cal.regions)
    total = sum(work.region_share[r] for r in regions)
    shares = {r: work.region_share[r] / total for r in regions}
    # With one region nobody travels; its own row only keeps the sampler's table whole.
    homes = {e: {h: 1.0 for h in regions if h != e} or {e: 1.0} for e in regions}
    mix = work.mix
    if cal.only_operation is not None:
        if cal.only_operation not in OPERATIONS:
            raise ScenarioError(
                f"{world.files['profile']}: calibration.only_operation "
                f"{cal.only_operation!r} is not one of {list(OPERATIONS)}"
            )
        mix = {
            op: f.model_copy(update={"value": float(op == cal.only_operation)})
            for op, f in mix.items()
        }
    cross = (
        work.cross_region_share
        if len(regions) > 1
        else work.cross_region_share.model_copy(
            update={"value": 0.0, "source": "one region runs: every user is homed in it"}
        )
    )
    hit_rates = {
        loc: {**work.cache_hit_rate[loc], **cal.cache_hit_rate.get(loc, {})}
        for loc in work.cache_hit_rate
    }
    if qps is not None and duration_s is not None:
        for loc, caches in cal.cache_misses.items():
            for cache, m in caches.items():
                hit_rates[loc][cache] = Figure(
                    value=m.hit_rate(qps, duration_s),
                    source=(
                        f"{m.cold_misses:g} cold misses and {m.steady_miss_ratio:.4f} of "
                        f"lookups once warm, at {qps:g} QPS for {duration_s:g} s ({m.source})"
                    ),
                )
    workload = work.model_copy(
        update={
            "region_share": shares,
            "cross_region_home": work.cross_region_home.model_copy(update={"weights": homes}),
            "cross_region_share": cross,
            "mix": mix,
            "cache_hit_rate": hit_rates,
            "step_share": {**work.step_share, **cal.step_share},
        }
    )
    return World(
        topology=topo.model_copy(update={"regions": regions}),
        workload=workload,
        operations=world.operations,
        profile=world.profile,
        files=world.files,
        full_topology=topo,
    )
