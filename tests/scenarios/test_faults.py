"""Failure scenario files: the shipped ones load, bad ones fail with a message that helps."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios import ScenarioError, load_world
from scenarios.faults import (
    FAILURES_DIR,
    available_scenarios,
    check_against_world,
    load_scenario,
)

GOOD = """
description = "a test drill"
duration_s = 40
[[events]]
component = "crdb_node"
region = "us-east"
at_s = 10
for_s = 5
[timings]
crdb_lease_expiry_s = { value = 9, source = "test" }
"""


def _write(tmp_path: Path, text: str, name: str = "drill") -> Path:
    (tmp_path / f"{name}.toml").write_text(text)
    return tmp_path


def test_shipped_scenarios_are_consistent_with_the_topology() -> None:
    world = load_world("cited")
    for name in available_scenarios():
        check_against_world(load_scenario(name), name, world)


def test_a_good_file_loads(tmp_path: Path) -> None:
    scenario = load_scenario("drill", _write(tmp_path, GOOD))
    assert scenario.events[0].end_s == 15


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'component = "crdb_node"',
            'component = "crdb_shard"',
            ["drill.toml", "events.0", "'crdb_shard'", "'crdb_node'"],
        ),
        ("for_s = 5", "for_s = -5", ["drill.toml", "for_s", "greater than 0"]),
        ("for_s = 5", "for_s = 0", ["for_s", "greater than 0"]),
        ("at_s = 10", "at_s = -1", ["at_s", "greater than or equal to 0"]),
        ("for_s = 5", "for_s = 50", ["past the end of the run", "duration_s = 40"]),
        (
            'crdb_lease_expiry_s = { value = 9, source = "test" }',
            "",
            ["needs timings.crdb_lease_expiry_s"],
        ),
        (
            'crdb_lease_expiry_s = { value = 9, source = "test" }',
            "crdb_lease_expiry_s = { value = 9 }",
            ["crdb_lease_expiry_s.source", "Field required"],
        ),
        ("duration_s = 40", 'duration_s = "long"', ["duration_s", "valid number"]),
        ("[[events]]", "[[events]", ["drill.toml", "not valid TOML"]),
    ],
)
def test_bad_files_name_the_field_and_the_fix(
    tmp_path: Path, old: str, new: str, expected: list[str]
) -> None:
    assert old in GOOD
    _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ScenarioError) as exc:
        load_scenario("drill", tmp_path)
    for part in expected:
        assert part in str(exc.value)


def test_overlapping_failures_of_one_component_are_rejected(tmp_path: Path) -> None:
    text = GOOD + '[[events]]\ncomponent = "crdb_node"\nregion = "us-east"\nat_s = 12\nfor_s = 5\n'
    with pytest.raises(ScenarioError) as exc:
        load_scenario("drill", _write(tmp_path, text))
    message = str(exc.value)
    assert "events[0] and events[1]" in message and "crdb/us-east/0" in message
    assert "10-15 s and 12-17 s" in message
    # The same node later, or another node at the same time, is fine.
    later = text.replace("at_s = 12", "at_s = 15")
    assert len(load_scenario("drill", _write(tmp_path, later)).events) == 2
    other = text.replace("at_s = 12\n", "at_s = 12\nnode = 1\n")
    assert len(load_scenario("drill", _write(tmp_path, other)).events) == 2


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('region = "us-east"', 'region = "mars-1"', "unknown region 'mars-1'"),
        ('region = "us-east"', 'region = "us-east"\nnode = 7', "node 7 does not exist"),
        ("duration_s = 40", 'duration_s = 40\narchitecture = "legacy"', "only in the hybrid"),
        ("duration_s = 40", 'duration_s = 40\nmau = "7M"', "unknown mau '7M'"),
    ],
)
def test_file_checked_against_the_topology(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    scenario = load_scenario("drill", _write(tmp_path, GOOD.replace(old, new)))
    with pytest.raises(ScenarioError, match=expected):
        check_against_world(scenario, "drill", load_world("cited"))


def test_unknown_scenario_lists_the_known_ones() -> None:
    with pytest.raises(ScenarioError) as exc:
        load_scenario("meteor-strike")
    assert "unknown SCENARIO='meteor-strike'" in str(exc.value)
    assert "region-outage" in str(exc.value) and str(FAILURES_DIR) in str(exc.value)
