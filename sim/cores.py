"""The machine's cores, shared by every thread that wants one.

The local stack runs its server processes, the load generator, Redis, PostgreSQL and the
password hashes on a few cores. When more threads are runnable than there are cores,
the kernel shares the cores among them, so a thread's work item has no departure time
known when it arrives (a later arrival can delay it), unlike the FCFS stations of
`sim.queues`: a pool keeps the runnable items and plans the next event as it goes.

- `CorePool`: processor sharing, `n` runnable items on `c` cores each at min(1, c / n)
  of a core's speed; re-planned at every arrival and departure. The model's fallback
  where a profile lacks the scheduler's figures.
- `FairCorePool`: the cores as Linux shares them: a run queue per core, EEVDF on each to
  the timer tick (virtual runtimes, lag kept over sleep, deadlines a base slice apart,
  wake-up preemption after the running thread's slice), which is what makes a light
  thread preempt and a heavy one wait a tick, and the rules that move a waiting thread to
  another core (only an idle core takes one, and never a cache-hot one), which is what
  makes a thread wait on its own core while another frees (`queues = "per_core"`, the
  profile's default).
- `SharedFairCorePool`: the same EEVDF rules over one run queue that every core serves,
  so any free core takes any waiting thread (`queues = "shared"`).
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
# Asked as a thread's piece of work ends: its next piece (work_ms, done), or None to sleep.
Follow = Callable[[], "tuple[float, Done | None] | None"]
HAND_OFFS = "hand-offs"  # the owner of the requests' own visits to the cores
# The model's thread group that stands for each thread class of the kernel's trace
# (loadgen.schedtrace): the servers' loops, the load generator, the password hash's
# workers, and the stores, whose calls are the model's hand-offs.
GROUP_OF_TRACE_CLASS = {
    "loop": "app/*/loop",
    "locust": "client/loop",
    "server-thread": "app/*/edge.verify_password",
    "redis": HAND_OFFS,
    "postgres": HAND_OFFS,
    "store": HAND_OFFS,
}
_EPS_MS = 1e-9
# Linux's sysctl_sched_migration_cost: a thread that ran this recently is cache-hot and is
# not moved to another core's queue by balancing (kernel/sched/fair.c, 500000 ns).
MIGRATION_COST_MS = 0.5
# A core's utilisation as the kernel tracks it (PELT): its busy time, decayed by half every
# 32 ms (LOAD_AVG_PERIOD). Over the cores of the last-level cache (all of them here) it
# decides whether a waking thread looks for an idle core (SIS_UTIL): the share of cores
# scanned is 1 - (1.17 u)^2 (1.17: the cache domain's imbalance_pct, 117), rounded down,
# so on two cores the scan stops above 60 % busy.
PELT_HALF_LIFE_MS = 32.0
SIS_UTIL_PCT = 1.17


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
        self._jobs: list[list[Any]] = []  # [remaining ms of work, done, owner, follow]
        self._at = 0.0  # the time the remaining work was last brought up to date
        self._plan = 0  # the pending completion event's number; older ones are stale
        self._firing = False
        self.busy_ms = 0.0  # core-milliseconds of work done
        self.served = 0
        # Per owner (a thread's group name; "" for work of no thread): ms of CPU done, and
        # ms spent runnable without a core (processor sharing: (1 - rate) of the time).
        self.cpu_by: dict[str, float] = {}
        self.wait_by: dict[str, float] = {}
        # The machine's pace: a factor on work started at a time (sim.pace); None: 1.
        self.pace: Callable[[float], float] | None = None

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

    def run(
        self,
        work_ms: float,
        done: Done | None,
        owner: str = "",
        entity: Any = None,
        follow: Follow | None = None,
    ) -> None:
        """Start `work_ms` of CPU now for `owner`; `done(t)` is called when it is done.
        (`entity`, the thread it runs on, matters to schedulers that remember threads.)

        `follow`, when given, is asked as the work ends for the thread's next piece: a
        `(work_ms, done)` that was queued for the thread while it ran or waited, which the
        thread then runs without going to sleep (a busy event loop takes its next ready
        callback without waiting in epoll), or None when it has nothing left and sleeps.
        Only the finished piece's `done` is called then, after the next piece began."""
        now = self.env.now
        self._catch_up(now)
        self.served += 1
        if self.pace is not None:
            work_ms *= self.pace(now)
        if work_ms <= 0.0:
            self._nothing_to_run(now, done, owner, entity, follow)
            return
        self._jobs.append([work_ms, done, owner, follow])
        if not self._firing:
            self._replan(now)

    def _nothing_to_run(
        self, now: float, done: Done | None, owner: str, entity: Any, follow: Follow | None
    ) -> None:
        """A piece with no work ends as it starts: the thread goes on with its next piece,
        if any (see `run`), then the piece's `done` is called."""
        nxt = follow() if follow is not None else None
        if nxt is not None:
            self.run(nxt[0], nxt[1], owner, entity, follow)
        if done is not None:
            done(now)

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
            for _, done, owner, follow in finished:
                nxt = follow() if follow is not None else None
                if nxt is not None:
                    # (processor sharing has no wake-up to save: the next piece just runs)
                    self.run(nxt[0], nxt[1], owner, follow=follow)
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
        work_ms, done = self._piece(work_ms, done)
        self.pool.run(work_ms, done, self.group, thread, follow=lambda: self._next(thread))

    def _piece(self, work_ms: float, done: Done | None) -> tuple[float, Done | None]:
        """The piece as the pool runs it: in `turn` mode its customer is let go as it
        starts, and nothing waits for its end."""
        if self.turn:
            if done is not None:
                done(self.pool.env.now)
            return work_ms, None
        return work_ms, done

    def _next(self, thread: Any) -> tuple[float, Done | None] | None:
        """The thread's piece has ended: it goes on with the next in line without sleeping
        (before the ended piece's `done` can queue anything behind it), or sleeps."""
        if self._queue:
            return self._piece(*self._queue.popleft())
        self._running -= 1
        self._threads.append(thread)
        return None

    def utilisation(self, elapsed_ms: float) -> float:
        return self.busy_ms / (elapsed_ms * self.servers) if elapsed_ms > 0 else 0.0


