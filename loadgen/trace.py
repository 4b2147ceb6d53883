"""Step traces for calibration (`make loadtest TRACE=1`, run by `make calibrate`).

Each response's `Server-Timing` header says which steps the server performed and how long
each took: wall time (`dur`), the event loop's CPU time (`cpu`) and the emulated
wide-area wait (`wan`), plus an `app` entry for the whole request inside the server. A
traced run keeps, per request, those entries and the latency the client saw, and writes
them to `trace.json` in the run folder; `report.calibrate` fits the local profile from
them. The unmeasured preparation requests (a login challenge, an authorization code) are
kept too: they load the server's event loop like any other request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Entry = tuple[str, float, float, float]  # (component.action, dur_ms, cpu_ms, wan_ms)


def parse(header: str) -> tuple[list[Entry], float, float] | None:
    """The steps of a Server-Timing header and the request's own (dur, cpu); None when the
    header is missing or carries no `app` entry (not one of our servers)."""
    steps: list[Entry] = []
    app: tuple[float, float] | None = None
    for part in filter(None, (p.strip() for p in header.split(","))):
        name, *params = part.split(";")
        values = {}
        for param in params:
            key, _, value = param.partition("=")
            if key in ("dur", "cpu", "wan"):
                try:
                    values[key] = float(value)
                except ValueError:
                    return None
        if name == "app":
            app = (values.get("dur", 0.0), values.get("cpu", 0.0))
        elif "." in name:
            steps.append(
                (name, values.get("dur", 0.0), values.get("cpu", 0.0), values.get("wan", 0.0))
            )
    if app is None:
        return None
    return steps, app[0], app[1]


class Trace:
    """Traced requests of one load-generator process."""

    def __init__(self) -> None:
        self.requests: list[list[Any]] = []
        self.prepares: list[list[Any]] = []
        self.unparsed = 0

    def add(
        self, operation: str, locality: str, edge: str, latency_ms: float, header: str | None
    ) -> None:
        parsed = parse(header) if header else None
        if parsed is None:
            self.unparsed += 1
            return
        steps, app_ms, app_cpu = parsed
        self.requests.append(
            [
                operation,
                locality,
                edge,
                round(latency_ms, 4),
                app_ms,
                app_cpu,
                [list(s) for s in steps],
            ]
        )

    def add_prepare(self, operation: str, edge: str, header: str | None) -> None:
        parsed = parse(header) if header else None
        if parsed is None:
            self.unparsed += 1
            return
        _, app_ms, app_cpu = parsed
        self.prepares.append([operation, edge, app_ms, app_cpu])

    def write(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {
                    "format": "authscale-trace-1",
                    "fields": [
                        "operation",
                        "locality",
                        "edge",
                        "latency_ms",
                        "app_ms",
                        "app_cpu_ms",
                        "steps",
                    ],
                    "step_fields": ["step", "dur_ms", "cpu_ms", "wan_ms"],
                    "requests": self.requests,
                    "prepare_fields": ["operation", "edge", "app_ms", "app_cpu_ms"],
                    "prepares": self.prepares,
                    "unparsed": self.unparsed,
                }
            )
        )


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("format") != "authscale-trace-1":
        raise ValueError(f"{path} is not an authscale trace (format {data.get('format')!r})")
    return data
