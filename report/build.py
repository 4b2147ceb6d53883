"""`make report`: one self-contained HTML page from the runs under results/.

It reads the newest steady-state simulation, failure drill, load test and cost runs
(whichever exist), and draws: the seed's latency table as bands with the simulated and
measured p50s on them; percentile curves, simulated against measured; the drill's timeline
with the failure windows shaded; the cost tables; and a verdict table of every check with
its numbers. plotly.js is inlined once, so the page reads offline.
"""

from __future__ import annotations

import csv
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from report.compare import (
    SPLIT_PARTS,
    SPLIT_WORDS,
    CompareError,
    Pair,
    cdf,
    compare,
    explain,
    find_pair,
    paced_said,
    runs_said,
    twin_verdict,
)
from scenarios import load_seed_targets

PERCENTILES = (("p50_ms", 50), ("p90_ms", 90), ("p95_ms", 95), ("p99_ms", 99), ("p999_ms", 99.9))


class ReportError(Exception):
    pass


@dataclass
class Inputs:
    sim: dict[str, Any] | None = None
    scenario: dict[str, Any] | None = None
    scenario_timeline: list[dict[str, str]] = field(default_factory=list)
    # The newest load run of the same drill (make loadtest SCENARIO=), on the same axes.
    scenario_measured: list[dict[str, str]] = field(default_factory=list)
    load: dict[str, Any] | None = None
    costs: list[dict[str, Any]] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    # The calibrated simulation against the load run of the same load (make compare).
    twin: dict[str, Any] | None = None
    twin_pair: Pair | None = None
    twin_note: str | None = None
    # The model of the same load given those runs' own speed and pace (make twin's
    # diagnostic, PACE=<the runs>), compared with them; None when there is none.
    twin_diagnostic: dict[str, Any] | None = None
    twin_diagnostic_pair: Pair | None = None
    folders: list[Path] = field(default_factory=list)  # every run read: a copy goes there


