"""`make report`: results/report.html from the newest runs, and a one-screen summary."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from report.build import ReportError, collect, render, text_summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make report")
    p.add_argument("--results-dir", default=os.environ.get("AUTHSCALE_RESULTS", "results"))
    args = p.parse_args(argv)
    results = Path(args.results_dir)
    try:
        inputs = collect(results)
    except ReportError as exc:
        print(f"authscale report: error: {exc}", file=sys.stderr)
        return 2
    page, charts = render(inputs)
    out = results / "report.html"
    for target in [out, *(folder / "report.html" for folder in inputs.folders)]:
        tmp = target.with_suffix(".html.tmp")
        tmp.write_text(page)
        tmp.replace(target)
    print(text_summary(inputs))
    if inputs.twin_note:
        print(f"simulator against measurement: {inputs.twin_note}")
    print(f"\n{charts} charts; report: {out} (self-contained, readable offline), and a copy in")
    for folder in inputs.folders:
        print(f"  {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
