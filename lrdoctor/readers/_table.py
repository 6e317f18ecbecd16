"""Turn named columns (from any tabular reader) into canonical histories."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from lrdoctor.errors import LrDoctorError
from lrdoctor.history import History, from_columns
from lrdoctor.readers import _columns as C


class Selection:
    """Which column plays which role, found by name or given by the user."""

    def __init__(self, columns: list[str], *, step=None, metric=None, lr_column=None,
                 source: str):
        def need(name, override, flag):
            if override is not None and name is None:
                raise LrDoctorError(
                    f"no column named {override!r} ({flag}); columns seen: {_seen(columns)}",
                    source)
            return name

        self.step = need(C.find(columns, C.STEP, step), step, "--step")
        self.loss = need(C.find(columns, C.LOSS, metric), metric, "--metric")
        self.lr = need(C.find(columns, C.LR, lr_column, prefix="lr-"), lr_column,
                       "--lr-column")
        self.val = C.find(columns, C.VAL)
        self.epoch = C.find(columns, C.EPOCH)
        self.grad_norm = C.find_grad_norm(columns)
        self.run = C.find(columns, C.RUN)
        self.parts: list[str] = []
        #: how the loss was found, when not by an exact name (a note for the report)
        self.why: str | None = None
        if self.loss is None and metric is None:
            picked = C.pick_loss(columns)
            if picked is not None:
                chosen, self.why = picked
                if len(chosen) > 1:  # no total is logged (Ultralytics YOLO): parts summed
                    self.parts = chosen
                    self.loss = " + ".join(c.strip() for c in chosen)
                else:
                    self.loss = chosen[0]
        if self.val is None:
            self.val = next((r.name for r in C.rank_losses(columns)
                             if r.validation and r.total and r.name != self.loss), None)
        if self.loss is None:
            raise LrDoctorError(
                f"no loss column found; columns seen: {_seen(columns)}; "
                "name the one to diagnose with --metric", source)
        if self.step is None and self.epoch is not None and self.epoch != self.loss:
            self.step = self.epoch  # per-epoch logs (Keras CSVLogger): the epoch is the step
        self.available = [c.strip() for c in C.loss_like(columns)
                          if c not in (self.loss, *self.parts)]

    @property
    def label(self) -> str:
        """The loss's name as shown (padding stripped)."""
        return self.loss.strip()

    def notes(self) -> list[str]:
        """What a report should say about how the columns were chosen."""
        return [self.why] if self.why else []

    def numeric(self) -> list[str]:
        loss = self.parts if self.parts else [self.loss]
        return [c for c in dict.fromkeys([self.step, *loss, self.lr, self.val, self.epoch,
                                          self.grad_norm])
                if c is not None]


def _seen(columns: list[str], most: int = 25) -> str:
    shown = ", ".join(repr(c) for c in columns[:most])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > most else "")


def build(sel: Selection, get: Callable[[str], tuple[np.ndarray, np.ndarray]],
          runs: np.ndarray | None, *, path: str, notes: list[str] | None = None
          ) -> list[History]:
    """Histories from column getters.

    ``get(name)`` returns ``(values_float64, present_mask)`` for one column. ``runs`` holds
    the run name of each row when the table has a run column.
    """
    loss, loss_present = loss_values(sel, get)
    if not loss_present.any():
        raise LrDoctorError(f"column {sel.label!r} has no values", path)
    notes = sel.notes() + list(notes or [])
    cols = {}
    for role, name in (("step", sel.step), ("lr", sel.lr), ("val_loss", sel.val),
                       ("epoch", sel.epoch), ("grad_norm", sel.grad_norm)):
        if name is None or (role == "grad_norm" and name in (sel.loss, *sel.parts)):
            cols[role] = None
        elif role == "grad_norm":
            # converted on first access; a written NaN becomes inf (see history.py)
            cols[role] = (lambda n=name: grad_norm_values(*get(n))) if runs is None \
                else grad_norm_values(*get(name))
        elif role in ("val_loss", "epoch") and runs is None:
            # detection does not use them: converted only when looked at
            cols[role] = (lambda n=name: get(n)[0])
        else:
            cols[role] = get(name)[0]
    stem = run_stem(path)
    if runs is None:
        return [from_columns(cols["step"], loss, logged=loss_present, lr=cols["lr"],
                             val_loss=cols["val_loss"], epoch=cols["epoch"],
                             grad_norm=cols["grad_norm"], run=stem,
                             source=path, metric=sel.label, available=sel.available,
                             notes=notes)]
    out = []
    names, inverse = np.unique(runs.astype(str), return_inverse=True)
    for k, name in enumerate(names):
        rows = inverse == k
        if not loss_present[rows].any():
            continue
        pick = (lambda a: None if a is None else a[rows])
        out.append(from_columns(pick(cols["step"]), loss[rows], logged=loss_present[rows],
                                lr=pick(cols["lr"]), val_loss=pick(cols["val_loss"]),
                                epoch=pick(cols["epoch"]), grad_norm=pick(cols["grad_norm"]),
                                run=str(name),
                                source=f"{path}::{name}", metric=sel.label,
                                available=sel.available, notes=notes))
    return out


