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

and one bool column ``logged``: True where the run wrote a training loss at that step. Rows
with ``logged`` False exist because something else was logged there (validation rows of a
Lightning ``metrics.csv``, say); their ``loss`` is NaN and means "not logged", which is how a
written ``nan`` stays distinguishable from a missing cell.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

COLUMNS = ("loss", "lr", "val_loss", "epoch")


@dataclass
class History:
    """One run's loss history in canonical form.

    Parameters
    ----------
    frame : pandas.DataFrame
        See the module docstring for its columns.
    run : str
        The run's name (from the log where it has one, else from the file name).
    source : str
        The input as given, plus ``::run`` for one run of a multi-run file.
    metric : str
        The column or tag the ``loss`` column was read from.
    available : list of str
        Other loss-like columns the log had (so the output can say what else was there).
    notes : list of str
        What reading did that the user should know (repeated steps dropped, ...).
    """

    frame: pd.DataFrame
    run: str
    source: str
    metric: str = "loss"
    available: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def loss(self) -> pd.Series:
        """The training loss at the steps where it was logged (non-finite values included)."""
        f = self.frame
        logged = f["logged"].to_numpy()
        return f["loss"] if logged.all() else f["loss"][logged]

    @property
    def lr(self) -> pd.Series | None:
        """The learning rate where logged, or None when the log has no LR."""
        s = self.frame["lr"].dropna()
        return s if len(s) else None

    @property
    def val_loss(self) -> pd.Series | None:
        s = self.frame["val_loss"].dropna()
        return s if len(s) else None


def from_columns(
    step: np.ndarray | None,
    loss: np.ndarray,
    *,
    logged: np.ndarray | None = None,
    lr: np.ndarray | None = None,
    val_loss: np.ndarray | None = None,
    epoch: np.ndarray | None = None,
    run: str,
    source: str,
    metric: str = "loss",
    available: list[str] | None = None,
    notes: list[str] | None = None,
) -> History:
    """Build a History from aligned column arrays (one entry per log row).

    ``logged`` marks the rows whose loss cell was written (default: all). Rows are sorted by
    step; where a step repeats (a resumed run), each column keeps its last written value and a
    note says how many steps repeated.
    """
    loss = np.asarray(loss, dtype=np.float64)
    n = len(loss)
    if step is None:
        step = np.arange(n, dtype=np.int64)
    step = np.asarray(step)
    if step.dtype.kind == "f":
        fin = np.isfinite(step)
        if not fin.all():  # rows without a step cannot be placed: drop them
            keep = fin
            step, loss = step[keep], loss[keep]
            logged = None if logged is None else np.asarray(logged)[keep]
            lr = None if lr is None else np.asarray(lr)[keep]
            val_loss = None if val_loss is None else np.asarray(val_loss)[keep]
            epoch = None if epoch is None else np.asarray(epoch)[keep]
            n = len(loss)
        if n and np.abs(step).max(initial=0) < 2**53:
            as_int = step.astype(np.int64)
            if np.array_equal(as_int, step):
                step = as_int
    logged = np.ones(n, dtype=bool) if logged is None else np.asarray(logged, dtype=bool)

    def col(a):
        return np.full(n, np.nan) if a is None else np.asarray(a, dtype=np.float64)

    frame = pd.DataFrame(
        {"loss": loss, "lr": col(lr), "val_loss": col(val_loss), "epoch": col(epoch),
         "logged": logged},
        index=pd.Index(step, name="step", copy=False), copy=False,  # no 2-D consolidation copy
    )
    notes = list(notes or [])
    idx = frame.index.to_numpy()
    if n > 1 and not np.all(idx[1:] > idx[:-1]):
        frame = frame.sort_index(kind="stable")
        idx = frame.index.to_numpy()
        if np.any(idx[1:] == idx[:-1]):
            frame, repeated = _last_write_wins(frame)
            if repeated:
                notes.append(
                    f"{repeated} step(s) were logged more than once (a resumed run?); "
                    "the last write of each was kept")
    return History(frame=frame, run=run, source=source, metric=metric,
                   available=list(available or []), notes=notes)


def _last_write_wins(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Collapse repeated steps: per column, the last value written at that step."""
    # Only a loss written twice at one step is a repeat; a train row and a validation row
    # sharing a step (Lightning) are merged without comment.
    logged_idx = frame.index[frame["logged"].to_numpy()]
    n_repeated = int(logged_idx[logged_idx.duplicated()].nunique())
    # A training loss written at a step counts as written even when it is NaN: take the
    # last logged row's loss, and for the other columns the last non-missing value.
    f = frame.copy()
    f["_order"] = np.arange(len(f))
    g = f.groupby(level=0, sort=True)
    out = g[["lr", "val_loss", "epoch"]].last()
    logged_rows = f[f["logged"]]
    last_loss = logged_rows.groupby(level=0)["loss"].last() if len(logged_rows) else None
    # groupby().last() skips NaN; for the loss use the positionally last logged row.
    if last_loss is not None:
        pos = logged_rows.groupby(level=0)["_order"].max()
        last_loss = f.set_index("_order").loc[pos.to_numpy(), "loss"]
        last_loss.index = pos.index
    out["loss"] = np.nan if last_loss is None else last_loss.reindex(out.index)
    out["logged"] = g["logged"].any()
    return out[["loss", "lr", "val_loss", "epoch", "logged"]], n_repeated
