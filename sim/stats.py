"""Percentiles with 95 % confidence intervals.

Point estimates pool every post-warm-up sample. Intervals come from batch means: each
replication's measured period is cut into time batches, the percentile is computed per
batch, and the spread of those batch values gives a Student-t interval. Where a cell has
too few samples per batch for that percentile, the interval is the distribution-free
order-statistic one on the pooled samples (exact for independent samples).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as st

PERCENTILES: tuple[float, ...] = (50, 90, 95, 99, 99.9)


def min_batch_samples(percentile: float) -> int:
    """Samples a batch needs before its own percentile estimate is worth averaging."""
    return math.ceil(20 / (1 - percentile / 100))


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    method: str


def batch_means_interval(
    batch_values: Sequence[float], confidence: float = 0.95
) -> tuple[float, float]:
    """Student-t interval for the mean of independent batch statistics."""
    values = np.asarray(batch_values, dtype=float)
    k = len(values)
    if k < 2:
        raise ValueError("batch means need at least two batches")
    mean = float(values.mean())
    half = float(st.t.ppf((1 + confidence) / 2, k - 1) * values.std(ddof=1) / math.sqrt(k))
    return mean - half, mean + half


def order_statistic_interval(
    sorted_samples: np.ndarray, percentile: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Distribution-free interval for a quantile from the binomial law of its rank."""
    n = len(sorted_samples)
    p = percentile / 100
    lo_rank = int(st.binom.ppf((1 - confidence) / 2, n, p))
    hi_rank = int(st.binom.ppf((1 + confidence) / 2, n, p)) + 1
    lo_rank = min(max(lo_rank, 1), n)
    hi_rank = min(max(hi_rank, 1), n)
    return float(sorted_samples[lo_rank - 1]), float(sorted_samples[hi_rank - 1])


def percentile_interval(
    batches: Sequence[np.ndarray], pooled_sorted: np.ndarray, percentile: float
) -> Interval | None:
    """95 % interval for one percentile of a cell, by batch means when the data allow."""
    if len(pooled_sorted) < 2:
        return None
    need = min_batch_samples(percentile)
    if len(batches) >= 2 and all(len(b) >= need for b in batches):
        values = [float(np.percentile(b, percentile)) for b in batches]
        lo, hi = batch_means_interval(values)
        return Interval(lo, hi, "batch_means")
    lo, hi = order_statistic_interval(pooled_sorted, percentile)
    return Interval(lo, hi, "order_statistic")


SPELL = 50  # requests in a row that make one spell
SLOW_SPELL_FACTOR = 4.0  # a slow spell's median latency over this many times the run's


def slow_spells(
    latencies: np.ndarray, marked: np.ndarray, spell: int = SPELL, factor: float = SLOW_SPELL_FACTOR
) -> dict[str, float]:
    """Slow spells in a run's latencies, in the order the requests completed: cut into
    spells of `spell` requests in a row, a spell is slow when its median exceeds `factor`
    times the median of the whole run (every request in it slowed together, as when the
    machine stalls, not one unlucky request). Counts, so that runs add up: the spells and
    slow ones, and the requests and `marked` requests (say, the logins) overall and in the
    slow spells, to tell whether the marked kind comes with the slow spells."""
    lat = np.asarray(latencies, dtype=float)
    mark = np.asarray(marked, dtype=bool)
    n = len(lat) // spell
    out = {
        "spells": float(n), "slow": 0.0, "requests": float(n * spell), "marked": 0.0,
        "requests_in_slow": 0.0, "marked_in_slow": 0.0,
    }  # fmt: skip
    if n == 0:
        return out
    lat, mark = lat[: n * spell].reshape(n, spell), mark[: n * spell].reshape(n, spell)
    slow = np.median(lat, axis=1) > factor * float(np.median(lat))
    out["slow"] = float(slow.sum())
    out["marked"] = float(mark.sum())
    out["requests_in_slow"] = float(slow.sum() * spell)
    out["marked_in_slow"] = float(mark[slow].sum())
    return out


def spell_shares(counts: dict[str, float]) -> dict[str, float | None]:
    """`slow_spells` counts (summed over runs) as shares: of the spells, the slow ones; of
    the requests overall and in the slow spells, the marked ones."""

    def share(a: str, b: str) -> float | None:
        return round(counts[a] / counts[b], 4) if counts.get(b) else None

    return {
        "spells": counts.get("spells", 0.0),
        "slow_share": share("slow", "spells"),
        "marked_share": share("marked", "requests"),
        "marked_share_in_slow": share("marked_in_slow", "requests_in_slow"),
    }


def shares(counts: dict[str, int]) -> dict[str, float]:
    """Each key's share of the counts, to 4 places, largest first (empty for none)."""
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return {k: round(n / total, 4) for k, n in ranked} if total else {}


def slowest_tenth_steps(
    rows: Sequence[tuple[float, Sequence[tuple[str, float]]]],
) -> tuple[int, dict[str, float]]:
    """The requests at or above the 90th percentile of `rows`' latencies (each row: a
    request's latency and its (step, ms) pairs): how many, and their ms summed per step.
    Where a p90 is off, these steps, not the means over every request, say which step
    makes the difference."""
    if not rows:
        return 0, {}
    cut = float(np.percentile([latency for latency, _ in rows], 90))
    count, sums = 0, dict[str, float]()
    for latency, steps in rows:
        if latency >= cut:
            count += 1
            for step, ms in steps:
                sums[step] = sums.get(step, 0.0) + ms
    return count, sums
