"""The step list of every operation: which component does what, where, in which order.

The simulator executes these lists; the server performs the same steps and records them.
A step runs at a place relative to the request: `local` (the region whose edge took the
request), `home` (the user's home region, where its rows have their leaseholder),
`object` (wherever the Durable Object shard that the key hashes to lives) or `primary`
(the fixed region of a single-primary store, D1).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Component = Literal["edge", "redis", "crdb", "do", "kv", "d1"]
Place = Literal["local", "home", "object", "primary"]
CrdbKind = Literal["follower_read", "read", "write"]
ARCHITECTURES: tuple[str, ...] = ("hybrid", "legacy")

_COMPONENTS_OF: dict[str, frozenset[str]] = {
    "hybrid": frozenset({"edge", "redis", "crdb"}),
    "legacy": frozenset({"edge", "do", "kv", "d1"}),
}
_ALLOWED_PLACES: dict[str, frozenset[str]] = {
    "edge": frozenset({"local"}),
    "redis": frozenset({"local", "home"}),
    "kv": frozenset({"local"}),
    "do": frozenset({"object"}),
    "d1": frozenset({"primary"}),
}


class Step(BaseModel):
    """One thing a component does for a request."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    component: Component
    action: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_]*$")
    at: Place = "local"
    kind: CrdbKind | None = None
    object: str | None = None
    count: int = Field(default=1, ge=1, le=100)
    outcome: str | None = None
    when: str | None = Field(default=None, pattern=r"^[a-z_]+:(hit|miss)$")
    share: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")
    # What the caller does when the component cannot be reached: `fail` the request,
    # `skip` the step (a cache fill, a fail-open rate limiter), or treat a cache lookup as
    # a `miss`. Default: miss for a lookup with an outcome, fail otherwise.
    on_unavailable: Literal["fail", "skip", "miss"] | None = None
    fills: str | None = Field(default=None, pattern=r"^[a-z_]+$")
    redis_only_keeps_s: float | None = Field(default=None, ge=0)
    # The last step of a transaction that spans several database steps: the action of its
    # first step, where a transaction retried after a conflict starts again.
    retry_from: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")

    @model_validator(mode="after")
    def _coherent(self) -> Step:
        if self.on_unavailable == "miss" and self.outcome is None:
            raise ValueError("on_unavailable = 'miss' is only for a cache lookup with an outcome")
        if (self.fills is not None or self.redis_only_keeps_s is not None) and (
            self.component != "redis"
        ):
            raise ValueError("fills and redis_only_keeps_s are for redis steps only")
        if self.component == "crdb":
            if self.kind is None:
                raise ValueError("a crdb step needs kind = follower_read, read or write")
            expected = "local" if self.kind == "follower_read" else "home"
            if self.at != expected:
                raise ValueError(
                    f"a crdb {self.kind} runs at {expected!r} (follower reads at the nearest "
                    f"replica, reads and writes at the row's leaseholder), got at={self.at!r}"
                )
        else:
            if self.kind is not None:
                raise ValueError(f"kind is only for crdb steps, not {self.component}")
            allowed = _ALLOWED_PLACES[self.component]
            if self.at not in allowed:
                raise ValueError(
                    f"a {self.component} step runs at one of {sorted(allowed)}, got {self.at!r}"
                )
        if (self.component == "do") != (self.object is not None):
            raise ValueError("object (a Durable Object namespace) is required for do steps only")
        if self.outcome is not None and self.component not in ("redis", "kv"):
            raise ValueError("only cache lookups (redis, kv) can have an outcome")
        if self.retry_from is not None and self.component != "crdb":
            raise ValueError("retry_from ends a database transaction: crdb steps only")
        return self

    @property
    def unavailable_rule(self) -> str:
        if self.on_unavailable is not None:
            return self.on_unavailable
        return "miss" if self.outcome is not None else "fail"

    @property
    def label(self) -> str:
        return f"{self.component}.{self.action}"


class Operation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    description: str = Field(min_length=3)
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _branches_declared(self) -> Operation:
        seen: set[str] = set()
        for i, step in enumerate(self.steps):
            if step.when is not None:
                cache = step.when.split(":")[0]
                if cache not in seen:
                    raise ValueError(
                        f"steps[{i}] ({step.label}) has when={step.when!r} but no earlier step "
                        f"has outcome={cache!r}"
                    )
            if step.outcome is not None:
                seen.add(step.outcome)
            if step.retry_from is not None:
                first = self.transaction_start(i)
                if first is None:
                    raise ValueError(
                        f"steps[{i}] ({step.label}) has retry_from={step.retry_from!r} but no "
                        "earlier crdb step of this operation has that action"
                    )
        return self

    def transaction_start(self, i: int) -> int | None:
        """The index of the first step of the transaction that steps[i] ends (the nearest
        earlier crdb step whose action is its `retry_from`); None if there is none."""
        name = self.steps[i].retry_from
        for j in range(i - 1, -1, -1):
            if self.steps[j].component == "crdb" and self.steps[j].action == name:
                return j
        return None


class OperationCatalog(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    hybrid: dict[str, Operation]
    legacy: dict[str, Operation]

    @model_validator(mode="after")
    def _components_match_architecture(self) -> OperationCatalog:
        for arch in ARCHITECTURES:
            for name, op in self.of(arch).items():
                for i, step in enumerate(op.steps):
                    if step.component not in _COMPONENTS_OF[arch]:
                        raise ValueError(
                            f"{arch}.{name}.steps[{i}]: component {step.component!r} is not part "
                            f"of the {arch} architecture ({sorted(_COMPONENTS_OF[arch])})"
                        )
        return self

    def of(self, architecture: str) -> dict[str, Operation]:
        return self.hybrid if architecture == "hybrid" else self.legacy
