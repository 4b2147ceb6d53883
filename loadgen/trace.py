"""Step traces for calibration (`make loadtest TRACE=1`, run by `make calibrate`).

Each response's `Server-Timing` header says which steps the server performed and how long
each took: wall time (`dur`), the event loop's CPU time (`cpu`) and the emulated
wide-area wait (`wan`), plus an `app` entry for the whole request inside the server. A
traced run keeps, per request, those entries and the latency the client saw, and writes
them to `trace.json` in the run folder; `report.calibrate` fits the local profile from
them. The unmeasured preparation requests (a login challenge, an authorization code) are
kept too: they load the server's event loop like any other request.

The client's side is traced as well (`ClientClock`): the load generator runs every
sender as a greenlet on one thread, so its CPU queues like the server's event loop. Each
request keeps how late its sender woke for it and the CPU its sender spent on the
request's path (before the send, while reading, after the answer until the latency is
taken); the run keeps the CPU off the path (recording, preparing the next request), the
gevent hub's and the rest of Locust's.

When the servers run on the same machine, each request also keeps where its latency went
around the server's clock (`t0` in the header, the machine's monotonic clock): from the
sender's call until its request was handed to a socket (the load generator's own thread,
serving other senders first), from there until the server's middleware took it (loopback,
the server's event loop, HTTP parsing), and from the server's answer until the sender had
read it. The socket hand-off is seen by wrapping geventhttpclient's
`ConnectionPool.get_socket` (`watch_socket_handoff`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import gevent
from greenlet import getcurrent, settrace

from scenarios.results import TRACE_FORMAT as FORMAT

Entry = tuple[str, float, float, float]  # (component.action, dur_ms, cpu_ms, wan_ms)


def parse(header: str) -> tuple[list[Entry], float, float, float | None] | None:
    """The steps of a Server-Timing header, the request's own (dur, cpu) and the server's
    clock when it took the request (`t0`, s; None when absent); None when the header is
    missing or carries no `app` entry (not one of our servers)."""
    steps: list[Entry] = []
    app: tuple[float, float, float | None] | None = None
    for part in filter(None, (p.strip() for p in header.split(","))):
        name, *params = part.split(";")
        values = {}
        for param in params:
            key, _, value = param.partition("=")
            if key in ("dur", "cpu", "wan", "t0"):
                try:
                    values[key] = float(value)
                except ValueError:
                    return None
        if name == "app":
            app = (values.get("dur", 0.0), values.get("cpu", 0.0), values.get("t0"))
        elif "." in name:
            steps.append(
                (name, values.get("dur", 0.0), values.get("cpu", 0.0), values.get("wan", 0.0))
            )
    if app is None:
        return None
    return steps, app[0], app[1], app[2]


_HANDED: dict[int, float] = {}  # greenlet id -> when its request last got a socket


def watch_socket_handoff() -> None:
    """Note, per greenlet, when geventhttpclient hands a request its socket (just before
    the write): what `handed_off` returns. Installed once, for a traced run on one machine."""
    from geventhttpclient.connectionpool import ConnectionPool

    if getattr(ConnectionPool.get_socket, "authscale_watch", False):
        return
    original = ConnectionPool.get_socket

    def get_socket(self: ConnectionPool) -> Any:
        sock = original(self)
        _HANDED[id(getcurrent())] = time.perf_counter()
        return sock

    get_socket.authscale_watch = True  # type: ignore[attr-defined]
    ConnectionPool.get_socket = get_socket  # type: ignore[method-assign]


def handed_off() -> float:
    """When the current greenlet's request last got its socket (perf_counter s), or 0."""
    return _HANDED.get(id(getcurrent()), 0.0)


def split_ms(
    sent: float, handed: float, answered: float, t0: float | None, app_ms: float
) -> list[float] | None:
    """[before the socket, to the server's clock, after the server's answer] in ms, from
    perf_counter seconds of one machine; None when a moment is missing or out of order."""
    if t0 is None or not (0 < sent <= handed <= t0) or t0 + app_ms / 1000 > answered + 1e-4:
        return None
    return [
        round((handed - sent) * 1000, 4),
        round((t0 - handed) * 1000, 4),
        round(max(answered - t0 - app_ms / 1000, 0.0) * 1000, 4),
    ]


