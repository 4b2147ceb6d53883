"""The Locust users of `make loadtest`: open-loop requests at a target rate.

Send times follow one Poisson schedule per process (`loadgen.workload.Schedule`); a free
user takes the next slot, does the slot's unmeasured preparation (a login challenge, an
authorization code), sleeps until the intended send time and sends. Latency is measured
from the intended time, so a slow server delays no send time and hides no wait
(coordinated omission); a slot whose time has passed when a user takes it is a late start.
Identities (seeded users with a session and a token) are signed in before the clock starts.
The run's configuration comes from the JSON file named by $AUTHSCALE_LOAD; at the end the
recorder is written to the file that configuration names.
"""

from __future__ import annotations

import gc
import json
import os
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from geventhttpclient.client import HTTPClientPool
from locust import FastHttpUser, constant, events, task
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from loadgen.identity import PASSWORD, Identity, email_of, sign_in
from loadgen.recorder import Recorder
from loadgen.servers import server_counts
from loadgen.trace import ClientClock, Trace, handed_off, watch_socket_handoff
from loadgen.workload import Schedule, Slot
from scenarios import load_world
from server.client import AUTHORIZE_QUERY, BASIC, REDIRECT, code_from
from server.metrics import migrations, runqueue_wait_s

LATE_S = 0.005  # a slot taken more than this after its time is a late start
CONFIG: dict[str, Any] = json.loads(Path(os.environ["AUTHSCALE_LOAD"]).read_text())
URLS: dict[str, str] = CONFIG["urls"]
# With WORKERS=N each worker sends its own Poisson stream at QPS/N (their sum is Poisson at
# QPS), with a seed of its own.
WORKER = int(os.environ.get("AUTHSCALE_WORKER_INDEX", "0"))
SCHEDULE = Schedule(
    load_world("seed"),
    CONFIG["regions"],
    CONFIG["qps"] / CONFIG.get("workers", 1),
    CONFIG["seed"] * 1000 + WORKER,
    [(a, b, q / CONFIG.get("workers", 1)) for a, b, q in CONFIG.get("rate_segments", [])],
    CONFIG.get("only_operation"),
)
RECORDER = Recorder()  # this process's numbers since its last report to the master
TOTAL = Recorder()  # everything this worker recorded (written at the end, for checks)
# TOTAL is what a worker writes at the end (RECORDER is reset by each report to the master);
# elsewhere it only keeps the counts the progress line shows.
KEEP_TOTAL = "AUTHSCALE_WORKER_INDEX" in os.environ
IDENTITIES: dict[str, list[Identity]] = {}
# TRACE=1 (calibration): every response's step record, written to trace.json at the end.
TRACE = Trace() if CONFIG.get("trace") else None
CLOCK = ClientClock() if TRACE is not None else None  # and the senders' CPU on each path
# ... and, with the servers on this machine, the latency split around the server's clock
SPLIT = TRACE is not None and bool(CONFIG.get("same_host"))
if SPLIT:
    watch_socket_handoff()
START = Event()
STATE: dict[str, float] = {}
BEFORE: dict[str, float] = {}


ENVIRONMENT: dict[str, Any] = {}


@events.init.add_listener
def remember_environment(environment: Any, **_: Any) -> None:
    ENVIRONMENT["env"] = environment


def _is_master(environment: Any) -> bool:
    return isinstance(environment.runner, MasterRunner)


@events.test_start.add_listener
def sign_in_identities(environment: Any, **_: Any) -> None:
    if _is_master(environment):
        return  # the master sends nothing
    for region in CONFIG["regions"]:
        if CONFIG.get("bench"):  # a trivial server that answers anything: nobody to sign in
            IDENTITIES[region] = [Identity(email_of(region, 0), region, "bench", "bench")]
            continue
        IDENTITIES[region] = [
            sign_in(URLS[region], email_of(region, i), region)
            for i in range(CONFIG["identities_per_region"])
        ]