def loss_values(sel: Selection, get) -> tuple[np.ndarray, np.ndarray]:
    """(loss, present) of a table: its loss column, or the sum of its parts (present where
    every part is)."""
    if sel.parts:
        got = [get(p) for p in sel.parts]
        return (np.sum([g[0] for g in got], axis=0),
                np.logical_and.reduce([g[1] for g in got]))
    return get(sel.loss)


def run_stem(path: str) -> str:
    """A run's name from its file's name (the log's suffixes taken off)."""
    stem = Path(path).name
    for suffix in (".gz", ".csv", ".tsv", ".jsonl", ".json", ".txt", ".log"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem


def from_series(series: dict, sel: Selection, src: str, run: str, notes: list[str]) -> History:
    """One History from named (steps, values) series (TensorBoard tags, MLflow metric
    keys): rows on the union of the loss and validation steps, the LR carried forward."""
    loss_tags = sel.parts or [sel.loss]
    first = series[loss_tags[0]][0]
    if sel.parts and all(np.array_equal(series[t][0], first) for t in sel.parts):
        steps = first  # written together, event by event: summed as they came
        loss = np.sum([series[t][1] for t in sel.parts], axis=0)
    elif sel.parts:  # parts are summed where every part has the step
        steps = np.unique(series[sel.parts[0]][0])
        for t in sel.parts[1:]:
            steps = np.intersect1d(steps, series[t][0])
        loss = np.sum([_carried(series[t], steps) for t in sel.parts], axis=0)
    else:
        steps, loss = series[sel.loss]
    notes = sel.notes() + notes
    val = series.get(sel.val) if sel.val and sel.val not in loss_tags else None
    if val is not None:
        all_steps = np.r_[steps, val[0]]
        loss_col = np.r_[loss, np.full(len(val[0]), np.nan)]
        logged = np.r_[np.ones(len(steps), bool), np.zeros(len(val[0]), bool)]
        val_col = np.r_[np.full(len(steps), np.nan), val[1]]
    else:
        all_steps, loss_col, logged, val_col = steps, loss, np.ones(len(steps), bool), None
    lr = None
    if sel.lr is not None:
        lr = _carried(series[sel.lr], all_steps)
    grad = None
    if sel.grad_norm is not None and sel.grad_norm not in loss_tags:
        grad = _at(series[sel.grad_norm], all_steps)
    available = [t.strip() for t in C.loss_like(list(series)) if t not in loss_tags]
    return from_columns(all_steps, loss_col, logged=logged, lr=lr, val_loss=val_col,
                        grad_norm=grad, run=run, source=src, metric=sel.label,
                        available=available, notes=notes)


def grad_norm_values(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """A gradient-norm column as History keeps it: NaN where no value was written, inf
    where a non-finite one was (a norm is never negative, and NaN must keep meaning "not
    logged")."""
    bad = present & ~np.isfinite(values)
    if not bad.any():
        return values
    out = np.array(values, dtype=np.float64)
    out[bad] = np.inf
    return out


def _at(s: tuple[np.ndarray, np.ndarray], steps: np.ndarray) -> np.ndarray:
    """The series' value at each of ``steps`` where it has one (its last write there), NaN
    elsewhere; a written non-finite value is inf (:func:`grad_norm_values`)."""
    st, v = s
    v = np.where(np.isfinite(v), v, np.inf)
    order = np.argsort(st, kind="stable")
    st, v = st[order], v[order]
    i = np.searchsorted(st, steps, side="right") - 1
    out = v[np.maximum(i, 0)].astype(np.float64)
    out[(i < 0) | (st[np.maximum(i, 0)] != steps)] = np.nan
    return out


def _carried(s: tuple[np.ndarray, np.ndarray], steps: np.ndarray) -> np.ndarray:
    """The series' last value written at or before each step (an LR holds until it is
    changed; at a step the series has, its last write there); NaN before its first write."""
    st, v = s
    order = np.argsort(st, kind="stable")
    st, v = st[order], v[order]
    i = np.searchsorted(st, steps, side="right") - 1
    out = v[np.maximum(i, 0)].astype(np.float64)
    out[i < 0] = np.nan
    return out
