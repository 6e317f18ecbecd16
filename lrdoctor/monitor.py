"""Diagnose a run while it trains: :class:`Monitor` records the loss one step at a time and
re-diagnoses every ``every`` steps (and at once on a non-finite loss, or one that jumps far
above the run's level).

>>> import lrdoctor
>>> mon = lrdoctor.Monitor(every=250)
>>> for step in range(50):
...     d = mon.update(step, 2.0 / (1 + step), lr=1.0)
>>> mon.update(50, float("nan"), lr=1.0).verdict     # a NaN is diagnosed at once
'too_high'

Each diagnosis is the batch diagnosis of the prefix recorded so far: what the monitor says at
step N is what ``lrdoctor analyze`` says about the log cut at step N. The run is not kept
point by point but as the bounded summary the detectors read (:class:`Stream`, on
:mod:`lrdoctor.detect._summary`), which ``lrdoctor analyze`` builds too, at once: the cost of
an update is proportional to the new points and the memory is that of the summary, however
long the run. The training callbacks (``lrdoctor.callbacks``) and ``lrdoctor watch`` are thin
adapters on it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields

import numpy as np

from lrdoctor.detect._summary import Summary
from lrdoctor.diagnosis import Diagnosis, diagnose_history
from lrdoctor.history import History, from_columns

#: A run is kept point by point (besides its summary) while it could still be an LR range
#: test (its LR positive and never falling) and has at most this many points; a longer run
#: is never read as a range test (``lrdoctor.range_test.MAX_POINTS``, the same number).
RAMP_KEEP = 20_000
#: A finite loss above this many times both the run's starting level and its recent level
#: (the median of its last 5% of points) at the last re-diagnosis (before the first one: its
#: first loss) is a jump: the monitor re-diagnoses at once, at the first two such points in
#: a row (a blow-up is two points in a row above 5x the start, ``detect.Explosion``), not
#: waiting for the next ``every``. Ordinary minibatch noise does not take a loss to three
#: times its start and its recent level; such points are rare, so they cost next to nothing.
JUMP = 3.0
#: Routine re-diagnoses of a :class:`Monitor` left at its default cadence: every EVERY
#: points, or further apart so that they take at most PACE of the training's wall time
#: (a quarter of the 1% a training callback may cost, the rest being the recording of each
#: step; a re-diagnosis is about 1 ms, so with steps under 1.6 ms, 250 of them pass in
#: less than 400 re-diagnoses), but never more than PACED_MAX * EVERY points apart (the
#: pending points' buffer stays small, and a slow verdict is told within 4,000 steps).
EVERY = 250
PACE = 0.0025
PACED_MAX = 16


class StepsWentBack(ValueError):
    """A step smaller than one already recorded (a resumed run rewriting its steps): the
    summary cannot take it back; the log must be read whole again."""


# ---------------------------------------------------------------------- the stream
class Stream:
    """One run's rows as they arrive, kept as the bounded state a diagnosis reads.

    Rows go through :func:`lrdoctor.history.from_columns` as in a batch read (several
    losses written in a row at one step are spread within it; a validation row and a
    training row at one step are merged), the rows at the latest step waiting until a later
    step arrives (more writes at that step may come). The training loss goes into a
    :class:`~lrdoctor.detect._summary.Summary`; the validation loss (a point per
    evaluation) is kept as written; the LR's range over every row is kept for the current
    LR. :meth:`history` is a :class:`StreamHistory` that
    :func:`lrdoctor.diagnosis.diagnose_history` reads like any other.
    """

    def __init__(self, *, run: str, source: str, metric: str = "loss", available=(),
                 notes=()):
        # a stream is diagnosed again and again: the trend's running median goes through
        # scipy.ndimage's O(n log w) filter once it is loaded (detect._curve.running_median)
        import scipy.ndimage  # noqa: F401

        self.run, self.source, self.metric = run, source, metric
        self.available, self.notes = list(available), list(notes)
        self.summary = Summary()
        self.val_steps: list = []
        self.val: list = []
        self.lr_lo = self.lr_hi = np.nan
        self.n_points = 0
        self.first_step = self.last_step = None
        self.spread = 0               # steps holding several losses written in a row
        self.done = None              # the last committed step
        self.hold = None              # rows at the latest step (dict of arrays)
        self.ramp: list | None = []   # raw rows while a range test is possible
        self.ramp_lr = -np.inf

    # ------------------------------------------------------------------ feeding
    def extend(self, step, loss, *, logged=None, lr=None, val_loss=None,
               grad_norm=None) -> None:
        """Append rows (arrays of equal length, steps never going back; ``logged``: where
        the row wrote a training loss; NaN where a column has no value)."""
        rows = _rows(step, loss, logged, lr, val_loss, grad_norm)
        if rows is None:
            return
        if self.hold is not None:
            rows = {k: _cat(self.hold.get(k), rows.get(k)) for k in _KEYS}
        st = rows["step"]
        if np.any(st[1:] < st[:-1]) or (self.done is not None and st[0] <= self.done):
            raise StepsWentBack(f"{self.source}: a step goes back (a resumed run?)")
        cut = int(np.searchsorted(st, st[-1], side="left"))
        commit = {k: None if v is None else v[:cut] for k, v in rows.items()}
        self.hold = {k: None if v is None else v[cut:] for k, v in rows.items()}
        if cut:
            self._commit(self, commit, st[-1])

    def _commit(self, target: "Stream", rows: dict, before) -> None:
        """Merge rows (their steps complete) as a batch read would, into ``target``'s
        state."""
        h = from_columns(rows["step"], rows["loss"], logged=rows["logged"], lr=rows["lr"],
                         val_loss=rows["val"], grad_norm=rows["grad"], run="", source="")
        steps = h.steps
        if len(steps) and before is not None and steps[-1] >= before:
            raise StepsWentBack(f"{self.source}: spread writes reach the next step")
        if h.notes:  # writes in a row at one step, spread
            logged_steps = rows["step"][rows["logged"]]
            u, c = np.unique(logged_steps, return_counts=True)
            target.spread += int((c > 1).sum())
        m = h.columns["logged"]
        lr = h.columns["lr"]
        grad = h.columns["grad_norm"]
        ls, loss = steps[m], h.columns["loss"][m]
        target._ramp(h)
        if len(ls):
            target.summary.extend(ls, loss, None if lr is None else lr[m],
                                  None if grad is None else grad[m])
            if target.first_step is None:
                target.first_step = ls[0]
            target.last_step = ls[-1]
            target.n_points += len(ls)
        if lr is not None:
            fin = lr[np.isfinite(lr)]
            if len(fin):
                lo, hi = float(fin.min()), float(fin.max())
                target.lr_lo = lo if not lo >= target.lr_lo else target.lr_lo
                target.lr_hi = hi if not hi <= target.lr_hi else target.lr_hi
        val = h.columns["val_loss"]
        if val is not None:
            keep = ~np.isnan(val)
            if keep.any():
                target.val_steps.append(steps[keep])
                target.val.append(val[keep])
        target.done = steps[-1] if len(steps) else target.done

    def _ramp(self, h: History) -> None:
        """Keep the raw rows while the run could be an LR range test."""
        if self.ramp is None:
            return
        lr = h.columns["lr"]
        m = h.columns["logged"]
        if lr is None:
            lr_fin = np.empty(0)
        else:
            v = lr[m]
            lr_fin = v[np.isfinite(v)]
        if (len(lr_fin) and (lr_fin.min() <= 0 or np.any(np.diff(lr_fin) < 0)
                             or lr_fin[0] < self.ramp_lr)) or \
                self.n_points + int(m.sum()) > RAMP_KEEP:
            self.ramp = None
            return
        if len(lr_fin):
            self.ramp_lr = lr_fin[-1]
        self.ramp.append(h)

    # ------------------------------------------------------------------ reading
    def current(self) -> "Stream":
        """The state with the rows at the latest step committed too (a shallow copy when
        some are waiting; ``self`` when none are)."""
        if self.hold is None or not len(self.hold["step"]):
            return self
        out = Stream.__new__(Stream)
        out.__dict__.update(self.__dict__)
        out.summary = self.summary.copy(shallow=True)
        out.val_steps, out.val = list(self.val_steps), list(self.val)
        out.ramp = None if self.ramp is None else list(self.ramp)
        self._commit(out, self.hold, None)
        out.hold = None
        return out

    def history(self) -> History:
        """What :func:`lrdoctor.diagnosis.diagnose_history` reads: the raw rows while the
        run could be a range test that spans two decades, else a :class:`StreamHistory`."""
        s = self.current()
        rng = s.summary.lr_range
        if s.ramp and rng is not None and rng[0] > 0 and rng[1] >= 100 * rng[0]:
            return s._raw_history()
        return StreamHistory(s)

    def _raw_history(self) -> History:
        from lrdoctor.history import _Columns

        hs = self.ramp
        cols = {k: np.concatenate([h.columns[k] for h in hs])
                for k in ("loss", "logged")}
        for k in ("lr", "val_loss", "epoch", "grad_norm"):
            parts = [h.columns[k] for h in hs]
            cols[k] = None if all(p is None for p in parts) else np.concatenate(
                [np.full(len(h.steps), np.nan) if p is None else p
                 for h, p in zip(hs, parts)])
        steps = np.concatenate([h.steps for h in hs])
        notes = list(self.notes)
        if self.spread:
            notes.append(_spread_note(self.spread))
        return History(steps, _Columns(cols), run=self.run, source=self.source,
                       metric=self.metric, available=self.available, notes=notes)

    def diagnose(self, *, lr=None, context: str = "scratch", detectors=None) -> Diagnosis:
        h = self.history()
        d = diagnose_history(h, lr=lr, context=context, detectors=detectors)
        if isinstance(h, StreamHistory):
            return StreamDiagnosis(**{f.name: getattr(d, f.name) for f in fields(Diagnosis)},
                                   points=h.outline)
        return d


def _spread_note(k: int) -> str:
    return (f"{k} step(s) hold several losses written in a row (per-batch logging at one "
            "step, gradient accumulation); every write was kept, spread evenly within its "
            "step")


_KEYS = ("step", "loss", "logged", "lr", "val", "grad")


def _rows(step, loss, logged, lr, val, grad) -> dict | None:
    loss = np.asarray(loss, dtype=np.float64)
    if not len(loss):
        return None
    step = np.asarray(step)
    if step.dtype.kind not in "iuf":
        step = step.astype(np.float64)
    logged = np.ones(len(loss), bool) if logged is None else np.asarray(logged, bool)
    out = {"step": step, "loss": loss, "logged": logged,
           "lr": None if lr is None else np.asarray(lr, dtype=np.float64),
           "val": None if val is None else np.asarray(val, dtype=np.float64),
           "grad": None if grad is None else np.asarray(grad, dtype=np.float64)}
    if step.dtype.kind == "f":
        keep = np.isfinite(step)
        if not keep.all():  # rows without a step cannot be placed: dropped, as in batch
            out = {k: None if v is None else v[keep] for k, v in out.items()}
            if not keep.any():
                return None
    return out


def _cat(a, b):
    if a is None and b is None:
        return None
    if a is None or b is None:
        n_a = 0 if a is None else len(a)
        fill = np.full(n_a if a is None else len(b), np.nan)
        a, b = (fill, b) if a is None else (a, fill)
        if a is fill and not len(fill):
            return b
    if a.dtype.kind != b.dtype.kind and "f" in (a.dtype.kind, b.dtype.kind):
        a, b = a.astype(np.float64), b.astype(np.float64)
    return np.concatenate((a, b))


class StreamHistory(History):
    """The history of a run kept as a summary: what the diagnosis reads of it (the summary,
    the validation loss as written, the LR's range over every row); ``logged_steps`` and
    ``logged_loss`` are the summary's kept points (every finite point of a run of up to
    ``MAX_BINS * SAMPLE``), for the figures."""

    def __init__(self, s: Stream):
        vs = np.concatenate(s.val_steps) if s.val_steps else np.empty(0)
        v = np.concatenate(s.val) if s.val else None
        n = len(vs)
        super().__init__(vs, {"loss": np.full(n, np.nan), "lr": None, "val_loss": v,
                              "epoch": None, "grad_norm": None,
                              "logged": np.zeros(n, dtype=bool)},
                         run=s.run, source=s.source, metric=s.metric,
                         available=s.available,
                         notes=s.notes + ([_spread_note(s.spread)] if s.spread else []))
        self.summary = s.summary
        self.lr_range = None if np.isnan(s.lr_hi) else (s.lr_lo, s.lr_hi)
        self.outline = (s.n_points, _num(s.first_step), _num(s.last_step),
                        list(s.available))
        self._kept = None

    def _points(self):
        if self._kept is None:
            _, v, st = self.summary.points(0, self.summary.nf, 1 << 40)
            self._kept = (st, v)
        return self._kept

    @property
    def logged_steps(self) -> np.ndarray:
        return self._points()[0]

    @property
    def logged_loss(self) -> np.ndarray:
        return self._points()[1]


def _num(v):
    return None if v is None else float(v)


@dataclass(repr=False)
class StreamDiagnosis(Diagnosis):
    """A :class:`Diagnosis` of a run kept as a summary: its outline (points, first and last
    step) is the run's, not that of the points its history keeps."""

    points: tuple = (0, None, None, [])

    def outline(self) -> tuple:
        return self.points

    __repr__ = Diagnosis.__repr__