class _Entity:
    """A thread as the scheduler sees it: its virtual runtime, lag and deadline, and the
    core whose run queue it is on."""

    __slots__ = (
        "core",
        "cpu",
        "d",
        "delayed",
        "job",
        "lag",
        "left",
        "preempted",
        "prot",
        "recent",
        "started",
        "v",
    )

    def __init__(self) -> None:
        self.v = 0.0  # virtual runtime: ms of CPU (every thread weighs the same)
        self.lag = 0.0  # how far behind its core's average it went to sleep
        self.d = 0.0  # virtual deadline
        self.job: list[Any] | None = None  # [remaining ms, done, owner, since, follow]
        self.core = -1  # the core it runs on, -1 when waiting or asleep
        self.cpu = -1  # the core whose run queue it is on (or was, asleep); -1: never ran
        self.recent = -1  # the core it was on when it last woke (recent_used_cpu)
        self.started = 0.0  # when it got the core
        self.left = -1e9  # when it last left a core (the kernel's cache-hot test)
        self.prot = 0.0  # the virtual runtime up to which a wake-up cannot preempt it
        self.delayed = False  # asleep, but still on its core's queue (it left with a debt)
        self.preempted = False  # waiting for a core because it was preempted (not woken)


class _KernelPool(CorePool):
    """What both models of the kernel's scheduler share: the base slice and tick, each
    core's running thread, the threads as entities, and starting a piece of work."""

    def __init__(
        self, env: simpy.Environment, cores: int, slice_ms: float, tick_ms: float, name: str
    ) -> None:
        super().__init__(env, cores, name)
        if slice_ms <= 0 or tick_ms <= 0:
            raise ValueError(f"{name}: slice and tick must be positive ({slice_ms}, {tick_ms})")
        self.slice_ms = slice_ms
        self.tick_ms = tick_ms
        self.lag_limit = max(2 * slice_ms, tick_ms)
        self._running: list[_Entity | None] = [None] * cores
        self._token = [0] * cores  # a core's pending completion event's number
        self._ticking = False
        # Per owner, as the kernel's trace counts them (loadgen.schedtrace): wake-ups (a
        # sleeping thread given work; not a piece that follows on), preemptions, and the
        # ms waited for a core after a preemption (the rest of `wait_by` followed a wake-up).
        self.wakeups_by: dict[str, int] = {}
        self.preempted_by: dict[str, int] = {}
        self.preempted_wait_by: dict[str, float] = {}
        # Per (preempted owner, owner that took the core): how many preemptions.
        self.preempted_for: dict[tuple[str, str], int] = {}
        self._off: list[str | None] = [None] * cores  # a core's just-preempted owner

    def entity(self) -> _Entity:
        """A new thread of this machine (a thread's state lives as long as the thread)."""
        return _Entity()

    def _v(self, e: _Entity, now: float) -> float:
        return e.v + (now - e.started if e.core >= 0 else 0.0)

    def _mean_v(self, es: list[_Entity], now: float) -> float:
        """The average virtual runtime of runnable threads `es` (0 for none)."""
        return sum(self._v(e, now) for e in es) / len(es) if es else 0.0

    def _earliest(self, queue: list[_Entity], avg: float) -> _Entity | None:
        """EEVDF's pick from waiting threads: of those not ahead of the average `avg`, the
        one due first (of all of them, should none be eligible)."""
        if not queue:
            return None
        eligible = [e for e in queue if e.v <= avg + _EPS_MS]
        return min(eligible or queue, key=lambda e: e.d)

    def _clamped(self, lag: float) -> float:
        return max(-self.lag_limit, min(self.lag_limit, lag))

    def _renewed(self, r: _Entity, now: float) -> bool:
        """Give running `r` its next deadline if it has passed the last (the kernel's
        update_deadline); whether it had."""
        v = self._v(r, now)
        if v < r.d:
            return False
        r.d = v + self.slice_ms
        return True

    def _begin(
        self,
        work_ms: float,
        done: Done | None,
        owner: str,
        entity: _Entity | None,
        follow: Follow | None = None,
    ) -> _Entity | None:
        """The thread that is to run `work_ms` now, its job set; None when there is no
        work (`done` has been called)."""
        now = self.env.now
        self.served += 1
        if self.pace is not None:
            work_ms *= self.pace(now)
        if work_ms <= 0.0:
            self._nothing_to_run(now, done, owner, entity, follow)
            return None
        e = entity if entity is not None else _Entity()
        if e.job is not None:
            raise RuntimeError(f"{self.name}: a thread cannot run two pieces of work at once")
        e.job = [work_ms, done, owner, now, follow]
        e.preempted = False
        self.wakeups_by[owner] = self.wakeups_by.get(owner, 0) + 1
        return e

    def run(
        self,
        work_ms: float,
        done: Done | None,
        owner: str = "",
        entity: _Entity | None = None,
        follow: Follow | None = None,
    ) -> None:
        e = self._begin(work_ms, done, owner, entity, follow)
        if e is not None:
            self._wake(e)

    def _wake(self, e: _Entity) -> None:
        """Place the thread `e`, just given work, on a core's queue or a core."""
        raise NotImplementedError  # each model has its own

    def _continued(self, core: int, e: _Entity, ran: float, now: float) -> bool:
        """Whether the thread whose piece just ended on `core` goes on with its next one
        (its `follow`, see CorePool.run) on the same core, as the kernel sees it: no sleep,
        no wake-up, no new pick; it keeps its deadline and its protection, and the tick
        and wake-ups preempt it as before. The ended piece's `done` is called here."""
        job = e.job
        assert job is not None
        nxt = job[4]() if job[4] is not None else None
        if nxt is None:
            return False
        work_ms, done = nxt
        self.served += 1
        if self.pace is not None:
            work_ms *= self.pace(now)
        e.v += ran
        e.started = now
        e.job = [max(work_ms, 0.0), done, job[2], now, job[4]]
        self._end_at(core, e.job[0])
        if job[1] is not None:
            job[1](now)
        return True

    def _account(self, e: _Entity, ran: float) -> None:
        assert e.job is not None
        owner = e.job[2]
        self.cpu_by[owner] = self.cpu_by.get(owner, 0.0) + ran
        self.busy_ms += ran

    def _take_off(self, core: int, now: float) -> _Entity:
        """Take the running thread off `core` (preempted), its CPU so far accounted; the
        caller queues it."""
        e = self._running[core]
        assert e is not None and e.job is not None
        ran = now - e.started
        e.v += ran
        e.job[0] -= ran
        self._account(e, ran)
        e.core = -1
        e.left = now
        e.job[3] = now
        e.preempted = True
        owner = e.job[2]
        self.preempted_by[owner] = self.preempted_by.get(owner, 0) + 1
        self._off[core] = owner
        self._running[core] = None
        self._token[core] += 1
        return e

    def _put_on(self, core: int, e: _Entity, now: float) -> None:
        """Give `core` to `e` (its wait since it became runnable accounted) until its work
        is done, unless something takes the core first."""
        assert e.job is not None
        waited = now - e.job[3]
        owner = e.job[2]
        if waited > 0:
            self.wait_by[owner] = self.wait_by.get(owner, 0.0) + waited
            if e.preempted:
                self.preempted_wait_by[owner] = self.preempted_wait_by.get(owner, 0.0) + waited
        e.preempted = False
        off, self._off[core] = self._off[core], None
        if off is not None:
            key = (off, owner)
            self.preempted_for[key] = self.preempted_for.get(key, 0) + 1
        e.core = core
        e.started = now
        e.prot = e.d
        self._running[core] = e
        self._end_at(core, e.job[0])

    def _end_at(self, core: int, work_ms: float) -> None:
        """The running piece on `core` ends after `work_ms` unless the core is taken from
        it first (a newer token makes this completion stale)."""
        self._token[core] += 1
        token = self._token[core]
        self.env.timeout(work_ms).callbacks.append(lambda _e: self._done(core, token))

    def _ending(self, core: int, token: int) -> tuple[_Entity, float, float] | None:
        """The thread whose work on `core` is done now, its CPU accounted, with the time it
        ran and now; None when the completion is stale (it was preempted since)."""
        if token != self._token[core]:
            return None
        now = self.env.now
        e = self._running[core]
        assert e is not None and e.job is not None
        ran = now - e.started
        self._account(e, ran)
        return e, ran, now

    def _done(self, core: int, token: int) -> None:
        raise NotImplementedError  # each model has its own

    def _keep_ticking(self) -> None:
        if not self._ticking:
            self._ticking = True
            self.env.process(self._ticks())

    def _ticks(self) -> Generator[simpy.Event, None, None]:
        raise NotImplementedError  # each model has its own


