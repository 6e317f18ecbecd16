"""Non-finite loss values (NaN, +inf, -inf)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrdoctor.detect._curve import Curve, fmt_step
from lrdoctor.finding import Finding


@dataclass(frozen=True)
class NonFinite:
    """Flag the first non-finite loss and count them. No parameters: any one is decisive."""

    def __call__(self, curve: Curve) -> list[Finding]:
        v = curve.values
        bad = ~np.isfinite(v)
        if not bad.any():
            return []
        first = int(np.argmax(bad))
        count = int(bad.sum())
        kinds = "NaN" if np.isnan(v[first]) else ("inf" if v[first] > 0 else "-inf")
        end = None if bad[-1] else curve.steps[len(bad) - 1 - int(np.argmax(bad[::-1]))]
        return [Finding(
            "nonfinite", curve.steps[first], end, 1.0,
            f"loss becomes {kinds} at step {fmt_step(curve.steps[first])} "
            f"({count} of {len(v)} points non-finite)",
            {"first_index": first, "count": count})]
