"""Spikes: isolated excursions far above the local trend."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrdoctor.detect._curve import Curve, fmt_step
from lrdoctor.finding import Finding


@dataclass(frozen=True)
class Spikes:
    """Points far above the running-median trend, robust to heavy-tailed minibatch noise.

    Parameters
    ----------
    sigmas : float, default 8.0
        A point is a spike when it lies more than this many robust noise units (1.4826 MAD
        of the scatter around the trend) above the trend ...
    min_ratio : float, default 3.0
        ... and more than this factor above it (log-space curves).
    rate : float, default 0.005
        Spike events per point at which severity reaches 0.5 (the level at which the verdict
        counts them as instability).
    min_repeats : int, default 5
        A spike of one point that is back on the trend at the next point is a transient (a
        bad batch, an outlier in the data); transients count towards the rate only when
        there are at least this many of them. Spikes that last two points or more always
        count, but frequent means repeated: with fewer than two counted spikes, however
        short the log, the severity stays below the verdict's level.
    """

    sigmas: float = 8.0
    min_ratio: float = 3.0
    rate: float = 0.005
    min_repeats: int = 5

    def __call__(self, curve: Curve) -> list[Finding]:
        nf = curve.n_finite_prefix
        if curve.n_bins < 10:
            return []
        if curve.log_space:
            margin = max(self.sigmas * curve.noise, np.log(self.min_ratio))
        else:
            margin = self.sigmas * curve.noise
        over = curve.over(curve.from_z(curve.trend + margin))
        if len(over) == 0:
            return []
        # an event is a run of consecutive points above the limit
        lengths = over.count
        events = len(over)
        transient = int((lengths == 1).sum())
        counted = events - transient + (transient if transient >= self.min_repeats else 0)
        rate = counted / nf
        sev = float(np.clip(0.5 * rate / self.rate, 0.05, 1.0 if counted >= 2 else 0.3))
        top = float(over.peak.max())
        steps = over.first_step
        what = (f"; {transient} of them one point each, back on the trend at once"
                if transient and counted < events else "")
        return [Finding(
            "spike", steps[0], steps[-1] if events > 1 else steps[0], sev,
            f"{events} spike(s) far above the trend ({1000 * events / nf:.1f} per 1000 "
            f"points{what}; highest {top:.3g}), first at step {fmt_step(steps[0])}",
            {"count": events, "transient": transient, "rate": rate,
             "steps": steps[:200].tolist(), "highest": top})]
