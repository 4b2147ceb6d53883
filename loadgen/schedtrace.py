"""The kernel's own scheduling decisions during a load run, from its trace events.

`capture` records the scheduler's tracepoints (sched_switch, sched_wakeup,
sched_migrate_task) through tracefs for a few seconds (root only; the settings found
there are put back), and `analyse` replays them per thread class of the stack: how much
CPU each class used, how often it woke and was preempted, how long it waited for a core
per ms of CPU (and how much of that after a preemption), and how it moved between cores
(at a wake-up, pulled by a core going idle, or by the periodic balance). Two shares come
out of it that the model of the cores uses (sim.cores.FairCorePool), measured rather than
derived from the kernel's rules:

- `busy_wake`: of the wake-ups of a stack thread whose last core was busy while another
  core was idle, the share that went to the idle core;
- `idle_pull`: of the times a core went idle while a stack thread that had not run for
  the kernel's migration cost (0.5 ms: not cache-hot) waited on another core's queue,
  the share in which the core pulled such a thread instead (newidle balancing).

The trace can lack a core's switches out of idle (seen on this project's VMs: every
`swapper/1 ==> task` switch missing); a wake-up onto an idle core therefore counts as
the thread taking that core, and any event a thread raises on a core shows it running
there.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.stats import shares

TRACEFS = Path("/sys/kernel/tracing")
EVENTS = ("sched:sched_switch", "sched:sched_wakeup", "sched:sched_migrate_task")
BUFFER_KB = 16384  # per CPU: about 8 s of a 2-core machine at 2,000 QPS, with room
COLD_S = 0.0005  # Linux's sysctl_sched_migration_cost: ran this recently = cache-hot
# A wake-up that preempts the running thread makes it switch within this (the resched
# interrupt); a later switch is the tick's or the thread's own.
AT_ONCE_S = 0.0002

_LINE = re.compile(r"^\s*(.+?)-(\d+)\s+\[(\d+)\]\s+(\S+)\s+([\d.]+): (\w+): (.*)$")
_FIELD = re.compile(r"(\w+)=(\S+)")


class TraceUnavailable(RuntimeError):
    """The kernel's trace cannot be recorded here (not root, or no tracefs)."""


_SETTINGS = ("set_event", "buffer_size_kb", "tracing_on")
Unmount = Callable[[Path], None]
# A capture in progress, put back at exit: tracefs, its settings found, and how to unmount
# it where the capture mounted it.
_capturing: list[tuple[Path, dict[str, str], Unmount | None]] = []


def _mount(tracefs: Path) -> bool:
    """Mount tracefs on `tracefs` (root only); whether it is mounted now."""
    mount = shutil.which("mount")
    if mount is None or os.geteuid() != 0:
        return False
    done = subprocess.run(
        [mount, "-t", "tracefs", "nodev", str(tracefs)], capture_output=True, check=False
    )
    return done.returncode == 0


def _unmount(tracefs: Path) -> None:
    umount = shutil.which("umount")
    if umount is not None:
        subprocess.run([umount, str(tracefs)], capture_output=True, check=False)


def _put_back(tracefs: Path, saved: dict[str, str], unmount: Unmount | None = None) -> None:
    """Restore tracing as it was found: the events enabled, the buffer's size, on or off;
    unmounted, where the capture mounted it (`unmount`)."""
    (tracefs / "set_event").write_text("")  # (truncating it turns every event off)
    for line in saved["set_event"].split():
        with (tracefs / "set_event").open("a") as f:
            f.write(line + "\n")
    (tracefs / "trace").write_text("")
    (tracefs / "buffer_size_kb").write_text(saved["buffer_size_kb"].split()[0])
    (tracefs / "tracing_on").write_text(saved["tracing_on"].strip())
    if unmount is not None:
        unmount(tracefs)


@atexit.register
def _put_back_at_exit() -> None:
    """A capture cut short by the process ending (Ctrl-C: the tracing thread is a daemon)
    still leaves tracing as it was found."""
    while _capturing:
        _put_back(*_capturing.pop())


