"""Fast streams of samples from scenario distributions.

A stream is a zero-argument callable returning the next sample in ms. It draws blocks
from the run's one numpy Generator and hands out Python floats through a generator's
`__next__`, so the model's hot path neither calls numpy per sample nor runs Python code
per sample. Streams refill in event order, so a seeded run is reproducible bit for bit.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np

from scenarios.distributions import Constant, Empirical, Exponential, Lognormal, Uniform

BLOCK = 8192
AnyDist = Constant | Uniform | Exponential | Lognormal | Empirical
Stream = Callable[[], float]


def _blocks(draw: Callable[[int], np.ndarray]) -> Iterator[float]:
    while True:
        yield from draw(BLOCK).tolist()


def constant_value(stream: Stream) -> float | None:
    """The value of a constant stream, None for a random one."""
    owner = getattr(stream, "__self__", None)
    if isinstance(owner, itertools.repeat):
        return float(stream())
    return None


def stream_of(dist: AnyDist, rng: np.random.Generator, scale: float = 1.0) -> Stream:
    """A stream of samples of `dist`, each multiplied by `scale`."""
    if isinstance(dist, Constant):
        return itertools.repeat(dist.value_ms * scale).__next__
    draw: Callable[[int], np.ndarray]
    if isinstance(dist, Uniform):
        lo, hi = dist.low_ms, dist.high_ms
        draw = lambda n: rng.uniform(lo, hi, n)  # noqa: E731
    elif isinstance(dist, Exponential):
        mean = dist.mean_ms
        draw = lambda n: rng.exponential(mean, n)  # noqa: E731
    elif isinstance(dist, Empirical):
        q = np.array(dist.quantiles_ms)
        p = np.linspace(0.0, 1.0, len(q))
        draw = lambda n: np.interp(rng.random(n), p, q)  # noqa: E731
    else:
        mu, sigma, shift = float(np.log(dist.median_ms)), dist.sigma, dist.shift_ms
        draw = lambda n: shift + rng.lognormal(mu, sigma, n)  # noqa: E731
    if scale != 1.0:
        unscaled = draw
        draw = lambda n: scale * unscaled(n)  # noqa: E731
    return _blocks(draw).__next__


def uniform01(rng: np.random.Generator) -> Stream:
    """U(0, 1) draws for routing and branch decisions."""
    return _blocks(rng.random).__next__
