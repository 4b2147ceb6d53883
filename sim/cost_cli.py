"""`make cost`: the monthly bill for one MAU preset and architecture, written to results/cost/."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from scenarios import ScenarioError, load_seed_targets, load_world
from scenarios.prices import COST_ARCHITECTURES, available_pricings, load_pricing
from sim.cost import Bill, compare_bills, compute_bill, qty, seed_check
from sim.results import new_run_dir, point_latest, write_json


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="make cost", description=__doc__)
    p.add_argument("--mau", default="200M", help="MAU preset: 10M, 100M or 200M")
    p.add_argument("--arch", default="hybrid", help="legacy, legacy-optimised or hybrid")
    p.add_argument("--pricing", default="seed", help="seed or list")
    p.add_argument("--results-dir", default=os.environ.get("AUTHSCALE_RESULTS", "results"))
    return p.parse_args(argv)


def render(bill: Bill) -> str:
    head = f"{'item':<28} {'usage':>14} {'unit':<18} {'unit price':>11} {'cost':>11} {'share':>6}"
    lines = [head, "-" * len(head)]
    for ln in sorted(bill.lines, key=lambda x: -x.cost_usd):
        lines.append(
            f"{ln.name:<28} {qty(ln.usage):>14} {ln.unit:<18} "
            f"{'$' + qty(ln.unit_price_usd):>11} {f'${ln.cost_usd:,.0f}':>11} "
            f"{ln.share:>6.1%}"
        )
    lines.append("-" * len(head))
    lines.append(f"{'total per month':<74} {f'${bill.total_usd:,.0f}':>11}")
    lines.append(f"{'per user per month':<74} {f'${bill.per_user_usd:.5f}':>11}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.arch not in COST_ARCHITECTURES:
            raise ScenarioError(
                f"unknown ARCH={args.arch!r}: choose one of {', '.join(COST_ARCHITECTURES)}"
            )
        if args.pricing not in available_pricings():
            raise ScenarioError(
                f"unknown PRICING={args.pricing!r}: choose one of {', '.join(available_pricings())}"
            )
        world = load_world("seed")
        if args.mau not in world.workload.mau:
            raise ScenarioError(
                f"unknown MAU={args.mau!r}: choose one of {', '.join(world.workload.mau)}"
            )
        pricing = load_pricing(args.pricing)
        seed_pricing = load_pricing("seed")
    except ScenarioError as exc:
        print(f"authscale cost: error: {exc}", file=sys.stderr)
        return 2
    targets = load_seed_targets()
    bill = compute_bill(world, pricing, args.mau, args.arch)
    seed_bill = compute_bill(world, seed_pricing, args.mau, args.arch)
    checks = seed_check(seed_bill, targets.bill_for(args.mau, args.arch))
    differences = compare_bills(bill, seed_bill) if args.pricing != "seed" else []
    basis = (
        "the seed's per-user usage figures"
        if pricing.usage_basis == "per_user"
        else "usage derived from the workload's QPS and the step lists"
    )
    print(f"authscale cost: {args.mau} MAU, {args.arch}, pricing {pricing.name} ({basis})\n")
    print(render(bill))
    if checks:
        print("\nAgainst the seed (seed pricing):")
        for note in checks:
            print(f"  - {note}")
    if differences:
        print(f"\nWhere the seed's bill (${seed_bill.total_usd:,.0f}) differs from this one:")
        for note in differences:
            print(f"  - {note}")
    run_dir = new_run_dir(Path(args.results_dir), "cost", f"{args.mau}-{args.arch}-{pricing.name}")
    summary: dict[str, Any] = {
        "status": "ok",
        "run_id": run_dir.name,
        "kind": "cost",
        "mau": args.mau,
        "architecture": args.arch,
        "pricing": pricing.name,
        "usage_basis": pricing.usage_basis,
        "total_usd_per_month": bill.total_usd,
        "per_user_usd": bill.per_user_usd,
        "line_items": [ln.as_dict() for ln in bill.lines],
        "usage": bill.usage,
        "seed_pricing_total_usd": seed_bill.total_usd,
        "seed_checks": checks,
        "differences_from_seed": differences,
    }
    write_json(run_dir / "summary.json", summary)
    point_latest(run_dir)
    print(f"\nresults: {run_dir}/summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