def _summaries(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for run in sorted(folder.glob("*/summary.json"), reverse=True):
        if run.parent.name == "latest":
            continue
        try:
            data = json.loads(run.read_text())
        except (OSError, ValueError):
            continue
        if data.get("status") == "ok":
            out.append((run.parent, data))
    return out


def _diagnostic(
    results: Path, pair: Pair, calibrated: list[tuple[Path, dict[str, Any]]]
) -> tuple[Pair, dict[str, Any]] | None:
    """The newest simulation given exactly `pair`'s load runs' speed and pace (PACE=, as
    make twin's diagnostic runs it) with those runs, and its comparison; None when there is
    none or it cannot be compared."""
    runs = sorted(d.name for d in pair.load_dirs)
    for run, data in calibrated:
        pace = data.get("pace") or {}
        if run == pair.sim_dir or pace.get("source") != "load runs":
            continue
        if sorted(pace.get("runs") or []) != runs:
            continue
        try:
            found = find_pair(results, str(run), ",".join(map(str, pair.load_dirs)))
            return found, compare(found)
        except (CompareError, OSError, KeyError, ValueError):
            return None
    return None


def collect(results: Path) -> Inputs:
    """The newest successful run of each kind under `results`."""
    found = Inputs()
    calibrated = []
    for run, data in _summaries(results / "sim"):
        if data.get("kind") == "sim" and data.get("calibration"):
            calibrated.append((run, data))
            if found.twin is None and found.twin_note is None:
                try:
                    found.twin_pair = find_pair(results, str(run))
                    found.twin = compare(found.twin_pair)
                except (CompareError, OSError, KeyError, ValueError) as exc:
                    found.twin_note = f"cannot compare {run.name}: {exc}"
            continue
        if data.get("kind") == "sim" and found.sim is None:
            found.sim, found.sources["simulation"] = data, str(run)
        if data.get("kind") == "sim-scenario" and found.scenario is None:
            found.scenario, found.sources["failure drill"] = data, str(run)
            with (run / "timeline.csv").open() as fh:
                found.scenario_timeline = list(csv.DictReader(fh))
    loads = _summaries(results / "load")
    if found.scenario is not None:
        for run, data in loads:
            drill = data.get("scenario")
            if drill and Path(drill).stem == found.scenario["scenario"]:
                found.sources["load run of the drill"] = str(run)
                with (run / "timeline.csv").open() as fh:
                    found.scenario_measured = list(csv.DictReader(fh))
                break
    if loads:
        found.sources["load test"] = str(loads[0][0])
        found.load = loads[0][1]
    seen = set()
    for _, data in _summaries(results / "cost"):
        key = (data.get("mau"), data.get("architecture"), data.get("pricing"))
        if key not in seen:
            seen.add(key)
            found.costs.append(data)
    if found.twin_pair is not None:
        pair = found.twin_pair
        diagnostic = _diagnostic(results, pair, calibrated)
        if diagnostic is not None:
            found.twin_diagnostic_pair, found.twin_diagnostic = diagnostic
            found.sources["the model given those runs' speed and pace"] = str(diagnostic[0].sim_dir)
        found.sources["calibrated simulation"] = str(pair.sim_dir)
        for i, d in enumerate(pair.load_dirs):
            found.sources["its load run" + (f" ({i + 1})" if i else "")] = str(d)
    found.folders = sorted({Path(v) for v in found.sources.values()})
    if not (found.sim or found.scenario or found.load or found.costs or found.twin):
        raise ReportError(
            f"no results to report under {results}: run make simulate, make loadtest, "
            "make simulate SCENARIO=… or make cost first"
        )
    return found


# -- figures ----------------------------------------------------------------------------


def _measured_rows(load: dict[str, Any] | None) -> dict[tuple[str, str], dict[str, Any]]:
    """The load test's row per (operation, locality) with the most samples."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for row in (load or {}).get("latency", []):
        key = (row["operation"], row["locality"])
        if row["n"] and (key not in best or row["n"] > best[key]["n"]):
            best[key] = row
    return best


def seed_bands(inp: Inputs) -> go.Figure | None:
    if inp.sim is None:
        return None
    rows = [
        r
        for r in inp.sim["latency"]
        if r["region"] == "all" and r.get("seed_range_ms") and r["p50_ms"] is not None
    ]
    measured = _measured_rows(inp.load)
    labels = [f"{r['architecture']} {r['operation']} {r['locality']}" for r in rows]
    fig = go.Figure()
    fig.add_bar(
        y=labels,
        x=[r["seed_range_ms"][1] - r["seed_range_ms"][0] for r in rows],
        base=[r["seed_range_ms"][0] for r in rows],
        orientation="h",
        name="seed's range",
        marker_color="rgba(120,160,220,0.35)",
    )
    fig.add_scatter(
        y=labels,
        x=[r["p50_ms"] for r in rows],
        error_x={
            "type": "data",
            "symmetric": False,
            "array": [(r["p50_ci_ms"] or [r["p50_ms"]] * 2)[1] - r["p50_ms"] for r in rows],
            "arrayminus": [r["p50_ms"] - (r["p50_ci_ms"] or [r["p50_ms"]] * 2)[0] for r in rows],
        },
        mode="markers",
        name="simulated p50 (95 % CI)",
        marker={"color": "#c0392b", "size": 9},
    )
    hybrid = [(i, measured.get((r["operation"], r["locality"]))) for i, r in enumerate(rows)]
    pts = [(labels[i], m["p50_ms"]) for i, m in hybrid if m and rows[i]["architecture"] == "hybrid"]
    if pts:
        fig.add_scatter(
            y=[p[0] for p in pts], x=[p[1] for p in pts], mode="markers", name="measured p50",
            marker={"color": "#27ae60", "size": 9, "symbol": "diamond"},
        )  # fmt: skip
    fig.update_layout(
        title="The seed's latency table: ranges, simulated and measured p50",
        xaxis={"title": "ms", "type": "log"},
        height=120 + 28 * len(rows),
        barmode="overlay",
    )
    return fig


def percentile_curves(inp: Inputs) -> go.Figure | None:
    if inp.sim is None:
        return None
    measured = _measured_rows(inp.load)
    fig = go.Figure()
    for row in inp.sim["latency"]:
        if row["region"] != "all" or row["architecture"] != "hybrid" or row["p50_ms"] is None:
            continue
        name = f"{row['operation']} {row['locality']}"
        fig.add_scatter(
            x=[row[k] for k, _ in PERCENTILES], y=[q for _, q in PERCENTILES],
            mode="lines+markers", name=f"sim {name}",
        )  # fmt: skip
        m = measured.get((row["operation"], row["locality"]))
        if m is not None:
            fig.add_scatter(
                x=[m[k] for k, _ in PERCENTILES], y=[q for _, q in PERCENTILES],
                mode="lines+markers", name=f"measured {name}", line={"dash": "dash"},
            )  # fmt: skip
    fig.update_layout(
        title="Latency percentiles, simulated (solid) and measured (dashed)",
        xaxis={"title": "ms", "type": "log"},
        yaxis={"title": "percentile"},
        height=480,
    )
    return fig


def failure_timeline(inp: Inputs) -> go.Figure | None:
    if inp.scenario is None or not inp.scenario_timeline:
        return None
    rows = [r for r in inp.scenario_timeline if r["region"] == "all" and r["operation"] == "all"]
    goals = sorted({r.get("survival", "") for r in rows})
    fig = make_subplots(
        rows=4, cols=1, shared_xaxes=True,
        subplot_titles=("offered req/s", "errors", "p99 ms", "cache hit rate"),
    )  # fmt: skip
    for goal in goals:
        mine = [r for r in rows if r.get("survival", "") == goal]
        t = [int(r["t_s"]) for r in mine]
        label = f" ({goal})" if goal else ""
        for i, (col, cast) in enumerate(
            (("offered", float), ("errors", float), ("p99_ms", float), ("cache_hit_rate", float)),
            start=1,
        ):
            fig.add_scatter(
                x=t, y=[cast(r[col]) if r[col] else None for r in mine],
                name=f"{col}{label}", row=i, col=1, mode="lines",
            )  # fmt: skip
    measured = [
        r for r in inp.scenario_measured if r["region"] == "all" and r["operation"] == "all"
    ]
    if measured:
        t = [int(r["t_s"]) for r in measured]
        for i, col in enumerate(("offered", "errors", "p99_ms"), start=1):
            fig.add_scatter(
                x=t, y=[float(r[col]) if r[col] else None for r in measured],
                name=f"{col} (measured)", row=i, col=1, mode="lines",
                line={"dash": "dash", "color": "#444"},
            )  # fmt: skip
    for ev in inp.scenario["variants"][0]["events"]:
        fig.add_vrect(
            x0=ev["start_s"], x1=ev["start_s"] + ev["for_s"], fillcolor="red", opacity=0.12,
            line_width=0, annotation_text=f"{ev['component']} {ev['target']}",
        )  # fmt: skip
    fig.update_layout(
        title=f"Failure drill {inp.scenario['scenario']}: {inp.scenario['description']}",
        height=760,
    )
    fig.update_yaxes(type="log", row=3, col=1)
    if measured:  # the machine's load is far below the model's: counts on log axes
        fig.update_yaxes(type="log", row=1, col=1)
        fig.update_yaxes(type="log", row=2, col=1)
    return fig


def twin_cdfs(inp: Inputs) -> go.Figure | None:
    """Latency CDFs of the calibrated simulation and its load run, per operation and
    locality over the stack's regions, on a log axis."""
    if inp.twin_pair is None:
        return None
    meas, simd = inp.twin_pair.measured, inp.twin_pair.simulated
    keys = sorted(k for k in meas if k[2] == "all" and k in simd and sum(meas[k].values()) >= 20)
    if not keys:
        return None
    fig = go.Figure()
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
    # make twin's diagnostic beside the prediction: the model given the runs' own speed.
    diagnostic = inp.twin_diagnostic_pair if twin_verdict_lines(inp) else None
    given = diagnostic.simulated if diagnostic is not None else {}
    for i, key in enumerate(keys):
        color = palette[i % len(palette)]
        name = f"{key[0]} {key[1]}"
        lines = [("measured", meas[key], "solid"), ("simulated", simd[key], "dot")]
        if key in given:
            lines.append(("given the runs' speed", given[key], "dash"))
        for label, bins, dash in lines:
            x, y = cdf(bins)
            fig.add_scatter(
                x=x.tolist(), y=y.tolist(), mode="lines", name=f"{label} {name}",
                legendgroup=name, line={"color": color, "dash": dash},
            )  # fmt: skip
    fig.update_layout(
        title=(
            f"Latency CDFs at {inp.twin['scenario']['qps']:g} QPS<br><sup>solid: "
            f"{runs_said(inp.twin)}<br>dotted: the calibrated simulation"
            + ("; dashed: the model given the runs' own speed and pace" if given else "")
            + "</sup>"
        ),
        margin={"t": 110},
        xaxis={"title": "ms", "type": "log"},
        yaxis={"title": "share of requests at or below"},
        height=560,
    )
    return fig


def twin_split(inp: Inputs) -> go.Figure | None:
    """Where the measured latency went around the server's clock, per operation and
    locality, over all requests and over the slowest tenth: each part's share of the mean
    (the ms in the hover), so that cells of 2 ms and of 200 ms read alike (trace format 3,
    servers on the load generator's machine)."""
    if inp.twin is None:
        return None
    rows = [
        r
        for r in inp.twin["rows"]
        if r["region"] == "all" and r.get("measured_split_ms")
        and r["measured_split_ms"]["n"]["all"] >= 50
    ]  # fmt: skip
    if not rows:
        return None
    fig = go.Figure()
    labels = [
        f"{r['operation']} {r['locality']}: {which}"
        for r in rows
        for which in ("all", "slowest tenth")
    ]
    cells = [(r["measured_split_ms"], which) for r in rows for which in ("all", "slowest_tenth")]
    totals = [sum(split[p][which] for p in SPLIT_PARTS) or 1.0 for split, which in cells]
    for part in SPLIT_PARTS:
        ms = [split[part][which] for split, which in cells]
        fig.add_bar(
            y=labels,
            x=[100 * v / t for v, t in zip(ms, totals, strict=True)],
            customdata=ms,
            hovertemplate="%{customdata:.2f} ms (%{x:.0f} %)",
            name=SPLIT_WORDS[part],
            orientation="h",
        )
    fig.update_layout(
        barmode="stack",
        title=(
            f"Where the measured latency went, load run {inp.twin['load_run']} "
            f"({inp.twin['scenario']['qps']:g} QPS): share of the mean per request"
        ),
        xaxis={"title": "% of the mean latency (hover for ms)", "range": [0, 100]},
        yaxis={"autorange": "reversed"},
        legend={"orientation": "h", "y": -0.08, "yanchor": "top"},
        height=220 + 34 * len(labels),
    )
    return fig


def cost_figure(inp: Inputs) -> go.Figure | None:
    if not inp.costs:
        return None
    fig = go.Figure()
    for data in sorted(inp.costs, key=lambda d: (d["pricing"], d["architecture"], d["mau"])):
        fig.add_bar(
            x=[f"{data['mau']} {data['architecture']}"], y=[data["total_usd_per_month"]],
            name=f"{data['pricing']} pricing",
            text=[f"${data['total_usd_per_month']:,.0f} (${data['per_user_usd']:.4f}/user)"],
        )  # fmt: skip
    fig.update_layout(title="Monthly bill by MAU and architecture", yaxis={"title": "USD"},
                      barmode="group", height=420)  # fmt: skip
    return fig


# -- verdicts and page -----------------------------------------------------------------


def verdicts(inp: Inputs) -> list[tuple[str, bool | None, str]]:
    out: list[tuple[str, bool | None, str]] = []
    if inp.sim is not None:
        for r in inp.sim["latency"]:
            if r["region"] == "all" and r.get("seed_range_ms") and r["p50_ms"] is not None:
                lo, hi = r["seed_range_ms"]
                out.append(
                    (
                        f"sim {r['architecture']} {r['operation']} {r['locality']}: p50 in "
                        "the seed's range",
                        r["verdict"] == "inside",
                        f"p50 {r['p50_ms']:.1f} ms, seed {lo:g}-{hi:g} ms ({r['verdict']})",
                    )
                )
    if inp.scenario is not None:
        for v in inp.scenario["variants"]:
            for ev in v["events"]:
                out.append(
                    (
                        f"drill {inp.scenario['scenario']} ({v['survival']}): recovered",
                        ev["measured_recovery_s"] is not None,
                        f"availability {v['availability']:.4%}, measured recovery "
                        f"{ev['measured_recovery_s']} s, lost writes {v['lost_writes']:g}",
                    )
                )
    if inp.load is not None:
        out.append(
            (
                "load test reached its target rate",
                bool(inp.load["target_reached"]),
                f"{inp.load['achieved_qps']} of {inp.load['target_qps']} QPS, "
                f"late starts {inp.load['late_start_share']:.2%}",
            )
        )
        out.append(
            (
                "load test counts agree with the servers' /metrics",
                inp.load["measured_counts"] == inp.load["server_counts"],
                json.dumps(inp.load["measured_counts"]),
            )
        )
    if inp.twin is not None:
        if inp.twin.get("runs_repeat") is not None:
            out.append(
                (
                    f"the {len(inp.twin['load_runs'])} pooled load runs repeat within "
                    f"±{inp.twin['tolerance']:.0%} of their pool",
                    inp.twin["runs_repeat"],
                    f"furthest a run's p50 or p90 lies from the pool: {inp.twin['run_spread']:.1%}",
                )
            )
        for r in inp.twin["rows"]:
            if r.get("judged"):
                out.append(
                    (
                        f"twin {r['operation']} {r['locality']} {r['region']}: simulated p50 and "
                        f"p90 within ±{inp.twin['tolerance']:.0%} of measured",
                        r["within_tolerance"],
                        f"p50 {r['p50_simulated_ms']:.2f} vs {r['p50_measured_ms']:.2f} ms "
                        f"({r['p50_error']:+.1%}), p90 {r['p90_simulated_ms']:.2f} vs "
                        f"{r['p90_measured_ms']:.2f} ms ({r['p90_error']:+.1%}), "
                        f"n {r['n_measured']:,}",
                    )
                )
    targets = load_seed_targets()
    for data in inp.costs:
        target = targets.bill_for(data["mau"], data["architecture"])
        if data["pricing"] == "seed" and target is not None:
            total = data["total_usd_per_month"]
            out.append(
                (
                    f"cost {data['mau']} {data['architecture']}: the seed's total within 1 %",
                    abs(total / target.total_usd - 1) <= 0.01,
                    f"${total:,.0f} against the seed's ${target.total_usd:,.0f}",
                )
            )
    return out


def render(inp: Inputs) -> tuple[str, int]:
    """The page, and how many charts it holds."""
    makers = (seed_bands, percentile_curves, twin_cdfs, twin_split, failure_timeline, cost_figure)
    figures = [f for f in (make(inp) for make in makers) if f is not None]
    charts = "\n".join(
        f'<section class="chart">{f.to_html(full_html=False, include_plotlyjs=False)}</section>'
        for f in figures
    )
    rows = "\n".join(
        f"<tr class='{'pass' if ok else 'fail' if ok is False else ''}'><td>{html.escape(name)}"
        f"</td><td>{'pass' if ok else 'fail'}</td><td>{html.escape(numbers)}</td></tr>"
        for name, ok, numbers in verdicts(inp)
    )
    sources = "".join(
        f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in inp.sources.items()
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>authscale report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} td {{ border: 1px solid #ccc; padding: 4px 8px; }}
tr.pass td:nth-child(2), td.pass {{ color: #1e8449; }}
tr.fail td:nth-child(2), td.fail {{ color: #c0392b; }} td.unjudged {{ color: #777; }}
</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>authscale report</h1>
<p>Runs read:</p><ul>{sources}</ul>
{charts}
{_twin_section(inp)}
<h2>Checks</h2>
<table><tr><th>check</th><th>verdict</th><th>numbers</th></tr>
{rows}
</table>
</body></html>
"""
    return page, len(figures)


def _verdict_class(row: dict[str, Any]) -> str:
    if not row.get("judged"):
        return "unjudged"
    return "pass" if row["within_tolerance"] else "fail"


def _twin_section(inp: Inputs) -> str:
    if inp.twin is None:
        note = (
            inp.twin_note
            or "no calibrated simulation (make calibrate, make simulate PROFILE=local)"
        )
        return f"<h2>Simulator against measurement</h2><p>{html.escape(note)}</p>"
    t = inp.twin

    def ms(v: float) -> str:
        return f"{v:.2f}"

    pooled = len(t.get("load_runs") or []) > 1

    def spread(r: dict[str, Any]) -> str:
        if not pooled:
            return ""
        if "run_spread" not in r:
            return "<td></td>"
        per_run = ", ".join(f"{v:.2f}" for v in r["runs_p90_ms"])
        return f"<td title='p90 per run: {per_run} ms'>±{r['run_spread']:.0%}</td>"

    rows = "".join(
        "<tr>"
        f"<td>{r['operation']}</td><td>{r['locality']}</td><td>{r['region']}</td>"
        f"<td>{r['n_measured']:,}</td>"
        + "".join(
            f"<td>{ms(r[f'p{q}_measured_ms'])}</td><td>{ms(r[f'p{q}_simulated_ms'])}</td>"
            f"<td>{r[f'p{q}_error']:+.1%}</td>"
            for q in (50, 90, 99)
        )
        + f"<td>{r['ks_d']:.3f} (p={r['ks_p']:.2g})</td>"
        + spread(r)
        + f"<td class='{_verdict_class(r)}'>{html.escape(r['verdict'])}</td></tr>"
        for r in t["rows"]
        if "p50_error" in r
    )
    reasons = "".join(f"<li>{html.escape(line)}</li>" for line in explain(t))
    pace = html.escape(paced_said(t.get("simulation_pace")))
    return f"""<h2>Simulator against measurement</h2>
<p>Simulation {html.escape(t["simulation"])} (profile local) against
{html.escape(runs_said(t))}: {t["scenario"]["qps"]:g} QPS on
{html.escape(", ".join(t["scenario"]["regions"]))}{pace}.
{t["cells_within"]} of {t["cells_judged"]}
cells with at least {t["min_samples"]:,} measured requests have simulated p50 and p90 within
±{t["tolerance"]:.0%}: goal <b>{"met" if t["goal_met"] else "not met"}</b>.</p>
<ul>{reasons}</ul>
{_diagnostic_said(inp)}
<table><tr><th>operation</th><th>locality</th><th>region</th><th>n</th>
<th>p50 measured</th><th>p50 sim</th><th>error</th><th>p90 measured</th><th>p90 sim</th>
<th>error</th><th>p99 measured</th><th>p99 sim</th><th>error</th><th>KS D</th>
{"<th>runs from the pool (p50, p90)</th>" if pooled else ""}<th>verdict</th></tr>
{rows}</table>"""


def twin_verdict_lines(inp: Inputs) -> list[str]:
    """make twin's last lines (the prediction's and the diagnostic's counts, the verdict
    between them) when the newest calibrated simulation is a prediction and a diagnostic of
    the same runs exists; else none."""
    if inp.twin is None or inp.twin_diagnostic is None:
        return []
    if (inp.twin.get("simulation_pace") or {}).get("source") == "load runs":
        return []  # the newest simulation is itself a diagnostic
    return twin_verdict(inp.twin, inp.twin_diagnostic)


def _diagnostic_said(inp: Inputs) -> str:
    lines = "".join(f"<li>{html.escape(line)}</li>" for line in twin_verdict_lines(inp))
    if not lines:
        return ""
    return f"<p>The same runs against the model given their own speed and pace:</p><ul>{lines}</ul>"


def text_summary(inp: Inputs) -> str:
    checks = verdicts(inp)
    passed = sum(1 for _, ok, _ in checks if ok)
    lines = [f"authscale report: {passed} of {len(checks)} checks pass"]
    lines += [f"  {'PASS' if ok else 'FAIL'}  {name}: {numbers}" for name, ok, numbers in checks]
    lines += [f"  twin: {line}" for line in twin_verdict_lines(inp)]
    return "\n".join(lines)