def capture(
    seconds: float,
    tracefs: Path = TRACEFS,
    buffer_kb: int = BUFFER_KB,
    mount: Callable[[Path], bool] = _mount,
    unmount: Unmount = _unmount,
) -> str:
    """The scheduler's trace events of the next `seconds`, as tracefs prints them; what
    tracing was set to before is restored, whatever happens (at the process's exit if
    it ends first). Where tracefs is not mounted (`tracefs` an empty folder), it is
    mounted for the capture (root only) and unmounted after it."""
    control = tracefs / "set_event"
    mounted = (
        not control.exists() and tracefs.is_dir() and not any(tracefs.iterdir()) and mount(tracefs)
    )
    if not control.exists() or not os.access(control, os.W_OK):
        if mounted:
            unmount(tracefs)
        raise TraceUnavailable(
            f"{control} is not writable (tracefs needs root; as root, mount it with "
            f"`mount -t tracefs nodev {tracefs}`)"
        )
    saved = {name: (tracefs / name).read_text() for name in _SETTINGS}
    entry = (tracefs, saved, unmount if mounted else None)
    _capturing.append(entry)

    def write(name: str, value: str) -> None:
        (tracefs / name).write_text(value)

    try:
        write("tracing_on", "0")
        write("trace", "")
        write("buffer_size_kb", str(buffer_kb))
        write("set_event", "\n".join(EVENTS) + "\n")
        write("tracing_on", "1")
        time.sleep(seconds)
        write("tracing_on", "0")
        return (tracefs / "trace").read_text()
    finally:
        if entry in _capturing:
            _capturing.remove(entry)
            _put_back(*entry)


@dataclass
class _Threads:
    cpu_s: Counter[str] = field(default_factory=Counter)
    wakeups: Counter[str] = field(default_factory=Counter)
    wait_s: Counter[str] = field(default_factory=Counter)
    preempted: Counter[str] = field(default_factory=Counter)
    preempted_wait_s: Counter[str] = field(default_factory=Counter)
    preempted_for: Counter[tuple[str, str]] = field(default_factory=Counter)  # (off, on)
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)


def parse(text: str) -> list[tuple[int, int, str, float, str, dict[str, str]]]:
    """(pid of the context, cpu, flags, seconds, event, fields) per event line."""
    events = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m:
            fields = dict(_FIELD.findall(m.group(7)))
            events.append(
                (
                    int(m.group(2)),
                    int(m.group(3)),
                    m.group(4),
                    float(m.group(5)),
                    m.group(6),
                    fields,
                )
            )
    return events


def lost_events(text: str) -> int:
    """Events the trace buffer dropped (its header counts those written and kept)."""
    m = re.search(r"entries-in-buffer/entries-written: (\d+)/(\d+)", text)
    return int(m.group(2)) - int(m.group(1)) if m else 0


