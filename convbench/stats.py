"""Order statistics of timing samples: median, IQR and a distribution-free CI of the median."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

IQR_WARN = 0.1  # as torch.utils.benchmark: IQR/median above this is worth a warning


def median_ci_ranks(n: int, z: float = 1.96) -> tuple[int, int]:
    """0-based ranks (lo, hi) of the order statistics bounding a ~95 % CI of the median.

    Binomial(n, 1/2) normal approximation: ranks n/2 -/+ z*sqrt(n)/2, clipped to [0, n-1].
    """
    half = z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half))
    hi = min(n - 1, math.ceil(n / 2 + half) - 1)
    return lo, hi


@dataclass(frozen=True)
class Summary:
    n_samples: int
    median_ms: float
    q1_ms: float
    q3_ms: float
    ci_low_ms: float
    ci_high_ms: float

    @property
    def rel_ci(self) -> float:
        """Half-width of the median's CI relative to the median."""
        return (self.ci_high_ms - self.ci_low_ms) / 2 / self.median_ms if self.median_ms > 0 else math.inf

    @property
    def iqr_rel(self) -> float:
        return (self.q3_ms - self.q1_ms) / self.median_ms if self.median_ms > 0 else math.inf


def summarize(samples_ms) -> Summary:
    a = np.sort(np.asarray(samples_ms, dtype=float))
    n = len(a)
    if n == 0:
        raise ValueError("no samples")
    lo, hi = median_ci_ranks(n)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return Summary(n, float(med), float(q1), float(q3), float(a[lo]), float(a[hi]))
