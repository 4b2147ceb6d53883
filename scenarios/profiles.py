"""Latency profiles: how long each step takes apart from queueing.

`network = "layer_figures"` takes a component's round trip from the profile itself, one
figure for the same region and one for a cross-region call (the seed's own figures).
`network = "rtt"` builds it from physics: the intra-region round trip, plus the topology's
RTT matrix and jitter when the component sits in another region; `access` then adds a
fixed cost on top where a component has one (a Durable Object's own round trip).
`write_quorum = "survival"` makes CockroachDB writes wait for a Raft quorum as the
topology's survival goal places it; `"included"` means the figure already covers it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from scenarios.distributions import Dist


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AccessFigures(_Frozen):
    same_region: Dist
    cross_region: Dist | None = None


class Profile(_Frozen):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    description: str = Field(min_length=3)
    network: Literal["layer_figures", "rtt"]
    write_quorum: Literal["included", "survival"]
    edge: dict[str, Dist]
    access: dict[str, AccessFigures] = Field(default_factory=dict)
    client_cpu: dict[str, Dist] = Field(default_factory=dict)
