"""Region emulation: a server knows its region and waits the RTTs the topology gives.

The stack runs every region's server, Redis and the shared database on one machine, so
the wide-area network is missing. For each step that crosses regions in the topology
(`scenarios/data/topology.toml`, the file the simulator reads) the server waits that
round trip: a read or write of a row homed in another region pays the RTT to it; under
REGION survival a write also waits for a quorum in the nearest other region. Reads at
the local replica (follower reads) and Redis (always local) wait nothing extra.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from scenarios import DATA_DIR
from scenarios.loader import load_model
from scenarios.topology import Topology
from server import steps


@dataclass(frozen=True)
class Emulation:
    region: str
    topology: Topology
    survival: str

    @classmethod
    def load(cls, region: str, survival: str | None = None) -> Emulation:
        topology = load_model(Topology, DATA_DIR / "topology.toml")
        if region not in topology.regions:
            raise ValueError(
                f"unknown REGION={region!r}: choose one of {', '.join(topology.regions)}"
            )
        goal = survival or topology.crdb.survival
        if goal not in ("zone", "region"):
            raise ValueError(f"unknown SURVIVAL={goal!r}: choose zone or region")
        return cls(region, topology, goal)

    def delay_ms(self, home: str | None, write: bool) -> float:
        """Extra wait for a database step on a row homed in `home` (None: a local read)."""
        ms = 0.0
        leaseholder = home or self.region
        if home is not None and home != self.region:
            ms += self.topology.rtt.between(self.region, home)
        if write and self.survival == "region":
            other = self.topology.nearest_other_region(leaseholder)
            ms += self.topology.rtt.between(leaseholder, other)
        return ms

    async def wait(self, home: str | None, write: bool) -> None:
        ms = self.delay_ms(home, write)
        if ms > 0:
            rec = steps.current()
            cpu0 = rec.cpu_clock()
            await asyncio.sleep(ms / 1000)
            # The loop's CPU meanwhile went to other requests: the step must not count it.
            rec.waited(ms, (rec.cpu_clock() - cpu0) * 1e3)
