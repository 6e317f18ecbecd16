"""Oscillation: sustained swings late in the run that undo much of the progress made."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrdoctor.detect._curve import Curve, _robust_scale, fmt_step, median
from lrdoctor.finding import Finding


@dataclass(frozen=True)
class Oscillation:
    """Swings of the loss that reach back toward where it started.

    Ordinary minibatch noise scatters around a trend that has come down; an LR that is too
    high makes the loss swing back up by a large share of the progress itself. The measure
    is ``(q90 - median) / (start - median)`` over the late part of the run (linear units).

    Parameters
    ----------
    min_swing : float, default 0.5
        Report when the upper swing is at least this share of the progress made.
    late : float, default 0.5
        The share of the run, counted from its end, that is examined.
    min_progress : float, default 0.2
        Only runs whose late median is at least this share below the start are examined
        (a run that never came down is a plateau, not an oscillation).
    min_relative : float, default 0.3
        The swings must also be large against the loss level: the robust scale (1.4826 x
        MAD) of ``log(loss / trend)`` over the late part must reach this (0.3: the loss
        typically sits ~35% off its trend). This tells a violent swing apart from the
        ordinary minibatch scatter of a run that made little progress, where even modest
        noise is large next to the small drop. Not applied to losses that reach zero or
        below (no log scale).
    """

    min_swing: float = 0.5
    late: float = 0.5
    min_progress: float = 0.2
    min_relative: float = 0.3

    def __call__(self, curve: Curve) -> list[Finding]:
        nf = curve.n_finite_prefix
        if nf < 20:
            return []
        i0 = int(nf * (1 - self.late))
        idx, xs, _ = curve.points(i0, nf)  # every late point (a strided subset of many)
        level = curve.trend_at(idx)
        r = xs - level
        med = median(level)
        lo, q90 = np.quantile(r, [0.5, 0.9])
        s0 = curve.start_level
        progress = s0 - med
        if progress < self.min_progress * abs(s0):
            return []
        swing = float((q90 - lo) / progress)
        if swing < self.min_swing:
            return []
        relative = None
        if curve.log_space:
            relative = _robust_scale(np.log(xs / level))
            if relative < self.min_relative:
                return []
        period = _dominant_period(curve, i0)
        sev = float(np.clip(swing, 0.4, 1.0))
        msg = (f"loss swings by {100 * swing:.0f}% of its progress around its trend from "
               f"step {fmt_step(curve.step_of(i0))} on")
        if period:
            msg += f", with a period of about {period:.0f} steps"
        return [Finding("oscillation", curve.step_of(i0), None, sev, msg,
                        {"swing": swing, "relative_scale": relative, "median": float(med),
                         "q90": float(q90), "period_steps": period})]


def welch(x: np.ndarray, nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    """Welch's power spectral density, as ``scipy.signal.welch(x, nperseg=nperseg)`` computes
    it (periodic Hann window, half-overlapping segments, each segment's mean removed,
    one-sided density, frequencies in cycles per sample).

    Written out with NumPy's FFT because importing ``scipy.signal`` costs about a second,
    which an oscillating run's report would pay for this one detail; the test suite holds
    it equal to SciPy's.
    """
    step = nperseg - nperseg // 2
    seg = np.lib.stride_tricks.sliding_window_view(x, nperseg)[::step]
    win = np.hanning(nperseg + 1)[:-1]
    spec = np.fft.rfft((seg - seg.mean(axis=1, keepdims=True)) * win, axis=1)
    p = np.mean(spec.real ** 2 + spec.imag ** 2, axis=0) / np.sum(win ** 2)
    p[1:len(p) - (nperseg % 2 == 0)] *= 2  # one-sided: all but DC and Nyquist doubled
    return np.fft.rfftfreq(nperseg), p


def _dominant_period(curve: Curve, i0: int) -> float | None:
    """A periodic component of the late residuals, when one stands out of the spectrum."""
    b0 = int(np.searchsorted(curve.bin_start, i0))
    r = curve.resid[b0:]
    if len(r) < 32:
        return None
    f, p = welch(r, nperseg=min(256, len(r)))
    if len(p) < 4:
        return None
    k = 1 + int(np.argmax(p[1:]))
    if p[k] < 8 * median(p[1:]):
        return None
    step_per_bin = curve.bin_size * float(np.median(np.diff(curve.head_steps)) or 1.0)
    return float(step_per_bin / f[k])
