"""The scenario domain: TOML data and the code that loads and validates it.

One source of truth for the world the simulator models and the server emulates:
regions and round-trip times, component capacities and service times, the workload,
the step list of every operation, and the latency profiles. Depends on nothing of ours.
"""

from scenarios.errors import ScenarioError
from scenarios.loader import DATA_DIR, World, load_world
from scenarios.targets import SeedTargets, load_seed_targets

__all__ = ["DATA_DIR", "ScenarioError", "SeedTargets", "World", "load_seed_targets", "load_world"]
