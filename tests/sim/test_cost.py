"""The cost model: the seed's bills within 1 %, list pricing, usage from the step lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scenarios import ScenarioError, World, load_seed_targets
from scenarios.prices import load_pricing
from sim.cost import compare_bills, compute_bill, seed_check, step_visits
from sim.cost_cli import main

SEED_BILLS = [
    ("10M", "legacy", 12_600),
    ("100M", "legacy", 128_800),
    ("100M", "legacy-optimised", 53_800),
    ("200M", "hybrid", 47_300),
]


@pytest.mark.parametrize(("mau", "arch", "total"), SEED_BILLS)
def test_seed_pricing_reproduces_the_seed_totals(
    seed_world: World, mau: str, arch: str, total: float
) -> None:
    bill = compute_bill(seed_world, load_pricing("seed"), mau, arch)
    assert bill.total_usd == pytest.approx(total, rel=0.01)
    assert load_seed_targets().bill_for(mau, arch).total_usd == total  # type: ignore[union-attr]


def test_seed_line_items_and_shares(seed_world: World) -> None:
    seed = load_pricing("seed")
    b100 = compute_bill(seed_world, seed, "100M", "legacy")
    cost = {ln.name: ln.cost_usd for ln in b100.lines}
    assert cost["Durable Objects"] == pytest.approx(125_000)
    assert cost["Workers"] == pytest.approx(500)
    assert cost["R2 storage"] + cost["R2 reads"] == pytest.approx(786)
    assert cost["KV storage"] == pytest.approx(6)
    assert b100.share_of("Durable Objects") == pytest.approx(0.97, abs=0.005)
    assert b100.per_user_usd == pytest.approx(0.00129, abs=0.000005)
    b10 = compute_bill(seed_world, seed, "10M", "legacy")
    assert b10.share_of("Durable Objects") == pytest.approx(0.99, abs=0.006)
    b200 = compute_bill(seed_world, seed, "200M", "hybrid")
    assert b200.share_of("Durable Objects") == pytest.approx(0.53, abs=0.005)
    assert b200.share_of("CockroachDB") == pytest.approx(0.23, abs=0.005)
    assert b200.share_of("Redis") == pytest.approx(0.10, abs=0.005)
    assert b200.per_user_usd == pytest.approx(0.00024, abs=0.000005)


def test_seed_check_reports_the_seeds_inconsistent_share(seed_world: World) -> None:
    bill = compute_bill(seed_world, load_pricing("seed"), "100M", "legacy-optimised")
    notes = seed_check(bill, load_seed_targets().bill_for("100M", "legacy-optimised"))
    assert "-0.0% from it" in notes[0]
    assert any("Neon / PlanetScale 7%" in n and "3.7%" in n for n in notes)


def test_usage_from_the_step_lists(seed_world: World) -> None:
    legacy = step_visits(seed_world, "legacy")
    # session validation 1 DO call, login 3 (rate limit, challenge, session), token issue 2
    # plus a DPoP jti check on 30 % of them (mix 79.4 %, 1.2 %, 3.9 %)
    assert legacy["do"] == pytest.approx(0.794 + 3 * 0.012 + 2.3 * 0.039)
    assert legacy["do:DPoPJTIStore"] == pytest.approx(0.3 * 0.039)
    assert legacy["do:SessionStore"] == pytest.approx(0.794 + 0.012)
    hybrid = step_visits(seed_world, "hybrid")
    assert "do" not in hybrid
    assert hybrid["crdb_write"] == pytest.approx(0.012 + 0.039 + 0.005)
    miss = 0.9 * 0.05 + 0.1 * 1.0  # same-region 5 % misses, cross-region always misses
    assert hybrid["crdb_read"] == pytest.approx((0.794 + 0.15 + 0.012) * miss + 0.005)


def test_list_pricing_cites_every_line_and_finds_the_differences(seed_world: World) -> None:
    listed = load_pricing("list")
    assert all(len(item.source) > 10 for item in listed.items)
    bill = compute_bill(seed_world, listed, "100M", "legacy")
    seed_bill = compute_bill(seed_world, load_pricing("seed"), "100M", "legacy")
    lines = {ln.name: ln for ln in bill.lines}
    # The workload's own 100k QPS over 30 days, not the seed's 10B requests.
    assert lines["Workers"].usage == pytest.approx(100_000 * 2_592_000 / 1e6)
    assert lines["Durable Objects duration"].cost_usd > 0
    notes = compare_bills(bill, seed_bill)
    assert any("26x more" in n and n.startswith("Workers") for n in notes)
    assert any("$12.5 is the list price of one million GB-s" in n for n in notes)
    assert any(n.startswith("KV reads") and "does not charge" in n for n in notes)
    hybrid = compare_bills(
        compute_bill(seed_world, listed, "200M", "hybrid"),
        compute_bill(seed_world, load_pricing("seed"), "200M", "hybrid"),
    )
    assert any(
        n.startswith("CockroachDB compute: the seed prices") and "50,000x more" in n for n in hybrid
    )


def test_bad_pricing_file_fails_clearly(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "scenarios/pricing/seed.toml").read_text()
    (tmp_path / "seed.toml").write_text(
        text.replace('usage = "do_requests"', 'usage = "pigeons"', 1)
    )
    with pytest.raises(ScenarioError) as err:
        load_pricing("seed", pricing_dir=tmp_path)
    assert "seed.toml" in str(err.value) and "pigeons" in str(err.value)
    assert "choose one of" in str(err.value)
    with pytest.raises(ScenarioError, match="unknown pricing 'cheap'"):
        load_pricing("cheap", pricing_dir=tmp_path)


def test_cli_writes_the_bill(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "--mau",
                "100M",
                "--arch",
                "legacy",
                "--pricing",
                "list",
                "--results-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "total per month" in out and "Where the seed's bill" in out
    summary = json.loads((tmp_path / "cost" / "latest" / "summary.json").read_text())
    assert summary["mau"] == "100M" and summary["architecture"] == "legacy"
    assert summary["pricing"] == "list"
    assert summary["total_usd_per_month"] == pytest.approx(
        sum(li["cost_usd"] for li in summary["line_items"])
    )
    assert summary["per_user_usd"] == pytest.approx(summary["total_usd_per_month"] / 100e6)
    for item in summary["line_items"]:
        assert {"name", "usage", "unit_price_usd", "cost_usd", "source"} <= set(item)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--mau", "7M"], "unknown MAU='7M'"),
        (["--arch", "mainframe"], "unknown ARCH='mainframe'"),
        (["--pricing", "cheap"], "unknown PRICING='cheap'"),
    ],
)
def test_cli_bad_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main([*flags, "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "cost").exists()