@events.spawning_complete.add_listener
def start_the_clock(**_: Any) -> None:
    # Everything built so far (Locust, the identities) lives to the end: frozen, the
    # collector's full passes no longer walk it while the senders wait.
    gc.collect()
    gc.freeze()
    if not isinstance(ENVIRONMENT["env"].runner, WorkerRunner):
        BEFORE.update(
            server_counts(URLS, CONFIG.get("pids"))
        )  # after the sign-ins: only the run is counted
        # The harness's fault driver times its actions from this wall-clock start.
        Path(CONFIG["clock_file"]).write_text(repr(time.time() + 0.2))
    STATE["start"] = time.perf_counter() + 0.2
    STATE["runqueue_wait_s"] = _runqueue_wait_s()
    STATE["migrations"] = _migrations()
    if CLOCK is not None:
        CLOCK.start()
    START.set()
    if not isinstance(ENVIRONMENT["env"].runner, WorkerRunner):
        gevent.spawn(report_progress)


def report_progress() -> None:
    """A line every 2 s on stderr while the schedule runs: the harness shows it."""
    while True:
        gevent.sleep(2.0)
        elapsed = time.perf_counter() - STATE["start"]
        if elapsed > CONFIG["duration_s"] + 1:
            return
        # The master's RECORDER accumulates the workers' reports; a single process counts
        # in TOTAL.
        seen = RECORDER if _is_master(ENVIRONMENT["env"]) else TOTAL
        errors = sum(sum(kinds.values()) for kinds in seen.errors.values())
        print(
            f"authscale progress: {elapsed:5.0f}/{CONFIG['duration_s']:g} s  "
            f"sent {seen.sent:,}  late starts {seen.late_starts:,}  errors {errors:,}",
            file=sys.stderr,
            flush=True,
        )


@events.report_to_master.add_listener
def ship_to_master(data: dict[str, Any], **_: Any) -> None:
    """Every worker report carries what was recorded since the last one (no yield between
    the copy and the reset, so nothing recorded in between is lost)."""
    global RECORDER
    data["authscale"] = RECORDER.to_json()
    RECORDER = Recorder()


@events.worker_report.add_listener
def merge_from_worker(data: dict[str, Any], **_: Any) -> None:
    if "authscale" in data:
        RECORDER.merge_json(data["authscale"])


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _runqueue_wait_s() -> float:
    """How long the senders' thread (the main one: gevent runs every greenlet there) has
    been runnable but waiting for a core; 0 where the kernel does not say."""
    return runqueue_wait_s("/proc/self/schedstat") or 0.0


def _since_start(key: str, now: float) -> float:
    """How far a counter of the senders' thread, read `now`, has gone since the clock
    started, when STATE[key] was read (0 before it)."""
    start = STATE.get(key)
    return 0.0 if start is None else max(0.0, now - start)


def _waited_s() -> float:
    """The senders' thread's wait for a core since the clock started (0 before it)."""
    return _since_start("runqueue_wait_s", _runqueue_wait_s())


def _migrations() -> int:
    """How often the kernel has moved the senders' thread to another core; 0 where it
    does not say."""
    return migrations("/proc/self/sched") or 0


def _moved() -> int:
    """The senders' thread's moves to another core since the clock started."""
    return int(_since_start("migrations", _migrations()))


def _write(recorder: Recorder, path: str) -> None:
    recorder.cpu_s += _cpu_s()
    recorder.runqueue_wait_s += _waited_s()
    recorder.migrations += _moved()
    recorder.connections += SHARED_CONNECTIONS.opened
    recorder.server_counts = {
        op: n - BEFORE.get(op, 0) for op, n in server_counts(URLS, CONFIG.get("pids")).items()
    }
    Path(path).write_text(json.dumps(recorder.to_json()))


