"""The kernel's scheduling decisions read from its trace (loadgen.schedtrace)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadgen import schedtrace
from loadgen.schedtrace import TRACEFS, analyse, capture, record, stack_threads

LOOP, WORKER, OTHER = 100, 200, 300
NAMES = {0: "swapper", LOOP: "python", WORKER: "python", OTHER: "postgres"}


def _line(pid: int, cpu: int, ts: float, event: str, fields: str, flags: str = "d..2.") -> str:
    comm = "<idle>" if pid == 0 else NAMES[pid]
    return f"{comm:>16}-{pid:<7} [{cpu:03d}] {flags} {ts:12.6f}: {event}: {fields}"


def _switch(cpu: int, ts: float, prev: int, state: str, nxt: int) -> str:
    return _line(
        prev,
        cpu,
        ts,
        "sched_switch",
        f"prev_comm={NAMES[prev]} prev_pid={prev} prev_prio=120 prev_state={state} ==> "
        f"next_comm={NAMES[nxt]} next_pid={nxt} next_prio=120",
    )


def _wakeup(by: int, cpu: int, ts: float, pid: int, target: int, flags: str = "d..2.") -> str:
    fields = f"comm={NAMES[pid]} pid={pid} prio=120 target_cpu={target:03d}"
    return _line(by, cpu, ts, "sched_wakeup", fields, flags)


def _migrate(by: int, cpu: int, ts: float, pid: int, orig: int, dest: int) -> str:
    fields = f"comm={NAMES[pid]} pid={pid} prio=120 orig_cpu={orig} dest_cpu={dest}"
    return _line(by, cpu, ts, "sched_migrate_task", fields)


# Two cores; the event loop and a worker thread are the stack's, the third is not. Times
# in seconds as tracefs prints them. CPU 1's switches out of idle are left out, as this
# project's VMs drop them: a wake-up onto idle CPU 1 stands for its switch.
TRACE = "\n".join(
    [
        "# tracer: nop",
        "# entries-in-buffer/entries-written: 17/17   #P:2",
        _switch(0, 1.000000, 0, "R", LOOP),
        _switch(1, 1.000100, 0, "R", WORKER),
        _switch(0, 1.001000, LOOP, "S", OTHER),  # the loop sleeps (last ran on CPU 0)
        _wakeup(WORKER, 1, 1.001200, LOOP, 0),  # both cores busy: not a busy-core choice
        # CPU 1 goes idle while the loop, 1 ms off a core (not cache-hot), waits on CPU 0
        _switch(1, 1.002000, WORKER, "S", 0),
        _switch(0, 1.003000, OTHER, "S", LOOP),  # it waited 1.8 ms
        _wakeup(LOOP, 0, 1.003500, OTHER, 0),
        _switch(0, 1.004000, LOOP, "S", OTHER),
        _wakeup(OTHER, 0, 1.004500, LOOP, 0),  # its core busy, CPU 1 idle: it stayed
        _wakeup(0, 1, 1.004600, WORKER, 1, "d.h2."),  # CPU 1 leaves idle for the worker
        _migrate(WORKER, 1, 1.006000, LOOP, 0, 1),  # CPU 1, going idle, pulls the loop
        _switch(1, 1.006001, WORKER, "S", LOOP),
        _wakeup(LOOP, 1, 1.007000, WORKER, 1),
        _switch(0, 1.007500, OTHER, "S", 0),  # CPU 0 idle, the worker (cold) waits on 1
        _switch(1, 1.008000, LOOP, "S", WORKER),
        _migrate(WORKER, 1, 1.009000, LOOP, 1, 0),  # its core busy, CPU 0 idle: it moved
        _wakeup(WORKER, 1, 1.009001, LOOP, 0),
    ]
)


def test_the_trace_is_replayed_into_the_kernels_choices() -> None:
    found = analyse(TRACE, {LOOP: "loop", WORKER: "server-thread"})
    assert found["busy_wake"] == {"moved": 1, "stayed": 1, "share": 0.5}
    assert found["idle_pull"] == {
        "pulled": 1,
        "left_idle": 2,
        "share": pytest.approx(1 / 3, abs=1e-4),
    }
    assert found["events"] == 17 and found["lost_events"] == 0
    span = found["seconds"]
    assert span == pytest.approx(0.009, abs=1e-3)
    loop = found["threads"]["loop"]
    assert loop["moves_per_s"] == {
        "wake": pytest.approx(1 / span, rel=1e-3),
        "newidle": pytest.approx(1 / span, rel=1e-3),
        "periodic": 0.0,
    }
    # On a core 1.000-1.001, 1.003-1.004 and 1.006001-1.008; waited 1.8 and 1.501 ms.
    assert loop["cpu_s_per_s"] == pytest.approx(0.003999 / span, rel=1e-3)
    assert loop["wait_ms_per_cpu_ms"] == pytest.approx(3.301 / 3.999, abs=1e-3)
    assert loop["wakeups_per_s"] == pytest.approx(3 / span, rel=1e-2)
    assert found["threads"]["server-thread"]["wait_ms_per_cpu_ms"] is not None


def test_a_thread_pulled_while_cache_hot_is_not_an_idle_cores_choice() -> None:
    # CPU 1 goes idle 0.3 ms after the loop left CPU 0: the loop, waiting there, is hot.
    hot = TRACE.replace(_switch(1, 1.002000, WORKER, "S", 0), _switch(1, 1.001300, WORKER, "S", 0))
    found = analyse(hot, {LOOP: "loop", WORKER: "server-thread"})
    assert found["idle_pull"]["left_idle"] == 1  # 0.3 ms off a core: hot, not counted


def test_an_empty_trace_is_an_error_and_drops_are_counted() -> None:
    with pytest.raises(ValueError, match="no events"):
        analyse("# tracer: nop\n", {})
    dropped = TRACE.replace("17/17", "17/40")
    assert analyse(dropped, {})["lost_events"] == 23


def test_no_tracefs_says_why(tmp_path: Path) -> None:
    with pytest.raises(schedtrace.TraceUnavailable, match="tracefs needs root"):
        capture(0.1, tracefs=tmp_path / "none")
    clock = tmp_path / "clock"
    assert "did not start" in record(clock, 1.0, [], [], wait_s=0.3)["unavailable"]


def _tracefs_usable() -> bool:
    """Writable, or not mounted where root can mount it."""
    return os.access(TRACEFS / "set_event", os.W_OK) or (os.geteuid() == 0 and TRACEFS.is_dir())


def _tracing_settings() -> dict[str, str] | None:
    """tracefs's settings now; None where it is not mounted."""
    if not (TRACEFS / "set_event").exists():
        return None
    return {n: (TRACEFS / n).read_text() for n in ("set_event", "buffer_size_kb", "tracing_on")}


