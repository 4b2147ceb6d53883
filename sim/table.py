"""The console view of a run: the seed's latency table with simulated percentiles."""

from __future__ import annotations

from typing import Any

from scenarios.workload import OPERATIONS


def _ms(x: float | None) -> str:
    return "-" if x is None else (f"{x:.1f}" if x < 1000 else f"{x:.0f}")


def latency_table(rows: list[dict[str, Any]], region: str) -> str:
    """Operation x (same region, cross region, legacy) for one region or the aggregate."""
    pick = {
        (r["operation"], r["architecture"], r["locality"]): r for r in rows if r["region"] == region
    }
    columns = [
        ("hybrid", "same_region", "same region"),
        ("hybrid", "cross_region", "cross region"),
        ("legacy", "all", "legacy"),
    ]
    head = (
        f"{'operation':<19} {'column':<13} {'p50':>7} {'p90':>7} {'p99':>7}  "
        f"{'p50 95% CI':>15}  {'seed':>9}  {'':<7} {'n':>9}"
    )
    lines = [head, "-" * len(head)]
    for op in OPERATIONS:
        first = True
        for arch, loc, title in columns:
            row = pick.get((op, arch, loc))
            if row is None:
                continue
            lo, hi = row["seed_range_ms"]
            ci = row["p50_ci_ms"]
            ci_text = f"{_ms(ci[0])}-{_ms(ci[1])}" if ci else "-"
            mark = {"inside": "inside", "outside": "OUTSIDE", "edge": "edge"}[row["verdict"]]
            errs = f"  errors {row['errors']}" if row["errors"] else ""
            lines.append(
                f"{op if first else '':<19} {title:<13} {_ms(row['p50_ms']):>7} "
                f"{_ms(row['p90_ms']):>7} {_ms(row['p99_ms']):>7}  {ci_text:>15}  "
                f"{f'{lo:g}-{hi:g}':>9}  {mark:<7} {row['n']:>9,}{errs}"
            )
            first = False
    return "\n".join(lines)


def _mark(inside: bool) -> str:
    return "inside" if inside else "OUTSIDE"


def averages_table(avgs: list[dict[str, Any]], region: str) -> str:
    lines = []
    for a in avgs:
        if a["region"] != region:
            continue
        lo, hi = a["seed_range_ms"]
        lines.append(
            f"mean {a['locality']:<13} over all requests {_ms(a['mix_weighted_mean_ms']):>6} ms "
            f"({_mark(a['mix_weighted_inside'])}),  mean of the five operations "
            f"{_ms(a['operation_mean_ms']):>6} ms ({_mark(a['operation_mean_inside'])});  "
            f"seed {lo:g}-{hi:g} ms"
        )
    return "\n".join(lines)


def region_p50_matrix(rows: list[dict[str, Any]], regions: tuple[str, ...]) -> str:
    """p50 of every cell per edge region, to compare regions at a glance."""
    head = f"{'p50 ms by region':<33}" + "".join(f"{r:>9}" for r in regions)
    lines = [head, "-" * len(head)]
    for op in OPERATIONS:
        for arch, loc in (("hybrid", "same_region"), ("hybrid", "cross_region"), ("legacy", "all")):
            cells = {
                r["region"]: r
                for r in rows
                if r["operation"] == op and r["architecture"] == arch and r["locality"] == loc
            }
            if not cells:
                continue
            title = f"{op} {loc if arch == 'hybrid' else 'legacy'}"
            lines.append(
                f"{title:<33}"
                + "".join(f"{_ms(cells[r]['p50_ms']) if r in cells else '-':>9}" for r in regions)
            )
    return "\n".join(lines)
