"""Small statistics for the comparison tables: mean ± sample std over seeds, and a paired interval for
the difference of two methods fine-tuned with the same seeds (a paired t interval, Student's t from scipy).

Pairs are matched by seed: run ``s`` of a method against run ``s`` of the baseline, so the noise that both
share (same fine-tuning seed, same data order) cancels and the interval shows only what differs.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

CONFIDENCE = 0.95


def mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None for fewer than 2 values) of the non-missing values."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return None, None
    m = sum(vals) / len(vals)
    if len(vals) == 1:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))


@dataclass(frozen=True)
class PairedDiff:
    """Mean of the per-seed differences ``a - b``, its two-sided 95% t interval and p-value (paired t-test)."""
    mean: float
    n: int  # number of seed pairs
    half_width: float | None  # None with a single pair: no interval
    p_value: float | None  # None with a single pair or identical differences

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width


def paired_diff(a: Mapping[int, float | None], b: Mapping[int, float | None],
                confidence: float = CONFIDENCE) -> PairedDiff | None:
    """The paired difference over the seeds both ``a`` and ``b`` have values for (seed -> value); None when
    they share none."""
    from scipy import stats

    d = [a[s] - b[s] for s in sorted(set(a) & set(b))
         if a[s] is not None and b[s] is not None and not math.isnan(a[s]) and not math.isnan(b[s])]
    if not d:
        return None
    m, s = mean_std(d)
    if s is None:
        return PairedDiff(m, 1, None, None)
    t = float(stats.t.ppf(0.5 + confidence / 2, len(d) - 1))
    half = t * s / math.sqrt(len(d))
    p = float(2 * stats.t.sf(abs(m) / (s / math.sqrt(len(d))), len(d) - 1)) if s > 0 else None
    return PairedDiff(m, len(d), half, p)
