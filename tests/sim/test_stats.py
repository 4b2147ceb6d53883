"""Confidence intervals: coverage of the order-statistic interval, batch means, switching."""

from __future__ import annotations

import numpy as np
import pytest

from sim.stats import (
    batch_means_interval,
    min_batch_samples,
    order_statistic_interval,
    percentile_interval,
    slow_spells,
    slowest_tenth_steps,
    spell_shares,
)


def test_batch_means_interval_is_student_t() -> None:
    lo, hi = batch_means_interval([1.0, 2.0, 3.0, 4.0])
    # mean 2.5, sd 1.291, t(3, 0.975) = 3.182 -> half width 2.054
    assert (lo + hi) / 2 == pytest.approx(2.5)
    assert (hi - lo) / 2 == pytest.approx(3.182 * 1.2910 / 2, rel=1e-3)
    with pytest.raises(ValueError, match="at least two"):
        batch_means_interval([1.0])


def test_order_statistic_interval_covers_the_true_quantile() -> None:
    rng = np.random.default_rng(3)
    true_p99 = -np.log(0.01)  # exponential(1)
    covered = 0
    for _ in range(400):
        sample = np.sort(rng.exponential(1.0, 2000))
        lo, hi = order_statistic_interval(sample, 99)
        covered += lo <= true_p99 <= hi
    assert 0.92 <= covered / 400 <= 0.99


def test_interval_method_depends_on_samples_per_batch() -> None:
    rng = np.random.default_rng(4)
    big = [rng.exponential(1.0, 5000) for _ in range(10)]
    pooled = np.sort(np.concatenate(big))
    assert percentile_interval(big, pooled, 99).method == "batch_means"  # type: ignore[union-attr]
    small = [rng.exponential(1.0, 50) for _ in range(10)]
    pooled = np.sort(np.concatenate(small))
    ci = percentile_interval(small, pooled, 99)
    assert ci is not None and ci.method == "order_statistic"
    assert ci.low <= np.percentile(pooled, 99) <= ci.high
    assert percentile_interval([np.array([1.0])], np.array([1.0]), 50) is None
    assert min_batch_samples(50) == 40 and min_batch_samples(99) == 2000


def test_slow_spells_find_requests_that_slowed_together() -> None:
    # Ten spells of 50 at 2 ms; in spells 3 and 7 every request took 20 ms, and each holds
    # one of the three logins. One lone 100 ms request elsewhere does not make a spell slow.
    lat = np.full(520, 2.0)
    lat[150:200] = 20.0
    lat[350:400] = 20.0
    lat[10] = 100.0
    logins = np.zeros(520, dtype=bool)
    logins[[160, 360, 20]] = True
    counts = slow_spells(lat, logins)
    assert counts == {
        "spells": 10.0, "slow": 2.0, "requests": 500.0, "marked": 3.0,
        "requests_in_slow": 100.0, "marked_in_slow": 2.0,
    }  # fmt: skip
    shares = spell_shares(counts)
    assert shares["slow_share"] == 0.2
    assert shares["marked_share"] == 0.006 and shares["marked_share_in_slow"] == 0.02
    # Spells slower by less than four times the run's median are not slow.
    lat[150:200] = lat[350:400] = 7.0
    assert slow_spells(lat, logins)["slow"] == 0
    # Fewer requests than a spell: nothing to say.
    short = slow_spells(lat[:49], logins[:49])
    assert short["spells"] == 0 and spell_shares(short)["slow_share"] is None


def test_the_slowest_tenths_steps_are_summed_over_those_requests_only() -> None:
    # 100 requests: 90 of 2 ms (1 in the store, 1 elsewhere); 10 of 20 ms whose store
    # call took 15 ms. The slowest tenth is those ten, and their store time shows it.
    fast = [(2.0, [("redis.get", 1.0), ("app.untraced", 1.0)])] * 90
    slow = [(20.0, [("redis.get", 15.0), ("app.untraced", 5.0)])] * 10
    n, sums = slowest_tenth_steps(fast + slow)
    assert n == 10
    assert sums == {"redis.get": 150.0, "app.untraced": 50.0}
    assert slowest_tenth_steps([]) == (0, {})
    # Ties at the cut are all in: every request alike is the slowest tenth of itself.
    n, sums = slowest_tenth_steps(fast)
    assert n == 90 and sums["redis.get"] == 90.0
