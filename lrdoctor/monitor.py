"""Diagnose a run while it trains: :class:`Monitor` records the loss one step at a time and
re-diagnoses every ``every`` steps (and at once on a non-finite loss).

>>> import lrdoctor
>>> mon = lrdoctor.Monitor(every=100)
>>> for step in range(50):
...     d = mon.update(step, 2.0 / (1 + step), lr=1.0)
>>> mon.update(50, float("nan"), lr=1.0).verdict     # a NaN is diagnosed at once
'too_high'

Each diagnosis is the batch diagnosis of the prefix recorded so far (the same History that
``lrdoctor analyze`` builds from a log of those steps, losses and LRs, run through the same
detectors), so what the monitor says at step N is what ``lrdoctor analyze`` says about the
log cut at step N. The training callbacks (``lrdoctor.callbacks``) are thin adapters on it.
"""
from __future__ import annotations

import math

import numpy as np

from lrdoctor.diagnosis import Diagnosis, diagnose_history
from lrdoctor.history import from_columns

_FIRST_CAPACITY = 1024


class Monitor:
    """Record a training run's loss step by step and diagnose its learning rate as it goes.

    Parameters
    ----------
    every : int, default 100
        Re-diagnose after this many recorded points. A non-finite loss re-diagnoses at once
        (the first of a streak; later ones wait for the next ``every``).
    context : {'scratch', 'finetune'}, default 'scratch'
        The rules' LR range, as ``lrdoctor analyze --context``.
    detectors : dict, optional
        From :func:`lrdoctor.detect.default_detectors` with your thresholds.
    run : str, default 'run'
        The run's name in the Diagnosis and the report.

    Attributes
    ----------
    n_points : int
        Points recorded so far.
    last_diagnosis_ : Diagnosis or None
        The most recent re-diagnosis made by :meth:`update` or :meth:`diagnosis`.

    Notes
    -----
    Points go into preallocated numpy buffers that double when full (amortized O(1) per
    point, 24 bytes per point: step, loss, LR). A re-diagnosis runs the batch detectors on
    the whole prefix, so its cost grows with the run (see the README's "Watching training"
    section for measured figures); :meth:`update` between re-diagnoses is a few attribute
    operations.
    """

    def __init__(self, every: int = 100, *, context: str = "scratch",
                 detectors: dict | None = None, run: str = "run"):
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be a positive whole number of steps, not {every!r}")
        if context not in ("scratch", "finetune"):
            raise ValueError(f"context must be 'scratch' or 'finetune', not {context!r}")
        self.every = every
        self.context = context
        self.detectors = detectors
        self.run = run
        self._steps = np.empty(_FIRST_CAPACITY)
        self._loss = np.empty(_FIRST_CAPACITY)
        self._lr = np.full(_FIRST_CAPACITY, np.nan)
        self._cap = _FIRST_CAPACITY
        self._n = 0
        self._has_lr = False
        self._since = 0            # points since the last re-diagnosis
        self._prev_finite = True   # whether the last recorded loss was finite
        self.last_diagnosis_: Diagnosis | None = None

    def __repr__(self) -> str:
        return (f"Monitor(every={self.every!r}, context={self.context!r}, run={self.run!r}, "
                f"n_points={self._n})")

    @property
    def n_points(self) -> int:
        return self._n

    @property
    def capacity(self) -> int:
        """Points the buffers hold before they grow (doubling)."""
        return self._cap

    def update(self, step, loss, lr=None) -> Diagnosis | None:
        """Record one point; returns a Diagnosis when this point triggers a re-diagnosis
        (every ``every`` points, and at once on the first non-finite loss of a streak), else
        None.

        Parameters
        ----------
        step : int or float
            The training step (increasing; a repeated step keeps its last write, as in a log).
        loss : float
            The training loss at that step (a 0-d tensor or array is converted).
        lr : float, optional
            The LR at that step; where never given, the diagnosis has no LR column.
        """
        n = self._n
        if n == self._cap:
            self._grow()
        try:
            loss = float(loss)
        except (TypeError, ValueError):
            raise TypeError(f"Monitor.update: loss must be a number (or a 0-d tensor/array), "
                            f"not {type(loss).__name__} {loss!r:.40}") from None
        self._steps[n] = step
        self._loss[n] = loss
        if lr is not None:
            self._lr[n] = lr
            self._has_lr = True
        self._n = n + 1
        self._since += 1
        finite = math.isfinite(loss)
        first_bad = not finite and self._prev_finite
        self._prev_finite = finite
        if first_bad or self._since >= self.every:
            return self.diagnosis()
        return None

    def diagnosis(self) -> Diagnosis:
        """The Diagnosis of every point recorded so far: the batch answer on this prefix."""
        n = self._n
        hist = from_columns(self._steps[:n], self._loss[:n],
                            lr=self._lr[:n] if self._has_lr else None,
                            run=self.run, source=self.run)
        d = diagnose_history(hist, context=self.context, detectors=self.detectors)
        self._since = 0
        self.last_diagnosis_ = d
        return d

    def _grow(self) -> None:
        cap = 2 * self._cap
        for name in ("_steps", "_loss", "_lr"):
            old = getattr(self, name)
            new = np.full(cap, np.nan) if name == "_lr" else np.empty(cap)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)
        self._cap = cap