class Trace:
    """Traced requests of one load-generator process.

    While the run lasts a request is kept as one tuple of strings and floats, its header
    unparsed: the garbage collector stops tracking such tuples, so that tens of thousands
    of them do not lengthen the collections that pause the senders. `write` parses them.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[Any, ...]] = []
        self.prepares: list[tuple[str, str, str]] = []

    def add(
        self,
        operation: str,
        locality: str,
        edge: str,
        latency_ms: float,
        header: str | None,
        client: tuple[float, ...],
    ) -> None:
        """`client`: (late, pre, mid, post) in ms, then optionally (sent, handed, answered)
        in perf_counter seconds for the split around the server's clock."""
        self.requests.append((operation, locality, edge, latency_ms, header or "", *client))

    def add_prepare(self, operation: str, edge: str, header: str | None) -> None:
        self.prepares.append((operation, edge, header or ""))

    def records(self) -> tuple[list[list[Any]], list[list[Any]], int]:
        """(requests, preparations, how many headers did not parse) in trace.json's form."""
        requests: list[list[Any]] = []
        prepares: list[list[Any]] = []
        unparsed = 0
        for operation, locality, edge, latency_ms, header, *client in self.requests:
            parsed = parse(header) if header else None
            if parsed is None:
                unparsed += 1
                continue
            steps, app_ms, app_cpu, t0 = parsed
            split = split_ms(*client[4:7], t0, app_ms) if len(client) == 7 else None
            requests.append(
                [
                    operation,
                    locality,
                    edge,
                    round(latency_ms, 4),
                    app_ms,
                    app_cpu,
                    [round(v, 4) for v in client[:4]] + (split or [None, None, None]),
                    [list(s) for s in steps],
                ]
            )
        for operation, edge, header in self.prepares:
            parsed = parse(header) if header else None
            if parsed is None:
                unparsed += 1
                continue
            _, app_ms, app_cpu, _ = parsed
            prepares.append([operation, edge, app_ms, app_cpu])
        return requests, prepares, unparsed

    def write(self, path: Path, clock: dict[str, float]) -> None:
        requests, prepares, unparsed = self.records()
        path.write_text(
            json.dumps(
                {
                    "format": FORMAT,
                    "fields": [
                        "operation",
                        "locality",
                        "edge",
                        "latency_ms",
                        "app_ms",
                        "app_cpu_ms",
                        "client",
                        "steps",
                    ],
                    "client_fields": [
                        "late_ms",
                        "pre_ms",
                        "mid_ms",
                        "post_ms",
                        "before_socket_ms",
                        "to_server_ms",
                        "after_server_ms",
                    ],
                    "step_fields": ["step", "dur_ms", "cpu_ms", "wan_ms"],
                    "requests": requests,
                    "prepare_fields": ["operation", "edge", "app_ms", "app_cpu_ms"],
                    "prepares": prepares,
                    "unparsed": unparsed,
                    "client_clock": clock,
                }
            )
        )


class ClientClock:
    """CPU time per greenlet of the load generator's one thread, from its switches.

    `greenlet.settrace` calls it at every switch; the thread's CPU clock since the last
    switch belongs to the greenlet switched away from. A sender calls `woke` when it wakes
    for its send and `on_path` when it takes the latency: the CPU of its first segment
    (building and writing the request), of any segments between (partial reads) and of the
    current one so far (reading the answer). Everything else a sender spends (recording,
    preparing the next request) is off the path; the hub's and other greenlets' CPU is
    kept apart. About 2 µs a switch.
    """

    def __init__(self) -> None:
        self.mark = time.thread_time()
        self.segments: dict[Any, list[float]] = {}  # sender greenlet -> segments since woke
        self.sender_ms = 0.0
        self.hub_ms = 0.0
        self.other_ms = 0.0
        self.on_path_ms = 0.0
        self.started = time.perf_counter()
        self.hub = gevent.get_hub()

    def __call__(self, event: str, args: tuple[Any, Any]) -> None:
        if event != "switch" and event != "throw":
            return
        now = time.thread_time()
        ms = (now - self.mark) * 1000.0
        self.mark = now
        origin = args[0]
        segments = self.segments.get(origin)
        if segments is not None:
            segments.append(ms)
            self.sender_ms += ms
        elif origin is self.hub:
            self.hub_ms += ms
        else:
            self.other_ms += ms

    def start(self) -> None:
        self.mark = time.thread_time()
        self.started = time.perf_counter()
        settrace(self)

    def woke(self) -> None:
        """The calling sender starts its request's path: its segments count from here."""
        segments = self.segments.get(getcurrent())
        if segments is None:
            self.segments[getcurrent()] = []
        else:
            segments.clear()

    def on_path(self) -> tuple[float, float, float]:
        """(pre, mid, post) CPU ms of the calling sender since it woke."""
        current = (time.thread_time() - self.mark) * 1000.0
        segments = self.segments.get(getcurrent()) or []
        if not segments:
            pre, mid, post = current, 0.0, 0.0
        else:
            pre, mid, post = segments[0], sum(segments[1:]), current
        self.on_path_ms += pre + mid + post
        return pre, mid, post

    def totals(self) -> dict[str, float]:
        """The run's CPU by where it went, and the wall time it covers."""
        settrace(None)
        self("switch", (getcurrent(), None))  # the running greenlet's last segment
        return {
            "window_s": round(time.perf_counter() - self.started, 3),
            "sender_ms": round(self.sender_ms, 3),
            "on_path_ms": round(self.on_path_ms, 3),
            "hub_ms": round(self.hub_ms, 3),
            "other_ms": round(self.other_ms, 3),
        }
