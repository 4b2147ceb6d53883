"""The machine's cores, shared by every thread that wants one (processor sharing).

The local stack runs its server processes, the load generator, Redis, PostgreSQL and the
password hashes on a few cores. When more threads are runnable than there are cores,
the scheduler shares the cores among them; over a few milliseconds that is processor
sharing: `n` runnable threads on `c` cores each advance at min(1, c / n) of a core's
speed. A thread's work item therefore has no departure time known when it arrives (a
later arrival slows it down), unlike the FCFS stations of `sim.queues`: the pool keeps
each runnable item's remaining work and one pending SimPy event for the next completion,
and re-plans at every arrival and departure.

`CoreThread` is a thread (an event loop, the load generator's senders, a hashing pool):
its work items run one at a time per thread in arrival order, and only the running item
holds a share of the cores. tests/sim/test_cores.py checks both against hand-worked
schedules.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import simpy

Done = Callable[[float], None]
HAND_OFFS = "hand-offs"  # the owner of the requests' own visits to the cores
_EPS_MS = 1e-9


class CorePool:
    """`cores` cores shared equally by the runnable work items."""

    deferred = True

    def __init__(self, env: simpy.Environment, cores: int, name: str = "machine/cores") -> None:
        if cores < 1:
            raise ValueError(f"{name}: a machine needs at least one core, got {cores}")
        self.env = env
        self.name = name
        self.servers = cores
        self.cores = float(cores)
        self._jobs: list[list[Any]] = []  # [remaining ms of work, done, owner]
        self._at = 0.0  # the time the remaining work was last brought up to date
        self._plan = 0  # the pending completion event's number; older ones are stale
        self._firing = False
        self.busy_ms = 0.0  # core-milliseconds of work done
        self.served = 0
        # Per owner (a thread's group name; "" for work of no thread): ms of CPU done, and
        # ms spent runnable without a core (processor sharing: (1 - rate) of the time).
        self.cpu_by: dict[str, float] = {}
        self.wait_by: dict[str, float] = {}

    def _catch_up(self, now: float) -> None:
        dt = now - self._at
        if dt > 0.0 and self._jobs:
            n = len(self._jobs)
            rate = 1.0 if n <= self.cores else self.cores / n
            done = dt * rate
            waited = dt - done
            cpu_by, wait_by = self.cpu_by, self.wait_by
            for job in self._jobs:
                job[0] -= done
                owner = job[2]
                cpu_by[owner] = cpu_by.get(owner, 0.0) + done
                if waited:
                    wait_by[owner] = wait_by.get(owner, 0.0) + waited
            self.busy_ms += done * n
        self._at = now

    def run(self, work_ms: float, done: Done | None, owner: str = "") -> None:
        """Start `work_ms` of CPU now for `owner`; `done(t)` is called when it is done."""
        now = self.env.now
        self._catch_up(now)
        self.served += 1
        if work_ms <= 0.0:
            if done is not None:
                done(now)
            return
        self._jobs.append([work_ms, done, owner])
        if not self._firing:
            self._replan(now)

    def submit(self, work_ms: float, done: Done | None) -> None:
        """A request's visit of its own: a hand-off to another process (a store, the HTTP
        threads), whose work waits for a core on the request's path."""
        self.run(work_ms, done, HAND_OFFS)

    def _replan(self, now: float) -> None:
        jobs = self._jobs
        self._plan += 1
        if not jobs:
            return
        n = len(jobs)
        rate = 1.0 if n <= self.cores else self.cores / n
        first = min(job[0] for job in jobs)
        event = self.env.timeout(max(first / rate, 0.0))
        plan = self._plan
        event.callbacks.append(lambda _e: self._complete(plan))

    def _complete(self, plan: int) -> None:
        if plan != self._plan:
            return  # re-planned since: an arrival or departure moved the completions
        now = self.env.now
        self._catch_up(now)
        finished = [job for job in self._jobs if job[0] <= _EPS_MS]
        self._jobs = [job for job in self._jobs if job[0] > _EPS_MS]
        self._firing = True
        try:
            for _, done, _ in finished:
                if done is not None:
                    done(now)
        finally:
            self._firing = False
        self._replan(now)

    def utilisation(self, elapsed_ms: float) -> float:
        return self.busy_ms / (elapsed_ms * self.cores) if elapsed_ms > 0 else 0.0


class CoreThread:
    """`threads` threads sharing one FCFS queue of work items; each running item takes a
    share of the pool's cores. With `turn=True` an item's `done` is called when it starts
    (its customer only waits for its turn; its work then keeps the thread busy behind
    it), otherwise when it is finished."""

    deferred = True  # a visit's end is known only when its work is done

    def __init__(
        self,
        name: str,
        pool: CorePool,
        threads: int = 1,
        *,
        turn: bool = False,
    ) -> None:
        if threads < 1:
            raise ValueError(f"{name}: needs at least one thread, got {threads}")
        self.name = name
        self.servers = threads
        self.pool = pool
        self.turn = turn
        # Its group (app/<region>/loop -> app/*/loop): what the pool accounts its CPU to.
        parts = name.split("/")
        self.group = "/".join([parts[0], "*", *parts[2:]]) if len(parts) > 2 else name
        self._queue: deque[tuple[float, Done | None]] = deque()
        self._running = 0
        self.busy_ms = 0.0  # the work done, in ms of CPU (time on a core, not waiting)
        self.served = 0

    def submit(self, work_ms: float, done: Done | None) -> None:
        """Queue `work_ms` of CPU on this thread; see the class for when `done` runs."""
        self.served += 1
        self.busy_ms += work_ms
        if self._running < self.servers:
            self._start(work_ms, done)
        else:
            self._queue.append((work_ms, done))

    def _start(self, work_ms: float, done: Done | None) -> None:
        self._running += 1
        if self.turn:
            if done is not None:
                done(self.pool.env.now)
            self.pool.run(work_ms, self._finished, self.group)
        else:
            self.pool.run(work_ms, lambda t: self._finished(t, done), self.group)

    def _finished(self, t: float, done: Done | None = None) -> None:
        self._running -= 1
        if self._queue:
            # The next in line starts before `done` can queue anything behind it.
            self._start(*self._queue.popleft())
        if done is not None:
            done(t)

    def utilisation(self, elapsed_ms: float) -> float:
        return self.busy_ms / (elapsed_ms * self.servers) if elapsed_ms > 0 else 0.0
