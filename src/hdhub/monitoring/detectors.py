"""Anomaly detectors: drift from the patient's own normal, and irregular-rhythm screening.

**Drift** (``drift``): a robust z-score against the patient's own recent values of the same
code — median and median absolute deviation (MAD) of the last 30 days (the latest 200
values at most), at least 20 values —
``z = 0.6745 (x - median) / MAD``; |z| ≥ 4 raises a low-severity alert. Robust statistics,
so the outliers themselves do not move the baseline, and per patient, so a marathon runner's
resting rate of 45 /min is nobody's alarm.

**Irregular rhythm** (``irregular_rhythm``): atrial-fibrillation screening on a series of
R-R intervals, after Dash et al., Ann Biomed Eng 2009 (37:1701): with the 8 largest and 8
smallest intervals set aside,

- normalised RMSSD: RMSSD / mean R-R > 0.1 (beat-to-beat variability),
- Shannon entropy of the intervals in 16 equal bins, normalised by log(1/16): > 0.7 (no
  dominant rhythm),
- turning-point ratio in the 95 % band of a random series (0.54-0.77): the variability is
  random, not a regular pattern.

All three must hold. It screens; a clinician confirms on an ECG. ``benchmarks/af_screening.py``
measures sensitivity and specificity on labelled synthetic series.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

DRIFT_Z = 4.0
DRIFT_MIN_VALUES = 20
DRIFT_DAYS = 30
DRIFT_BASELINE = 200  # the most recent values of those days
AF_MIN_BEATS = 32
AF_TRIM = 8


def robust_z(value: float, baseline: Sequence[float]) -> float | None:
    """The robust z-score of ``value``, or None without enough baseline or spread."""
    if len(baseline) < DRIFT_MIN_VALUES:
        return None
    median = statistics.median(baseline)
    mad = statistics.median(abs(b - median) for b in baseline)
    if mad == 0:
        return None
    return 0.6745 * (value - median) / mad


@dataclass(frozen=True)
class RhythmScreen:
    nrmssd: float
    entropy: float
    tpr: float
    irregular: bool


def screen_rr(intervals: Sequence[float]) -> RhythmScreen | None:
    """Dash et al.'s three statistics on one R-R series (ms), or None when too short."""
    if len(intervals) < AF_MIN_BEATS:
        return None
    ordered = sorted(intervals)
    low, high = ordered[AF_TRIM], ordered[-AF_TRIM - 1]
    kept = [x for x in intervals if low <= x <= high]
    if len(kept) < AF_MIN_BEATS // 2:
        return None
    mean = sum(kept) / len(kept)
    diffs = [b - a for a, b in itertools.pairwise(kept)]
    rmssd = math.sqrt(sum(d * d for d in diffs) / len(diffs))
    nrmssd = rmssd / mean
    bins = 16
    span = (high - low) or 1.0
    counts = [0] * bins
    for x in kept:
        counts[min(bins - 1, int((x - low) / span * bins))] += 1
    entropy = -sum((c / len(kept)) * math.log(c / len(kept)) for c in counts if c) / math.log(bins)
    turning = sum(
        1
        for a, b, c in zip(intervals, intervals[1:], intervals[2:], strict=False)
        if (b > a and b > c) or (b < a and b < c)
    )
    tpr = turning / max(1, len(intervals) - 2)
    irregular = nrmssd > 0.1 and entropy > 0.7 and 0.54 <= tpr <= 0.77
    return RhythmScreen(nrmssd, entropy, tpr, irregular)
