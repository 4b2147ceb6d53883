"""The load generator's side of a traced run: the CPU its senders spend on a request's
path, from real greenlet switches, and the compact records kept while the run lasts."""

from __future__ import annotations

import gc
import time

import gevent
import pytest

from loadgen.trace import ClientClock, Trace, handed_off, parse, split_ms, watch_socket_handoff

HEADER = "edge.handle;dur=0.150;cpu=0.140;wan=0, redis.get_session;dur=0.700;cpu=0.300, app;dur=1"


def _burn(ms: float) -> None:
    """Use at least `ms` of this thread's CPU."""
    end = time.thread_time() + ms / 1000
    while time.thread_time() < end:
        pass


def test_the_clock_splits_a_senders_cpu_into_its_paths_parts() -> None:
    clock = ClientClock()
    seen: list[tuple[float, float, float]] = []

    def sender() -> None:
        clock.woke()
        _burn(30)  # building and writing the request
        gevent.sleep(0.01)  # waiting for the answer
        _burn(5)  # a partial read
        gevent.sleep(0.01)
        _burn(12)  # reading the answer, up to the latency
        seen.append(clock.on_path())
        _burn(20)  # recording: off the path

    def bystander() -> None:
        gevent.sleep(0.005)
        _burn(25)

    clock.start()
    gevent.joinall([gevent.spawn(sender), gevent.spawn(bystander)])
    totals = clock.totals()
    ((pre, mid, post),) = seen
    assert 30 <= pre < 30 + 15
    assert 5 <= mid < 5 + 15
    assert 12 <= post < 12 + 15
    # the sender's own CPU holds the path's and the recording after it
    assert totals["on_path_ms"] == round(pre + mid + post, 3)
    assert totals["sender_ms"] >= pre + mid + post + 20
    # the bystander's CPU is not the sender's
    assert totals["other_ms"] >= 25
    assert totals["sender_ms"] < 30 + 5 + 12 + 20 + 20


def test_a_sender_that_never_yields_has_everything_before_the_send() -> None:
    clock = ClientClock()
    clock.start()
    clock.woke()
    _burn(3)
    pre, mid, post = clock.on_path()
    clock.totals()
    assert pre >= 3 and mid == 0 and post == 0


def test_records_are_untracked_by_the_collector_until_written() -> None:
    trace = Trace()
    trace.add("session_validation", "same_region", "ap-ne", 5.25, HEADER, (0.5, 0.4, 0.1, 0.3))
    trace.add("userinfo", "same_region", "ap-ne", 7.0, "no steps here", (0.1, 0.2, 0.0, 0.2))
    trace.add_prepare("login", "ap-ne", "app;dur=2;cpu=1.5")
    gc.collect()
    # tuples of strings and floats: after one pass the collector stops walking them
    assert not any(gc.is_tracked(r) for r in trace.requests)
    requests, prepares, unparsed = trace.records()
    assert requests == [
        [
            "session_validation", "same_region", "ap-ne", 5.25, 1.0, 0.0,
            [0.5, 0.4, 0.1, 0.3, None, None, None],
            [["edge.handle", 0.15, 0.14, 0.0], ["redis.get_session", 0.7, 0.3, 0.0]],
        ]
    ]  # fmt: skip
    assert prepares == [["login", "ap-ne", 2.0, 1.5]]
    assert unparsed == 1


def test_the_latency_splits_around_the_servers_clock() -> None:
    """Moments on one machine's monotonic clock: the call, the socket, the server's t0
    (in the header), the answer. 1 ms before the socket, 2 ms to the server, its 3 ms,
    0.5 ms after."""
    header = "redis.get_session;dur=0.7;cpu=0.3, app;dur=3.000;cpu=1.0;t0=100.003000"
    parsed = parse(header)
    assert parsed is not None and parsed[3] == pytest.approx(100.003)
    assert split_ms(100.0, 100.001, 100.0065, 100.003, 3.0) == pytest.approx([1.0, 2.0, 0.5])
    # Out of order (a socket noted before the call, from an earlier request) or no t0: none.
    assert split_ms(100.0, 99.0, 100.0065, 100.003, 3.0) is None
    assert split_ms(100.0, 100.001, 100.0065, None, 3.0) is None
    assert split_ms(100.0, 100.001, 100.004, 100.003, 3.0) is None  # answered before it ended
    trace = Trace()
    trace.add(
        "session_validation", "same_region", "ap-ne", 6.6, header,
        (0.1, 0.2, 0.0, 0.1, 100.0, 100.001, 100.0065),
    )  # fmt: skip
    (request,), _, _ = trace.records()
    assert request[6][4:] == pytest.approx([1.0, 2.0, 0.5])


def test_the_socket_hand_off_is_noted_per_greenlet() -> None:
    """The hook on geventhttpclient's pool notes when each greenlet's request got its
    socket; a real request through a real pool to a listening socket."""
    import socket

    from geventhttpclient.connectionpool import ConnectionPool

    watch_socket_handoff()
    watch_socket_handoff()  # installing twice wraps once
    assert getattr(ConnectionPool.get_socket, "authscale_watch", False)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    pool = ConnectionPool("127.0.0.1", port, "127.0.0.1", port)
    seen: list[float] = []

    def use() -> None:
        before = time.perf_counter()
        sock = pool.get_socket()
        seen.extend([before, handed_off(), time.perf_counter()])
        pool.return_socket(sock)

    gevent.spawn(use).join()
    assert seen[0] <= seen[1] <= seen[2]
    assert handed_off() == 0.0  # this greenlet never asked for a socket
    pool.close()
    server.close()