def analyse(text: str, classes: dict[int, str]) -> dict[str, Any]:
    """Replay the trace: per thread class (`classes`: thread id -> class; others are
    "other") its CPU, wake-ups, wait for a core and moves, and the two shares (module
    docstring) over the classed threads."""
    events = parse(text)
    if len(events) < 2:
        raise ValueError("the scheduler trace holds no events")
    cpus = sorted({e[1] for e in events})
    t0 = events[0][3]
    span = events[-1][3] - t0
    running = dict.fromkeys(cpus, 0)  # thread on each core, 0 = idle
    since = dict.fromkeys(cpus, t0)
    waiting: dict[int, dict[int, float]] = {c: {} for c in cpus}  # runnable since
    preempted: set[int] = set()  # waiting because preempted (not woken)
    last_ran: dict[int, float] = {}
    last_cpu: dict[int, int] = {}
    pending: dict[int, str] = {}  # a move not yet known to be a wake-up's: its kind otherwise
    acc = _Threads()
    busy_wake = Counter[str]()
    idle_pull = Counter[str]()
    # A wake-up onto a core running a stack thread, not yet told: (woken, running, when).
    onto_busy: dict[int, tuple[int, int, float]] = {}
    # Per "<woken class>><running class>": such wake-ups, "at_once" (preempting) or "not".
    wake_preempt: dict[str, Counter[str]] = {}

    def told(cpu: int, at_once: bool) -> None:
        woken, ran, _ = onto_busy.pop(cpu)
        wake_preempt.setdefault(f"{cls(woken)}>{cls(ran)}", Counter())[
            "at_once" if at_once else "not"
        ] += 1

    def cls(pid: int) -> str:
        return classes.get(pid, "other")

    def settle(pid: int, woke: bool) -> None:
        kind = pending.pop(pid, None)
        if kind is not None:
            kind = "wake" if woke else kind
            acc.moves[(cls(pid), kind)] += 1
            if kind == "newidle" and pid in classes:
                idle_pull["pulled"] += 1

    def take(cpu: int, pid: int, ts: float) -> None:
        if running[cpu] == pid:
            return
        off = running[cpu]
        if off:
            acc.cpu_s[cls(off)] += ts - since[cpu]
            last_ran[off] = ts
        settle(pid, woke=False)
        for q in waiting.values():
            w = q.pop(pid, None)
            if w is not None:
                acc.wait_s[cls(pid)] += ts - w
                if pid in preempted:
                    acc.preempted_wait_s[cls(pid)] += ts - w
        preempted.discard(pid)
        running[cpu] = pid
        since[cpu] = ts
        last_cpu[pid] = cpu

    for pid, cpu, flags, ts, name, f in events:
        in_irq = "h" in flags or "s" in flags
        if pid and running[cpu] != pid and not in_irq:
            take(cpu, pid, ts)  # the context shows who runs there
        if name == "sched_switch":
            prev, nxt = int(f["prev_pid"]), int(f["next_pid"])
            if cpu in onto_busy:
                woken, ran, when = onto_busy[cpu]
                told(
                    cpu,
                    prev == ran
                    and nxt == woken
                    and f["prev_state"].startswith("R")
                    and ts - when <= AT_ONCE_S,
                )
            if prev and running[cpu] == prev:
                acc.cpu_s[cls(prev)] += ts - since[cpu]
            if prev:
                last_ran[prev] = ts
                last_cpu[prev] = cpu
                if f["prev_state"].startswith("R"):
                    waiting[cpu][prev] = ts  # preempted: still runnable
                    preempted.add(prev)
                    acc.preempted[cls(prev)] += 1
                    if nxt:
                        acc.preempted_for[(cls(prev), cls(nxt))] += 1
            running[cpu] = 0
            since[cpu] = ts
            if nxt:
                take(cpu, nxt, ts)
            elif prev:
                cold = [
                    p
                    for c in cpus
                    if c != cpu
                    for p in waiting[c]
                    if p in classes and ts - last_ran.get(p, -1e9) > COLD_S
                ]
                if cold:
                    idle_pull["left_idle"] += 1
        elif name == "sched_wakeup":
            p, target = int(f["pid"]), int(f["target_cpu"])
            acc.wakeups[cls(p)] += 1
            settle(p, woke=True)
            prev_cpu = last_cpu.get(p)
            if (
                p in classes
                and prev_cpu is not None
                and running.get(prev_cpu, 0)
                and any(running[c] == 0 and c != prev_cpu for c in cpus)
            ):
                if target == prev_cpu:
                    busy_wake["stayed"] += 1
                elif running.get(target) == 0:
                    busy_wake["moved"] += 1  # (on more cores, a move to a busy one is neither)
            for q in waiting.values():
                q.pop(p, None)
            preempted.discard(p)
            waiting[target][p] = ts
            ran = running.get(target, 0)
            if p in classes and ran in classes and ran != p:
                if target in onto_busy:
                    told(target, False)  # another wake-up came first: the earlier did not
                onto_busy[target] = (p, ran, ts)
            if running.get(target) == 0:
                take(target, p, ts)  # an idle core runs it next (see the module docstring)
        elif name == "sched_migrate_task":
            p, orig, dest = int(f["pid"]), int(f["orig_cpu"]), int(f["dest_cpu"])
            settle(p, woke=False)
            pending[p] = "periodic" if "s" in flags else ("newidle" if dest == cpu else "other")
            if p in waiting.get(orig, {}):
                waiting[dest][p] = waiting[orig].pop(p)
    for p in list(pending):
        settle(p, woke=False)

    threads = {}
    for c in sorted(set(classes.values()) | {"other"}):
        cpu_s = acc.cpu_s[c]
        moves = {k: round(acc.moves[(c, k)] / span, 2) for k in ("wake", "newidle", "periodic")}
        threads[c] = {
            "cpu_s_per_s": round(cpu_s / span, 4),
            "wakeups_per_s": round(acc.wakeups[c] / span, 1),
            "wait_ms_per_cpu_ms": round(acc.wait_s[c] / cpu_s, 3) if cpu_s else None,
            "preemptions_per_s": round(acc.preempted[c] / span, 1),
            # Of the wait for a core, the share that followed a preemption (not a wake-up).
            "preempted_wait_share": (
                round(acc.preempted_wait_s[c] / acc.wait_s[c], 4) if acc.wait_s[c] else None
            ),
            "moves_per_s": moves,
            # Who took the core at its preemptions: each class's share of them.
            "preempted_by": shares({b: n for (a, b), n in acc.preempted_for.items() if a == c}),
        }

    def share(counts: Counter[str], yes: str, no: str) -> dict[str, Any]:
        n = counts[yes] + counts[no]
        return {yes: counts[yes], no: counts[no], "share": round(counts[yes] / n, 4) if n else None}

    return {
        "seconds": round(span, 3),
        "events": len(events),
        "lost_events": lost_events(text),
        "threads": threads,
        "busy_wake": share(busy_wake, "moved", "stayed"),
        # Of the wake-ups of a stack thread onto a core running another, per (woken class,
        # running class), the share that preempted it at once.
        "wake_preempt": {
            pair: share(counts, "at_once", "not") for pair, counts in sorted(wake_preempt.items())
        },
        "idle_pull": share(idle_pull, "pulled", "left_idle"),
    }


