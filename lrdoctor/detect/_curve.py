"""Shared robust statistics of one loss curve, computed once and read by every detector.

Everything here is vectorized. Long curves are summarized in at most ``MAX_BINS`` bins
(median of a strided sample, and the exact max of each bin), so a 10-million-step log costs a
few passes over memory; curves shorter than that keep one bin per step. Trends live in log
space when every finite loss is positive (losses that span decades), else in linear space.

All statistics are functions of the curve's prefix up to its last point, so re-running on a
growing log (the live monitor) gives exactly the batch answer for that prefix.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

MAX_BINS = 4096
#: Curves of fewer points have no history to smooth: a width-3 trend, and their noise is
#: read from point-to-point differences (see ``Curve.noise``).
FEW_POINTS = 10
_SAMPLE_PER_BIN = 65
_MAD = 1.4826


@dataclass(frozen=True)
class Curve:
    """A loss curve prepared for detection.

    Parameters
    ----------
    steps : ndarray
        The log's steps (any increasing numbers), one per loss value.
    values : ndarray of float64
        The training loss, non-finite values included.
    lr : ndarray or None
        The LR at each step where the log has it (NaN where not logged).
    grad_norm : ndarray or None
        The gradient norm at each step where the log has it (NaN where not logged, inf
        where a non-finite one was written); only ``detect.GradNorm`` reads it.
    """

    steps: np.ndarray
    values: np.ndarray
    lr: np.ndarray | None = None
    grad_norm: np.ndarray | None = None

    # ------------------------------------------------------------------ basic facts
    @cached_property
    def n(self) -> int:
        return len(self.values)

    @cached_property
    def n_finite_prefix(self) -> int:
        """Points before the first non-finite value (the part that can be trended)."""
        bad = ~np.isfinite(self.values)
        return int(np.argmax(bad)) if bad.any() else self.n

    @cached_property
    def x(self) -> np.ndarray:
        """The finite prefix of the loss."""
        return self.values[: self.n_finite_prefix]

    @cached_property
    def log_space(self) -> bool:
        return bool(len(self.x)) and float(self.x.min()) > 0

    def to_z(self, a):
        """Values in trend space (log of the loss when it is positive)."""
        return np.log(a) if self.log_space else np.asarray(a, dtype=np.float64)

    def from_z(self, z):
        return np.exp(z) if self.log_space else z

    # ------------------------------------------------------------------ binning
    @cached_property
    def bin_size(self) -> int:
        return max(1, -(-len(self.x) // MAX_BINS))

    @cached_property
    def _bins(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(median, max, index of each bin's first point) of the finite prefix."""
        x, b = self.x, self.bin_size
        if b == 1:
            return x, x, np.arange(len(x))
        m = len(x) // b
        full = x[: m * b].reshape(m, b)
        stride = max(1, b // _SAMPLE_PER_BIN)
        med = np.median(full[:, ::stride], axis=1)
        mx = full.max(axis=1)
        starts = np.arange(m) * b
        if m * b < len(x):
            tail = x[m * b:]
            med = np.append(med, np.median(tail))
            mx = np.append(mx, tail.max())
            starts = np.append(starts, m * b)
        return med, mx, starts

    @property
    def bin_median(self) -> np.ndarray:
        return self._bins[0]

    @property
    def bin_max(self) -> np.ndarray:
        return self._bins[1]

    @property
    def bin_start(self) -> np.ndarray:
        return self._bins[2]

    @cached_property
    def n_bins(self) -> int:
        return len(self.bin_median)

    # ------------------------------------------------------------------ trend and noise
    @cached_property
    def trend_window(self) -> int:
        """Width of the running median, in bins: ~5% of the curve, at least 5, odd; 3 on a
        curve of under 10 points (five would span half of it)."""
        return max(5, (self.n_bins // 20)) | 1 if self.n_bins >= FEW_POINTS else 3

    @cached_property
    def trend(self) -> np.ndarray:
        """Running median of the loss (in trend space), one value per bin."""
        z = self.to_z(self.bin_median)
        if len(z) < 3:
            return z
        return running_median(z, min(self.trend_window, len(z) | 1))

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
        x = self.x
        return float(np.median(x[-max(1, len(x) // 20):])) if len(x) else float("nan")

    @cached_property
    def resid(self) -> np.ndarray:
        """Bin medians minus the trend, in trend space."""
        return self.to_z(self.bin_median) - self.trend

    @cached_property
    def noise(self) -> float:
        """Robust scale (1.4826 * MAD) of the step-to-step scatter around the trend.

        For binned curves this is estimated on a sample of raw points so that it keeps the
        meaning of per-step minibatch noise. On a curve of fewer than ``FEW_POINTS`` points
        the trend passes through most points and the scatter around it reads near zero: the
        noise is then the robust scale of the differences between successive points, over
        sqrt(2) (each difference carries two points' noise; the median difference, the
        drift, is taken out by the MAD).
        """
        if self.n_bins < FEW_POINTS:
            return _robust_scale(np.diff(self.to_z(self.x))) / np.sqrt(2)
        if self.bin_size == 1:
            return _robust_scale(self.resid)
        idx = np.linspace(0, len(self.x) - 1, min(len(self.x), 20000)).astype(np.int64)
        return _robust_scale(self.to_z(self.x[idx]) - self.trend[self.bin_of(idx)])

    @cached_property
    def noise_early(self) -> float:
        """The noise scale over the first fifth of the run (the scatter at the starting
        level, which is what a jump above the start must stand out of); a curve of fewer
        than ``FEW_POINTS`` points is all start: its whole noise."""
        if self.n_bins < FEW_POINTS:
            return self.noise
        k = max(5, int(np.searchsorted(self.fraction, 0.2)))
        return _robust_scale(self.resid[:k])

    # ------------------------------------------------------------------ reference levels
    @cached_property
    def start_level(self) -> float:
        """The loss the run started from (linear units).

        The median of the first ~1% of points (1 to 25), but never above the very first
        value when the first steps blow up (a blow-up must not pass for the starting level).
        """
        x = self.x
        if len(x) == 0:
            return float("nan")
        k = int(np.clip(len(x) // 100, 1, 25))
        med = float(np.median(x[:k]))
        return float(x[0]) if x[0] > 0 and med > 3 * x[0] else med

    def points_over(self, limit) -> np.ndarray:
        """Indices (into the finite prefix) of the points above ``limit``: a scalar, or one
        value per bin. Only the bins whose exact max exceeds their limit are scanned, so a
        long healthy log with a few spikes costs a pass over its bin maxima, not over every
        point."""
        lim = np.broadcast_to(np.asarray(limit, dtype=np.float64), (self.n_bins,))
        cand = np.flatnonzero(self.bin_max > lim)
        b = self.bin_size
        if b == 1 or len(cand) == 0:
            return cand
        x = self.x
        if len(cand) > self.n_bins // 8:  # many: one pass over everything is cheaper
            return np.flatnonzero(x > np.repeat(lim, b)[: len(x)])
        starts = self.bin_start[cand]
        lengths = np.minimum(starts + b, len(x)) - starts
        offsets = np.cumsum(lengths) - lengths
        idx = np.arange(int(lengths.sum())) - np.repeat(offsets - starts, lengths)
        return idx[x[idx] > np.repeat(lim[cand], lengths)]

    def bin_of(self, idx):
        """The bin holding each given point index of the finite prefix."""
        return np.minimum(np.asarray(idx) // self.bin_size, self.n_bins - 1)

    def trend_at(self, idx: np.ndarray) -> np.ndarray:
        """The trend (linear units) at the given point indices of the finite prefix."""
        return self.level[self.bin_of(idx)]

    def step_at(self, bin_index) -> np.ndarray:
        """The log's step at the start of the given bin(s)."""
        return self.steps[self.bin_start[np.asarray(bin_index)]]

    @cached_property
    def fraction(self) -> np.ndarray:
        """Position of each bin in the run, 0 at the first point, 1 at the last."""
        n = max(1, len(self.x) - 1)
        return self.bin_start / n

    @cached_property
    def lr_range(self) -> tuple[float, float] | None:
        """(smallest, largest) logged LR, or None when the log has none (no copies: a
        10-million-step LR column is reduced in place)."""
        return lr_range(self.lr)

    @cached_property
    def warmup_end(self) -> int | None:
        """Index of the point where the LR peaks after rising, when the log shows warmup."""
        rng = self.lr_range
        if rng is None:
            return None
        lr = self.lr[: self.n]
        peak = int(np.argmax(lr == rng[1]))
        first_i = int(np.argmax(lr == lr)) if np.isnan(lr[0]) else 0  # first logged value
        if peak <= first_i or not (lr[first_i] < 0.5 * lr[peak]) or peak > 0.5 * self.n:
            return None
        return peak


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
    return float(_MAD * np.median(np.abs(r - np.median(r))))


def running_median(z: np.ndarray, width: int) -> np.ndarray:
    """Centered running median, edges padded with the edge value (at most a few thousand
    points: it runs on bins, so a sliding window view is cheap and avoids importing
    scipy.ndimage on the CLI's path)."""
    h = width // 2
    padded = np.concatenate((np.full(h, z[0]), z, np.full(h, z[-1])))
    win = np.lib.stride_tricks.sliding_window_view(padded, width)
    if width % 2 and np.isfinite(z).all():
        # an odd window's median is its middle order statistic: one selection per window,
        # the same numbers as np.median (which also sorts NaN away and averages two middles)
        return np.partition(win, h, axis=1)[:, h]
    return np.median(win, axis=1)


def fmt_step(v) -> str:
    v = float(v)
    return f"{int(v):d}" if v == int(v) else f"{v:g}"
