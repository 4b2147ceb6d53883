"""The machine's cores, shared by every thread that wants one.

The local stack runs its server processes, the load generator, Redis, PostgreSQL and the
password hashes on a few cores. When more threads are runnable than there are cores,
the kernel shares the cores among them, so a thread's work item has no departure time
known when it arrives (a later arrival can delay it), unlike the FCFS stations of
`sim.queues`: a pool keeps the runnable items and plans the next event as it goes.

- `CorePool`: processor sharing, `n` runnable items on `c` cores each at min(1, c / n)
  of a core's speed; re-planned at every arrival and departure. The model's fallback
  where a profile lacks the scheduler's figures.
- `FairCorePool`: the cores as Linux's EEVDF scheduler shares them, to the timer tick
  (virtual runtimes, lag kept over sleep, deadlines a base slice apart, wake-up
  preemption), which is what makes a light thread preempt and a heavy one wait a tick.
- `CoreThread`: a thread (an event loop, the load generator's senders, a hashing pool):
  its work items run one at a time per thread in arrival order, and only the running
  item wants a core.

tests/sim/test_cores.py checks them against hand-worked schedules and against the
wake-up delays measured on the machine.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
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

    def run(self, work_ms: float, done: Done | None, owner: str = "", entity: Any = None) -> None:
        """Start `work_ms` of CPU now for `owner`; `done(t)` is called when it is done.
        (`entity`, the thread it runs on, matters to schedulers that remember threads.)"""
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

    def entity(self) -> Any:
        """A new thread's scheduler state (processor sharing keeps none)."""
        return None

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
        self._threads: list[Any] = []  # the scheduler's state of the idle threads
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
        thread = self._threads.pop() if self._threads else self.pool.entity()
        if self.turn:
            if done is not None:
                done(self.pool.env.now)
            self.pool.run(work_ms, lambda t: self._finished(t, None, thread), self.group, thread)
        else:
            self.pool.run(work_ms, lambda t: self._finished(t, done, thread), self.group, thread)

    def _finished(self, t: float, done: Done | None, thread: Any) -> None:
        self._running -= 1
        self._threads.append(thread)
        if self._queue:
            # The next in line starts before `done` can queue anything behind it.
            self._start(*self._queue.popleft())
        if done is not None:
            done(t)

    def utilisation(self, elapsed_ms: float) -> float:
        return self.busy_ms / (elapsed_ms * self.servers) if elapsed_ms > 0 else 0.0


class _Entity:
    """A thread as the scheduler sees it: its virtual runtime, lag and deadline."""

    __slots__ = ("core", "d", "job", "lag", "started", "v")

    def __init__(self) -> None:
        self.v = 0.0  # virtual runtime: ms of CPU (every thread weighs the same)
        self.lag = 0.0  # how far behind the average it went to sleep
        self.d = 0.0  # virtual deadline
        self.job: list[Any] | None = None  # [remaining ms, done, owner, entity]
        self.core = -1  # the core it runs on, -1 when waiting
        self.started = 0.0  # when it got the core


