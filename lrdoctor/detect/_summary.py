"""A bounded summary of one loss curve, built at once from arrays or point by point.

Every statistic a detector reads (:class:`lrdoctor.detect.Curve`) is computed from this
summary, never from the raw points, so a run followed as it trains (``lrdoctor.Monitor``,
``lrdoctor watch``) gets exactly the answer of ``lrdoctor analyze`` on the same prefix: both
build the same summary, one in a single vectorized pass, the other chunk by chunk.

The finite prefix of the loss (the points before the first non-finite one) is cut into bins of
``w`` points, ``w`` a power of two: one point per bin up to ``MAX_BINS`` points, and when a
``MAX_BINS + 1``-th bin would complete, neighbouring bins merge pairwise (``w`` doubles). The
bins' boundaries therefore depend only on the number of points, never on how they arrived.
Each complete bin keeps its exact max (and where it is), the step and the carried-forward LR
at its start, and the values and steps of the points at every ``max(1, w // SAMPLE)``-th
position: all of its points while ``w <= SAMPLE`` (runs of up to ``MAX_BINS * SAMPLE``
points are kept whole), an evenly strided sample beyond. Pairwise merging keeps every other
sample, the samples' positions stay multiples of the stride, so merging and building at the
final width give the same arrays. The points after the last complete bin (fewer than ``w``)
are kept raw. Besides the bins: the first steps and values, counts and places of non-finite
values, the LR's finite range and where it peaks, and the gradient norm's state
(:class:`_GradState`).

Memory: at most ``MAX_BINS * SAMPLE`` values and steps (2 MiB; the arrays grow with the
run, so a short run holds what it uses), plus fewer than ``w`` raw points, whatever the
length of the run; appending ``k`` points costs ``O(k)`` plus, at each doubling,
``O(MAX_BINS * SAMPLE)``.
"""
from __future__ import annotations

import numpy as np

MAX_BINS = 4096
#: Points kept per bin: a bin of up to this many points is kept whole.
SAMPLE = 32
#: First steps kept (the log's step spacing, read by the oscillation's period).
HEAD_STEPS = 1000
#: First finite values kept (the starting level reads at most 25).
HEAD_VALUES = 25
#: Skipped-step places listed in the gradient norm's evidence.
LISTED = 200


def _steps_array(steps) -> np.ndarray:
    s = np.asarray(steps)
    if s.dtype.kind not in "iuf":
        s = s.astype(np.float64)
    return s


def median(a: np.ndarray) -> float:
    """``float(np.median(a))`` of a 1-d array, the same number (the middle order statistic,
    or the two middle ones' mean, NaN when a NaN is among them) from one partition, without
    np.median's general machinery (which costs more than the selection on the short arrays
    a diagnosis takes a dozen medians of)."""
    if a.dtype != np.float64 or a.ndim != 1 or not len(a):
        return float(np.median(a))
    return _median_of(a.copy())


def _median_of(part: np.ndarray) -> float:
    """The median of a float64 work array, partitioned in place (around one position: the
    one-position selection is numpy's fast path; the other middle of an even count is the
    largest before it)."""
    n = len(part)
    h = n // 2
    part.partition(h)
    if np.isnan(part[h:].max()):  # NaN sorts last, so one is here: np.median says NaN
        return float("nan")
    if n % 2:
        return float(part[h])
    return float((part[:h].max() + part[h]) / 2)


def robust_scale(r: np.ndarray, k: float) -> float:
    """``float(k * np.median(np.abs(r - np.median(r))))``, the same number, from one work
    array partitioned twice in place."""
    if r.dtype != np.float64 or r.ndim != 1:
        return float(k * np.median(np.abs(r - np.median(r))))
    part = r.copy()
    m = _median_of(part)
    np.subtract(part, m, out=part)
    np.abs(part, out=part)
    return float(k * _median_of(part))


