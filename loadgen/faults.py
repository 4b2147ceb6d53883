"""`make loadtest SCENARIO=<name>`: the simulator's failure timelines, applied to the real stack.

Only instances the harness started itself are touched, never the machine's own services.
What the stack can do:
- `redis_cluster`: the region's Redis is stopped, and restarted empty at recovery;
- `region`: the region's server process is paused (SIGSTOP), then resumed: its users see
  requests hang (the stack has no geo routing to move them);
- `crdb_region`: PostgreSQL, the stack's only database, is paused with all its processes;
- `traffic`: the offered rate changes for the event's window (the load generator does it).
What it cannot (one Redis without replicas per region, one database, loopback between
regions, no legacy design), and says so before any load is sent: `redis_primary`,
`crdb_node`, `partition`, `do_reshard`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from scenarios import load_world
from scenarios.faults import FailureScenario, TrafficSpike
from server.stack import Stack

CANNOT = {
    "redis_primary": "the stack runs one Redis per region without replicas: no failover to drill",
    "crdb_node": "the stack has one PostgreSQL, not a cluster of nodes",
    "partition": "all regions share loopback: the stack cannot cut two of them apart",
    "do_reshard": "the stack serves the hybrid design, not the legacy one",
}


class FaultError(Exception):
    pass


@dataclass(frozen=True)
class Action:
    at_s: float
    for_s: float
    kind: str  # stop_redis | pause_server | pause_database
    region: str


def plan(scenario: FailureScenario, name: str, regions: list[str]) -> list[Action]:
    """The stack actions of a scenario, or a FaultError naming what cannot be applied."""
    actions = []
    for i, ev in enumerate(scenario.events):
        if ev.component in CANNOT:
            raise FaultError(f"SCENARIO={name}: events[{i}] {ev.component}: {CANNOT[ev.component]}")
        region = getattr(ev, "region", "")
        if region and region not in regions:
            raise FaultError(
                f"SCENARIO={name}: events[{i}] fails {region}, which is not in "
                f"REGIONS={','.join(regions)}; add it to REGIONS"
            )
        kind = {"redis_cluster": "stop_redis", "region": "pause_server",
                "crdb_region": "pause_database"}.get(ev.component)  # fmt: skip
        if kind is not None:
            actions.append(Action(ev.at_s, ev.for_s, kind, region))
    return actions


def rate_segments(scenario: FailureScenario, qps: float) -> list[tuple[float, float, float]]:
    """(start_s, end_s, qps) windows where a traffic event changes the offered rate."""
    world = load_world("seed")
    peak = world.workload.qps(scenario.mau, "peak") / world.workload.qps(scenario.mau, "average")
    return [
        (ev.at_s, ev.end_s, qps * (peak if ev.load == "peak" else (ev.factor or 1.0)))
        for ev in scenario.events
        if isinstance(ev, TrafficSpike)
    ]


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc (PostgreSQL's backends are its children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


@dataclass(eq=False)  # a Thread must stay hashable
class FaultDriver(threading.Thread):
    """Applies the actions at their times after the load's clock starts, then undoes them."""

    stack: Stack
    actions: list[Action]
    clock_file: Path
    log: list[dict[str, object]] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        threading.Thread.__init__(self, daemon=True)

    def run(self) -> None:
        while not self.clock_file.exists():
            if self.stop_event.wait(0.1):
                return
        start = float(self.clock_file.read_text())
        steps = sorted(
            [(a.at_s, a, True) for a in self.actions]
            + [(a.at_s + a.for_s, a, False) for a in self.actions],
            key=lambda x: x[0],
        )
        for at, action, apply in steps:
            if self.stop_event.wait(max(0.0, start + at - time.time())):
                break
            self._do(action, apply)
            self.log.append(
                {
                    "t_s": round(time.time() - start, 3),
                    "action": action.kind,
                    "region": action.region,
                    "phase": "start" if apply else "end",
                }
            )
        self.undo_all()

    def _do(self, action: Action, apply: bool) -> None:
        if action.kind == "stop_redis":
            redis = self.stack.redis[action.region]
            redis.stop() if apply else redis.start()  # restarts empty: nothing kept on disk
        elif action.kind == "pause_server":
            pid = self.stack.processes[action.region].pid
            os.kill(pid, signal.SIGSTOP if apply else signal.SIGCONT)
        elif action.kind == "pause_database":
            assert self.stack.postgres is not None and self.stack.postgres.process is not None
            for pid in process_tree(self.stack.postgres.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP if apply else signal.SIGCONT)
        self._active = getattr(self, "_active", set())
        (self._active.add if apply else self._active.discard)(action)

    def undo_all(self) -> None:
        """Whatever is still failed is recovered: nothing stays paused or stopped."""
        for action in list(getattr(self, "_active", set())):
            self._do(action, False)
