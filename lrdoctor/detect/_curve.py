"""Shared robust statistics of one loss curve, computed once and read by every detector.

Everything here is read from the curve's bounded summary (:mod:`lrdoctor.detect._summary`),
never from its raw points: at most ``MAX_BINS`` (+1) bins of ``2**k`` points each (one point
per bin up to ``MAX_BINS`` points, so short logs are read point by point), each bin's exact
max, and the points of each bin at a stride (every point of a bin of up to ``SAMPLE``). The
median of a bin's kept points is its value; the trend is a running median over bins. Trends
live in log space when every finite loss is positive (losses that span decades), else in
linear space.

Because the summary is built the same way at once (``lrdoctor analyze``) and point by point
(``lrdoctor.Monitor``, ``lrdoctor watch``), and everything here is a function of it, a run
followed as it trains gets exactly the batch answer for its prefix; a re-diagnosis costs
``O(MAX_BINS)``, whatever the length of the run.
"""
from __future__ import annotations

import sys
from functools import cached_property

import numpy as np

from lrdoctor.detect._summary import MAX_BINS, Runs, Summary, median, robust_scale

#: Curves of fewer points have no history to smooth: a width-3 trend, and their noise is
#: read from point-to-point differences (see ``Curve.noise``).
FEW_POINTS = 10
#: Points read for the noise around the trend, the end level and the late swings (every
#: point of a shorter span, an evenly strided subset of a longer one).
NOISE_POINTS = 16384
_MAD = 1.4826

__all__ = ["Curve", "Runs", "Summary", "MAX_BINS", "FEW_POINTS"]


