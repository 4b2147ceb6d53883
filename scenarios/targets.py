"""The seed's latency table: the ranges the simulator's results are checked against."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator

from scenarios.distributions import Source
from scenarios.workload import LOCALITIES, OPERATIONS

Range = tuple[float, float]


class SeedBill(BaseModel):
    """One of the seed's monthly bills; `shares` maps a line-item prefix to its share."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    mau: str
    architecture: str
    total_usd: float
    shares: dict[str, float]


class SeedTargets(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    source: Source
    legacy_mau: str
    latency_ms: dict[str, dict[str, Range]]
    mean_latency_ms: dict[str, Range]
    cost: tuple[SeedBill, ...] = ()

    @model_validator(mode="after")
    def _complete(self) -> SeedTargets:
        columns = {*LOCALITIES, "legacy"}
        if set(self.latency_ms) != set(OPERATIONS):
            raise ValueError(f"latency_ms must give the operations {list(OPERATIONS)}")
        for op, cols in self.latency_ms.items():
            if set(cols) != columns:
                raise ValueError(f"latency_ms.{op} must give {sorted(columns)}")
            for col, (lo, hi) in cols.items():
                if not 0 <= lo < hi:
                    raise ValueError(f"latency_ms.{op}.{col}: need 0 <= low < high, got {lo, hi}")
        return self

    def bill_for(self, mau: str, architecture: str) -> SeedBill | None:
        return next((b for b in self.cost if (b.mau, b.architecture) == (mau, architecture)), None)

    def range_for(self, architecture: str, operation: str, locality: str) -> Range:
        column = "legacy" if architecture == "legacy" else locality
        return self.latency_ms[operation][column]


def load_seed_targets(data_dir: Path | None = None) -> SeedTargets:
    from scenarios.loader import DATA_DIR, load_model

    return load_model(SeedTargets, (data_dir or DATA_DIR) / "seed_targets.toml")