@events.test_stop.add_listener
def write_the_recorder(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        TOTAL.cpu_s = _cpu_s()
        TOTAL.runqueue_wait_s = _waited_s()
        TOTAL.migrations = _moved()
        TOTAL.connections = SHARED_CONNECTIONS.opened
        Path(CONFIG["out"]).with_suffix(f".worker{WORKER}.json").write_text(
            json.dumps(TOTAL.to_json())
        )
    elif not _is_master(environment):
        _write(RECORDER, CONFIG["out"])
        if TRACE is not None:
            assert CLOCK is not None
            TRACE.write(Path(CONFIG["out"]).with_name("trace.json"), CLOCK.totals())


@events.quitting.add_listener
def write_the_merged_recorder(environment: Any, **_: Any) -> None:
    """The master writes last, after the workers' final reports have come in."""
    if _is_master(environment):
        _write(RECORDER, CONFIG["out"])


class CountingPool(HTTPClientPool):
    """geventhttpclient's pool of clients (one per host), counting the TCP connections
    its clients open (`opened`), which the run's summary reports."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.opened = 0

    def get_client(self, url: Any) -> Any:
        client = super().get_client(url)
        pool = getattr(client, "_connection_pool", None)
        if pool is not None and not getattr(pool, "authscale_counted", False):
            create = pool._create_socket

            def counted(*args: Any, **kwargs: Any) -> Any:
                sock = create(*args, **kwargs)
                self.opened += 1
                return sock

            pool._create_socket = counted
            pool.authscale_counted = True
        return client


# The connections to each region, shared by every sender of this process, as an edge pools
# its connections to an origin: a sender takes an idle one or opens one, up to this many.
# With a pool per sender, a run of 1.5 x QPS senders held thousands of sockets, and
# geventhttpclient, which checks an idle socket with select() before reusing it, threw
# away every one whose descriptor was 1024 or above (select refuses them): measured at
# 799 QPS on two regions, 64 % of requests opened a new connection.
CONNECTIONS_PER_REGION = 256
SHARED_CONNECTIONS = CountingPool(
    concurrency=CONNECTIONS_PER_REGION,
    network_timeout=FastHttpUser.network_timeout,
    connection_timeout=FastHttpUser.connection_timeout,
    insecure=True,
)


class AuthscaleUser(FastHttpUser):
    """What both kinds of sender share: preparing, sending and recording a slot's request."""

    abstract = True
    host = next(iter(URLS.values()))
    wait_time = constant(0)
    client_pool = SHARED_CONNECTIONS
    timing: str | None = None  # the Server-Timing header of the last response
    late_ms = 0.0  # TRACE=1: how late the sender woke for its request
    # TRACE=1 on one machine: (called the client, got a socket, had the answer), perf_counter
    moments: tuple[float, float, float] | None = None

    def finish(self, slot: Slot, due: float, error: str | None, second: int | None = None) -> None:
        latency_us = int((time.perf_counter() - due) * 1e6)
        key = (slot.operation, slot.locality, slot.edge)
        if CLOCK is not None and TRACE is not None and error is None:
            pre, mid, post = CLOCK.on_path()
            client = (self.late_ms, pre, mid, post, *(self.moments or ()))
            TRACE.add(
                slot.operation, slot.locality, slot.edge, latency_us / 1000, self.timing, client
            )
        second = int(slot.intended_s) if second is None else second
        RECORDER.record(key, second, latency_us, error)
        if KEEP_TOTAL:
            TOTAL.record(key, second, latency_us, error)
        elif error is not None:
            TOTAL.errors[key][error] += 1

    def prepare(self, slot: Slot, who: Identity, base: str) -> str:
        """Unmeasured work a request needs first: a login challenge, an authorization code."""
        if slot.operation == "login":
            response = self.client.get(base + "/login", name="(prepare) challenge")
            if TRACE is not None:
                TRACE.add_prepare(slot.operation, slot.edge, response.headers.get("server-timing"))
            return str(response.json()["challenge"])
        if slot.operation == "token_issue":
            response = self.client.get(
                base + "/authorize?" + AUTHORIZE_QUERY,
                headers={"Cookie": f"sid={who.sid}"},
                allow_redirects=False,
                name="(prepare) authorize",
            )
            if TRACE is not None:
                TRACE.add_prepare(slot.operation, slot.edge, response.headers.get("server-timing"))
            return code_from(response.headers["location"])
        return ""

    def send(self, slot: Slot, who: Identity, base: str, prepared: str) -> str | None:
        op = slot.operation
        sent = time.perf_counter() if SPLIT else 0.0
        # No catch_response: Locust marks 4xx, 5xx and connection errors as failures itself,
        # and its context manager would cost a fifth of the sender's time.
        kwargs: dict[str, Any] = {"name": op}
        if op == "session_validation":
            call = self.client.get(
                base + "/session", headers={"Cookie": f"sid={who.sid}"}, **kwargs
            )
        elif op == "userinfo":
            call = self.client.get(
                base + "/userinfo",
                headers={"Authorization": f"Bearer {who.access_token}"},
                **kwargs,
            )
        elif op == "profile_update":
            call = self.client.request(
                "PATCH",
                base + "/profile",
                json={"locale": random.choice(["en-US", "ja-JP", "de-DE"])},
                headers={"Authorization": f"Bearer {who.access_token}"},
                **kwargs,
            )
        elif op == "login":
            call = self.client.post(
                base + "/login",
                data={"email": who.email, "password": PASSWORD, "challenge": prepared},
                **kwargs,
            )
        else:
            call = self.client.post(
                base + "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": prepared,
                    "redirect_uri": REDIRECT,
                },
                headers={"Authorization": BASIC},
                **kwargs,
            )
        status = call.status_code
        if TRACE is not None:
            self.timing = call.headers.get("server-timing") if call.headers else None
            if SPLIT:
                self.moments = (sent, handed_off(), time.perf_counter())
        if status == 0:
            return "connection"
        return f"http_{status}" if status >= 400 else None


