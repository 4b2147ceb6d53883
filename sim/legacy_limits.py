"""The legacy design's sizing limits, from the seed's own arithmetic and the step lists.

- SessionStore memory: live sessions (active share of MAU x bytes per session) spread
  over a shard layout, against the Durable Object memory limit.
- Request rate per object: the offered rate times the step lists' visits to each
  namespace, over its shards, against the rate one single-threaded object can serve
  (1 / mean service time: the ~1,000 req/s soft limit). Singletons stand out here.
The simulation shows the same limits as queues that grow and requests that time out.
"""

from __future__ import annotations

from typing import Any

from scenarios.loader import World
from sim.cost import mau_millions, step_visits


def session_memory(world: World) -> list[dict[str, Any]]:
    """MB of sessions per SessionStore shard for each layout and MAU preset."""
    work, topo = world.workload, world.topology
    limit = topo.durable_objects.memory_limit_mb.value
    regions = len(topo.regions)
    layouts = [
        ("100 shards", 100),
        ("1000 shards", 1000),
        (f"{regions} regions x 100 shards", regions * 100),
    ]
    rows = []
    for mau in work.mau:
        sessions = mau_millions(mau) * 1e6 * work.active_session_share.value
        for name, shards in layouts:
            per_shard = sessions / shards
            mb = per_shard * work.session_bytes.value / 1e6
            rows.append(
                {
                    "mau": mau,
                    "layout": name,
                    "shards": shards,
                    "sessions_per_shard": per_shard,
                    "mb_per_shard": mb,
                    "limit_mb": limit,
                    "within_limit": mb <= limit,
                }
            )
    return rows


def object_rates(world: World, qps_by_case: dict[str, float]) -> list[dict[str, Any]]:
    """Requests/s per object of every namespace the legacy step lists use, per case."""
    visits = step_visits(world, "legacy")
    topo = world.topology
    capacity = 1000.0 / topo.durable_objects.service.mean_ms
    rows = []
    for name, ns in topo.durable_objects.namespaces.items():
        share = visits.get(f"do:{name}", 0.0)
        if share == 0.0:
            continue
        for case, qps in qps_by_case.items():
            rate = qps * share / ns.shards
            rows.append(
                {
                    "namespace": name,
                    "shards": ns.shards,
                    "case": case,
                    "requests_per_s_per_object": rate,
                    "capacity_per_s": capacity,
                    "utilisation": rate / capacity,
                    "over_capacity": rate > capacity,
                }
            )
    return rows


def legacy_limits(world: World, run_qps: float) -> dict[str, Any]:
    work = world.workload
    cases = {f"{m} average": work.qps(m, "average") for m in work.mau}
    cases["200M peak"] = work.qps("200M", "peak")
    cases["this run"] = run_qps
    return {"session_memory": session_memory(world), "object_rates": object_rates(world, cases)}


def render(limits: dict[str, Any]) -> str:
    lines = [
        f"SessionStore memory per shard (MB; limit {limits['session_memory'][0]['limit_mb']:g} MB):"
    ]
    by_layout: dict[str, dict[str, dict[str, Any]]] = {}
    for r in limits["session_memory"]:
        by_layout.setdefault(r["layout"], {})[r["mau"]] = r
    maus = list(next(iter(by_layout.values())))
    lines.append(f"  {'layout':<26}" + "".join(f"{m + ' MAU':>14}" for m in maus))
    for layout, cells in by_layout.items():
        lines.append(
            f"  {layout:<26}"
            + "".join(
                f"{cells[m]['mb_per_shard']:>8.1f}{'' if cells[m]['within_limit'] else ' OVER':<6}"
                for m in maus
            )
        )
    rates: dict[str, dict[str, dict[str, Any]]] = {}
    for r in limits["object_rates"]:
        rates.setdefault(r["namespace"], {})[r["case"]] = r
    cases = list(next(iter(rates.values())))
    cap = limits["object_rates"][0]["capacity_per_s"]
    lines.append(f"Requests/s per Durable Object (one object serves ~{cap:,.0f}/s):")
    lines.append(f"  {'namespace (shards)':<30}" + "".join(f"{c:>14}" for c in cases))
    for name, cells in rates.items():
        shards = next(iter(cells.values()))["shards"]
        lines.append(
            f"  {f'{name} ({shards})':<30}"
            + "".join(
                f"{cells[c]['requests_per_s_per_object']:>8,.0f}"
                f"{' OVER' if cells[c]['over_capacity'] else '':<6}"
                for c in cases
            )
        )
    return "\n".join(lines)
