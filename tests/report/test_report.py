"""make report from runs the project's own code wrote: a self-contained page whose every
chart draws in headless Chromium with the network off, and a clear error without runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs

from report.__main__ import main as report_main
from report.browser import rendered_dom
from sim.cli import main as simulate
from sim.cost_cli import main as cost


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    common = ["--workers", "1", "--quiet", "--results-dir", str(root)]
    assert simulate(["--qps", "3000", "--duration", "2", "--warmup", "0.2", *common]) == 0
    assert simulate(["--scenario", "crdb-region-loss", "--mau", "10M", *common]) == 0
    assert cost(["--mau", "100M", "--arch", "legacy", "--pricing", "seed",
                 "--results-dir", str(root)]) == 0  # fmt: skip
    return root


def test_report_is_self_contained_and_every_chart_draws(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report_main(["--results-dir", str(results)]) == 0
    out = capsys.readouterr().out
    charts = int(re.search(r"(\d+) charts;", out).group(1))  # type: ignore[union-attr]
    assert charts == 4  # seed bands, percentiles, the drill's timeline, the bill
    assert "checks pass" in out and "PASS  cost 100M legacy" in out
    page = (results / "report.html").read_text()
    plotly_js = get_plotlyjs()
    assert page.count(plotly_js) == 1  # plotly.js inlined, once
    markup = page.replace(plotly_js, "")
    # Nothing loaded from elsewhere: no external script, stylesheet, image or font.
    assert not re.search(r"""<(script|link|img)[^>]*(src|href)=["']?(https?:)?//""", markup)
    assert "@import" not in markup and "url(http" not in markup
    dom = rendered_dom(results / "report.html")
    assert dom.count('class="plot-container plotly"') == charts
    assert "crdb-region-loss" in dom


def test_no_runs_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report_main(["--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no results to report" in err and "make simulate" in err


def test_a_drill_measured_on_the_stack_shares_the_simulated_timeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from loadgen.cli import main as loadtest

    monkeypatch.setenv("AUTHSCALE_RUN_DIR", str(tmp_path / "run"))
    common = ["--workers", "1", "--quiet", "--results-dir", str(tmp_path)]
    assert simulate(["--scenario", "traffic-spike", "--mau", "10M", *common]) == 0
    flags = ["--scenario", "traffic-spike", "--qps", "15", "--regions", "ap-ne"]
    assert loadtest([*flags, "--identities", "3", "--results-dir", str(tmp_path)]) == 0
    assert report_main(["--results-dir", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    assert "load run of the drill" in page
    for column in ("offered", "errors", "p99_ms"):
        assert f"{column} (measured)" in page
    load_run = (tmp_path / "load" / "latest").resolve()
    assert (load_run / "report.html").read_text() == page  # a copy in the run's folder
    dom = rendered_dom(tmp_path / "report.html")
    assert "Failure drill traffic-spike" in dom