@pytest.mark.skipif(not _tracefs_usable(), reason="tracefs is not usable here (needs root)")
def test_a_real_trace_is_recorded_and_tracing_put_back(tmp_path: Path) -> None:
    """Mounted or not as found (it is mounted for the capture and unmounted after where it
    was not), with the settings found."""
    before = _tracing_settings()
    spinner = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.001)"])
    try:
        clock = tmp_path / "clock"
        clock.write_text(repr(time.time()))
        found = record(clock, 0.5, [spinner.pid], [], seconds=0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert "unavailable" not in found, found
    assert found["classes"] == ["loop"]
    assert found["threads"]["loop"]["wakeups_per_s"] > 100  # a wake-up per millisecond
    assert _tracing_settings() == before


def test_preemptions_and_the_wait_after_them_are_told_from_wake_ups() -> None:
    """The loop is preempted by a thread woken on its core and waits 0.4 ms for it; later
    it wakes while that thread runs and waits 0.2 ms: one preemption, two thirds of its
    wait after it."""
    trace = "\n".join(
        [
            _switch(0, 1.000000, 0, "R", LOOP),
            _wakeup(LOOP, 0, 1.001000, OTHER, 0),
            _switch(0, 1.001100, LOOP, "R", OTHER),  # preempted
            _switch(0, 1.001500, OTHER, "S", LOOP),
            _switch(0, 1.002000, LOOP, "S", 0),
            _wakeup(0, 0, 1.002500, OTHER, 0, "d.h2."),  # onto the idle core
            _wakeup(OTHER, 0, 1.003000, LOOP, 0),  # the loop wakes behind it
            _switch(0, 1.003200, OTHER, "S", LOOP),
        ]
    )
    loop = analyse(trace, {LOOP: "loop"})["threads"]["loop"]
    assert loop["preempted_by"] == {"other": 1.0}  # the thread that took its core
    span = 0.0032
    assert loop["preemptions_per_s"] == pytest.approx(1 / span, rel=1e-2)
    assert loop["preempted_wait_share"] == pytest.approx(0.4 / 0.6, abs=1e-3)
    assert loop["wakeups_per_s"] == pytest.approx(1 / span, rel=1e-2)


def test_tracing_is_put_back_as_found(tmp_path: Path) -> None:
    """Checked on plain files standing in for tracefs (the real one needs root, below)."""
    fake = tmp_path / "tracing"
    fake.mkdir()
    found = {
        "set_event": "irq:irq_handler_entry\n",
        "buffer_size_kb": "1410\n",
        "tracing_on": "1\n",
    }
    for name, text in found.items():
        (fake / name).write_text(text)
    (fake / "trace").write_text("# tracer: nop\n")
    assert capture(0.01, tracefs=fake) == ""  # the trace, cleared as it began
    assert {n: (fake / n).read_text() for n in found} == {
        "set_event": "irq:irq_handler_entry\n",
        "buffer_size_kb": "1410",
        "tracing_on": "1",
    }
    assert schedtrace._capturing == []


def test_an_unmounted_tracefs_is_mounted_for_the_capture_and_unmounted_after(
    tmp_path: Path,
) -> None:
    """Where tracefs is not mounted (an empty mount point), root mounts it for the capture
    and unmounts it after; stand-ins for mount and umount fill and empty a plain folder."""
    point = tmp_path / "tracing"
    point.mkdir()
    calls: list[str] = []

    def mount(path: Path) -> bool:
        calls.append("mount")
        for name, text in {"set_event": "", "buffer_size_kb": "7\n", "tracing_on": "1\n"}.items():
            (path / name).write_text(text)
        (path / "trace").write_text("# tracer: nop\n")
        return True

    def unmount(path: Path) -> None:
        calls.append("unmount")
        for f in path.iterdir():
            f.unlink()

    assert capture(0.01, tracefs=point, mount=mount, unmount=unmount) == ""
    assert calls == ["mount", "unmount"]
    assert list(point.iterdir()) == []
    assert schedtrace._capturing == []

    # A mount that fails (not root) leaves the plain error, and nothing to unmount.
    calls.clear()
    with pytest.raises(schedtrace.TraceUnavailable, match="as root, mount it"):
        capture(0.01, tracefs=point, mount=lambda p: calls.append("mount") or False)
    assert calls == ["mount"]


def test_the_stores_threads_are_told_apart_by_their_program(tmp_path: Path) -> None:
    """Redis's and PostgreSQL's processes (stand-ins named as they are) get classes of their
    own, so that the trace says which of them took a core."""
    procs = [
        subprocess.Popen(["bash", "-c", f"exec -a {name} sleep 30"])
        for name in ("/usr/bin/redis-server", "/usr/lib/postgresql/15/bin/postgres")
    ]
    try:
        time.sleep(0.2)  # (exec has replaced bash)
        classes = stack_threads([], [p.pid for p in procs], os.getpid())
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert classes == {procs[0].pid: "redis", procs[1].pid: "postgres"}


def test_a_wake_up_onto_a_busy_core_is_told_preempting_or_not() -> None:
    """The worker wakes onto CPU 0 while the loop runs there: the first time the loop is
    switched out for it within 0.2 ms (preempted at once), the second time the loop runs
    on and then sleeps, and a third wake-up's switch comes a tick later (not at once)."""
    trace = "\n".join(
        [
            _switch(0, 1.000000, 0, "R", LOOP),
            _wakeup(LOOP, 0, 1.001000, WORKER, 0),
            _switch(0, 1.001050, LOOP, "R", WORKER),  # at once
            _switch(0, 1.001200, WORKER, "S", LOOP),
            _wakeup(LOOP, 0, 1.002000, WORKER, 0),
            _switch(0, 1.002500, LOOP, "S", WORKER),  # the loop slept first
            _switch(0, 1.002600, WORKER, "S", LOOP),
            _wakeup(LOOP, 0, 1.003000, WORKER, 0),
            _switch(0, 1.007000, LOOP, "R", WORKER),  # the tick's, 4 ms on
            _wakeup(WORKER, 0, 1.007100, OTHER, 0),  # not a stack thread: not counted
        ]
    )
    found = analyse(trace, {LOOP: "loop", WORKER: "server-thread"})
    assert found["wake_preempt"] == {
        "server-thread>loop": {"at_once": 1, "not": 2, "share": round(1 / 3, 4)}
    }