class OpenLoopUser(AuthscaleUser):
    """One concurrent sender; the schedule, not the user, decides when requests go."""

    @task
    def send_next(self) -> None:
        START.wait()
        slot = SCHEDULE.next()
        if slot.intended_s > CONFIG["duration_s"]:
            SCHEDULE.t = CONFIG["duration_s"]  # the schedule is over
            runner = ENVIRONMENT["env"].runner
            idle = STATE.get("in_flight", 0) == 0 and not STATE.get("quitting")
            if idle and isinstance(runner, LocalRunner):
                STATE["quitting"] = 1
                gevent.spawn(runner.quit)  # nothing left to send or wait for: end now
            gevent.sleep(0.5)
            return
        STATE["in_flight"] = STATE.get("in_flight", 0) + 1
        who = random.choice(IDENTITIES[slot.home])
        base = URLS[slot.edge]
        try:
            prepared = self.prepare(slot, who, base)
        except Exception as exc:  # the preparation failed: the slot still counts
            self.finish(slot, time.perf_counter(), f"prepare_{type(exc).__name__}")
            STATE["in_flight"] -= 1
            return
        due = STATE["start"] + slot.intended_s
        delay = due - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        elif -delay > LATE_S:
            RECORDER.late_starts += 1
            TOTAL.late_starts += 1
        if CLOCK is not None:
            CLOCK.woke()
            self.late_ms = (time.perf_counter() - due) * 1000.0
        RECORDER.sent += 1
        TOTAL.sent += 1
        try:
            self.finish(slot, due, self.send(slot, who, base, prepared))
        finally:
            STATE["in_flight"] -= 1


class ClosedLoopUser(AuthscaleUser):
    """Closed loop, for comparison: each sender sends its next request when the last one
    has answered, and latency is timed from the actual send (Locust's usual model: a slow
    server slows the offered load and hides its own delay). The mix is the same."""

    @task
    def send_back_to_back(self) -> None:
        START.wait()
        elapsed = time.perf_counter() - STATE["start"]
        if elapsed > CONFIG["duration_s"]:
            gevent.sleep(0.5)
            return
        slot = SCHEDULE.next()  # its operation, edge and home; its time is ignored
        who = random.choice(IDENTITIES[slot.home])
        base = URLS[slot.edge]
        try:
            prepared = self.prepare(slot, who, base)
        except Exception as exc:
            self.finish(slot, time.perf_counter(), f"prepare_{type(exc).__name__}", int(elapsed))
            return
        sent = time.perf_counter()
        RECORDER.sent += 1
        TOTAL.sent += 1
        self.finish(slot, sent, self.send(slot, who, base, prepared), int(elapsed))
