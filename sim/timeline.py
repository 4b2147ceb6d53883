"""Per-second accounting of a failure scenario, and the numbers read from it.

Every request is counted once, in the second it was offered (its arrival time), by the
region whose edge took it and its operation: completed with its latency in a log-scaled
histogram (2 % wide bins), or failed with an error kind. The model also adds cache
lookups and hits, database busy time and component visits per second, from which the
timeline rows, availability, the worst one-minute p99, recovery times and the extra load
of a failure are computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from scenarios.workload import OPERATIONS

ERROR_KINDS: tuple[str, ...] = (
    "timeout",
    "redis_unavailable",
    "crdb_unavailable",
    "partition",
    "backend_unreachable",
)
# Component visits counted per second, for the cost of a failure's extra load.
VISIT_KINDS: tuple[str, ...] = ("crdb_read", "crdb_write", "redis", "do", "d1_read", "d1_write")

_LOW_MS = 0.01
_BINS_PER_E = 50  # bin width 2 %
_BINS = int(math.log(1e7 / _LOW_MS) * _BINS_PER_E) + 1  # up to 10,000 s
_LOG_LOW = math.log(_LOW_MS)


def _bin(ms: float) -> int:
    if ms <= _LOW_MS:
        return 0
    return min(int((math.log(ms) - _LOG_LOW) * _BINS_PER_E), _BINS - 1)


def _bin_value(index: np.ndarray | int) -> Any:
    return np.exp(_LOG_LOW + (np.asarray(index) + 0.5) / _BINS_PER_E)


def percentile_of(hist: np.ndarray, q: float) -> float | None:
    """The q-th percentile (0-100) of a histogram over the bins, or None when empty."""
    total = int(hist.sum())
    if total == 0:
        return None
    rank = max(math.ceil(q / 100 * total), 1)
    index = int(np.searchsorted(np.cumsum(hist), rank))
    return float(_bin_value(index))


class Timeline:
    """Counters per (second, region, operation) for one replication."""

    def __init__(self, seconds: int, regions: tuple[str, ...] | list[str]) -> None:
        self.seconds = seconds
        self.regions = tuple(regions)
        self._region_index = {r: i for i, r in enumerate(self.regions)}
        shape = (seconds, len(self.regions), len(OPERATIONS))
        self.offered = np.zeros(shape, dtype=np.int64)
        self.completed = np.zeros(shape, dtype=np.int64)
        self.errors = np.zeros((*shape, len(ERROR_KINDS)), dtype=np.int64)
        self.hist = np.zeros((*shape, _BINS), dtype=np.int32)
        self.lookups = np.zeros((seconds, len(self.regions)), dtype=np.int64)
        self.hits = np.zeros((seconds, len(self.regions)), dtype=np.int64)
        self.db_busy_ms = np.zeros((seconds, len(self.regions)))
        self.db_capacity_ms = np.zeros((seconds, len(self.regions)))
        self.visits = np.zeros((seconds, len(VISIT_KINDS)), dtype=np.int64)
        self._kind_index = {k: i for i, k in enumerate(ERROR_KINDS)}
        self._visit_index = {k: i for i, k in enumerate(VISIT_KINDS)}
        self._cell_ro: list[tuple[int, int]] = []

    def bind_cells(self, cells: list[tuple[str, str, str]]) -> None:
        """Map the model's cell indices (operation, locality, region) to array indices."""
        ops = {o: i for i, o in enumerate(OPERATIONS)}
        self._cell_ro = [(self._region_index[r], ops[o]) for o, _, r in cells]

    def _second(self, t_ms: float) -> int:
        return min(int(t_ms // 1000), self.seconds - 1)

    def ok(self, t0: float, cell: int, latency_ms: float) -> None:
        s = self._second(t0)
        r, o = self._cell_ro[cell]
        self.offered[s, r, o] += 1
        self.completed[s, r, o] += 1
        self.hist[s, r, o, _bin(latency_ms)] += 1

    def error(self, t0: float, cell: int, kind: str) -> None:
        s = self._second(t0)
        r, o = self._cell_ro[cell]
        self.offered[s, r, o] += 1
        self.errors[s, r, o, self._kind_index[kind]] += 1

    def lookup(self, t_ms: float, region: str, hit: bool) -> None:
        s, r = self._second(t_ms), self._region_index[region]
        self.lookups[s, r] += 1
        if hit:
            self.hits[s, r] += 1

    def visit(self, t_ms: float, kind: str) -> None:
        self.visits[self._second(t_ms), self._visit_index[kind]] += 1

    ARRAYS = (
        "offered",
        "completed",
        "errors",
        "hist",
        "lookups",
        "hits",
        "db_busy_ms",
        "db_capacity_ms",
        "visits",
    )

    def merge(self, other: Timeline) -> None:
        for name in self.ARRAYS:
            getattr(self, name).__iadd__(getattr(other, name))

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.ARRAYS}

    @classmethod
    def from_arrays(
        cls, seconds: int, regions: tuple[str, ...], arrays: dict[str, np.ndarray]
    ) -> Timeline:
        tl = cls(seconds, regions)
        for name, value in arrays.items():
            setattr(tl, name, value)
        return tl


# -- reading a timeline ---------------------------------------------------------------


CSV_FIELDS = (
    "t_s",
    "region",
    "operation",
    "offered",
    "completed",
    "errors",
    *(f"errors_{k}" for k in ERROR_KINDS),
    "availability",
    "p50_ms",
    "p99_ms",
    "cache_hit_rate",
    "db_utilisation",
)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def timeline_rows(tl: Timeline) -> list[dict[str, Any]]:
    """One row per second and (region, operation), with `all` rows aggregating either."""
    rows: list[dict[str, Any]] = []
    n_reg = len(tl.regions)
    for s in range(tl.seconds):
        for r in [*range(n_reg), None]:
            hit_rate = util = None
            sel_r = slice(None) if r is None else slice(r, r + 1)
            lookups = int(tl.lookups[s, sel_r].sum())
            if lookups:
                hit_rate = int(tl.hits[s, sel_r].sum()) / lookups
            cap = float(tl.db_capacity_ms[s, sel_r].sum())
            if cap > 0:
                util = float(tl.db_busy_ms[s, sel_r].sum()) / cap
            for o in [*range(len(OPERATIONS)), None]:
                sel_o = slice(None) if o is None else slice(o, o + 1)
                offered = int(tl.offered[s, sel_r, sel_o].sum())
                completed = int(tl.completed[s, sel_r, sel_o].sum())
                errs = tl.errors[s, sel_r, sel_o].sum(axis=(0, 1))
                hist = tl.hist[s, sel_r, sel_o].sum(axis=(0, 1))
                row: dict[str, Any] = {
                    "t_s": s,
                    "region": "all" if r is None else tl.regions[r],
                    "operation": "all" if o is None else OPERATIONS[o],
                    "offered": offered,
                    "completed": completed,
                    "errors": int(errs.sum()),
                    "availability": _fmt(completed / offered if offered else None, 5),
                    "p50_ms": _fmt(percentile_of(hist, 50)),
                    "p99_ms": _fmt(percentile_of(hist, 99)),
                    "cache_hit_rate": _fmt(hit_rate, 4),
                    "db_utilisation": _fmt(util, 4),
                }
                for k, kind in enumerate(ERROR_KINDS):
                    row[f"errors_{kind}"] = int(errs[k])
                rows.append(row)
    return rows


@dataclass(frozen=True)
class Totals:
    offered: int
    completed: int
    errors_by_kind: dict[str, int]

    @property
    def failed(self) -> int:
        return sum(self.errors_by_kind.values())

    @property
    def availability(self) -> float | None:
        return self.completed / self.offered if self.offered else None


def totals(tl: Timeline) -> Totals:
    errs = tl.errors.sum(axis=(0, 1, 2))
    return Totals(
        int(tl.offered.sum()),
        int(tl.completed.sum()),
        {k: int(errs[i]) for i, k in enumerate(ERROR_KINDS) if errs[i]},
    )


def per_second(tl: Timeline) -> dict[str, np.ndarray]:
    """All regions and operations together: offered, errors, p99 and hit rate per second."""
    hist = tl.hist.sum(axis=(1, 2))
    p99 = np.array([percentile_of(h, 99) or np.nan for h in hist])
    lookups = tl.lookups.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        hit_rate = np.where(lookups > 0, tl.hits.sum(axis=1) / np.maximum(lookups, 1), np.nan)
    cap = tl.db_capacity_ms.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        db = np.where(cap > 0, tl.db_busy_ms.sum(axis=1) / np.maximum(cap, 1e-9), np.nan)
        busiest = np.where(
            tl.db_capacity_ms > 0, tl.db_busy_ms / np.maximum(tl.db_capacity_ms, 1e-9), np.nan
        )
    return {
        "offered": tl.offered.sum(axis=(1, 2)),
        "errors": tl.errors.sum(axis=(1, 2, 3)),
        "p99_ms": p99,
        "hit_rate": hit_rate,
        "db_utilisation": db,
        "db_utilisation_busiest": np.nanmax(np.where(np.isnan(busiest), -1, busiest), axis=1),
    }


def worst_minute_p99(tl: Timeline) -> tuple[float | None, int, int]:
    """The highest p99 over any 60-second window (the whole run if shorter): value, start, end."""
    hist = tl.hist.sum(axis=(1, 2))
    window = min(60, tl.seconds)
    best: tuple[float | None, int, int] = (None, 0, window)
    running = hist[:window].sum(axis=0)
    for start in range(tl.seconds - window + 1):
        if start > 0:
            running = running - hist[start - 1] + hist[start + window - 1]
        value = percentile_of(running, 99)
        if value is not None and (best[0] is None or value > best[0]):
            best = (value, start, start + window)
    return best


# A second is impaired when more than IMPAIRED_ERRORS of its requests failed, when its p99
# is more than IMPAIRED_P99 times the p99 of the seconds before the first failure, or when
# any of its requests took more than IMPAIRED_MAX times the slowest request of those
# seconds (a few requests stalled behind a failure, too few to move the p99).
IMPAIRED_ERRORS = 0.001
IMPAIRED_P99 = 1.5
IMPAIRED_MAX = 2.0


def _max_of(hist: np.ndarray) -> float | None:
    nonzero = np.nonzero(hist)[0]
    return float(_bin_value(int(nonzero[-1]) + 1)) if len(nonzero) else None


def impairment(tl: Timeline, baseline_end_s: int) -> dict[str, Any]:
    """Which seconds are impaired, judged against the seconds before `baseline_end_s`."""
    ps = per_second(tl)
    hist = tl.hist.sum(axis=(1, 2))
    base_hist = hist[1:baseline_end_s].sum(axis=0)
    base_p99 = percentile_of(base_hist, 99)
    base_max = _max_of(base_hist)
    with np.errstate(invalid="ignore", divide="ignore"):
        err_share = np.where(ps["offered"] > 0, ps["errors"] / np.maximum(ps["offered"], 1), 0.0)
    impaired = err_share > IMPAIRED_ERRORS
    if base_p99 is not None and base_max is not None:
        impaired |= np.nan_to_num(ps["p99_ms"], nan=0.0) > IMPAIRED_P99 * base_p99
        maxima = np.array([_max_of(h) or 0.0 for h in hist])
        impaired |= maxima > IMPAIRED_MAX * base_max
    return {
        "baseline_p99_ms": base_p99,
        "baseline_max_ms": base_max,
        "impaired": impaired,
        "error_share": err_share,
    }


def recovery_after(impaired: np.ndarray, start_s: int, end_s: int | None = None) -> int | None:
    """Seconds from `start_s` until the first second from which no second is impaired.

    Only seconds before `end_s` (the next failure, or the end) are looked at; None when the
    system is still impaired at the last of them.
    """
    stop = len(impaired) if end_s is None else min(end_s, len(impaired))
    window = impaired[start_s:stop]
    if not window.any():
        return 0
    last = int(np.nonzero(window)[0][-1])
    if start_s + last + 1 >= stop:
        return None
    return last + 1
