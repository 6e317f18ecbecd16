"""Non-finite loss values (NaN, +inf, -inf)."""
from __future__ import annotations

from dataclasses import dataclass

from lrdoctor.detect._curve import Curve, fmt_step
from lrdoctor.finding import Finding


@dataclass(frozen=True)
class NonFinite:
    """Flag the first non-finite loss and count them. No parameters: any one is decisive."""

    def __call__(self, curve: Curve) -> list[Finding]:
        s = curve.summary
        if not s.bad_count:
            return []
        first, count = s.bad_first_step, s.bad_count
        end = None if s.last_is_bad else s.bad_last_step
        return [Finding(
            "nonfinite", first, end, 1.0,
            f"loss becomes {s.bad_kind} at step {fmt_step(first)} "
            f"({count} of {curve.n} points non-finite)",
            {"first_index": s.bad_first_index, "count": count})]
