"""Load shapes for Locust's web UI (`make locust`), chosen next to a user class.

They set how many users run over time, which is what drives a closed-loop test. An
open-loop test's rate comes from its schedule (QPS), so with OpenLoopUser a shape only
sets how many senders there are.
"""

from __future__ import annotations

from locust import LoadTestShape


class StepShape(LoadTestShape):
    """Ten more users every 10 s, up to 100, for 2 minutes: where does latency bend?"""

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        if t > 120:
            return None
        return min(100, 10 * (int(t // 10) + 1)), 10.0


class SpikeShape(LoadTestShape):
    """20 users, 2.5 times as many from 30 s to 60 s (the seed's peak over average), then
    20 again until 90 s."""

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        if t > 90:
            return None
        return (50 if 30 <= t < 60 else 20), 50.0