# ---------------------------------------------------------------------- the monitor
class Monitor:
    """Record a training run's loss step by step and diagnose its learning rate as it goes.

    Parameters
    ----------
    every : int, optional
        Re-diagnose after this many recorded points. Left out: after ``EVERY`` (250), or
        more when the steps are so short that re-diagnosing every 250 would take over
        ``PACE`` (0.25%) of the training's time: a routine re-diagnosis then waits until
        400 times its own duration has passed since the last one ended (at most
        ``16 * EVERY`` points). A re-diagnosis costs about 1 ms inside a training loop
        (the model's step leaves the caches cold). Either way, a non-finite loss
        re-diagnoses at once (the first of a streak; later ones wait for the next routine
        one), and so does a jump: a loss above ``JUMP`` (3) times both the run's starting
        level and its recent level (the first two such points in a row), so a blow-up is
        told at the step it happens.
    context : {'scratch', 'finetune'}, default 'scratch'
        The rules' LR range, as ``lrdoctor analyze --context``.
    detectors : dict, optional
        From :func:`lrdoctor.detect.default_detectors` with your thresholds.
    run : str, default 'run'
        The run's name in the Diagnosis and the report.
    lr_values : callable, optional
        Turns the list of ``lr`` given to :meth:`update` since the last re-diagnosis into
        their float values, at the re-diagnosis: a training callback may give ``update``
        what is cheap to take at each step and have the LRs computed from it there, for all
        the steps at once (the Keras callback: the optimizer's step count, under a
        ``LearningRateSchedule``). Default: each ``lr`` is a number.

    Attributes
    ----------
    n_points : int
        Points recorded so far.
    pending : int
        Points recorded since the latest re-diagnosis.
    last_diagnosis_ : Diagnosis or None
        The most recent re-diagnosis made by :meth:`update` or :meth:`diagnosis`.

    Notes
    -----
    Points wait in a small buffer (at most ``every`` of them; paced, at most 4,000) and go
    into the run's :class:`Stream` in one vectorized step at each re-diagnosis: an update
    is a few attribute operations, a re-diagnosis costs the new points plus a pass over the
    summary (at most 4097 bins), and the memory is bounded (about 2 MiB, plus the raw
    points while the run could be an LR range test: at most 20,000), whatever the length
    of the run.
    Steps must not go back (a resumed run): a step smaller than the last raises
    :class:`StepsWentBack`; a repeated step is a second write at that step (spread within
    it, as in a log).
    """

    def __init__(self, every: int | None = None, *, context: str = "scratch",
                 detectors: dict | None = None, run: str = "run", lr_values=None):
        if every is not None and (not isinstance(every, int) or isinstance(every, bool)
                                  or every < 1):
            raise ValueError(f"every must be a positive whole number of steps, not {every!r}")
        if context not in ("scratch", "finetune"):
            raise ValueError(f"context must be 'scratch' or 'finetune', not {context!r}")
        #: paced (``every`` left out): routine re-diagnoses kept under PACE of the time
        self.paced = every is None
        self.every = EVERY if every is None else every
        self._not_before = 0.0     # (paced) no routine re-diagnosis before this time
        self.context = context
        self.detectors = detectors
        self.run = run
        self.lr_values = lr_values
        self.stream = Stream(run=run, source=run)
        self._steps: list = []
        self._loss: list = []
        self._lr: list = []
        self._has_lr = False
        self._n = 0
        self._last_step = None
        self._since = 0            # points since the last re-diagnosis
        self._prev_finite = True   # whether the last recorded loss was finite
        self._ceiling = math.inf   # a loss above it is a jump (JUMP x the run's level)
        self._jumps = 0            # jumps in a row up to the last point
        self.last_diagnosis_: Diagnosis | None = None

    def __repr__(self) -> str:
        every = "None (paced)" if self.paced else repr(self.every)
        return (f"Monitor(every={every}, context={self.context!r}, run={self.run!r}, "
                f"n_points={self._n})")

    @property
    def n_points(self) -> int:
        return self._n

    @property
    def pending(self) -> int:
        """Points recorded since the latest re-diagnosis."""
        return self._since

    def update(self, step, loss, lr=None) -> Diagnosis | None:
        """Record one point; returns a Diagnosis when this point triggers a re-diagnosis
        (every ``every`` points, and at once on the first non-finite loss of a streak and on
        the first two points in a row of a jump), else None.

        Parameters
        ----------
        step : int or float
            The training step (never going back; a repeated step is another write at it).
        loss : float
            The training loss at that step (a 0-d tensor or array is converted).
        lr : float, optional
            The LR at that step (or what ``lr_values`` reads); where never given, the
            diagnosis has no LR column.
        """
        try:
            loss = float(loss)
        except (TypeError, ValueError):
            raise TypeError(f"Monitor.update: loss must be a number (or a 0-d tensor/array), "
                            f"not {type(loss).__name__} {loss!r:.40}") from None
        last = self._last_step
        if last is not None and step < last:
            raise StepsWentBack(f"Monitor.update: step {step} comes after step {last}; "
                                "steps must not go back (start a new Monitor for a resumed "
                                "run)")
        self._last_step = step
        self._steps.append(step)
        self._loss.append(loss)
        if lr is not None:
            self._has_lr = True
        self._lr.append(math.nan if lr is None else lr)
        self._n += 1
        self._since += 1
        finite = math.isfinite(loss)
        first_bad = not finite and self._prev_finite
        self._prev_finite = finite
        if self._ceiling == math.inf and finite and self.last_diagnosis_ is None \
                and loss > 0:
            self._ceiling = JUMP * loss  # before the first diagnosis: the first loss
        jump = finite and loss > self._ceiling
        self._jumps = self._jumps + 1 if jump else 0
        if first_bad or 0 < self._jumps <= 2:
            return self.diagnosis()
        if self._since >= self.every:
            if not self.paced:
                return self.diagnosis()
            now = time.perf_counter()
            if now >= self._not_before or self._since >= PACED_MAX * self.every:
                d = self.diagnosis()
                end = time.perf_counter()
                self._not_before = end + (end - now) / PACE
                return d
        return None

    def _flush(self) -> None:
        if not self._steps:
            return
        lr = None
        if self._has_lr:
            lr = np.asarray(self._lr if self.lr_values is None else self.lr_values(self._lr),
                            dtype=np.float64)
        self.stream.extend(np.asarray(self._steps), np.asarray(self._loss, dtype=np.float64),
                           lr=lr)
        self._steps, self._loss, self._lr = [], [], []

    def diagnosis(self) -> Diagnosis:
        """The Diagnosis of every point recorded so far: the batch answer on this prefix."""
        self._flush()
        d = self.stream.diagnose(context=self.context, detectors=self.detectors)
        self._since = 0
        self.last_diagnosis_ = d
        c = d.curve
        if c is not None and c.n_finite_prefix and not self._jumps:
            # (within a jump the level is the jump's: the ceiling stays the run's)
            level = max(c.start_level, c.final_level)
            self._ceiling = JUMP * level if 0 < level < math.inf else math.inf
        return d
