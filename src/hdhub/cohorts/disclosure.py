"""Disclosure control of patient counts, as i2b2 does it for users without data access.

A count shown to such a caller gets Gaussian noise (sigma ``cohorts.noise_sigma``, 1.3 by
default) and any count below the threshold (10) is shown as "< 10"; a noisy count is never
shown below the threshold either. The noise is not drawn afresh at each request: it is a
keyed function of the true count and of what is counted (the persons, a rule's attrition, a
breakdown cell), so asking again — or asking a rephrased question with the same answer —
shows the same number, and averaging repeated answers learns nothing. On top of that the
same question (same logic) is rate-limited per user (see ``hdhub.cohorts.service``).
"""

from __future__ import annotations

import hashlib
import hmac
import random
from dataclasses import dataclass

Shown = int | str  # a number, or "< threshold"


@dataclass(frozen=True)
class Obfuscator:
    secret: bytes
    threshold: int = 10
    sigma: float = 1.3

    def noise(self, true_count: int, label: str) -> int:
        digest = hmac.new(self.secret, f"hdhub-cohort-noise|{label}|{true_count}".encode(), hashlib.sha256)
        return round(random.Random(digest.digest()).gauss(0.0, self.sigma))

    def show(self, true_count: int, label: str) -> Shown:
        if true_count < self.threshold:
            return f"< {self.threshold}"
        return max(self.threshold, true_count + self.noise(true_count, label))