class FairCorePool(CorePool):
    """The machine's cores as Linux's EEVDF scheduler shares them, to the tick.

    Every runnable thread has a virtual runtime (its CPU time) and a deadline a slice
    beyond it. A core runs, of the threads whose virtual runtime is not ahead of the
    average, the one with the earliest deadline; it is reconsidered when a thread wakes up
    (which preempts a running one with a later deadline), when its work is done, and at
    each timer tick once it has run its slice. A thread that slept keeps its lag (clamped),
    so a thread that has used less than its share preempts one that computes for long; two
    that compute without sleeping take turns a tick long. `slice_ms` and `tick_ms` are the
    kernel's (see the README: measured on this machine)."""

    def __init__(
        self,
        env: simpy.Environment,
        cores: int,
        slice_ms: float,
        tick_ms: float,
        name: str = "machine/cores",
    ) -> None:
        super().__init__(env, cores, name)
        if slice_ms <= 0 or tick_ms <= 0:
            raise ValueError(f"{name}: slice and tick must be positive ({slice_ms}, {tick_ms})")
        self.slice_ms = slice_ms
        self.tick_ms = tick_ms
        self.lag_limit = max(2 * slice_ms, tick_ms)
        self._running: list[_Entity | None] = [None] * cores
        self._waiting: list[_Entity] = []
        self._token = [0] * cores  # a core's pending completion event's number
        self._ticking = False

    def entity(self) -> _Entity:
        """A new thread of this machine (a thread's state lives as long as the thread)."""
        return _Entity()

    # -- the scheduler's arithmetic ----------------------------------------------------
    def _v(self, e: _Entity, now: float) -> float:
        return e.v + (now - e.started if e.core >= 0 else 0.0)

    def _average(self, now: float) -> float:
        es = [e for e in self._running if e is not None] + self._waiting
        return sum(self._v(e, now) for e in es) / len(es) if es else 0.0

    def _pick(self, now: float) -> _Entity | None:
        if not self._waiting:
            return None
        avg = self._average(now)
        eligible = [e for e in self._waiting if e.v <= avg + _EPS_MS]
        pool = eligible or self._waiting
        return min(pool, key=lambda e: e.d)

    # -- running work ------------------------------------------------------------------
    def run(
        self, work_ms: float, done: Done | None, owner: str = "", entity: _Entity | None = None
    ) -> None:
        now = self.env.now
        self.served += 1
        if work_ms <= 0.0:
            if done is not None:
                done(now)
            return
        e = entity if entity is not None else _Entity()
        if e.job is not None:
            raise RuntimeError(f"{self.name}: a thread cannot run two pieces of work at once")
        e.job = [work_ms, done, owner, now]
        # Wake up: placed at the average less the lag it kept, a slice to its deadline.
        e.v = self._average(now) - e.lag
        e.d = e.v + self.slice_ms
        self._waiting.append(e)
        free = next((c for c, r in enumerate(self._running) if r is None), -1)
        if free >= 0:
            self._dispatch(free, now)
        else:
            # Wake-up preemption. The running threads are brought up to date first: one
            # past its deadline gets the next and is picked anew; otherwise the one due
            # last gives way if the woken one is eligible and due earlier.
            for c, r in enumerate(self._running):
                if r is not None and self._v(r, now) >= r.d:
                    r.d = self._v(r, now) + self.slice_ms
                    self._preempt(c, now)
                    self._dispatch(c, now)
            if e.core < 0:
                c, r = max(
                    ((c, r) for c, r in enumerate(self._running) if r is not None),
                    key=lambda cr: cr[1].d,
                )
                if e.v <= self._average(now) + _EPS_MS and e.d < r.d:
                    self._preempt(c, now)
                    self._dispatch(c, now)
        if not self._ticking:
            self._ticking = True
            self.env.process(self._ticks())

    def _preempt(self, core: int, now: float) -> None:
        e = self._running[core]
        assert e is not None and e.job is not None
        ran = now - e.started
        e.v += ran
        e.job[0] -= ran
        self._account(e, ran)
        e.core = -1
        e.job[3] = now
        self._running[core] = None
        self._token[core] += 1
        self._waiting.append(e)

    def _account(self, e: _Entity, ran: float) -> None:
        assert e.job is not None
        owner = e.job[2]
        self.cpu_by[owner] = self.cpu_by.get(owner, 0.0) + ran
        self.busy_ms += ran

    def _dispatch(self, core: int, now: float) -> None:
        e = self._pick(now)
        if e is None:
            return
        self._waiting.remove(e)
        assert e.job is not None
        waited = now - e.job[3]
        if waited > 0:
            self.wait_by[e.job[2]] = self.wait_by.get(e.job[2], 0.0) + waited
        e.core = core
        e.started = now
        self._running[core] = e
        self._token[core] += 1
        token = self._token[core]
        self.env.timeout(e.job[0]).callbacks.append(lambda _e: self._done(core, token))

    def _done(self, core: int, token: int) -> None:
        if token != self._token[core]:
            return  # preempted since
        now = self.env.now
        e = self._running[core]
        assert e is not None and e.job is not None
        ran = now - e.started
        self._account(e, ran)
        e.v += ran
        job, e.job = e.job, None
        e.core = -1
        self._running[core] = None
        self._token[core] += 1
        avg = self._average(now)
        e.lag = max(-self.lag_limit, min(self.lag_limit, avg - e.v)) if self._waiting else 0.0
        self._dispatch(core, now)
        if job[1] is not None:
            job[1](now)

    def _ticks(self) -> Generator[simpy.Event, None, None]:
        """The timer tick, on every core: a thread past its deadline gets a new one, and
        gives way to an eligible thread due earlier."""
        while self._waiting or any(r is not None for r in self._running):
            yield self.env.timeout(self.tick_ms)
            now = self.env.now
            for core, r in enumerate(self._running):
                if r is None or not self._waiting:
                    continue
                if self._v(r, now) >= r.d:
                    r.d = self._v(r, now) + self.slice_ms
                    best = self._pick(now)
                    if best is not None and best.d < r.d:
                        self._preempt(core, now)
                        self._dispatch(core, now)
        self._ticking = False