class Curve:
    """A loss curve prepared for detection.

    Parameters
    ----------
    steps : ndarray
        The log's steps (increasing numbers), one per loss value.
    values : ndarray of float64
        The training loss, non-finite values included.
    lr : ndarray or None
        The LR at each step where the log has it (NaN where not logged).
    grad_norm : ndarray or None
        The gradient norm at each step where the log has it (NaN where not logged, inf
        where a non-finite one was written); only ``detect.GradNorm`` reads it.
    summary : Summary, optional
        Instead of the arrays: the curve's summary, built point by point
        (:class:`lrdoctor.detect._summary.Summary`). The detectors read only the summary.
    """

    def __init__(self, steps=None, values=None, lr=None, grad_norm=None, *,
                 summary: Summary | None = None):
        if summary is None:
            summary = Summary.of(steps, values, lr, grad_norm)
        self.summary = summary
        #: the arrays given; the detectors read only the summary. A curve made from a
        #: summary has no arrays: its ``steps`` maps a point's index to its step (exact at
        #: the kept points, the bins' starts among them), for the figures.
        self.steps = _PointSteps(summary) if steps is None else steps
        self.values, self.lr, self.grad_norm = values, lr, grad_norm

    def __repr__(self) -> str:
        return f"Curve(n={self.n}, n_bins={self.n_bins}, bin_size={self.bin_size})"

    # ------------------------------------------------------------------ basic facts
    @property
    def n(self) -> int:
        return self.summary.n

    @property
    def n_finite_prefix(self) -> int:
        """Points before the first non-finite value (the part that can be trended)."""
        return self.summary.nf

    @property
    def first_step(self):
        return self.summary.first_step

    @property
    def last_step(self):
        return self.summary.last_step

    @cached_property
    def log_space(self) -> bool:
        return self.summary.nf > 0 and self.summary.xmin > 0

    def to_z(self, a):
        """Values in trend space (log of the loss when it is positive)."""
        return np.log(a) if self.log_space else np.asarray(a, dtype=np.float64)

    def from_z(self, z):
        return np.exp(z) if self.log_space else z

    # ------------------------------------------------------------------ binning
    @property
    def bin_size(self) -> int:
        return self.summary.w

    @cached_property
    def bin_median(self) -> np.ndarray:
        return self.summary.bin_median()

    @cached_property
    def bin_max(self) -> np.ndarray:
        return self.summary.bin_max()

    @cached_property
    def bin_start(self) -> np.ndarray:
        """Index of each bin's first point in the finite prefix."""
        return self.summary.bin_start()

    @cached_property
    def bin_step(self) -> np.ndarray:
        """The log's step at each bin's first point."""
        return self.summary.bin_step()

    @cached_property
    def bin_lr(self) -> np.ndarray:
        """The LR at each bin's first point, carried forward over points that lack it."""
        return self.summary.bin_lr()

    @cached_property
    def n_bins(self) -> int:
        return self.summary.n_bins

    def points(self, lo: int = 0, hi: int | None = None, most: int = NOISE_POINTS):
        """(indices, values, steps) of the finite prefix's points in ``[lo, hi)``: every
        point of a span of at most ``most`` (while the bins keep every point), else an
        evenly strided subset (see ``Summary.points``)."""
        return self.summary.points(lo, self.summary.nf if hi is None else hi, most)

    def step_of(self, index: int):
        """The log's step at a point of the finite prefix."""
        return self.summary.step_of(index)

    # ------------------------------------------------------------------ trend and noise
    @cached_property
    def trend_window(self) -> int:
        """Width of the running median, in bins: ~5% of the curve, at least 5, odd; 3 on a
        curve of under 10 points (five would span half of it)."""
        return max(5, (self.n_bins // 20)) | 1 if self.n_bins >= FEW_POINTS else 3

    @cached_property
    def trend(self) -> np.ndarray:
        """Running median of the loss (in trend space), one value per bin.

        The values whose window holds only complete bins do not change until the bins
        merge or the window widens: they are kept in the summary's cache, and a curve that
        grew is computed only from where they end (the same numbers as computed whole).
        """
        z = self.to_z(self.bin_median)
        if len(z) < 3:
            return z
        width = min(self.trend_window, len(z) | 1)
        h = width // 2
        s = self.summary
        key = ("trend", s.w, width, self.log_space)
        done = s.cache.get(key)
        head = done if done is not None and len(done) <= len(z) else z[:0]
        out = np.concatenate((head, running_median(z, width, start=len(head))))
        # the windows inside the complete bins (left edge z[0]); a shallow copy's own bins
        # are not the original's: what it shares is settled by the original's alone
        m = s.m if s.m_base is None else min(s.m, s.m_base)
        settled = max(0, m - h)
        if settled > len(head) and m >= 1:
            s.cache.clear()
            s.cache[key] = out[:settled].copy()
        return out

    @cached_property
    def level(self) -> np.ndarray:
        """The trend in the loss's own units (one value per bin), computed once for every
        detector and figure that reads it."""
        return self.from_z(self.trend)

    @property
    def trend_settled(self) -> int:
        """Bins of the trend whose running window lies inside the curve (the last half
        window is padded with the last bin's value: drawn, it would hook toward one noisy
        bin)."""
        h = self.trend_window // 2
        # a short curve (a per-epoch log) keeps its whole trend: cut, little would be left
        return self.n_bins - h if self.n_bins > 4 * self.trend_window else self.n_bins

    @cached_property
    def final_level(self) -> float:
        """The loss at the end of the run: the median of its last 5% of finite points."""
        nf = self.n_finite_prefix
        if not nf:
            return float("nan")
        return median(self.points(nf - max(1, nf // 20), nf)[1])

    @cached_property
    def resid(self) -> np.ndarray:
        """Bin medians minus the trend, in trend space."""
        return self.to_z(self.bin_median) - self.trend

    @cached_property
    def noise(self) -> float:
        """Robust scale (1.4826 * MAD) of the step-to-step scatter around the trend.

        For binned curves this is estimated on the kept points (up to ``NOISE_POINTS``) so
        that it keeps the meaning of per-step minibatch noise. On a curve of fewer than
        ``FEW_POINTS`` points the trend passes through most points and the scatter around
        it reads near zero: the noise is then the robust scale of the differences between
        successive points, over sqrt(2) (each difference carries two points' noise; the
        median difference, the drift, is taken out by the MAD).

        A curve that falls faster than its noise over a stretch of the running median's
        window is sorted there, so the median is the middle point itself: when more than
        half of the points lie exactly on the trend the MAD reads zero, and the noise is
        taken from the second differences instead (:func:`_scatter`).
        """
        if self.n_bins < FEW_POINTS:  # one point per bin
            return _robust_scale(np.diff(self.to_z(self.bin_median))) / np.sqrt(2)
        if self.bin_size == 1:
            return _scatter(self.resid, self.trend)
        idx, v, _ = self.points()
        return _robust_scale(self.to_z(v) - self.trend[self.bin_of(idx)])

    @cached_property
    def noise_early(self) -> float:
        """The noise scale over the first fifth of the run (the scatter at the starting
        level, which is what a jump above the start must stand out of); a curve of fewer
        than ``FEW_POINTS`` points is all start: its whole noise."""
        if self.n_bins < FEW_POINTS:
            return self.noise
        k = max(5, int(np.searchsorted(self.fraction, 0.2)))
        return _scatter(self.resid[:k], self.trend[:k])

    # ------------------------------------------------------------------ reference levels
    @property
    def first_value(self) -> float:
        """The first finite loss (NaN when the run starts non-finite)."""
        hx = self.summary.head_x
        return float(hx[0]) if len(hx) else float("nan")

    @cached_property
    def start_level(self) -> float:
        """The loss the run started from (linear units).

        The median of the first ~1% of points (1 to 25), but never above the very first
        value when the first steps blow up (a blow-up must not pass for the starting level).
        """
        nf = self.n_finite_prefix
        if nf == 0:
            return float("nan")
        k = int(np.clip(nf // 100, 1, 25))
        x = self.summary.head_x
        med = median(x[:k])
        return float(x[0]) if x[0] > 0 and med > 3 * x[0] else med

    def over(self, limit, lo: int = 0, hi: int | None = None, ratio_to=None) -> Runs:
        """Runs of consecutive points above ``limit`` (a scalar, or one value per bin) in
        ``[lo, hi)`` of the finite prefix (:class:`Runs`). Only bins whose exact max exceeds
        their limit are looked into, so a long healthy log with a few spikes costs a pass
        over its bin maxima. Exact while the bins keep every point; on longer logs, a bin's
        sampled points and its max stand for it."""
        return self.summary.over(limit, lo, hi, ratio_to)

    def points_over(self, limit) -> np.ndarray:
        """Indices of the points above ``limit`` (the kept ones: every point while the
        bins keep every point)."""
        return self.summary.over_points(limit)[0]

    def bin_of(self, idx):
        """The bin holding each given point index of the finite prefix."""
        return np.minimum(np.asarray(idx) // self.bin_size, self.n_bins - 1)

    def trend_at(self, idx: np.ndarray) -> np.ndarray:
        """The trend (linear units) at the given point indices of the finite prefix."""
        return self.level[self.bin_of(idx)]

    def step_at(self, bin_index) -> np.ndarray:
        """The log's step at the start of the given bin(s)."""
        return self.bin_step[np.asarray(bin_index)]

    @cached_property
    def fraction(self) -> np.ndarray:
        """Position of each bin in the run, 0 at the first point, 1 at the last."""
        n = max(1, self.n_finite_prefix - 1)
        return self.bin_start / n

    @property
    def lr_range(self) -> tuple[float, float] | None:
        """(smallest, largest) finite LR logged, or None when the log has none."""
        return self.summary.lr_range

    @cached_property
    def warmup_end(self) -> int | None:
        """Index of the point where the LR peaks after rising, when the log shows warmup."""
        s = self.summary
        if s.lr_range is None:
            return None
        peak, first_i = s.lr_hi_index, s.lr_first_index
        if peak <= first_i or not (s.lr_first < 0.5 * s.lr_hi) or peak > 0.5 * self.n:
            return None
        return peak

    @property
    def warmup_end_step(self):
        """The step of :attr:`warmup_end`."""
        return self.summary.lr_hi_step

    @property
    def head_steps(self) -> np.ndarray:
        """The first 1000 steps of the log."""
        return self.summary.head_steps


class _PointSteps:
    """``steps[i]`` of a curve known by its summary: the step at point ``i`` of the finite
    prefix (of the last kept point at or before it)."""

    def __init__(self, summary: Summary):
        self.summary = summary

    def __len__(self) -> int:
        return self.summary.nf

    def __getitem__(self, idx):
        return self.summary.step_of(idx)


def lr_range(lr: np.ndarray | None) -> tuple[float, float] | None:
    """(min, max) of the finite LR values, or None; NaN cells (LR not logged) are skipped
    by ``fmin``/``fmax`` without the copy that masking would make."""
    if lr is None or len(lr) == 0:
        return None
    lo, hi = float(np.fmin.reduce(lr)), float(np.fmax.reduce(lr))
    if np.isnan(hi):
        return None
    if not (np.isfinite(lo) and np.isfinite(hi)):  # an infinite LR cell: rare, mask it
        fin = lr[np.isfinite(lr)]
        return (float(fin.min()), float(fin.max())) if len(fin) else None
    return lo, hi


def _robust_scale(r: np.ndarray) -> float:
    """1.4826 * MAD: the standard deviation of Gaussian data, unmoved by outliers."""
    if len(r) == 0:
        return 0.0
    return robust_scale(r, _MAD)


def _scatter(resid: np.ndarray, trend: np.ndarray) -> float:
    """The noise scale of points ``trend + resid`` (one point per bin): 1.4826 * MAD of the
    residuals, unless more than half of them are exactly zero (the running median passed
    through the points themselves: a stretch steeper than the noise); then the robust scale
    of the points' second differences over sqrt(6), which a smooth trend leaves out (for
    independent noise of scale s, ``x[i-1] - 2 x[i] + x[i+1]`` has scale s * sqrt(6))."""
    s = _robust_scale(resid)
    if s > 0 or len(resid) < 5:
        return s
    return _robust_scale(np.diff(trend + resid, 2)) / np.sqrt(6)


def running_median(z: np.ndarray, width: int, start: int = 0) -> np.ndarray:
    """Centered running median, edges padded with the edge value (at most a few thousand
    points: it runs on bins, so a sliding window view is cheap and avoids importing
    scipy.ndimage on the CLI's path); with ``start``, only the values from there on (each
    the same number as in the whole).

    Where ``scipy.ndimage`` is loaded already (:class:`lrdoctor.monitor.Stream` loads it: a
    run followed as it trains is re-diagnosed hundreds of times, at a new width every 40
    points of a short run), an odd window over finite values goes through its
    ``median_filter`` instead: the same order statistic of the same windows (one element
    of each, selected, not computed), in O(n log w) rather than O(n w).
    """
    h = width // 2
    nd = sys.modules.get("scipy.ndimage")
    if nd is not None and width % 2 and len(z) and np.isfinite(z).all():
        lo = max(0, start - h)  # the windows from ``start`` on reach back to lo at most
        return nd.median_filter(np.asarray(z[lo:], dtype=np.float64), width,
                                mode="nearest")[start - lo:]
    padded = np.concatenate((np.full(h, z[0]), z, np.full(h, z[-1])))
    win = np.lib.stride_tricks.sliding_window_view(padded, width)[start:]
    if width % 2 and np.isfinite(z).all():
        # an odd window's median is its middle order statistic: one selection per window,
        # the same numbers as np.median (which also sorts NaN away and averages two middles)
        return np.partition(win, h, axis=1)[:, h]
    return np.median(win, axis=1)


def fmt_step(v) -> str:
    v = float(v)
    return f"{int(v):d}" if v == int(v) else f"{v:g}"
