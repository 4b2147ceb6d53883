"""The scenario files load, cite their sources, and bad files fail with clear messages."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from scenarios import ScenarioError, load_seed_targets, load_world
from scenarios.loader import available_profiles, calibrated_world
from scenarios.profiles import CacheMisses, Calibration, Conflicts, RetryPolicy
from scenarios.workload import OPERATIONS


def _distributions(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        if "dist" in node:
            found.append((path, node))
        for key, value in node.items():
            found.extend(_distributions(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_distributions(value, f"{path}[{i}]"))
    return found


@pytest.mark.parametrize("profile", ["seed", "cited"])
def test_every_distribution_names_its_source(profile: str) -> None:
    world = load_world(profile)
    dists = _distributions(world.as_dict())
    assert len(dists) > 10
    for path, dist in dists:
        assert len(dist["source"]) >= 3, path


def test_shipped_profiles_and_operations() -> None:
    # `local` is there once make calibrate has run on this machine (it is not shipped).
    assert [p for p in available_profiles() if p != "local"] == ["cited", "seed"]
    world = load_world("seed")
    for arch in ("hybrid", "legacy"):
        assert set(world.operations.of(arch)) == set(OPERATIONS)
    session = world.operations.hybrid["session_validation"].steps
    assert [s.label for s in session] == [
        "edge.handle",
        "redis.get_session",
        "crdb.read_session",
        "redis.set_session",
    ]
    assert session[2].when == "session:miss"
    assert world.topology.rtt.between("ap-ne", "eu-west") == 218
    assert world.topology.rtt.between("eu-west", "ap-ne") == 218
    assert world.topology.nearest_other_region("eu-west") == "us-east"
    assert world.workload.qps("200M", "peak") == 500_000


def test_seed_targets() -> None:
    targets = load_seed_targets()
    assert targets.range_for("hybrid", "login", "cross_region") == (100, 200)
    assert targets.range_for("legacy", "userinfo", "all") == (20, 50)
    assert targets.mean_latency_ms["same_region"] == (20, 50)


def _break(data: Path, file: str, old: str, new: str) -> None:
    path = data / file
    text = path.read_text()
    assert old in text, f"fixture text {old!r} not in {file}"
    path.write_text(text.replace(old, new, 1))


BAD_FILES = [
    (
        "operations.toml",
        'component = "redis", action = "get_session"',
        'component = "kafka", action = "get_session"',
        ["operations.toml", "component", "kafka"],
    ),
    (
        "workload.toml",
        "value = 0.012",
        'value = "lots"',
        ["workload.toml", "mix.login.value", "lots"],
    ),
    ("workload.toml", "value = 0.012", "value = 0.5", ["mix must sum to 1"]),
    (
        "topology.toml",
        "[rtt.pairs_ms.eu-west]\nap-ne = 218",
        "[rtt.pairs_ms.eu-west]\nmars = 218",
        ["topology.toml", "mars", "known regions"],
    ),
    (
        "topology.toml",
        "[rtt.pairs_ms.eu-west]\nap-ne = 218",
        "[rtt.pairs_ms.eu-west]\nap-ne = -5",
        ["eu-west.ap-ne", "> 0 ms"],
    ),
    (
        "profiles/seed.toml",
        'high_ms = 5.0, source = "seed §2.2: Redis Cluster latency 1-5 ms" }',
        "high_ms = 5.0 }",
        ["seed.toml", "source", "Field required"],
    ),
    (
        "profiles/seed.toml",
        "low_ms = 1.0, high_ms = 5.0",
        "low_ms = 6.0, high_ms = 5.0",
        ["seed.toml", "access.redis.same_region", "high_ms (5.0) must be greater than low_ms"],
    ),
    (
        "operations.toml",
        'action = "write_session", kind = "write", at = "home" }',
        'action = "write_session", kind = "write", at = "local" }',
        ["operations.toml", "leaseholder", "at='local'"],
    ),
    (
        "operations.toml",
        'when = "session:miss" },\n  { component = "redis", action = "set_session", '
        'when = "session:miss"',
        'when = "cookie:miss" },\n  { component = "redis", action = "set_session", '
        'when = "session:miss"',
        ["hybrid.session_validation", "cookie:miss", "no earlier step"],
    ),
    ("operations.toml", "[hybrid.login]", "[hybrid.login", ["operations.toml", "not valid TOML"]),
    (
        "operations.toml",
        'action = "verify_password" }',
        'action = "hash_password" }',
        ["hash_password", "no edge time", "seed.toml"],
    ),
    (
        "operations.toml",
        'object = "SessionStore", action = "get_session"',
        'object = "SessionShelf", action = "get_session"',
        ["SessionShelf", "namespace"],
    ),
    (
        "workload.toml",
        "region_share = { us-west = 0.25, us-east = 0.25, eu-west = 0.25, ap-ne = 0.25 }",
        "region_share = { us-west = 0.25, us-east = 0.25, eu-west = 0.25, mars = 0.25 }",
        ["region_share", "mars"],
    ),
    (
        "topology.toml",
        "primaries_per_region = 3",
        "primaries_per_region = 0",
        ["redis.primaries_per_region", "greater than or equal to 1", "0"],
    ),
    (
        "workload.toml",
        "weights.ap-ne = { us-west = 1, us-east = 1, eu-west = 1 }",
        "weights.ap-ne = { us-west = 1, us-east = 1, ap-ne = 1 }",
        ["cross_region_home.weights.ap-ne", "other regions only", "ap-ne"],
    ),
    (
        "operations.toml",
        'share = "dpop_proof", redis_only_keeps_s = 60 },\n  { component = "edge"',
        'share = "quantum_proof", redis_only_keeps_s = 60 },\n  { component = "edge"',
        [
            "hybrid.token_issue",
            "share 'quantum_proof' is not defined",
            "[step_share.quantum_proof]",
        ],
    ),
    (
        "workload.toml",
        "[step_share.dpop_proof]\nvalue = 0.3",
        "[step_share.dpop_proof]\nvalue = 1.3",
        ["step_share.dpop_proof must be in [0, 1], got 1.3"],
    ),
    (
        "workload.toml",
        "weights.ap-ne = { us-west = 1, us-east = 1, eu-west = 1 }\n",
        "",
        ["cross_region_home.weights has no row for region 'ap-ne'"],
    ),
    (
        "operations.toml",
        'retry_from = "read_user"',
        'retry_from = "read_profile"',
        ["hybrid.profile_update", "retry_from='read_profile'", "no earlier crdb step"],
    ),
    (
        "operations.toml",
        '{ component = "redis", action = "delete_user", on_unavailable = "skip" },\n]',
        '{ component = "redis", action = "delete_user", retry_from = "read_user" },\n]',
        ["profile_update", "retry_from ends a database transaction: crdb steps only"],
    ),
]


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    BAD_FILES,
    ids=[f"{b[0]}:{'/'.join(b[3][1:2])}" for b in BAD_FILES],
)
def test_bad_scenario_files_fail_clearly(
    data_copy: Path, file: str, old: str, new: str, expected: list[str]
) -> None:
    _break(data_copy, file, old, new)
    with pytest.raises(ScenarioError) as err:
        load_world("seed", data_dir=data_copy)
    message = str(err.value)
    for fragment in expected:
        assert fragment in message, message
    assert "Traceback" not in message


def test_unknown_profile_lists_choices() -> None:
    with pytest.raises(
        ScenarioError, match=r"unknown profile 'fast': choose one of cited, (local, )?seed"
    ):
        load_world("fast")


def test_missing_file(data_copy: Path) -> None:
    (data_copy / "workload.toml").unlink()
    with pytest.raises(ScenarioError, match=r"workload\.toml: file not found"):
        load_world("seed", data_dir=data_copy)


def _calibration(**changes: Any) -> dict[str, Any]:
    point = {"servers_cpu_ms_per_request": 0.9, "load_generator_cpu_ms_per_request": 0.6}
    return {
        "run_id": "light",
        "regions": ["ap-ne"],
        "qps": 100.0,
        "duration_s": 60.0,
        "requests": 6000,
        "capacity_qps": 1000.0,
        "capacity_source": "a test",
        "cache_hit_rate": {},
        "speed": [
            {"run_id": "light", "qps": 100.0, **point},
            {
                "run_id": "busy",
                "qps": 700.0,
                "servers_cpu_ms_per_request": 0.45,
                "load_generator_cpu_ms_per_request": 0.3,
            },
        ],
        **changes,
    }


def test_calibration_speed_points_scale_cpu_by_load() -> None:
    cal = Calibration.model_validate(_calibration())
    assert cal.cpu_scale(100) == {"servers": 1.0, "load_generator": 1.0, "hash": 1.0}
    assert cal.cpu_scale(700) == {"servers": 0.5, "load_generator": 0.5, "hash": 1.0}
    assert cal.cpu_scale(400)["servers"] == pytest.approx(0.75)
    assert cal.cpu_scale(50_000) == cal.cpu_scale(700)  # held beyond the last point
    # Without points the fitted CPU times stand as they are.
    assert Calibration.model_validate(_calibration(speed=[])).cpu_scale(700)["servers"] == 1.0


def test_the_password_hash_follows_its_cpu_per_verification() -> None:
    """With the hash's CPU per verification at both points (24 ms light, 21 ms busy), the
    hash scales by their ratio, and the rest of the machine's CPU (the servers' other
    threads less the hash) keeps the hash at that load out of it."""
    speed = _calibration()["speed"]
    speed[0] |= {"hash_cpu_ms": 24.0, "stores_cpu_ms_per_request": 0.06,
                 "servers_other_cpu_ms_per_request": 0.30}  # fmt: skip
    speed[1] |= {"hash_cpu_ms": 21.0, "stores_cpu_ms_per_request": 0.05,
                 "servers_other_cpu_ms_per_request": 0.26}  # fmt: skip
    cal = Calibration.model_validate(_calibration(speed=speed, threaded_cpu_ms_per_request=0.24))
    assert cal.cpu_scale(700)["hash"] == pytest.approx(21.0 / 24.0)
    assert cal.cpu_scale(400)["hash"] == pytest.approx(22.5 / 24.0)
    assert cal.rest_cpu_ms(700) == pytest.approx(0.05 + 0.26 - 0.24 * 21.0 / 24.0)
    # A point without the hash's figure (an older profile) leaves it as fitted.
    del speed[1]["hash_cpu_ms"]
    assert Calibration.model_validate(_calibration(speed=speed)).cpu_scale(700)["hash"] == 1.0


def test_calibration_speed_points_are_checked() -> None:
    with pytest.raises(ValidationError, match="distinct, rising qps"):
        Calibration.model_validate(_calibration(speed=_calibration()["speed"][::-1]))
    with pytest.raises(ValidationError, match="no point for the fitted run"):
        Calibration.model_validate(_calibration(run_id="another"))


def test_rest_scales_must_be_factors_a_rest_can_take() -> None:
    ok = {"session_validation": {"value": 0.75, "source": "the model's own waits"}}
    assert Calibration.model_validate(_calibration(rest_scale=ok)).rest_scale[
        "session_validation"
    ].value == pytest.approx(0.75)
    for bad in (0.0, -0.5, 4.5):
        rest = {"userinfo": {"value": bad, "source": "a test"}}
        with pytest.raises(ValidationError, match=r"rest_scale\.userinfo: .* is not in \(0, 4\]"):
            Calibration.model_validate(_calibration(rest_scale=rest))


def test_rest_of_the_machine_is_what_the_named_parts_leave() -> None:
    points = _calibration()["speed"]
    points[0]["machine_cpu_ms_per_request"] = 2.5  # 0.9 + 0.6 + 0.2 hashing + 0.8
    points[1]["machine_cpu_ms_per_request"] = 1.25  # 0.45 + 0.3 + 0.2 + 0.3
    cal = Calibration.model_validate(
        _calibration(speed=points, cores=2, threaded_cpu_ms_per_request=0.2)
    )
    assert cal.rest_cpu_ms(100) == pytest.approx(0.8)
    assert cal.rest_cpu_ms(400) == pytest.approx(0.55)
    assert cal.rest_cpu_ms(5000) == pytest.approx(0.3)
    # Without the machine's figure there is no rest to spread.
    assert Calibration.model_validate(_calibration(cores=2)).rest_cpu_ms(100) == 0.0
    with pytest.raises(ValidationError, match="at least 1 thread"):
        Calibration.model_validate(_calibration(threaded_steps={"edge.verify_password": 0}))


def test_cache_misses_follow_the_runs_size() -> None:
    misses = CacheMisses(
        cold_misses=40, steady_miss_ratio=0.02, lookups_per_request=0.1, source="two runs"
    )
    # 100 QPS for 60 s: 600 lookups, 40 cold misses and 2 % of them: hit rate 1 - 40/600 - 0.02.
    assert misses.hit_rate(100, 60) == pytest.approx(1 - 40 / 600 - 0.02)
    assert misses.hit_rate(1000, 60) == pytest.approx(1 - 40 / 6000 - 0.02)
    assert misses.hit_rate(1, 1) == 0.0  # fewer lookups than cold keys: every one misses


def test_calibrated_world_takes_the_hit_rate_of_the_run_it_models() -> None:
    world = load_world("seed")
    fitted = {"value": 0.9, "source": "a run of 6,000 requests"}
    misses = {
        "cold_misses": 60,
        "steady_miss_ratio": 0.0,
        "lookups_per_request": 0.1,
        "source": "runs",
    }
    cal = Calibration.model_validate(
        _calibration(
            cache_hit_rate={"cross_region": {"session": fitted}},
            cache_misses={"cross_region": {"session": misses}},
        )
    )
    profile = world.profile.model_copy(update={"calibration": cal})
    local = dataclasses.replace(world, profile=profile)
    # Without a load to model: the fitted run's own rate.
    plain = calibrated_world(local)
    assert plain.workload.cache_hit_rate["cross_region"]["session"].value == 0.9
    # 1,000 QPS for 60 s: 6,000 lookups, 60 cold misses.
    sized = calibrated_world(local, 1000, 60)
    figure = sized.workload.cache_hit_rate["cross_region"]["session"]
    assert figure.value == pytest.approx(0.99)
    assert "60 cold misses" in figure.source and "1000 QPS for 60 s" in figure.source


POLICY = {"max_attempts": 5, "backoff_ms": 100.0, "jitter_ms": 50.0, "source": "a test"}


def test_a_transactions_conflicts_follow_the_load() -> None:
    """Each attempt conflicts as often as a Poisson stream of others, in proportion to the
    load, overlaps it; the backoff doubles with each retry, as the server's does."""
    conflicts = Conflicts(per_qps=0.001, source="a test")
    assert conflicts.per_attempt(0) == 0.0
    assert conflicts.per_attempt(693.147) == pytest.approx(0.5, abs=1e-6)
    assert conflicts.per_attempt(2000) == pytest.approx(1 - np.exp(-2))
    policy = RetryPolicy.model_validate(POLICY)
    assert policy.backoff(1, 0.0) == 100.0
    assert policy.backoff(1, 0.999) == pytest.approx(149.95)
    assert policy.backoff(3, 0.5) == 425.0
    # The operations name where a retried transaction begins again.
    ops = load_world("seed").operations.hybrid["profile_update"]
    end = next(i for i, s in enumerate(ops.steps) if s.retry_from)
    assert ops.steps[ops.transaction_start(end)].label == "crdb.read_user"  # type: ignore[index]


def test_calibrated_conflicts_are_checked() -> None:
    retries = {"cross_region": {"profile_update": {"per_qps": 0.001, "source": "a run"}}}
    with pytest.raises(ValidationError, match=r"retries needs calibration\.retry_policy"):
        Calibration.model_validate(_calibration(retries=retries))
    world = load_world("seed")

    def local(retries: dict[str, Any]) -> Any:
        cal = Calibration.model_validate(_calibration(retries=retries, retry_policy=POLICY))
        return dataclasses.replace(
            world, profile=world.profile.model_copy(update={"calibration": cal})
        )

    assert calibrated_world(local(retries)).profile.calibration.retries  # type: ignore[union-attr]
    with pytest.raises(ScenarioError, match=r"retries\.nearby: not a locality"):
        calibrated_world(local({"nearby": retries["cross_region"]}))
    with pytest.raises(ScenarioError, match=r"retries\.cross_region\.userinfo: no operation"):
        calibrated_world(local({"cross_region": {"userinfo": {"per_qps": 0.1, "source": "a run"}}}))