class Runs:
    """Stretches of consecutive points above a limit (:meth:`Summary.over`).

    Attributes (one entry per run, in order): ``first``, ``last`` (point indices of the
    finite prefix), ``first_step``, ``last_step``, ``count`` (points, ``last - first + 1``),
    ``peak`` (highest value), ``ratio`` (highest value over the reference given, or None).
    """

    __slots__ = ("first", "last", "first_step", "last_step", "peak", "ratio")

    def __init__(self, first, last, first_step, last_step, peak, ratio=None):
        self.first, self.last = first, last
        self.first_step, self.last_step = first_step, last_step
        self.peak, self.ratio = peak, ratio

    @property
    def count(self) -> np.ndarray:
        return self.last - self.first + 1

    def __len__(self) -> int:
        return len(self.first)

    def take(self, keep) -> "Runs":
        return Runs(self.first[keep], self.last[keep], self.first_step[keep],
                    self.last_step[keep], self.peak[keep],
                    None if self.ratio is None else self.ratio[keep])

    @property
    def n_points(self) -> int:
        return int(self.count.sum())

    def union(self, other: "Runs", gap: int = 1) -> "Runs":
        """The runs of the points of both (runs that overlap or lie within ``gap`` of each
        other join)."""
        if not len(other):
            return self
        if not len(self):
            return other
        cat = [np.concatenate((a, b)) for a, b in
               zip((self.first, self.last, self.first_step, self.last_step, self.peak),
                   (other.first, other.last, other.first_step, other.last_step, other.peak))]
        order = np.lexsort((cat[1], cat[0]))
        first, last, fs, ls, peak = (a[order] for a in cat)
        reach = np.maximum.accumulate(last)
        new = np.r_[True, first[1:] > reach[:-1] + gap]
        starts = np.flatnonzero(new)
        far = np.maximum.reduceat(last, starts)
        group = np.cumsum(new) - 1
        k = np.arange(len(last))
        # the step at each joined run's end: of the piece that reaches furthest
        at = np.minimum.reduceat(np.where(last == far[group], k, len(k)), starts)
        return Runs(first[starts], far, fs[starts], ls[at], np.maximum.reduceat(peak, starts))


class _GradState:
    """What the gradient-norm detector reads, kept as the points arrive: how many norms were
    written, the non-finite tail (the norms written after the last finite one) with the loss
    readings there, the loss-scale skips, and a :class:`Summary` of the finite positive
    norms (their spikes)."""

    def __init__(self):
        self.written = 0
        self.ok = Summary()
        # the tail: written norms after the last finite one (all non-finite)
        self.t_start = 0            # its first norm, counted among the written ones
        self.t_point = -1           # its first norm's point index
        self.t_step = None
        self.t_count = 0
        self.t_masks = 0            # loss exactly 0 or its previous value
        self.t_zero = 0             # ... exactly 0
        self.t_finite = 0           # loss finite (skips, were the tail not hidden)
        self.skips = 0
        self.skip_first: list = []  # steps of the first LISTED skips
        self.skip_last = None
        self.skip_last_before_tail = None

    def copy(self) -> "_GradState":
        out = _GradState.__new__(_GradState)
        out.__dict__.update(self.__dict__)
        out.ok = self.ok.copy(shallow=True)
        out.skip_first = list(self.skip_first)
        return out

    def extend(self, idx0: int, steps, x, g, prev_loss) -> None:
        written = ~np.isnan(g)
        if not written.any():
            return
        pos = np.flatnonzero(written)
        gv, lv, st = g[pos], x[pos], steps[pos]
        pv = np.where(pos > 0, x[np.maximum(pos - 1, 0)], prev_loss)
        first_point = (idx0 + pos) == 0
        bad = ~np.isfinite(gv)
        fin_loss = np.isfinite(lv)
        masks = fin_loss & ((lv == 0) | ((lv == pv) & ~first_point))
        skip = bad & fin_loss
        good = np.flatnonzero(~bad)
        if len(good):  # a finite norm ends the tail: it starts after the last one
            j = int(good[-1])
            before = np.flatnonzero(skip[:j])
            if len(before):
                self.skip_last_before_tail = st[before[-1]]
            elif self.skips:
                self.skip_last_before_tail = self.skip_last
            self.t_start, self.t_point = self.written + j + 1, -1
            self.t_count = self.t_masks = self.t_zero = self.t_finite = 0
            self.t_step = None
            tail = slice(j + 1, None)
        else:
            tail = slice(0, None)
        if self.t_point < 0 and len(pos[tail]):
            self.t_point, self.t_step = idx0 + int(pos[tail][0]), st[tail][0]
        self.t_count += int(len(pos[tail]))
        self.t_masks += int(masks[tail].sum())
        self.t_zero += int((masks[tail] & (lv[tail] == 0)).sum())
        self.t_finite += int(fin_loss[tail].sum())
        k = int(skip.sum())
        if k:
            at = st[skip]
            if len(self.skip_first) < LISTED:
                self.skip_first.extend(at[: LISTED - len(self.skip_first)].tolist())
            self.skip_last = at[-1]
            self.skips += k
        self.written += len(gv)
        ok = np.isfinite(gv) & (gv > 0)
        if ok.any():
            self.ok.extend(st[ok], gv[ok])


