"""The monthly bill: usage the model derives, times the unit prices of a pricing file.

Usage comes either from the seed's per-user figures (`usage_basis = "per_user"`) or from
the workload (`"workload"`): requests from the MAU preset's average QPS over a 30-day
month, and visits to each component from the step lists, the operation mix, the cache
hit rates and the cross-region share. Comparing the two bills shows where the seed's
arithmetic departs from its own traffic figures and from public prices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from scenarios.loader import World
from scenarios.prices import Pricing
from scenarios.targets import SeedBill
from scenarios.workload import OPERATIONS

SECONDS_PER_MONTH = 30 * 86_400
HOURS_PER_MONTH = 730


def mau_millions(preset: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)M", preset)
    if not match:
        raise ValueError(f"MAU preset {preset!r} is not of the form <number>M")
    return float(match.group(1))


def step_visits(world: World, architecture: str) -> dict[str, float]:
    """Expected visits per request to each (component, kind) and Durable Object namespace.

    Keys: `do`, `do:<namespace>`, `d1_read`, `d1_write`, `crdb_read`, `crdb_write`,
    `redis`. Cache branches count with their hit or miss probability, weighted over the
    same- and cross-region shares of the workload.
    """
    catalog = world.operations.of("legacy" if architecture.startswith("legacy") else "hybrid")
    work = world.workload
    cross = work.cross_region_share.value
    visits: dict[str, float] = {}
    for op in OPERATIONS:
        share = work.mix[op].value
        for locality, weight in (("same_region", 1 - cross), ("cross_region", cross)):
            rates = work.cache_hit_rate[locality]
            for step in catalog[op].steps:
                p = 1.0
                if step.when is not None:
                    cache, branch = step.when.split(":")
                    hit = rates[cache].value
                    p = hit if branch == "hit" else 1 - hit
                if step.share is not None:
                    p *= work.step_share[step.share].value
                amount = share * weight * p * step.count
                keys = []
                if step.component == "do":
                    keys = ["do", f"do:{step.object}"]
                elif step.component in ("d1", "crdb"):
                    write = step.kind == "write" or step.action.startswith("write")
                    keys = [f"{step.component}_{'write' if write else 'read'}"]
                elif step.component == "redis":
                    keys = ["redis"]
                for key in keys:
                    visits[key] = visits.get(key, 0.0) + amount
    return visits


def derive_usage(world: World, pricing: Pricing, mau: str, architecture: str) -> dict[str, float]:
    """Every usage quantity an item can name, for this MAU preset and architecture."""
    u = pricing.usage
    users = mau_millions(mau) * 1e6
    qps = world.workload.qps(mau, "average")
    out: dict[str, float] = {
        "month": 1.0,
        "mau_millions": users / 1e6,
        "databases": 1.0,
        "regions": float(len(world.topology.regions)),
        "object_storage_gb": users * u.object_storage_kb_per_user.value / 1e6,
        "object_reads": users * u.object_reads_per_user_month.value / 1e6,
        "kv_storage_gb": users * u.kv_bytes_per_user.value / 1e9,
        "kv_reads": users * u.kv_reads_per_user_month.value / 1e6,
        "kv_writes": users * u.kv_writes_per_user_month.value / 1e6,
        "crdb_storage_gb": users * u.crdb_storage_kb_per_user.value / 1e6,
    }
    if pricing.usage_basis == "per_user":
        assert u.requests_per_user_month is not None and u.crdb_request_units_month is not None
        requests = users * u.requests_per_user_month.value / 1e6
        out.update(
            requests=requests,
            do_requests=requests * u.do_share[architecture].value,
            do_gb_s=0.0,
            d1_rows_read=0.0,
            d1_rows_written=0.0,
            db_storage_gb=0.0,
            crdb_request_units=u.crdb_request_units_month.value / 1e6,
            redis_node_hours=0.0,
        )
        return out
    assert (
        u.db_storage_kb_per_user
        and u.crdb_ru_per_read
        and u.crdb_ru_per_write
        and u.do_memory_gb
        and u.do_active_above_rps
        and u.redis_nodes_per_region
    )
    visits = step_visits(world, architecture)
    reduction = u.do_reduction[architecture].value if architecture in u.do_reduction else 1.0
    requests = qps * SECONDS_PER_MONTH / 1e6
    active_objects = 0
    for name, ns in world.topology.durable_objects.namespaces.items():
        per_shard_rps = qps * visits.get(f"do:{name}", 0.0) * reduction / ns.shards
        if per_shard_rps > u.do_active_above_rps.value:
            active_objects += ns.shards
    out.update(
        requests=requests,
        do_requests=requests * visits.get("do", 0.0) * reduction,
        do_gb_s=active_objects * SECONDS_PER_MONTH * u.do_memory_gb.value / 1e6,
        d1_rows_read=requests * visits.get("d1_read", 0.0),
        d1_rows_written=requests * visits.get("d1_write", 0.0),
        db_storage_gb=users * u.db_storage_kb_per_user.value / 1e6,
        crdb_request_units=requests
        * (
            visits.get("crdb_read", 0.0) * u.crdb_ru_per_read.value
            + visits.get("crdb_write", 0.0) * u.crdb_ru_per_write.value
        ),
        redis_node_hours=out["regions"] * u.redis_nodes_per_region.value * HOURS_PER_MONTH,
    )
    return out


@dataclass
class BillLine:
    name: str
    usage_key: str
    usage: float
    unit: str
    unit_price_usd: float
    included: float
    cost_usd: float
    source: str
    share: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "usage": self.usage,
            "usage_kind": self.usage_key,
            "unit": self.unit,
            "unit_price_usd": self.unit_price_usd,
            "included": self.included,
            "cost_usd": self.cost_usd,
            "share": self.share,
            "source": self.source,
        }


@dataclass
class Bill:
    mau: str
    architecture: str
    pricing: str
    lines: list[BillLine]
    usage: dict[str, float]
    total_usd: float = 0.0
    findings: list[str] = field(default_factory=list)

    @property
    def per_user_usd(self) -> float:
        return self.total_usd / (mau_millions(self.mau) * 1e6)

    def share_of(self, prefix: str) -> float:
        return sum(line.share for line in self.lines if line.name.startswith(prefix))


def compute_bill(world: World, pricing: Pricing, mau: str, architecture: str) -> Bill:
    usage = derive_usage(world, pricing, mau, architecture)
    millions = mau_millions(mau)
    lines = []
    for item in pricing.items:
        if not item.applies(architecture, millions):
            continue
        amount = usage[item.usage]
        cost = max(0.0, amount - item.included) * item.unit_price_usd
        lines.append(
            BillLine(
                item.name,
                item.usage,
                amount,
                item.unit,
                item.unit_price_usd,
                item.included,
                cost,
                item.source,
            )
        )
    total = sum(line.cost_usd for line in lines)
    for line in lines:
        line.share = line.cost_usd / total if total else 0.0
    return Bill(mau, architecture, pricing.name, lines, usage, total)


def seed_check(bill: Bill, target: SeedBill | None) -> list[str]:
    """How the bill compares with the seed's own figure for the same case."""
    if target is None:
        return []
    diff = (bill.total_usd - target.total_usd) / target.total_usd
    notes = [
        f"the seed's total for {bill.mau} {bill.architecture} is "
        f"${target.total_usd:,.0f}; this bill is {diff:+.1%} from it"
    ]
    for prefix, share in target.shares.items():
        got = bill.share_of(prefix)
        if abs(got - share) > 0.015:
            notes.append(
                f"the seed gives {prefix} {share:.0%} of the bill; its own line "
                f"items make it {got:.1%}"
            )
    return notes


