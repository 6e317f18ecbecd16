"""The canonical loss history every reader produces and every detector consumes.

A :class:`History` wraps one run. Its ``frame`` is a pandas DataFrame indexed by ``step``
(int64 where the log's steps are whole numbers, else float64), sorted, one row per step, with
float64 columns:

``loss``
    the training loss that is diagnosed (NaN / inf exactly as the run wrote them);
``lr``
    the learning rate at that step, where the log has it;
``val_loss``
    the validation loss, where the log has it;
``epoch``
    the epoch, where the log has it;
``grad_norm``
    the total gradient norm, where the log has it (NaN where not logged; a written NaN or
    inf is kept as inf, so NaN keeps meaning "not logged": a non-finite gradient norm is
    evidence, see ``lrdoctor.detect.GradNorm``);

Every frame has all of these columns, NaN-filled when the log lacks one (the schema does not
depend on the log), and one bool column ``logged``: True where the run wrote a training loss at that step. Rows
with ``logged`` False exist because something else was logged there (validation rows of a
Lightning ``metrics.csv``, say); their ``loss`` is NaN and means "not logged", which is how a
written ``nan`` stays distinguishable from a missing cell.

The columns are stored as numpy arrays and the frame is built on first use (zero-copy), so
the command line's path never needs pandas.
"""
from __future__ import annotations

import numpy as np

COLUMNS = ("loss", "lr", "val_loss", "epoch", "grad_norm")


class _Columns(dict):
    """Column arrays by name; a value may be a zero-argument callable that produces the
    array on first access (readers pass the columns detection does not need, validation
    loss and epoch, that way, so a large log converts them only when they are looked at;
    the gradient norm too, converted when the diagnosis reads it)."""

    def __getitem__(self, name):
        v = super().__getitem__(name)
        if callable(v):
            v = np.asarray(v(), dtype=np.float64)
            self[name] = v
        return v

    def resolved(self) -> dict:
        return {k: self[k] for k in self}


class History:
    """One run's loss history in canonical form.

    Parameters
    ----------
    steps : ndarray
        Sorted, unique steps.
    columns : dict of ndarray
        ``loss``, ``lr``, ``val_loss``, ``epoch``, ``grad_norm`` (float64, NaN where not
        logged; None, or left out, for a column the log does not have at all) and ``logged`` (bool), aligned with ``steps``.
    run : str
        The run's name (from the log where it has one, else from the file name).
    source : str
        The input as given, plus ``::run`` for one run of a multi-run file.
    metric : str
        The column or tag the ``loss`` column was read from.
    available : list of str
        Other loss-like columns the log had (so the output can say what else was there).
    notes : list of str
        What reading did that the user should know (repeated steps, a cut last line, ...).
    """

    def __init__(self, steps, columns, *, run, source, metric="loss", available=None,
                 notes=None):
        self.steps = steps
        self.columns = columns if isinstance(columns, _Columns) else _Columns(columns)
        self.columns.setdefault("grad_norm", None)
        self.run = run
        self.source = source
        self.metric = metric
        self.available = list(available or [])
        self.notes = list(notes or [])
        #: the run's logged hyperparameters (experiment trackers), {name: text}; empty else
        self.params: dict = {}
        self._frame = None

    # ------------------------------------------------------------------ numpy views
    @property
    def logged_steps(self) -> np.ndarray:
        m = self.columns["logged"]
        return self.steps if m.all() else self.steps[m]

    @property
    def logged_loss(self) -> np.ndarray:
        m = self.columns["logged"]
        v = self.columns["loss"]
        return v if m.all() else v[m]

    def present(self, name):
        """(steps, values) of a column where it was logged (numpy arrays), or None when
        the log has no value of it: the figures read these, so they never need pandas."""
        v = self.columns[name]
        if v is None:
            return None
        keep = ~np.isnan(v)
        return (self.steps[keep], v[keep]) if keep.any() else None

    # ------------------------------------------------------------------ pandas views
    @property
    def frame(self):
        """The canonical DataFrame (built once, sharing memory with the arrays)."""
        if self._frame is None:
            import pandas as pd

            n = len(self.steps)
            self._frame = pd.DataFrame(
                {k: np.full(n, np.nan) if self.columns[k] is None else self.columns[k]
                 for k in (*COLUMNS, "logged")},
                index=pd.Index(self.steps, name="step", copy=False), copy=False)
        return self._frame

    @property
    def loss(self):
        """The training loss (pandas Series) at the steps where it was logged."""
        import pandas as pd

        return pd.Series(self.logged_loss, index=pd.Index(self.logged_steps, name="step"),
                         name="loss")

    def _series(self, name):
        import pandas as pd

        p = self.present(name)
        return None if p is None else pd.Series(p[1], index=pd.Index(p[0], name="step"),
                                                name=name)

    @property
    def lr(self):
        """The learning rate where logged (Series), or None when the log has no LR."""
        return self._series("lr")

    @property
    def val_loss(self):
        """The validation loss where logged (Series), or None."""
        return self._series("val_loss")

    @property
    def grad_norm(self):
        """The gradient norm where logged (Series; inf where the run wrote NaN/inf), or
        None."""
        return self._series("grad_norm")

    def __repr__(self) -> str:
        return (f"History(run={self.run!r}, source={self.source!r}, metric={self.metric!r}, "
                f"points={int(self.columns['logged'].sum())})")