class Summary:
    """The bounded summary of one curve (see the module notes).

    Build it with :meth:`of` (arrays at once) or :meth:`extend` (chunk by chunk); both give
    the same state for the same points.
    """

    def __init__(self):
        self.n = 0                      # points, non-finite ones included
        self.nf = 0                     # points of the finite prefix
        self.frozen = False             # a non-finite loss was seen: the prefix is closed
        self.head_steps = np.empty(0)
        self.first_step = self.last_step = None
        self.head_x = np.empty(0)
        self.xmin = np.inf
        # non-finite values
        self.bad_count = 0
        self.bad_kind = None
        self.bad_first_step = None
        self.bad_first_index = -1
        self.bad_last_step = None
        self.last_is_bad = False
        # the LR (finite range, where it peaks, its first written value)
        self.lr_lo = self.lr_hi = np.nan
        self.lr_hi_index = -1
        self.lr_hi_step = None
        self.lr_first = np.nan
        self.lr_first_index = -1
        self.lr_carry = np.nan          # the last written LR within the finite prefix
        self.grad: _GradState | None = None
        self.last_loss = np.nan
        # the bins of the finite prefix
        self.w = 1
        self.m = 0
        self.merges = 0
        self._alloc()
        self.t_x = np.empty(0)
        self.t_step = np.empty(0)
        self.t_lr = np.empty(0)
        self._med = np.empty(MAX_BINS)
        self._med_valid = 0
        self._shared = False
        #: a shallow copy's bins below this are the original's (the cache they share
        #: holds only what those bins settle)
        self.m_base = None
        #: the detectors' per-summary cache (the trend's settled part, see Curve.trend)
        self.cache: dict = {}

    def _alloc(self, step_dtype=np.int64, rows: int = 0, cols: int = 1):
        """The bins' arrays, sized for ``rows`` bins of ``cols`` kept points; they grow as
        needed (:meth:`_ensure`) up to ``MAX_BINS`` x ``SAMPLE``, so a short run's summary
        (one kept by every Diagnosis, pickled by every pool) holds what it uses, not 2 MiB."""
        self.b_max = np.empty(rows)
        self.b_arg = np.empty(rows, dtype=np.int64)
        self.b_arg_step = np.empty(rows, dtype=step_dtype)
        self.b_step = np.empty(rows, dtype=step_dtype)
        self.b_lr = np.empty(rows)
        self.samp = np.empty((rows, cols))
        self.samp_step = np.empty((rows, cols), dtype=step_dtype)

    def _ensure(self, rows: int, cols: int) -> None:
        """Room for ``rows`` bins of ``cols`` kept points (contents kept)."""
        have_r, have_c = self.samp.shape
        if rows <= have_r and cols <= have_c:
            return
        new_r = min(MAX_BINS, max(rows, 2 * have_r, 64))
        new_c = min(SAMPLE, max(cols, have_c))
        old = {k: getattr(self, k) for k in ("b_max", "b_arg", "b_arg_step", "b_step",
                                             "b_lr", "samp", "samp_step")}
        self._alloc(self.b_step.dtype, new_r, new_c)
        for k, a in old.items():
            if a.ndim == 1:
                getattr(self, k)[: len(a)] = a
            else:
                getattr(self, k)[: a.shape[0], : a.shape[1]] = a

    # ------------------------------------------------------------------ building
    @classmethod
    def of(cls, steps, values, lr=None, grad_norm=None) -> "Summary":
        """The summary of whole arrays (one vectorized pass)."""
        s = cls()
        s.extend(steps, values, lr, grad_norm)
        return s

    _ARRAYS = ("b_max", "b_arg", "b_arg_step", "b_step", "b_lr", "_med", "samp", "samp_step")

    def copy(self, shallow: bool = False) -> "Summary":
        """An independent copy. ``shallow``: the bins' arrays are shared until the copy
        merges its bins (appending writes only past the original's bins, which the original
        never reads), so a copy that takes a few points costs next to nothing."""
        out = Summary.__new__(Summary)
        d = dict(self.__dict__)
        if shallow:  # its complete bins' medians, computed once for both
            self.bin_median()
            d = dict(self.__dict__)
            d["m_base"] = self.m if self.m_base is None else min(self.m, self.m_base)
        else:
            for k in self._ARRAYS:
                d[k] = d[k].copy()
            d["cache"] = dict(self.cache)
        d["_shared"] = shallow
        if self.grad is not None:
            d["grad"] = self.grad.copy()
        out.__dict__.update(d)
        return out

    def extend(self, steps, values, lr=None, grad_norm=None) -> None:
        """Append points (steps increasing past the last one; ``lr``/``grad_norm`` NaN where
        not written, ``grad_norm`` inf where a non-finite one was)."""
        x = np.asarray(values, dtype=np.float64)
        k = len(x)
        if k == 0:
            return
        steps = _steps_array(steps)
        self._step_dtype(steps)
        lr = None if lr is None else np.asarray(lr, dtype=np.float64)
        i0 = self.n
        if self.first_step is None:
            self.first_step = steps[0]
        self.last_step = steps[-1]
        if len(self.head_steps) < HEAD_STEPS:
            self.head_steps = np.concatenate(
                (self.head_steps.astype(steps.dtype, copy=False),
                 steps[: HEAD_STEPS - len(self.head_steps)]))
        if lr is not None:
            self._lr_stats(i0, steps, lr)
        if grad_norm is not None:
            if self.grad is None:
                self.grad = _GradState()
            self.grad.extend(i0, steps, x, np.asarray(grad_norm, dtype=np.float64),
                             self.last_loss)
        self.last_loss = x[-1]
        self.n += k
        finite = np.isfinite(x)
        if self.frozen:
            cut = 0
        elif finite.all():
            cut = k
        else:
            cut = int(np.argmax(~finite))
        if not finite.all():
            bad = ~finite
            if self.bad_count == 0:
                j = int(np.argmax(bad))
                v = x[j]
                self.bad_kind = "NaN" if np.isnan(v) else ("inf" if v > 0 else "-inf")
                self.bad_first_step = steps[j]
                self.bad_first_index = i0 + j
            self.bad_count += int(bad.sum())
            last = k - 1 - int(np.argmax(bad[::-1]))
            self.bad_last_step = steps[last]
        self.last_is_bad = not finite[-1]
        if cut:
            self._finite(steps[:cut], x[:cut], None if lr is None else lr[:cut])
        if cut < k:
            self.frozen = True

    def _step_dtype(self, steps) -> None:
        if steps.dtype.kind == "f" and self.b_step.dtype.kind != "f":
            for name in ("b_arg_step", "b_step", "samp_step", "t_step", "head_steps"):
                setattr(self, name, getattr(self, name).astype(np.float64))

    def _lr_stats(self, i0: int, steps, lr) -> None:
        if self.lr_first_index < 0:
            written = ~np.isnan(lr)
            if written.any():
                j = int(np.argmax(written))
                self.lr_first, self.lr_first_index = float(lr[j]), i0 + j
        fin = np.isfinite(lr)
        if not fin.any():
            return
        v = lr if fin.all() else np.where(fin, lr, np.nan)
        lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
        if not lo >= self.lr_lo:
            self.lr_lo = lo
        if not hi <= self.lr_hi:
            j = int(np.argmax(v == hi))
            self.lr_hi, self.lr_hi_index, self.lr_hi_step = hi, i0 + j, steps[j]

    def _finite(self, steps, x, lr) -> None:
        if len(self.head_x) < HEAD_VALUES:
            self.head_x = np.concatenate((self.head_x, x[: HEAD_VALUES - len(self.head_x)]))
        self.xmin = min(self.xmin, float(x.min()))
        # the LR at each point, carried forward over points that lack it (NaN before any)
        if lr is None:
            lrc = np.full(len(x), self.lr_carry)
        else:
            have = ~np.isnan(lr)
            if have.all():
                lrc = lr
            else:
                idx = np.where(have, np.arange(len(lr)), -1)
                np.maximum.accumulate(idx, out=idx)
                lrc = np.where(idx >= 0, lr[np.maximum(idx, 0)], self.lr_carry)
        self.lr_carry = lrc[-1]
        self.nf += len(x)
        px = np.concatenate((self.t_x, x)) if len(self.t_x) else x
        ps = np.concatenate((self.t_step.astype(steps.dtype, copy=False), steps)) \
            if len(self.t_step) else steps
        pl = np.concatenate((self.t_lr, lrc)) if len(self.t_lr) else lrc
        M = MAX_BINS
        while True:
            w = self.w
            nb = len(px) // w
            if self.m == 0 and nb > M:  # a fresh summary of many points: the final width
                while len(px) // w > M:
                    w *= 2
                self.w, nb = w, len(px) // w
            take = min(nb, M - self.m)
            if take:
                self._add_bins(px[: take * w], ps[: take * w], pl[: take * w], take)
                px, ps, pl = px[take * w:], ps[take * w:], pl[take * w:]
            if len(px) >= self.w and self.m == M:
                self._merge()
                continue
            break
        self.t_x, self.t_step, self.t_lr = px.copy(), ps.copy(), pl.copy()

    def _add_bins(self, x, steps, lrc, count: int) -> None:
        w, m = self.w, self.m
        base = m * w
        X = x.reshape(count, w)
        S = steps.reshape(count, w)
        arg = X.argmax(axis=1)
        rows = np.arange(count)
        sl = slice(m, m + count)
        self._ensure(m + count, min(w, SAMPLE))
        self.b_max[sl] = X[rows, arg]
        self.b_arg[sl] = base + rows * w + arg
        self.b_arg_step[sl] = S[rows, arg]
        self.b_step[sl] = S[:, 0]
        self.b_lr[sl] = lrc[::w]
        s = max(1, w // SAMPLE)
        c = min(w, SAMPLE)
        self.samp[sl, :c] = X[:, ::s]
        self.samp_step[sl, :c] = S[:, ::s]
        self.m = m + count

    def _merge(self) -> None:
        """Neighbouring bins merge pairwise: the width doubles, half the bins remain."""
        if self._shared:  # a shallow copy: its own arrays before they are rewritten
            for k in self._ARRAYS:
                setattr(self, k, getattr(self, k).copy())
            self._shared, self.m_base = False, None
        h = self.m // 2
        a, b = slice(0, 2 * h, 2), slice(1, 2 * h, 2)
        first = self.b_max[a] >= self.b_max[b]  # ties: the earlier point, as argmax
        self.b_arg[:h] = np.where(first, self.b_arg[a], self.b_arg[b])
        self.b_arg_step[:h] = np.where(first, self.b_arg_step[a], self.b_arg_step[b])
        self.b_max[:h] = np.maximum(self.b_max[a], self.b_max[b])
        self.b_step[:h] = self.b_step[a]
        self.b_lr[:h] = self.b_lr[a]
        c = min(self.w, SAMPLE)
        self._ensure(h, min(2 * c, SAMPLE))
        for arr in (self.samp, self.samp_step):
            both = np.concatenate((arr[a, :c], arr[b, :c]), axis=1)
            if 2 * c <= SAMPLE:
                arr[:h, : 2 * c] = both
            else:
                arr[:h] = both[:, ::2]
        self.m, self.w = h, 2 * self.w
        self.merges += 1
        self._med_valid = 0
        self.cache = {}

    # ------------------------------------------------------------------ reading
    @property
    def stride(self) -> int:
        """Positions kept in a bin: every ``stride``-th (1: every point)."""
        return max(1, self.w // SAMPLE)

    @property
    def n_bins(self) -> int:
        return self.m + (1 if len(self.t_x) else 0)

    def bin_start(self) -> np.ndarray:
        return np.arange(self.n_bins, dtype=np.int64) * self.w

    def bin_step(self) -> np.ndarray:
        out = self.b_step[: self.m]
        return np.append(out, self.t_step[0]) if len(self.t_x) else out.copy()

    def bin_max(self) -> np.ndarray:
        out = self.b_max[: self.m]
        return np.append(out, self.t_x.max()) if len(self.t_x) else out.copy()

    def bin_lr(self) -> np.ndarray:
        """The LR at each bin's first point, carried forward (NaN before any was written)."""
        out = self.b_lr[: self.m]
        return np.append(out, self.t_lr[0]) if len(self.t_x) else out.copy()

    def bin_median(self) -> np.ndarray:
        """The median of each bin's kept points (its value, one point per bin)."""
        m, c = self.m, min(self.w, SAMPLE)
        if self.w == 1:
            out = self.samp[:m, 0]
        else:
            if self._med_valid < m:  # complete bins keep their median until a merge
                a = self._med_valid
                self._med[a:m] = np.median(self.samp[a:m, :c], axis=1)
                self._med_valid = m
            out = self._med[:m]
        if len(self.t_x):
            return np.append(out, median(self.t_x[:: self.stride]))
        return out.copy()

    def points(self, lo: int, hi: int, most: int):
        """(positions, values, steps) of kept points in ``[lo, hi)`` of the finite prefix,
        every ``t``-th position, ``t`` the least power of two (at least the stride) that
        keeps at most ``most`` of them: every point when the bins are whole and the span
        is short."""
        lo, hi = max(0, int(lo)), min(self.nf, int(hi))
        if hi <= lo:
            e = np.empty(0)
            return e.astype(np.int64), e, e
        t = self.stride
        while -(-(hi - lo) // t) > most:
            t *= 2
        # the kept points are those at every multiple of the stride s (a bin's samples in
        # row-major order: the kept point at position p is the (p // s)-th), so the points
        # at the multiples of t (a multiple of s) are slices, not a mask over the bins
        s, end = self.stride, self.m * self.w
        pos, val, stp = [], [], []
        a = -(-lo // t) * t  # the first multiple of t from lo
        b = min(hi, end)
        if a < b:
            c = min(self.w, SAMPLE)
            cut = slice(a // s, -(-b // s), t // s)
            pos.append(np.arange(a, b, t, dtype=np.int64))
            val.append(self.samp[: self.m, :c].reshape(-1)[cut])
            stp.append(self.samp_step[: self.m, :c].reshape(-1)[cut])
        if hi > end:
            a = -(-max(lo, end) // t) * t
            pos.append(np.arange(a, hi, t, dtype=np.int64))
            val.append(self.t_x[a - end: hi - end: t])
            stp.append(self.t_step[a - end: hi - end: t])
        if not pos:  # a span short of the next multiple of t
            return (np.empty(0, np.int64), np.empty(0),
                    np.empty(0, self.samp_step.dtype))
        return np.concatenate(pos), np.concatenate(val), np.concatenate(stp)

    def step_of(self, pos):
        """The step at a position (or an array of them) of the finite prefix: of the last
        kept point at or before it, where the bins keep a sample."""
        w, m = self.w, self.m
        if np.ndim(pos) == 0:
            pos = int(pos)
            if pos >= m * w:
                return self.t_step[pos - m * w]
            k, r = divmod(pos, w)
            return self.samp_step[k, r // self.stride]
        pos = np.asarray(pos, dtype=np.int64)
        k, r = np.divmod(np.minimum(pos, max(m * w - 1, 0)), w)
        out = self.samp_step[np.minimum(k, max(m - 1, 0)), r // self.stride]
        late = pos >= m * w
        if late.any():
            out = out.copy() if out.base is not None else out
            out[late] = self.t_step[pos[late] - m * w]
        return out

    def over_points(self, limit, lo: int = 0, hi: int | None = None):
        """(positions, values, steps) of the kept points in ``[lo, hi)`` above ``limit``
        (a scalar or one value per bin), in order: every such point while the bins keep
        every point; else the sampled ones and each bin's max."""
        nb = self.n_bins
        hi = self.nf if hi is None else min(int(hi), self.nf)
        lim = np.broadcast_to(np.asarray(limit, dtype=np.float64), (nb,))
        cand = np.flatnonzero(self.bin_max() > lim)
        w, m, s = self.w, self.m, self.stride
        if len(cand):
            cand = cand[(cand * w < hi) & ((cand + 1) * w > lo)]
        full, tail = cand[cand < m], cand[cand >= m]
        pos, val, stp = [], [], []
        if len(full):
            c = min(w, SAMPLE)
            p = full[:, None] * w + np.arange(c)[None, :] * s
            v = self.samp[full, :c]
            keep = (v > lim[full][:, None]) & (p >= lo) & (p < hi)
            pos.append(p[keep]), val.append(v[keep]), stp.append(self.samp_step[full, :c][keep])
            if s > 1:  # each bin's max, where the sample missed it
                a = self.b_arg[full]
                keep = (self.b_max[full] > lim[full]) & (a % s != 0) & (a >= lo) & (a < hi)
                pos.append(a[keep]), val.append(self.b_max[full][keep])
                stp.append(self.b_arg_step[full][keep])
        if len(tail):
            p = np.arange(m * w, m * w + len(self.t_x))
            keep = (self.t_x > lim[m]) & (p >= lo) & (p < hi)
            if s > 1:
                keep &= (p % s == 0) | (p == m * w + int(np.argmax(self.t_x)))
            pos.append(p[keep]), val.append(self.t_x[keep]), stp.append(self.t_step[keep])
        if not pos:
            e = np.empty(0)
            return e.astype(np.int64), e, e
        pos, val, stp = np.concatenate(pos), np.concatenate(val), np.concatenate(stp)
        order = np.argsort(pos, kind="stable")
        return pos[order], val[order], stp[order]

    def over(self, limit, lo: int = 0, hi: int | None = None, ratio_to=None) -> Runs:
        """The runs of kept points in ``[lo, hi)`` above ``limit`` (a scalar, or one value
        per bin). Only bins whose exact max exceeds their limit are looked into. Where the
        bins keep every point the runs are exact; where they keep a sample, the sampled
        points and each bin's max stand for the bin, and points a stride apart count as
        consecutive."""
        pos, val, stp = self.over_points(limit, lo, hi)
        w, s, nb = self.w, self.stride, self.n_bins
        if not len(pos):
            e = np.empty(0)
            return Runs(e.astype(np.int64), e.astype(np.int64), e, e, e,
                        None if ratio_to is None else e)
        brk = np.flatnonzero(np.diff(pos) > s)
        starts = np.r_[0, brk + 1]
        ends = np.r_[brk, len(pos) - 1]
        ratio = None
        if ratio_to is not None:
            r = val / np.asarray(ratio_to)[np.minimum(pos // w, nb - 1)]
            ratio = np.maximum.reduceat(r, starts)
        return Runs(pos[starts], pos[ends], stp[starts], stp[ends],
                    np.maximum.reduceat(val, starts), ratio)

    @property
    def lr_range(self) -> tuple[float, float] | None:
        if np.isnan(self.lr_hi):
            return None
        return self.lr_lo, self.lr_hi

    def state(self) -> dict:
        """The summary as plain arrays (what the tests compare between the batch and the
        streaming builds)."""
        m, c = self.m, min(self.w, SAMPLE)
        out = {k: v for k, v in self.__dict__.items()
               if k not in ("b_max", "b_arg", "b_arg_step", "b_step", "b_lr", "samp",
                            "samp_step", "_med", "_med_valid", "cache", "grad", "merges",
                            "_shared", "m_base")}
        for k in ("b_max", "b_arg", "b_arg_step", "b_step", "b_lr"):
            out[k] = getattr(self, k)[:m]
        out["samp"] = self.samp[:m, :c]
        out["samp_step"] = self.samp_step[:m, :c]
        if self.grad is not None:
            g = dict(self.grad.__dict__)
            g["ok"] = self.grad.ok.state()
            out["grad"] = g
        return out
