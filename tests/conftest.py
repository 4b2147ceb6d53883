"""Shared fixtures: the shipped scenario, a writable copy of it, constant-time variants."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from scenarios import DATA_DIR, World, load_world
from scenarios.distributions import Constant, Exponential, Lognormal, Uniform


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    """A writable copy of scenarios/data for tests that break a file on purpose."""
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


def _constant(model: Any) -> Any:
    if isinstance(model, Uniform | Exponential | Lognormal):
        return Constant(dist="constant", value_ms=model.mean_ms, source="test: mean as constant")
    if isinstance(model, BaseModel):
        updates = {name: _constant(getattr(model, name)) for name in type(model).model_fields}
        return model.model_copy(update=updates)
    if isinstance(model, dict):
        return {k: _constant(v) for k, v in model.items()}
    if isinstance(model, tuple):
        return tuple(_constant(v) for v in model)
    return model


def constant_world(world: World) -> World:
    """The same world with every distribution replaced by a constant at its mean."""
    return World(
        topology=_constant(world.topology),
        workload=world.workload,
        operations=world.operations,
        profile=_constant(world.profile),
        files=world.files,
    )


@pytest.fixture(scope="session")
def seed_world() -> World:
    return load_world("seed")


@pytest.fixture(scope="session")
def cited_world() -> World:
    return load_world("cited")
