"""Pricing files: line items per architecture, each a usage quantity times a unit price."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scenarios.distributions import Figure, Source

COST_ARCHITECTURES: tuple[str, ...] = ("legacy", "legacy-optimised", "hybrid")
PRICING_DIR = Path(__file__).parent / "pricing"

# Usage quantities the cost model derives; an item names one of them.
USAGES: dict[str, str] = {
    "month": "one per month (a fixed monthly charge)",
    "requests": "requests a month, in millions",
    "do_requests": "Durable Object requests a month, in millions",
    "do_gb_s": "Durable Object duration, in million GB-s",
    "databases": "D1 databases",
    "d1_rows_read": "D1 rows read a month, in millions",
    "d1_rows_written": "D1 rows written a month, in millions",
    "db_storage_gb": "database storage, GB",
    "object_storage_gb": "object storage, GB",
    "object_reads": "object reads a month, in millions",
    "kv_storage_gb": "KV storage, GB",
    "kv_reads": "KV reads a month, in millions",
    "kv_writes": "KV writes a month, in millions",
    "mau_millions": "monthly active users, in millions",
    "crdb_storage_gb": "CockroachDB storage, GB",
    "crdb_request_units": "CockroachDB Request Units a month, in millions",
    "regions": "regions",
    "redis_node_hours": "Redis node-hours a month",
}


class LineItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1)
    architectures: tuple[Literal["legacy", "legacy-optimised", "hybrid"], ...] = Field(min_length=1)
    usage: str
    unit: str = Field(min_length=1)
    unit_price_usd: float = Field(ge=0)
    included: float = Field(default=0.0, ge=0)
    min_mau_millions: float | None = None
    max_mau_millions: float | None = None
    source: Source

    @model_validator(mode="after")
    def _known_usage(self) -> LineItem:
        if self.usage not in USAGES:
            raise ValueError(
                f"usage {self.usage!r} is not one the model derives; choose one of "
                f"{', '.join(USAGES)}"
            )
        return self

    def applies(self, architecture: str, mau_millions: float) -> bool:
        if architecture not in self.architectures:
            return False
        if self.min_mau_millions is not None and mau_millions < self.min_mau_millions:
            return False
        return self.max_mau_millions is None or mau_millions <= self.max_mau_millions


class PricingUsage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    requests_per_user_month: Figure | None = None
    object_storage_kb_per_user: Figure
    object_reads_per_user_month: Figure
    kv_bytes_per_user: Figure
    kv_reads_per_user_month: Figure
    kv_writes_per_user_month: Figure
    crdb_storage_kb_per_user: Figure
    crdb_request_units_month: Figure | None = None
    db_storage_kb_per_user: Figure | None = None
    crdb_ru_per_read: Figure | None = None
    crdb_ru_per_write: Figure | None = None
    do_memory_gb: Figure | None = None
    do_active_above_rps: Figure | None = None
    redis_nodes_per_region: Figure | None = None
    do_share: dict[str, Figure] = Field(default_factory=dict)
    do_reduction: dict[str, Figure] = Field(default_factory=dict)


class Pricing(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    description: str = Field(min_length=3)
    usage_basis: Literal["per_user", "workload"]
    usage: PricingUsage
    items: tuple[LineItem, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _basis_has_its_figures(self) -> Pricing:
        u = self.usage
        if self.usage_basis == "per_user":
            missing = [
                n
                for n in ("requests_per_user_month", "crdb_request_units_month")
                if getattr(u, n) is None
            ]
            if missing or set(u.do_share) != set(COST_ARCHITECTURES):
                raise ValueError(
                    "usage_basis 'per_user' needs usage.requests_per_user_month, "
                    "usage.crdb_request_units_month and usage.do_share for "
                    f"{list(COST_ARCHITECTURES)}"
                )
        else:
            needed = (
                "db_storage_kb_per_user",
                "crdb_ru_per_read",
                "crdb_ru_per_write",
                "do_memory_gb",
                "do_active_above_rps",
                "redis_nodes_per_region",
            )
            missing = [n for n in needed if getattr(u, n) is None]
            if missing:
                raise ValueError(f"usage_basis 'workload' needs usage.{', usage.'.join(missing)}")
        return self


def available_pricings(pricing_dir: Path = PRICING_DIR) -> list[str]:
    return sorted(p.stem for p in pricing_dir.glob("*.toml"))


def load_pricing(name: str, pricing_dir: Path = PRICING_DIR) -> Pricing:
    from scenarios.errors import ScenarioError
    from scenarios.loader import load_model

    names = available_pricings(pricing_dir)
    if name not in names:
        raise ScenarioError(f"unknown pricing {name!r}: choose one of {', '.join(names)}")
    return load_model(Pricing, pricing_dir / f"{name}.toml")
