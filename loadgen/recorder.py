"""Latency in µs HdrHistograms per (operation, locality, region), measured from each
request's intended send time, and per-second counts for the timeline.

A recorder serialises to JSON (histograms base64-encoded), so that a worker process can
hand its numbers to the process that writes the results, and recorders merge exactly.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from typing import Any

from hdrh.histogram import HdrHistogram

MAX_US = 60_000_000  # one minute
SIGNIFICANT = 3  # 0.1 % precision

Key = tuple[str, str, str]  # (operation, locality, region)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, MAX_US, SIGNIFICANT)


def histogram_in(table: dict[Any, HdrHistogram], key: Any) -> HdrHistogram:
    """The table's histogram for `key`, made on first use. Not setdefault: that would
    build a histogram (tens of KB) on every call, measured at 145 µs a request."""
    hist = table.get(key)
    if hist is None:
        hist = table[key] = new_histogram()
    return hist


class Recorder:
    def __init__(self) -> None:
        self.histograms: dict[Key, HdrHistogram] = {}
        self.errors: dict[Key, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.late_starts = 0
        self.sent = 0
        self.connections = 0  # TCP connections the senders opened to the servers
        # per second: (second, region, operation) -> [offered, completed, errors]
        self.seconds: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        self.second_hist: dict[tuple[int, str, str], HdrHistogram] = {}
        self.second_errors: dict[tuple[int, str, str], dict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        # what the servers' /metrics counted per operation during the measured run
        self.server_counts: dict[str, float] = {}
        self.cpu_s = 0.0  # CPU seconds of the load generator's processes
        # seconds their sending threads were runnable but waiting for a core, in the run
        self.runqueue_wait_s = 0.0
        self.migrations = 0  # ... and times the kernel moved them to another core

    def record(self, key: Key, second: int, latency_us: int, error: str | None) -> None:
        op, _, region = key
        row = self.seconds[(second, region, op)]
        row[0] += 1
        if error is not None:
            self.errors[key][error] += 1
            self.second_errors[(second, region, op)][error] += 1
            row[2] += 1
            return
        row[1] += 1
        value = max(1, min(latency_us, MAX_US))
        histogram_in(self.histograms, key).record_value(value)
        histogram_in(self.second_hist, (second, region, op)).record_value(value)

    def to_json(self) -> dict[str, Any]:
        def enc(h: HdrHistogram) -> str:
            return base64.b64encode(h.encode()).decode()

        return {
            "histograms": [[*k, enc(h)] for k, h in self.histograms.items()],
            "errors": [[*k, dict(v)] for k, v in self.errors.items()],
            "late_starts": self.late_starts,
            "sent": self.sent,
            "seconds": [[*k, *v] for k, v in self.seconds.items()],
            "second_hist": [[*k, enc(h)] for k, h in self.second_hist.items()],
            "second_errors": [[*k, dict(v)] for k, v in self.second_errors.items()],
            "server_counts": self.server_counts,
            "cpu_s": self.cpu_s,
            "runqueue_wait_s": self.runqueue_wait_s,
            "migrations": self.migrations,
            "connections": self.connections,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Recorder:
        rec = cls()
        rec.merge_json(data)
        return rec

    def merge_json(self, data: dict[str, Any]) -> None:
        def dec(text: str) -> HdrHistogram:
            return HdrHistogram.decode(base64.b64decode(text))

        for op, loc, region, text in data["histograms"]:
            histogram_in(self.histograms, (op, loc, region)).add(dec(text))
        for op, loc, region, kinds in data["errors"]:
            for kind, n in kinds.items():
                self.errors[(op, loc, region)][kind] += n
        self.late_starts += data["late_starts"]
        self.sent += data["sent"]
        for second, region, op, offered, completed, errors in data["seconds"]:
            row = self.seconds[(second, region, op)]
            row[0] += offered
            row[1] += completed
            row[2] += errors
        self.cpu_s += data.get("cpu_s", 0.0)
        self.runqueue_wait_s += data.get("runqueue_wait_s", 0.0)
        self.migrations += data.get("migrations", 0)
        self.connections += data.get("connections", 0)
        for second, region, op, kinds in data.get("second_errors", []):
            for kind, n in kinds.items():
                self.second_errors[(second, region, op)][kind] += n
        for op, n in data.get("server_counts", {}).items():
            self.server_counts[op] = self.server_counts.get(op, 0) + n
        for second, region, op, text in data["second_hist"]:
            histogram_in(self.second_hist, (second, region, op)).add(dec(text))