TRACE_S = 8.0  # seconds recorded, in the middle of a traced load run


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def _tids(pid: int) -> list[int]:
    try:
        return [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return []


def _command(pid: int) -> str:
    """The program a process runs (its command line's first word's name); "" if gone."""
    try:
        first = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except OSError:
        return ""
    return Path(first.split()[0]).name if first.strip() else ""


def stack_threads(servers: list[int], stores: list[int], parent: int) -> dict[int, str]:
    """Thread id -> class for the stack of a load run: each server's event loop (its main
    thread, `loop`) and its other threads (`server-thread`: the password hash's workers),
    the stores' processes and their children (`redis`, and `postgres`: its backends),
    and `parent`'s Locust process (`locust`: its main thread sends and reads) and the pace
    probe (`pace`)."""
    classes: dict[int, str] = {}
    for pid in servers:
        for tid in _tids(pid):
            classes[tid] = "loop" if tid == pid else "server-thread"
    for pid in stores:
        store = "redis" if _command(pid).startswith(("redis", "valkey")) else "postgres"
        for p in (pid, *_children(pid)):
            classes.update(dict.fromkeys(_tids(p), store))
    for pid in _children(parent):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "-m locust" in cmd:
            classes[pid] = "locust"
        elif "loadgen.pace" in cmd:
            classes[pid] = "pace"
    return classes


def record(
    clock_file: Path,
    duration_s: float,
    servers: list[int],
    stores: list[int],
    seconds: float = TRACE_S,
    wait_s: float = 600.0,
) -> dict[str, Any]:
    """Trace the kernel's scheduler for `seconds` in the middle of this process's load
    run, whose schedule starts at the time `clock_file` holds once the load generator
    writes it, and analyse the trace; {"unavailable": why} where it cannot be traced."""
    deadline = time.monotonic() + wait_s
    while not clock_file.exists():
        if time.monotonic() > deadline:
            return {"unavailable": f"the run's schedule did not start ({clock_file} missing)"}
        time.sleep(0.2)
    try:
        start = float(clock_file.read_text())
    except (OSError, ValueError) as exc:
        return {"unavailable": f"unreadable {clock_file}: {exc}"}
    time.sleep(max(0.0, start + max(0.0, (duration_s - seconds) / 2) - time.time()))
    try:
        classes = stack_threads(servers, stores, os.getpid())
        text = capture(min(seconds, duration_s))
        return {"classes": sorted(set(classes.values())), **analyse(text, classes)}
    except (TraceUnavailable, OSError, ValueError) as exc:
        return {"unavailable": str(exc)}
