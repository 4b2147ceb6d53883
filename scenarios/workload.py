"""The offered load: MAU presets with the seed's QPS, the operation mix, data locality."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scenarios.distributions import Figure, Source

OPERATIONS: tuple[str, ...] = (
    "session_validation",
    "login",
    "token_issue",
    "userinfo",
    "profile_update",
)
LOCALITIES: tuple[str, ...] = ("same_region", "cross_region")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MauPreset(_Frozen):
    qps_average: float = Field(gt=0)
    qps_peak: float = Field(gt=0)
    source: Source


class CrossRegionHome(_Frozen):
    """For each edge region, relative weights of the home regions of its cross-region users."""

    source: Source
    weights: dict[str, dict[str, float]]

    def shares(self, edge: str) -> dict[str, float]:
        row = self.weights[edge]
        total = sum(row.values())
        return {home: w / total for home, w in row.items()}


class Workload(_Frozen):
    mau: dict[str, MauPreset]
    region_share: dict[str, float]
    region_share_source: Source
    cross_region_share: Figure
    cross_region_home: CrossRegionHome
    mix: dict[str, Figure]
    client_timeout_ms: Figure
    cache_hit_rate: dict[str, dict[str, Figure]]
    step_share: dict[str, Figure] = Field(default_factory=dict)
    active_session_share: Figure
    session_bytes: Figure

    @model_validator(mode="after")
    def _shares(self) -> Workload:
        if set(self.mix) != set(OPERATIONS):
            raise ValueError(
                f"mix must give exactly the operations {list(OPERATIONS)}, got {sorted(self.mix)}"
            )
        for name, share in [
            ("mix", sum(f.value for f in self.mix.values())),
            ("region_share", sum(self.region_share.values())),
        ]:
            if abs(share - 1.0) > 1e-6:
                raise ValueError(f"{name} must sum to 1, it sums to {share:.6f}")
        if not 0 <= self.cross_region_share.value < 1:
            raise ValueError(
                f"cross_region_share.value must be in [0, 1), got {self.cross_region_share.value}"
            )
        if set(self.cache_hit_rate) != set(LOCALITIES):
            raise ValueError(f"cache_hit_rate needs the tables {list(LOCALITIES)}")
        for locality, caches in self.cache_hit_rate.items():
            for cache, rate in caches.items():
                if not 0 <= rate.value <= 1:
                    raise ValueError(
                        f"cache_hit_rate.{locality}.{cache} must be in [0, 1], got {rate.value}"
                    )
        for name, figure in self.step_share.items():
            if not 0 <= figure.value <= 1:
                raise ValueError(f"step_share.{name} must be in [0, 1], got {figure.value}")
        return self

    def qps(self, mau: str, load: str) -> float:
        preset = self.mau[mau]
        return preset.qps_peak if load == "peak" else preset.qps_average
