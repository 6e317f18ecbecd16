"""The sweep view: several runs of one model at different LRs, judged against each other.

One curve cannot show whether a larger LR would have done better; a sweep can. When the runs
given together are one model at several LRs, the best LR is estimated from all of them and
each run's verdict and suggested LR come from that estimate, with its own curve's findings kept
as evidence.

How the best LR is estimated (``basis``):

- each run's result is its final training loss: the mean of the finite loss over the last
  10% of its points (a mean, so late spikes count); a run that went non-finite, or ended
  above 1.5x its starting loss, diverged and counts as worst;
- runs at one LR (seeds) are combined by their median;
- the best grid LR is the one with the lowest result; when both neighbours on the grid have
  results, the lowest point of an Akima spline through the finite results around it, in
  log10(LR) (and log(loss) when the losses are positive), places the estimate between them
  (a coarse grid rarely lands on the optimum; scipy.interpolate, imported only then);
- the interval is the stretch of grid LRs around the best whose result is within
  ``tolerance`` (5%) of the best, or within the seed spread at the best when that is wider;
- at an edge of the grid (the best is the smallest or the largest LR tried) the sweep says
  so, and the runs next to the edge fall back on their own curves.

A run is judged against the sweep as a practitioner would: its LR is in the good band when it
lies within half a decade (``band``, 10**0.5) of the best grid LR, or inside the good range
(as good as the best, within tolerance); above the band it is too high, below too low, and
the LR suggested for a run outside the band is the estimate.

Runs are grouped explicitly (``explicit=True``: all of them are one sweep) or automatically
when their names, with an LR token (``lr0.001``, ``learning_rate_0.01``, ``lr=3e-4``), a seed
token (``s0``, ``seed_2``) and a run-number token (``version_3``) taken out, are the same, in
the same folder (or the same multi-run file), on the same metric, and at two LRs or more.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lrdoctor.readers._columns import LR_IN_NAME
from lrdoctor.rules import Recommendation

#: Half a decade: a run within this factor of the best LR is in the good band.
BAND = 10 ** 0.5
#: A run's result: the mean of its last ``TAIL`` share of points.
TAIL = 0.1
#: A run that ends above this multiple of its start diverged.
DIVERGED = 1.5

_SEED_TOKEN = re.compile(r"(?i)(?<![a-z0-9])(?:seed|s)[_=\-]?\d+(?![a-z0-9.])")
_RUN_TOKEN = re.compile(r"(?i)(?<![a-z])(?:version|run|trial)[_=\-]?\d+(?![a-z0-9.])")


#: Logged parameters that do not make two runs different models.
NOT_HPARAMS = frozenset({"seed", "random_seed", "random_state", "rng_seed", "run_name",
                         "output_dir", "logging_dir", "run_id"})


@dataclass
class Sweep:
    """Several runs of one model at different LRs and what they say together.

    Attributes
    ----------
    runs : list of Diagnosis
    best_lr : float or None
        The estimate of the best LR (None when every run diverged).
    best_lr_range : tuple of float or None
        The grid LRs around the best whose result is as good, within tolerance.
    basis : str
        What the estimate rests on, in words.
    edge : {'low', 'high'} or None
        The best is the smallest or the largest LR tried.
    grouped_by : str
        How the runs were found to be one sweep.
    val_best_lr : float or None
        The grid LR with the lowest final validation loss, when the runs have one.
    notes : list of str
    """

    runs: list
    best_lr: float | None
    best_lr_range: tuple | None
    basis: str
    edge: str | None
    grouped_by: str
    val_best_lr: float | None = None
    notes: list = field(default_factory=list)
    #: the grid: LRs, result per LR (median over seeds), seeds per LR
    grid: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        """The ``sweeps[]`` object of the JSON document."""
        return {"runs": [d.source for d in self.runs],
                "best_lr": self.best_lr,
                "best_lr_range": list(self.best_lr_range) if self.best_lr_range else None,
                "basis": self.basis,
                "edge": self.edge,
                "grouped_by": self.grouped_by,
                "val_best_lr": self.val_best_lr,
                "lrs": [float(v) for v in self.grid.get("lrs", [])],
                "final_loss": [float(v) for v in self.grid.get("result", [])],
                "notes": list(self.notes)}

    def summary(self) -> str:
        """``best LR ~ 0.003 (0.001-0.01) from 7 runs at 7 LRs``."""
        if self.best_lr is None:
            return f"no best LR: every one of the {len(self.runs)} runs diverged"
        lo, hi = self.best_lr_range
        s = (f"best LR ~ {self.best_lr:.2g} ({lo:.2g}-{hi:.2g}) from {len(self.runs)} runs "
             f"at {len(self.grid['lrs'])} LRs")
        if self.edge:
            s += f"; at the {'largest' if self.edge == 'high' else 'smallest'} LR tried"
        return s


def run_lr(d) -> float | None:
    """The LR a run was trained at: its current (constant or peak) LR, else one written in
    its name."""
    if d.current_lr is not None and d.current_lr > 0:
        return float(d.current_lr)
    m = LR_IN_NAME.search(d.run) or LR_IN_NAME.search(Path(d.source.split("::")[0]).name)
    if m:
        v = float(m.group(1))
        return v if v > 0 else None
    return None


@functools.lru_cache(maxsize=4096)
def _stripped(s: str) -> str:
    """``s`` with its LR, seed and run-number tokens replaced by tags (a folder or metric
    name is shared by many runs: worked out once)."""
    for rx, tag in ((LR_IN_NAME, "{lr}"), (_SEED_TOKEN, "{seed}"), (_RUN_TOKEN, "{run}")):
        s = rx.sub(tag, s)
    return s


@functools.lru_cache(maxsize=4096)
def _folder(src: str) -> str:
    """``str(Path(path).parent)`` for the folder part ``os.path.dirname(path)``."""
    return str(Path(src))


def group_key(d) -> tuple:
    """What must be equal for two runs to be one sweep (see the module notes)."""
    src = d.source.split("::")[0]
    where = src if "::" in d.source else _folder(os.path.dirname(src))
    strip = _stripped

    params = getattr(d, "params", None)
    if params:
        # a tracker's run (its name is often generated): one experiment, the same
        # parameters but for the LR, a seed and the run's name
        from lrdoctor.readers import _columns as C

        exp = d.run.rpartition("/")[0]
        same = frozenset((k, v) for k, v in params.items()
                         if C.find([k], C.LR) is None and C.normalize(k) not in NOT_HPARAMS)
        return strip(d.metric), f"{src}::{exp}", same
    # a wide file names each run's column by its LR: the metric is the run's name there
    return strip(d.metric), strip(where), _stripped.__wrapped__(d.run)


def find_sweeps(diagnoses: list, *, explicit: bool = False, tolerance: float = 0.05
                ) -> list[Sweep]:
    """Group the runs into sweeps, estimate each sweep's best LR and judge its runs by it.

    The diagnoses of runs in a sweep are updated in place: verdict and recommendation come
    from the sweep (saying so in their notes), their findings stay as evidence, and
    ``Diagnosis.sweep`` points at the Sweep.
    """
    if explicit:
        groups = {("--sweep",): [d for d in diagnoses if run_lr(d) is not None]}
    else:
        groups: dict = {}
        for d in diagnoses:
            if run_lr(d) is not None:
                groups.setdefault(group_key(d), []).append(d)
    out = []
    for key, members in groups.items():
        lrs = {round(float(np.log10(run_lr(d))), 3) for d in members}
        if len(lrs) < 2:
            continue
        if explicit:
            how = "--sweep: the runs given were taken as one sweep"
        elif isinstance(key[2], frozenset):
            how = (f"{len(members)} runs of {key[1]!r} whose logged parameters differ only "
                   f"by the LR (and seed)")
        else:
            how = (f"{len(members)} runs whose names differ only by an LR (seed, run number) "
                   f"token: {key[2]!r} in {key[1]!r}")
        sweep = estimate(members, grouped_by=how, tolerance=tolerance)
        judge(sweep)
        out.append(sweep)
    return out


def result(d) -> float:
    """A run's final training loss: the mean of its last 10% of finite points; inf when it
    diverged (went non-finite, or ended above 1.5x its starting loss)."""
    if d.history is None:  # a light record (lrdoctor.many.RunRecord) carries its result
        return d.final_loss
    x = np.asarray(d.history.logged_loss, dtype=np.float64)
    if len(x) == 0 or not np.isfinite(x).all() or \
            any(f.kind == "hidden_nonfinite" for f in d.findings):  # a NaN logged as 0
        return np.inf
    tail = x[-max(1, int(np.ceil(TAIL * len(x)))):]
    final = float(tail.mean())
    start = float(np.median(x[: max(1, min(5, len(x) // 20))]))
    if start > 0 and final > DIVERGED * start:
        return np.inf
    return final


def _val_result(d) -> float:
    if d.history is None:  # a light record carries its last validation loss
        return d.final_val_loss
    cols = d.history.columns
    v = cols["val_loss"] if "val_loss" in cols else None
    if v is None:
        return np.nan
    v = np.asarray(v, dtype=np.float64)
    fin = v[np.isfinite(v)]
    return float(fin[-1]) if len(fin) else np.nan


def estimate(members: list, *, grouped_by: str, tolerance: float = 0.05) -> Sweep:
    """The best LR of one sweep (see the module notes)."""
    lr = np.array([run_lr(d) for d in members])
    res = np.array([result(d) for d in members])
    val = np.array([_val_result(d) for d in members])
    key = np.round(np.log10(lr), 3)
    grid, inverse = np.unique(key, return_inverse=True)
    lrs = _medians(lr, inverse, len(grid))
    per = [res[inverse == k] for k in range(len(grid))]
    med = _medians(res, inverse, len(grid))
    seeds = int(max(len(p) for p in per))
    over = f"median over up to {seeds} seeds, " if seeds > 1 else ""
    basis = (f"final training loss (mean of the last {TAIL:.0%} of points; a diverged run "
             f"counts as worst), {over}at {len(grid)} LRs")
    grid_info = {"lrs": lrs, "result": med, "seeds": [len(p) for p in per], "best": None}
    if not np.isfinite(med).any():
        return Sweep(members, None, None, basis, None, grouped_by, grid=grid_info,
                     notes=["every LR of the sweep diverged: lower below the smallest "
                            f"tried ({lrs[0]:.2g}) by 10x"])
    b = int(np.nanargmin(np.where(np.isfinite(med), med, np.inf)))
    best = float(lrs[b])
    grid_info["best"] = best
    between = _between_grid_points(grid, med, b)
    if between is not None:
        best = between
    seen = per[b][np.isfinite(per[b])]  # a diverged seed (inf) is no spread of the result
    spread = float(np.ptp(seen)) if len(seen) > 1 else 0.0
    good = med <= med[b] + max(tolerance * abs(med[b]), spread)
    lo = hi = b
    while lo > 0 and good[lo - 1]:
        lo -= 1
    while hi < len(grid) - 1 and good[hi + 1]:
        hi += 1
    edge = None
    notes = []
    if b == len(grid) - 1:
        edge = "high"
        notes.append(f"the best is the largest LR tried ({lrs[-1]:.2g}): try 3x and 10x more "
                     f"({3 * lrs[-1]:.2g}, {10 * lrs[-1]:.2g})")
    elif b == 0:
        edge = "low"
        notes.append(f"the best is the smallest LR tried ({lrs[0]:.2g}): try 3x and 10x less "
                     f"({lrs[0] / 3:.2g}, {lrs[0] / 10:.2g})")
    val_best = None
    has_val = np.bincount(inverse[np.isfinite(val)], minlength=len(grid)) > 0
    seen = ~np.isnan(val)
    vmed = np.where(has_val, _medians(val[seen], inverse[seen], len(grid)), np.nan) \
        if has_val.any() else np.full(len(grid), np.nan)
    if np.isfinite(vmed).sum() >= 2:
        val_best = float(lrs[int(np.nanargmin(vmed))])
        if abs(np.log10(val_best / lrs[b])) > 0.25:
            notes.append(f"the validation loss picks LR {val_best:.2g} where the training "
                         f"loss picks {lrs[b]:.2g}: the larger LR may be overfitting")
    best = float(f"{best:.3g}")
    rng = (min(float(lrs[lo]), best), max(float(lrs[hi]), best))
    return Sweep(members, best, rng, basis, edge, grouped_by,
                 val_best_lr=val_best, notes=notes, grid=grid_info)


def _medians(values: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    """``np.median(values[group == k])`` for each k < n, in one sort (equal to it: the
    middle value, or the mean of the two middle ones; NaN for a group holding a NaN, or
    for an empty one)."""
    values = np.asarray(values, dtype=np.float64)
    order = np.lexsort((values, group))
    v, counts = values[order], np.bincount(group, minlength=n)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    lo, hi = starts + (counts - 1) // 2, starts + counts // 2
    out = np.full(n, np.nan)
    full = counts > 0
    a, b = v[lo[full]], v[hi[full]]
    with np.errstate(invalid="ignore", over="ignore"):
        out[full] = np.where(lo[full] == hi[full], a, (a + b) / 2)
    nan = np.bincount(group[np.isnan(values)], minlength=n) > 0
    out[nan] = np.nan
    return out


def _between_grid_points(grid: np.ndarray, med: np.ndarray, b: int) -> float | None:
    """The LR of the lowest result between the best grid point's two neighbours, on an
    Akima spline through the finite results around it (log10 LR against log loss when the
    losses are positive); None when the best has no finite neighbour on either side.

    The curve of final loss against log LR is lopsided (a gentle slope below the best, a
    wall above it); a parabola through three points is symmetric and pulls the estimate
    towards the gentle side. Akima's spline takes each point's slope from the points on
    both sides and never overshoots between them, so the wall stays a wall. On the
    benchmark sweeps (sweep_bench.py, mean |log10(estimate / best)|) it cut the error from
    0.15/0.17/0.26 to 0.09/0.14/0.14 (full/seed0/decade designs; decade: within half a
    decade 0.89 -> 1.00), sparse3 the same; a robust parabola over five grid points
    (least_squares, soft_l1) did worse (0.25/0.23/0.46). scipy.interpolate costs ~0.4 s of
    CPU to import, so only a sweep with a best inside its grid imports it.
    """
    finite = np.isfinite(med)
    lo = hi = b
    while lo > 0 and finite[lo - 1]:
        lo -= 1
    while hi < len(grid) - 1 and finite[hi + 1]:
        hi += 1
    if not lo < b < hi:
        return None
    from scipy.interpolate import Akima1DInterpolator  # lazily: only a sweep needs it

    xs, ys = grid[lo:hi + 1], med[lo:hi + 1]
    if (ys > 0).all():  # losses that span decades: the spline in log(loss)
        ys = np.log(ys)
    spline = Akima1DInterpolator(xs, ys)
    turns = spline.derivative().roots(extrapolate=False)
    cand = np.r_[grid[b], turns[(turns > grid[b - 1]) & (turns < grid[b + 1])]]
    return float(10 ** cand[int(np.argmin(spline(cand)))])


def judge(sweep: Sweep, band: float = BAND) -> None:
    """Each run's verdict and suggested LR from the sweep's estimate (in place)."""
    from lrdoctor.rules import RAISE, LOWER

    summary = sweep.summary()
    for d in sweep.runs:
        own = f"{d.verdict} ({d.recommendation.rule})"
        lr = run_lr(d)
        if sweep.best_lr is None:
            continue  # every run diverged: each keeps its own (too high) verdict
        ratio = lr / sweep.best_lr
        lo_ok = min(sweep.best_lr_range[0], sweep.grid["best"] / band) * 0.99
        hi_ok = max(sweep.best_lr_range[1], sweep.grid["best"] * band) * 1.01
        at_edge = (sweep.edge == "high" and ratio * band > 1) or \
            (sweep.edge == "low" and ratio < band)
        if at_edge:
            # beyond the edge the sweep cannot see: the run's own curve decides
            if sweep.edge == "high" and d.verdict == "too_low":
                verdict, action, factor = "too_low", "raise", RAISE
                suggested, why = lr * 3, "the sweep's best is its largest LR and this " \
                    "run's own curve is still too slow"
            elif sweep.edge == "low" and d.verdict == "too_high":
                verdict, action, factor = "too_high", "lower", LOWER
                suggested, why = lr / 5, "the sweep's best is its smallest LR and this " \
                    "run's own curve is unstable"
            else:
                verdict, action, factor, suggested = "ok", "keep", (1, 1), lr
                why = "in the sweep's best band, at its edge"
        elif lr > hi_ok:
            verdict, action = "too_high", "lower"
            factor = _factors(lr, sweep.best_lr_range[::-1])
            suggested, why = sweep.best_lr, f"{ratio:.3g}x the sweep's best LR"
        elif lr < lo_ok:
            verdict, action = "too_low", "raise"
            factor = _factors(sweep.best_lr_range, lr, invert=True)
            suggested, why = sweep.best_lr, f"1/{1 / ratio:.3g} of the sweep's best LR"
        else:
            verdict, action, factor, suggested = "ok", "keep", (1, 1), lr
            why = "in the sweep's good band (within half a decade of its best grid LR, or as " \
                "good as the best)"
        if d.verdict == "too_high" and \
                any(f.kind in ("nonfinite", "hidden_nonfinite") for f in d.findings) \
                and verdict != "too_high":
            continue  # its own loss went non-finite: that needs no comparison
        d.sweep = sweep
        rule = f"sweep: {why}; {summary}"
        notes = [f"this verdict comes from the sweep of {len(sweep.runs)} runs; the run's "
                 f"own curve says {own}"] + list(sweep.notes)
        d.verdict = verdict
        d.confidence = "medium" if at_edge else "high"
        d.recommendation = Recommendation(action, tuple(float(f"{v:.3g}") for v in factor),
                                          float(f"{suggested:.2g}"), rule, notes)


def _factors(a, b, invert: bool = False) -> tuple:
    """(min, max) factor between an LR and the ends of a range."""
    if invert:  # raise: range / lr
        lo, hi = a[0] / b, a[1] / b
    else:  # lower: lr / range
        lo, hi = a / b[0], a / b[1]
    return (min(lo, hi), max(lo, hi))
