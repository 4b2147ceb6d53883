"""Prometheus text exposition: request counts and latency histograms per operation."""

from __future__ import annotations

import time
from collections import defaultdict

from server.sched import migrations, runqueue_wait_s
from server.security import HASHES

# Seconds; fine at the bottom, where loopback latencies live.
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self.sums: dict[str, float] = defaultdict(float)
        self.totals: dict[str, int] = defaultdict(int)

    def observe(self, operation: str, status: int, seconds: float) -> None:
        self.counts[(operation, status)] += 1
        self.sums[operation] += seconds
        self.totals[operation] += 1
        row = self.buckets[operation]
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                row[i] += 1

    def render(self) -> str:
        out = [
            "# HELP authscale_requests_total Requests by operation and HTTP status.",
            "# TYPE authscale_requests_total counter",
        ]
        for (op, status), n in sorted(self.counts.items()):
            out.append(f'authscale_requests_total{{operation="{op}",status="{status}"}} {n}')
        out += [
            "# HELP authscale_request_seconds Request latency by operation.",
            "# TYPE authscale_request_seconds histogram",
        ]
        for op in sorted(self.totals):
            for bound, n in zip(BUCKETS, self.buckets[op], strict=True):
                out.append(f'authscale_request_seconds_bucket{{operation="{op}",le="{bound}"}} {n}')
            out.append(
                f'authscale_request_seconds_bucket{{operation="{op}",le="+Inf"}} {self.totals[op]}'
            )
            out.append(f'authscale_request_seconds_sum{{operation="{op}"}} {self.sums[op]:.6f}')
            out.append(f'authscale_request_seconds_count{{operation="{op}"}} {self.totals[op]}')
        # Rendered on the event loop's thread, so this is the loop's own CPU: what requests
        # cost it in all, HTTP parsing included (calibration needs the part outside steps).
        out += _counter(
            "authscale_event_loop_cpu_seconds_total",
            "CPU time of the event loop thread.",
            f"{time.thread_time():.6f}",
        )
        # And how long it waited for a core while it had work: on a shared machine, time
        # a request spends neither in the server's code nor in its own awaits.
        wait = runqueue_wait_s()
        if wait is not None:
            out += _counter(
                "authscale_event_loop_runqueue_wait_seconds_total",
                "Time the event loop thread was runnable but waiting for a core.",
                f"{wait:.6f}",
            )
        # ... and how often the kernel moved it to another core's run queue.
        moved = migrations()
        if moved is not None:
            out += _counter(
                "authscale_event_loop_migrations_total",
                "Times the event loop thread was moved to another core's run queue.",
                str(moved),
            )
        # The password hash's CPU on the worker threads, and how many ran.
        out += _counter(
            "authscale_password_hash_cpu_seconds_total",
            "CPU time of the password verifications on the worker threads.",
            f"{HASHES.cpu_s:.6f}",
        )
        out += _counter(
            "authscale_password_hashes_total", "Password verifications run.", str(HASHES.count)
        )
        # ... and the worker threads' time runnable but waiting for a core.
        out += _counter(
            "authscale_password_hash_runqueue_wait_seconds_total",
            "Time the password hash worker threads were runnable but waiting for a core.",
            f"{HASHES.wait_s:.6f}",
        )
        return "\n".join(out) + "\n"


def _counter(name: str, help_text: str, value: str) -> list[str]:
    """A counter without labels in the text exposition: its HELP, TYPE and value lines."""
    return [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value}"]
