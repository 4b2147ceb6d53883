"""Latency and service-time distributions as they are written in scenario files.

Every distribution names its source: a figure without one is rejected at load time.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Source = Annotated[str, Field(min_length=3, description="where the figure comes from")]


class _Dist(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    source: Source


class Constant(_Dist):
    """A fixed duration: used where the source gives a single value and no spread."""

    dist: Literal["constant"]
    value_ms: float = Field(ge=0)

    @property
    def mean_ms(self) -> float:
        return self.value_ms

    @property
    def median_ms(self) -> float:
        return self.value_ms


class Uniform(_Dist):
    """Uniform on [low, high]: the maximum-entropy choice when a source states only a range."""

    dist: Literal["uniform"]
    low_ms: float = Field(ge=0)
    high_ms: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high_ms <= self.low_ms:
            raise ValueError(
                f"high_ms ({self.high_ms}) must be greater than low_ms ({self.low_ms})"
            )
        return self

    @property
    def mean_ms(self) -> float:
        return (self.low_ms + self.high_ms) / 2

    @property
    def median_ms(self) -> float:
        return self.mean_ms


class Exponential(_Dist):
    """Exponential with the given mean: memoryless service, the M in M/M/c."""

    dist: Literal["exponential"]
    mean_ms: float = Field(gt=0)

    @property
    def median_ms(self) -> float:
        return self.mean_ms * 0.6931471805599453


class Lognormal(_Dist):
    """Lognormal given its median and the sigma of the underlying normal, moved right by
    `shift_ms` (a floor no sample goes below: fitted service times have one)."""

    dist: Literal["lognormal"]
    median_ms: float = Field(gt=0)
    sigma: float = Field(gt=0, le=3)
    shift_ms: float = Field(default=0.0, ge=0)

    @property
    def mean_ms(self) -> float:
        import math

        return self.shift_ms + self.median_ms * math.exp(self.sigma**2 / 2)


class Empirical(_Dist):
    """Measured quantiles at equal probability steps (0, 1/k, ..., 1), sampled by inverse
    transform with linear interpolation between them: what calibration writes when no
    simple shape fits the samples."""

    dist: Literal["empirical"]
    quantiles_ms: tuple[float, ...] = Field(min_length=2, max_length=1001)

    @model_validator(mode="after")
    def _ordered(self) -> Empirical:
        q = self.quantiles_ms
        if q[0] < 0 or any(b < a for a, b in itertools.pairwise(q)):
            raise ValueError("quantiles_ms must be >= 0 and non-decreasing")
        return self

    @property
    def mean_ms(self) -> float:
        q = self.quantiles_ms
        return sum((a + b) / 2 for a, b in itertools.pairwise(q)) / (len(q) - 1)

    @property
    def median_ms(self) -> float:
        q, k = self.quantiles_ms, len(self.quantiles_ms) - 1
        lo = int(k / 2)
        frac = k / 2 - lo
        return q[lo] if frac == 0 else q[lo] + frac * (q[lo + 1] - q[lo])


Dist = Annotated[
    Constant | Uniform | Exponential | Lognormal | Empirical, Field(discriminator="dist")
]


class Figure(BaseModel):
    """A plain number with its source (a share, a rate, a count)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    value: float
    source: Source
