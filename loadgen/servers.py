"""What the servers say they answered: their own /metrics counters, per operation."""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

from server.infra import tree_cpu_seconds

LOOP_CPU = "(event loop cpu_s)"  # a key of server_counts: the servers' loop CPU seconds
LOOP_WAIT = "(event loop wait_s)"  # their loops' time runnable but waiting for a core
LOOP_MOVES = "(event loop migrations)"  # and how often one was moved to another core
HASH_CPU = "(password hash cpu_s)"  # the password hashes' CPU on the worker threads
HASHES = "(password hashes)"  # and how many ran
HASH_WAIT = "(password hash wait_s)"  # and the hash threads' time waiting for a core
# The servers' unlabelled counters summed over the regions, by the key they take.
SUMMED = {
    "authscale_event_loop_cpu_seconds_total": LOOP_CPU,
    "authscale_event_loop_runqueue_wait_seconds_total": LOOP_WAIT,
    "authscale_event_loop_migrations_total": LOOP_MOVES,
    "authscale_password_hash_cpu_seconds_total": HASH_CPU,
    "authscale_password_hashes_total": HASHES,
    "authscale_password_hash_runqueue_wait_seconds_total": HASH_WAIT,
}
MACHINE_BUSY = "(machine busy_s)"  # and the whole machine's busy CPU seconds (Linux)
WALL = "(wall_s)"  # and the clock, so that a difference of two readings has its window
SERVERS_CPU = "(server processes cpu_s)"  # the stack's server processes, every thread
STORES_CPU = "(stores cpu_s)"  # and its Redis and PostgreSQL processes


def machine_busy_s() -> float:
    """CPU seconds every core of this machine has been busy since boot (0 without
    /proc/stat): user, nice, system, irq, softirq and steal time."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def server_counts(
    urls: dict[str, str], pids: dict[str, list[int]] | None = None
) -> dict[str, float]:
    """Requests each route has answered, summed over the regions' /metrics, and under
    LOOP_CPU the CPU seconds their event loops have used (LOOP_WAIT: waiting for a core;
    LOOP_MOVES: moved to another core's run queue; HASH_CPU and HASHES: the password
    hashes' CPU on the worker threads, and their count);
    with the stack's `pids`, the CPU seconds of its server processes (SERVERS_CPU) and its
    stores (STORES_CPU), each with all its threads and children."""
    counts: dict[str, float] = {}
    for url in urls.values():
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("authscale_requests_total{"):
                    labels, value = line.rsplit(" ", 1)
                    op = labels.split('operation="')[1].split('"')[0]
                    counts[op] = counts.get(op, 0) + int(float(value))
                elif (key := SUMMED.get(line.split(" ", 1)[0])) is not None:
                    counts[key] = counts.get(key, 0.0) + float(line.split()[1])
    if pids:
        counts[SERVERS_CPU] = tree_cpu_seconds(pids.get("servers", []))
        counts[STORES_CPU] = tree_cpu_seconds(pids.get("stores", []))
    counts[MACHINE_BUSY] = machine_busy_s()
    counts[WALL] = time.monotonic()
    return counts