def from_columns(step, loss, *, logged=None, lr=None, val_loss=None, epoch=None,
                 grad_norm=None, run: str, source: str, metric: str = "loss",
                 available=None, notes=None) -> History:
    """Build a History from aligned column arrays (one entry per log row).

    ``logged`` marks the rows whose loss cell was written (default: all). ``grad_norm``
    holds NaN where no gradient norm was written and inf where a non-finite one was
    (``lrdoctor.readers._table.grad_norm_values``); any column but the loss and ``logged``
    may be a zero-argument callable, converted on first access. Rows are sorted by
    step; where a step repeats, each column keeps its last written value, and when the loss
    itself was written twice (a resumed run) a note says how many steps repeated.
    """
    loss = np.asarray(loss, dtype=np.float64)
    n = len(loss)
    logged = np.ones(n, dtype=bool) if logged is None else np.asarray(logged, dtype=bool)

    def col(a):
        if a is None or callable(a):
            return a
        return np.asarray(a, dtype=np.float64)

    cols = _Columns({"loss": loss, "lr": col(lr), "val_loss": col(val_loss),
                     "epoch": col(epoch), "grad_norm": col(grad_norm), "logged": logged})
    step = np.arange(n, dtype=np.int64) if step is None else np.asarray(step)
    if step.dtype.kind == "f":
        keep = np.isfinite(step)
        if not keep.all():  # rows without a step cannot be placed: drop them
            step = step[keep]
            cols = _Columns({k: None if v is None else v[keep]
                             for k, v in cols.resolved().items()})
        if len(step) and max(-float(step.min()), float(step.max())) < 2**53:
            as_int = step.astype(np.int64)
            if np.array_equal(as_int, step):
                step = as_int
    notes = list(notes or [])
    if len(step) > 1 and np.all(step[1:] > step[:-1]):  # the common case: nothing to do
        return History(step, cols, run=run, source=source, metric=metric,
                       available=available, notes=notes)
    step, spread = _spread_writes_in_a_row(step, cols["logged"])
    if spread:
        notes.append(f"{spread} step(s) hold several losses written in a row (per-batch "
                     "logging at one step, gradient accumulation); every write was kept, "
                     "spread evenly within its step")
    if len(step) > 1 and not np.all(step[1:] > step[:-1]):
        order = np.argsort(step, kind="stable")
        step = step[order]
        cols = _Columns({k: None if v is None else v[order]
                         for k, v in cols.resolved().items()})
        if np.any(step[1:] == step[:-1]):
            step, cols, repeated = _last_write_wins(step, cols)
            if repeated:
                notes.append(f"{repeated} step(s) were logged more than once (a resumed "
                             "run?); the last write of each was kept")
    return History(step, cols, run=run, source=source, metric=metric, available=available,
                   notes=notes)


def _spread_writes_in_a_row(step: np.ndarray, logged: np.ndarray) -> tuple[np.ndarray, int]:
    """Several losses logged at one step, one after another, in a log whose steps never go
    back, are consecutive points (a logger that writes every batch under the epoch's step),
    not rewrites: give the k-th of m writes at step s the step ``s + k / m``. A log whose
    steps go back (a resumed run) is left to last-write-wins."""
    ls = step[logged]
    if len(ls) < 2:
        return step, 0
    d = np.diff(ls)
    if not (d == 0).any() or (d < 0).any():
        return step, 0
    left = np.searchsorted(ls, ls, side="left")
    count = np.searchsorted(ls, ls, side="right") - left
    out = step.astype(np.float64)
    out[logged] = ls + (np.arange(len(ls)) - left) / count
    return out, int(len(np.unique(ls[count > 1])))


def _last_write_wins(step, cols):
    """Collapse repeated steps (rows sorted stably by step).

    Per column, the last value written at that step; for the loss, the last logged row's
    value even when it is NaN (a written NaN is a value). Only a loss logged twice at one
    step counts as a repeat: a train row and a validation row sharing a step (Lightning) are
    merged without comment.
    """
    uniq, inverse = np.unique(step, return_inverse=True)
    rows = np.arange(len(step))

    def last_value(v, written):
        """Per step, v at the last row where ``written``; NaN where none was."""
        last = np.full(len(uniq), -1)
        np.maximum.at(last, inverse[written], rows[written])
        return np.where(last >= 0, v[np.maximum(last, 0)], np.nan), last >= 0

    out = {}
    for name in ("lr", "val_loss", "epoch", "grad_norm"):
        v = cols[name]
        out[name] = None if v is None else last_value(v, ~np.isnan(v))[0]
    logged = cols["logged"]
    out["loss"], out["logged"] = last_value(cols["loss"], logged)
    counts = np.bincount(inverse[logged], minlength=len(uniq))
    return uniq, _Columns(out), int((counts > 1).sum())
