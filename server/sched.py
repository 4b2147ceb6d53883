"""What Linux says about the calling thread's scheduling: its time runnable but waiting
for a core, and its moves between cores' run queues (the event loop's and the password
hash workers' figures in /metrics)."""

from __future__ import annotations


def runqueue_wait_s(path: str = "/proc/thread-self/schedstat") -> float | None:
    """Seconds the calling thread has spent runnable but waiting for a core (Linux's
    schedstat, second field), or None where the kernel does not say."""
    try:
        with open(path) as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def migrations(path: str = "/proc/thread-self/sched") -> int | None:
    """How many times the kernel has moved the calling thread from one core's run queue
    to another's (`se.nr_migrations`), or None where the kernel does not say."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("se.nr_migrations"):
                    return int(line.split(":")[1])
    except (OSError, IndexError, ValueError):
        return None
    return None
