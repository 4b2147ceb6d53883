"""What the servers say they answered: their own /metrics counters, per operation."""

from __future__ import annotations

import urllib.request


def server_counts(urls: dict[str, str]) -> dict[str, int]:
    """Requests each operation's route has answered, summed over the regions' /metrics."""
    counts: dict[str, int] = {}
    for url in urls.values():
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("authscale_requests_total{"):
                    labels, value = line.rsplit(" ", 1)
                    op = labels.split('operation="')[1].split('"')[0]
                    counts[op] = counts.get(op, 0) + int(float(value))
    return counts