def qty(x: float) -> str:
    """A quantity for people: thousands separators, a few significant digits when small."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _ratio(a: float, b: float) -> str:
    """'26x more' / '6x less' for a against b."""
    if b == 0 or a == 0:
        return "none at all" if a == 0 else "where the other is zero"
    r = a / b
    return f"{r:,.0f}x more" if r >= 1 else f"{1 / r:,.0f}x less"


def compare_bills(listed: Bill, seed: Bill) -> list[str]:
    """Where the seed's arithmetic departs from list prices and from its own traffic.

    Lines pair by name, else by the usage they bill; a pair differs in usage (what is
    counted) and in unit price (what one unit costs).
    """
    notes = []
    by_name = {ln.name: ln for ln in listed.lines}
    by_usage = {ln.usage_key: ln for ln in listed.lines if ln.usage_key != "month"}
    paired: set[str] = set()
    for s in seed.lines:
        item = by_name.get(s.name) or by_usage.get(s.usage_key)
        if item is None:
            if s.cost_usd >= 1 and s.usage_key != "month":
                notes.append(
                    f"{s.name}: ${s.cost_usd:,.0f} in the seed's bill has no list-price line here"
                )
            continue
        paired.add(item.name)
        if item.usage_key != s.usage_key:
            notes.append(
                f"{s.name}: the seed bills ${s.cost_usd:,.0f} ({qty(s.usage)} "
                f"{s.unit} x ${qty(s.unit_price_usd)}); at list price it is "
                f"${item.cost_usd:,.0f} ({qty(item.usage)} {item.unit} x "
                f"${qty(item.unit_price_usd)})"
            )
            continue
        if s.usage and abs(item.usage / s.usage - 1) > 0.1:
            notes.append(
                f"{s.name}: the seed counts {qty(s.usage)} {s.unit} a month; the "
                f"model derives {qty(item.usage)} from the workload "
                f"({_ratio(item.usage, s.usage)})"
            )
        if item.unit_price_usd != s.unit_price_usd:
            text = (
                f"{s.name}: the seed prices one {s.unit} at ${qty(s.unit_price_usd)}, the "
                f"list price is ${qty(item.unit_price_usd)} (the seed's is "
                f"{_ratio(s.unit_price_usd, item.unit_price_usd)})"
            )
            for other in listed.lines:
                if other.usage_key != s.usage_key and other.unit_price_usd == s.unit_price_usd:
                    text += (
                        f"; ${qty(s.unit_price_usd)} is the list price of one "
                        f"{other.unit} ({other.name})"
                    )
            notes.append(text)
    for ln in listed.lines:
        if ln.name not in paired and ln.cost_usd >= 1 and ln.usage_key != "month":
            notes.append(
                f"{ln.name}: ${ln.cost_usd:,.0f} a month at list price; the seed "
                "does not charge for it"
            )
    return notes