class FairCorePool(_KernelPool):
    """The machine's cores as Linux shares them: EEVDF on each core's run queue, to the
    tick, and the rules that move threads between the queues.

    Each core has its own run queue. On a core, every runnable thread has a virtual runtime
    (its CPU time) and a deadline a slice beyond it; the core runs, of the threads whose
    virtual runtime is not ahead of their average, the one with the earliest deadline. A
    running thread is reconsidered when a thread wakes on its core (which preempts it if
    the running one is ahead of the average, or has run the slice it was picked with and
    is due later: RUN_TO_PARITY), when its work is done, and at each timer tick once it has
    run its slice. A thread that slept keeps its lag (clamped), so one that has used less
    than its share preempts one that computes for long; two that compute without sleeping
    take turns a tick long. One that went to sleep ahead of its share stays asleep on its
    core's queue, earning credit as the others run, until it wakes there (keeping it) or
    the core picks anew with its debt paid (losing it); measured on this machine.

    A waking thread goes back to the core it last ran on if that one is idle, else to the
    core it was on at its previous wake-up if idle, else to any idle core, but that search
    stops when the cores are busy on average (SIS_UTIL, above); otherwise it queues on its
    own core (select_idle_sibling). A core that runs out of work pulls a waiting thread
    from another core's queue (newidle balancing), but only one that has not run for the
    migration cost (a cache-hot one stays); at each tick an idle core pulls from a core
    with threads waiting, and a queue two threads longer than another's gives one up,
    under the same rule. So with the cores busy a woken thread waits on its own core even
    when another core frees first, which a single queue for all cores would not make it
    do.

    Measured shares, where the profile has them from the kernel's trace, stand in for
    three of these rules: whether a waking thread whose core is busy goes to the idle one
    (`busy_wake_share`), whether a core going idle pulls a waiting thread
    (`idle_pull_share`), and, per pair of thread groups, whether a thread waking onto a
    core that runs the other preempts it at once (`wake_preempt_share`, keyed (woken
    owner, running owner); pairs without one follow the rule above).

    `slice_ms` and `tick_ms` are the kernel's (see the README: measured on this machine);
    `migration_cost_ms` is Linux's sysctl_sched_migration_cost (0.5 ms by default)."""

    def __init__(
        self,
        env: simpy.Environment,
        cores: int,
        slice_ms: float,
        tick_ms: float,
        name: str = "machine/cores",
        *,
        migration_cost_ms: float = MIGRATION_COST_MS,
        busy_wake_share: float | None = None,
        idle_pull_share: float | None = None,
        wake_preempt_share: dict[tuple[str, str], float] | None = None,
        chance: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(env, cores, slice_ms, tick_ms, name)
        if migration_cost_ms < 0:
            raise ValueError(f"{name}: the migration cost cannot be negative ({migration_cost_ms})")
        for label, share in (
            ("busy_wake_share", busy_wake_share),
            ("idle_pull_share", idle_pull_share),
        ):
            if share is not None and not 0.0 <= share <= 1.0:
                raise ValueError(f"{name}: {label} must lie in [0, 1], got {share}")
        for pair, share in (wake_preempt_share or {}).items():
            if not 0.0 <= share <= 1.0:
                raise ValueError(
                    f"{name}: wake_preempt_share {pair} must lie in [0, 1], got {share}"
                )
        measured = busy_wake_share is not None or idle_pull_share is not None
        if (measured or wake_preempt_share) and chance is None:
            raise ValueError(f"{name}: measured shares need a source of chance (U(0, 1) draws)")
        self.migration_cost_ms = migration_cost_ms
        self.busy_wake_share = busy_wake_share
        self.idle_pull_share = idle_pull_share
        self.wake_preempt_share = dict(wake_preempt_share or {})
        self._chance = chance
        # The two decisions the shares stand for, as this model made them (for comparing
        # with the kernel's trace): a thread waking with its core busy and another idle
        # (moved, stayed), a core going idle while a thread that is not cache-hot waits on
        # another core's queue (pulled, left idle).
        self.busy_wakes = [0, 0]
        self.idle_pulls = [0, 0]
        # Per (woken owner, running owner): wake-ups onto a core running another thread,
        # [preempted it at once, did not] (the kernel's trace counts the same).
        self.wakes_onto_busy: dict[tuple[str, str], list[int]] = {}
        self._queues: list[list[_Entity]] = [[] for _ in range(cores)]  # waiting, per core
        self._delayed: list[list[_Entity]] = [[] for _ in range(cores)]  # asleep, on queue
        self._util = [0.0] * cores  # each core's PELT utilisation at _util_at
        self._util_at = [0.0] * cores
        self.migrations = 0  # threads moved from one core's queue to another's
        self.migrations_by: dict[str, int] = {}

    # -- the scheduler's arithmetic ----------------------------------------------------
    def _average(self, core: int, now: float) -> float:
        r = self._running[core]
        return self._mean_v(self._queues[core] + ([r] if r is not None else []), now)

    def _runnable(self, core: int) -> int:
        return len(self._queues[core]) + (self._running[core] is not None)

    def _pick(self, core: int, now: float) -> _Entity | None:
        queue = self._queues[core]
        return self._earliest(queue, self._average(core, now)) if queue else None

    def _placed_lag(self, e: _Entity, core: int, now: float) -> float:
        """How far below its core's average a waking thread is placed (place_entity).

        A positive lag is kept over sleep, inflated by (n + 1) / n so that adding the
        thread to the core's n runnable ones leaves it exactly that far behind their new
        average; a thread waking onto an idle core keeps none. A thread that went to sleep
        with a debt (it ran beyond its share) and is still asleep on its queue has the lag
        `_delayed_lag` gives it."""
        lag = self._delayed_lag(e, now) if e.delayed else e.lag
        if lag <= 0.0:
            return lag
        n = self._runnable(core)
        return lag * (n + 1) / n if n else 0.0

    def _delayed_lag(self, e: _Entity, now: float) -> float:
        """The lag of a thread asleep on its core's queue (Linux's delayed dequeue): the
        debt it went to sleep with, plus what the core's average has advanced since, taken
        as half the time asleep (one other thread running), up to the lag limit. The debt
        is paid off and then credit earned: this kernel keeps the credit when the thread
        wakes still on the queue (measured from its threads' virtual runtimes; README)."""
        return min(self.lag_limit, e.lag + (now - e.left) / 2.0)

    def _settle_delayed(self, core: int, now: float, idle: bool = False) -> None:
        """The core picks anew: a thread asleep on its queue whose debt is paid is taken
        off it for good with no lag (DELAY_ZERO), as is every one when the core has
        nothing else to run."""
        for e in self._delayed[core][:]:
            if idle or self._delayed_lag(e, now) >= 0.0:
                e.lag = 0.0
                e.delayed = False
                self._delayed[core].remove(e)

    def _protected(self, r: _Entity, now: float) -> bool:
        """Whether a running thread keeps its core against a wake-up: until it has run to
        the deadline it had when picked (Linux's RUN_TO_PARITY, on by default)."""
        return self._v(r, now) < r.prot - _EPS_MS

    def _hot(self, e: _Entity, now: float) -> bool:
        return now - e.left < self.migration_cost_ms

    # -- where a thread runs -------------------------------------------------------------
    def _wake_core(self, e: _Entity, now: float) -> int:
        """The core a waking thread is queued on (select_idle_sibling): the one it last ran
        on if idle, else the one it was on at its previous wake-up if idle, else an idle
        one if the cores are not too busy to look, else its own (a new thread: the core
        with the fewest runnable)."""
        n = len(self._running)
        prev, recent = e.cpu, e.recent
        e.recent = prev
        if prev >= 0 and self._runnable(prev) == 0:
            return prev
        if prev < 0:
            return min(range(n), key=self._runnable)
        idle = [c for c in range(n) if self._runnable(c) == 0]
        if self.busy_wake_share is not None:
            # As measured: the share of such wake-ups the kernel sent to an idle core.
            assert self._chance is not None
            core = idle[0] if idle and self._chance() < self.busy_wake_share else prev
        elif recent >= 0 and recent != prev and self._runnable(recent) == 0:
            core = recent
        else:
            core = idle[0] if idle and self._scans(now) else prev
        if idle:
            self.busy_wakes[core == prev] += 1
        return core

    def _utilisation(self, core: int, now: float) -> float:
        """The core's PELT utilisation now (brought up to date)."""
        keep = 0.5 ** ((now - self._util_at[core]) / PELT_HALF_LIFE_MS)
        busy = 1.0 if self._running[core] is not None else 0.0
        self._util[core] = self._util[core] * keep + busy * (1.0 - keep)
        self._util_at[core] = now
        return self._util[core]

    def _scans(self, now: float) -> bool:
        """Whether a waking thread looks for an idle core (SIS_UTIL): the cores scanned,
        n (1 - (1.17 u)^2) rounded down, is at least one."""
        n = len(self._running)
        u = sum(self._utilisation(c, now) for c in range(n)) / n
        return int(n * (1.0 - min(1.0, (SIS_UTIL_PCT * u) ** 2))) >= 1

    def _enqueue(self, e: _Entity, core: int, now: float, keep_deadline: bool = False) -> None:
        """Queue `e` on `core` at its lag; its deadline a slice ahead, or as far ahead as
        it was when it is still queued asleep or is moved between queues (Linux keeps the
        relative deadline then: PLACE_REL_DEADLINE)."""
        ahead = e.d - e.v if (keep_deadline or e.delayed) else self.slice_ms
        e.v = self._average(core, now) - self._placed_lag(e, core, now)
        e.d = e.v + ahead
        if e.delayed:
            self._delayed[e.cpu].remove(e)
            e.delayed = False
        if e.cpu >= 0 and e.cpu != core:
            self._migrated(e)
        e.cpu = core
        self._queues[core].append(e)

    def _migrated(self, e: _Entity) -> None:
        assert e.job is not None
        self.migrations += 1
        self.migrations_by[e.job[2]] = self.migrations_by.get(e.job[2], 0) + 1

    def _pull(self, core: int, now: float) -> bool:
        """Move a waiting thread that is not cache-hot from the core with the most waiting
        to `core`'s queue, keeping its lag; False if there is none to move."""
        sources = sorted(
            (c for c in range(len(self._running)) if c != core and self._queues[c]),
            key=lambda c: -len(self._queues[c]),
        )
        for src in sources:
            movable = [e for e in self._queues[src] if not self._hot(e, now)]
            if not movable:
                continue
            e = min(movable, key=lambda e: e.left)  # the one that has waited longest
            avg = self._average(src, now)
            self._queues[src].remove(e)
            e.lag = self._clamped(avg - e.v)
            e.left = now  # (a debt is not worked off by a move)
            self._enqueue(e, core, now, keep_deadline=True)
            return True
        return False

    def _pulled_on_idle(self, core: int, now: float) -> bool:
        """Newidle balancing: `core`, out of work, pulls a thread that is not cache-hot
        from another core's queue; with a measured `idle_pull_share`, only that share of
        the times there is one to pull."""
        movable = any(
            not self._hot(e, now) for c, q in enumerate(self._queues) if c != core for e in q
        )
        if not movable:
            return False
        if self.idle_pull_share is not None:
            assert self._chance is not None
            if self._chance() >= self.idle_pull_share:
                self.idle_pulls[1] += 1
                return False
        self.idle_pulls[0] += 1
        return self._pull(core, now)

    # -- running work ------------------------------------------------------------------
    def _wake(self, e: _Entity) -> None:
        now = self.env.now
        # A thread still on its core's queue wakes there (ttwu_runnable); another is
        # placed (select_idle_sibling).
        c = e.cpu if e.delayed else self._wake_core(e, now)
        self._enqueue(e, c, now)
        r = self._running[c]
        if r is None:
            self._dispatch(c, now)
        else:
            # Wake-up preemption on its core. The running thread is brought up to date
            # first: past its deadline, it gets the next (and its protection is over).
            self._renewed(r, now)
            assert r.job is not None and e.job is not None
            pair = (e.job[2], r.job[2])
            share = self.wake_preempt_share.get(pair)
            if share is None:
                self._resched(c, now)
            elif self._chance() < share:  # type: ignore[misc]
                # As measured: the share of such wake-ups that preempted the running thread.
                self._preempt(c, now)
                self._queues[c].remove(e)
                self._settle_delayed(c, now)
                self._put_on(c, e, now)
            counts = self.wakes_onto_busy.setdefault(pair, [0, 0])
            counts[self._running[c] is not e] += 1
        self._keep_ticking()

    def _resched(self, core: int, now: float) -> None:
        """The core picks anew between its running thread and its queue (pick_eevdf): the
        running one keeps the core while it is not ahead of the average and is protected
        (it has not run the slice it was picked with), or is due before every eligible
        waiting thread; a tie goes to the waiting one. A running thread picked again is
        not protected anew (Linux sets the protection only when a thread takes the core)."""
        r = self._running[core]
        assert r is not None
        avg = self._average(core, now)
        eligible = self._v(r, now) <= avg + _EPS_MS
        if eligible and self._protected(r, now):
            return
        best = self._pick(core, now)
        if best is None or (eligible and (best.v > avg + _EPS_MS or best.d > r.d)):
            return
        self._preempt(core, now)
        self._dispatch(core, now)

    def _preempt(self, core: int, now: float) -> None:
        self._utilisation(core, now)
        self._queues[core].append(self._take_off(core, now))

    def _dispatch(self, core: int, now: float) -> None:
        """Give `core` the next of its queue; a core left without one pulls from another
        (newidle balancing), or goes idle."""
        self._utilisation(core, now)  # what it was doing until now
        if not self._queues[core] and not self._pulled_on_idle(core, now):
            self._settle_delayed(core, now, idle=True)
            return
        self._settle_delayed(core, now)
        e = self._pick(core, now)
        assert e is not None and e.job is not None
        self._queues[core].remove(e)
        self._put_on(core, e, now)

    def _done(self, core: int, token: int) -> None:
        ending = self._ending(core, token)
        if ending is None:
            return
        e, ran, now = ending
        if self._continued(core, e, ran, now):
            return
        # Its lag, against the average of its core's runnable threads, itself included.
        avg = self._average(core, now)
        e.v += ran
        e.lag = self._clamped(avg - e.v)
        e.left = now
        if e.lag < 0.0:
            # Ahead of its share: it stays on the queue, asleep, until the core picks anew
            # with its debt paid or it wakes (DELAY_DEQUEUE).
            e.delayed = True
            self._delayed[core].append(e)
        job, e.job = e.job, None
        assert job is not None
        self._utilisation(core, now)
        e.core = -1
        self._running[core] = None
        self._token[core] += 1
        self._dispatch(core, now)
        if job[1] is not None:
            job[1](now)

    def _ticks(self) -> Generator[simpy.Event, None, None]:
        """The timer tick, on every core: a thread past its deadline gets a new one, and
        gives way to an eligible thread due earlier; then the queues are balanced."""
        cores = range(len(self._running))
        while any(self._runnable(c) for c in cores):
            yield self.env.timeout(self.tick_ms)
            now = self.env.now
            for core in cores:
                r = self._running[core]
                if r is None:
                    continue
                # Its deadline is renewed once passed even when it runs alone. With
                # another thread on the queue (or asleep on it) the core picks anew once
                # the running one is no longer protected; a sleeper that is no longer
                # behind leaves the queue then.
                self._renewed(r, now)
                if self._protected(r, now):
                    continue
                self._settle_delayed(core, now)
                if self._queues[core]:
                    self._resched(core, now)
            for core in cores:
                if self._running[core] is None:
                    if self._pull(core, now):
                        self._dispatch(core, now)
                elif any(len(self._queues[c]) >= len(self._queues[core]) + 2 for c in cores):
                    self._pull(core, now)
        self._ticking = False


class SharedFairCorePool(_KernelPool):
    """The machine's cores as one run queue that every core serves, under Linux's EEVDF
    rules to the tick (`queues = "shared"`): any free core takes any waiting thread,
    which Linux's per-core queues do not; the simpler model, kept to compare with
    `FairCorePool` (see the README).

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
        super().__init__(env, cores, slice_ms, tick_ms, name)
        self._waiting: list[_Entity] = []

    # -- the scheduler's arithmetic ----------------------------------------------------
    def _average(self, now: float) -> float:
        return self._mean_v([e for e in self._running if e is not None] + self._waiting, now)

    def _pick(self, now: float) -> _Entity | None:
        return self._earliest(self._waiting, self._average(now)) if self._waiting else None

    # -- running work ------------------------------------------------------------------
    def _wake(self, e: _Entity) -> None:
        now = self.env.now
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
                if r is not None and self._renewed(r, now):
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
        self._keep_ticking()

    def _preempt(self, core: int, now: float) -> None:
        self._waiting.append(self._take_off(core, now))

    def _dispatch(self, core: int, now: float) -> None:
        e = self._pick(now)
        if e is None:
            return
        self._waiting.remove(e)
        self._put_on(core, e, now)

    def _done(self, core: int, token: int) -> None:
        ending = self._ending(core, token)
        if ending is None:
            return
        e, ran, now = ending
        if self._continued(core, e, ran, now):
            return
        e.v += ran
        job, e.job = e.job, None
        assert job is not None
        e.core = -1
        self._running[core] = None
        self._token[core] += 1
        avg = self._average(now)
        e.lag = self._clamped(avg - e.v) if self._waiting else 0.0
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
                if self._renewed(r, now):
                    best = self._pick(now)
                    if best is not None and best.d < r.d:
                        self._preempt(core, now)
                        self._dispatch(core, now)
        self._ticking = False
