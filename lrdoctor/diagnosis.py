"""Weigh the findings into one verdict, and the :class:`Diagnosis` every front end renders."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lrdoctor import detect
from lrdoctor.detect._curve import FEW_POINTS, fmt_step, lr_range
from lrdoctor.errors import LrDoctorError
from lrdoctor.finding import Finding
from lrdoctor.history import History, from_columns
from lrdoctor.confidence import confidence, one_run_cannot_tell
from lrdoctor.rules import Recommendation, above_range, recommend

#: Kinds that say the LR is too high; the most severe finding decides the rule quoted, this
#: order only breaks ties (a non-finite loss before an explosion of equal severity).
HIGH = ("nonfinite", "hidden_nonfinite", "explosion", "divergence", "oscillation", "spike",
        "grad_spike")
#: Spike kinds, which make the verdict only from ``SPIKE_SEVERITY`` on (frequent, repeated).
SPIKES = ("spike", "grad_spike")
#: Kinds that say it is too low.
LOW = ("plateau", "slow")
#: Fewer points than this: no verdict of too low or healthy (``unknown``), which needs a
#: history; only the detectors of FEW_POINT_DETECTORS run.
MIN_POINTS = FEW_POINTS
#: The detectors that judge from a few points: one NaN, a jump far above the start, or a
#: climb that ends far above it says the LR is too high at any length.
FEW_POINT_DETECTORS = ("nonfinite", "explosion", "divergence", "gradnorm")
#: Why a finding of each of those kinds needs no history (a note on a short run's verdict).
_NO_HISTORY = {"nonfinite": "a non-finite loss needs no history",
               "hidden_nonfinite": "a NaN loss the log hides (non-finite gradient norm) "
                                   "needs no history",
               "explosion": "a jump far above the starting loss needs no history",
               "divergence": "a loss that climbs back and stays up to the end needs no "
                             "history"}
#: Spikes alone make the verdict only from this severity on (see ``Spikes.rate``).
SPIKE_SEVERITY = 0.5


@dataclass
class Diagnosis:
    """The result of analyzing one run: findings, verdict and recommendation.

    Attributes
    ----------
    run, source, metric : str
    history : History
    findings : list of Finding
    verdict : str
        ``too_high``, ``too_low``, ``ok`` or ``unknown``.
    recommendation : Recommendation
    current_lr : float or None
    notes : list of str
        What reading and diagnosing noticed beyond the findings.
    """

    run: str
    source: str
    metric: str
    history: History
    findings: list[Finding]
    verdict: str
    recommendation: Recommendation
    current_lr: float | None
    notes: list[str] = field(default_factory=list)
    #: the prepared curve the detectors read (reused by the figure, not recomputed)
    curve: detect.Curve | None = field(default=None, repr=False, compare=False)
    #: the sweep this run was judged in (``lrdoctor.sweep``), if any
    sweep: object = field(default=None, repr=False, compare=False)
    #: ``high``, ``medium`` or ``low`` (``lrdoctor.confidence``)
    confidence: str = "low"

    def outline(self) -> tuple:
        """``(n_points, first_step, last_step, other_metrics)``: what the reports say of the
        history (a light record of ``lrdoctor.many`` keeps only this)."""
        steps = self.history.logged_steps
        first, last = (float(steps[0]), float(steps[-1])) if len(steps) else (None, None)
        return int(len(steps)), first, last, list(self.history.available)

    def to_dict(self) -> dict:
        """The run object of ``lrdoctor analyze --format json`` (docs/json_contract.md)."""
        n, first, last, other = self.outline()

        def num(v):
            return None if v is None else int(v) if v == int(v) and abs(v) < 2**53 else v

        return {
            "source": self.source,
            "run": self.run,
            "metric": self.metric,
            "n_points": n,
            "first_step": num(first),
            "last_step": num(last),
            "current_lr": self.current_lr,
            "findings": [f.to_dict() for f in self.findings],
            "verdict": self.verdict,
            "recommendation": self.recommendation.to_dict(),
            "notes": list(self.notes),
            "other_metrics": other,
            "basis": "sweep" if self.sweep is not None and
                     self.sweep.best_lr is not None else "curve",
            "confidence": self.confidence,
        }

    @property
    def params(self) -> dict:
        """The run's logged hyperparameters (experiment trackers), else {}."""
        return getattr(self.history, "params", None) or {}

    def plot(self, ax=None, **kwargs):
        """Draw the annotated figure on ``ax`` (a new Figure when None); returns the Axes."""
        from lrdoctor.plot import plot_diagnosis

        return plot_diagnosis(self, ax=ax, **kwargs)

    def summary(self) -> str:
        from lrdoctor.render import text_report

        return text_report([self], color=False)

    def _repr_html_(self) -> str:
        from lrdoctor.render import html_summary

        return html_summary(self)

    def __repr__(self) -> str:
        r = self.recommendation
        return (f"Diagnosis(run={self.run!r}, verdict={self.verdict!r}, action={r.action!r}, "
                f"suggested_lr={r.suggested_lr!r}, findings={[f.kind for f in self.findings]})")


def _current_lr(history: History, lr: float | None) -> float | None:
    """The log's own LR (constant, or a schedule's peak); ``lr`` (``--lr``) only when the
    log has none."""
    rng = getattr(history, "lr_range", None) or lr_range(history.columns["lr"])
    if rng is not None and rng[1] > 0:
        return rng[1]
    return float(lr) if lr is not None else None


def _schedule(curve: detect.Curve, findings: list[Finding]) -> dict:
    out: dict = {"constant": True, "has_warmup": curve.warmup_end is not None}
    rng = curve.lr_range
    if rng is not None and rng[0] < 0.95 * rng[1]:
        out["constant"] = False
    for f in findings:
        if f.evidence.get("after_warmup"):
            out["after_warmup"] = True
            out["warmup_end_step"] = f.evidence["warmup_end_step"]
    # noisy late: the minibatch scatter in the last fifth is large against the level
    if curve.n_bins >= 20 and curve.log_space:
        out["noisy_late"] = bool(curve.noise > 0.5)
    return out


def weigh(findings: list[Finding], n_points: int) -> tuple[str, Finding | None]:
    """The verdict and the finding that decided it: a sign of a too-high LR decides at any
    length; with fewer than ``MIN_POINTS`` points nothing else does (``unknown``)."""
    high = [f for f in findings if f.kind in HIGH
            and (f.kind not in SPIKES or f.severity >= SPIKE_SEVERITY)]
    if high:
        return "too_high", min(high, key=lambda f: (-f.severity, HIGH.index(f.kind)))
    if n_points < MIN_POINTS:
        return "unknown", None
    low = [f for f in findings if f.kind in LOW]
    if low:
        return "too_low", max(low, key=lambda f: f.severity)
    return "ok", None


def diagnose_history(history: History, *, lr: float | None = None, context: str = "scratch",
                     detectors: dict | None = None) -> Diagnosis:
    """Run the detectors on one History and apply the rules."""
    # -- LR range tests (lrdoctor/range_test.py): the LR rising geometrically is a search
    from lrdoctor.range_test import diagnose_range_test

    if (rt := diagnose_range_test(history, lr=lr, context=context)) is not None:
        return rt
    # -- end of range tests
    curve = _curve(history)
    n = curve.n
    notes = list(history.notes)
    detectors = detectors or detect.default_detectors()
    if n < MIN_POINTS:
        detectors = {k: d for k, d in detectors.items() if k in FEW_POINT_DETECTORS}
    findings = detect.run(curve, detectors)
    findings = sorted(findings + _overfitting(history, curve),
                      key=lambda f: f.start if f.start is not None else 0)
    verdict, cause = weigh(findings, n)
    notes += [f.message for f in findings if f.kind == "grad_nonfinite"]
    if n < MIN_POINTS:
        notes.append(f"judged on only {n} point(s) of {history.metric!r}: "
                     f"{_NO_HISTORY[cause.kind]}" if cause is not None else
                     f"{n} point(s) of {history.metric!r}; at least {MIN_POINTS} are needed "
                     "to judge the LR")
    pace = getattr((detectors or {}).get("progress", detect.Progress()), "pace_points", 0)
    if verdict == "ok" and MIN_POINTS <= n < pace:
        notes.append(f"{n} points: too few to judge the pace of progress (at least {pace} "
                     "are needed); only instability and a flat loss were judged")
    current = _current_lr(history, lr)
    if lr is not None and current != float(lr):
        notes.append(f"--lr {float(lr):g} not used: the log has its own LR ({current:g}); "
                     "--lr-column picks another of its columns")
    rule = cause.kind if cause else verdict
    if verdict == "too_high" and cause is not None and any(
            f.kind == "plateau" for f in findings):
        notes.append("the loss is stuck high after the blow-up: the LR is too high, "
                     "not too low")
    elif rule == "plateau" and above_range(current, context):
        # A loss that never moves tells a too-low LR apart from one so large that the
        # model is stuck (at chance level, dead units) only through the LR itself: above
        # the rules' range the second reading is the likely one.
        verdict, rule = "too_high", "stuck_high"
        notes.append(f"the loss is flat from the start at LR {current:g}, above the "
                     f"{context} range of the rules: read as stuck high, not too low")
    floor = next((f for f in findings if f.kind == "floor"), None)
    if verdict == "ok" and floor is not None and above_range(current, context):
        # collapsed onto a floor early and sat there, at an LR above the rules' range: with
        # a constant Adam LR the level the loss settles at rises with the LR (the steps stay
        # large), so the LR is the likely cause; inside the range an early convergence and
        # a plateau look the same, and the finding stays evidence only
        verdict, rule, cause = "too_high", "floor_high", floor
        notes.append(f"the loss collapsed onto a floor early at LR {current:g}, above the "
                     f"{context} range of the rules: read as the LR setting that floor")
    elif floor is not None:
        # evidence only: listed as a finding it would read as a fault in a healthy run
        findings = [f for f in findings if f is not floor]
    over = next((f for f in findings if f.kind == "overfitting"), None)
    if verdict == "too_low" and cause.kind == "slow" and over is not None:
        # still creeping down while the validation loss has turned up: the model already
        # fits the training set beyond what generalizes; a larger LR would overfit sooner
        verdict, rule, cause = "ok", "ok", None
        notes.append("the training loss still creeps down, but the validation loss has "
                     "turned up: not a case for a larger LR")
    sched = _schedule(curve, findings)
    if verdict == "too_low" and cause.kind == "slow" and "late_share" in cause.evidence \
            and sched.get("noisy_late"):
        # still creeping down at the end, but the last stretch is noisy: a larger LR would
        # add noise, not speed; the run wants more steps (or a decaying LR to settle)
        verdict, rule, cause = "ok", "ok", None
        notes.append("the loss still creeps down at the end, but noisily: train longer "
                     "(or let a decaying LR settle it) rather than raise the LR")
    rec = recommend(verdict, cause=rule,
                    severity=cause.severity if cause else 0.0, current_lr=current,
                    context=context, schedule=sched)
    if over is not None:
        at = fmt_step(over.start)
        rec.notes.append(f"overfitting from step {at}: keep the LR for it; stop at step {at} "
                         "(the best checkpoint) or regularize (weight decay, dropout, more "
                         "data)")
    if verdict == "ok" and any(f.kind == "schedule_bound" for f in findings):
        third = "" if current is None else f" ({current / 3:.2g})"
        rec.notes.append(f"progress waited for the LR to decay: a run at 1/3 of the peak"
                         f"{third} would show whether the peak is too high (give lrdoctor "
                         "both runs)")
    elif verdict == "ok" and floor is not None:
        # an early floor inside the range: the LR may set it (too high) or the run may be
        # stuck on a plateau that a larger LR escapes; only runs at other LRs can tell
        rec.notes.append(f"the loss sat on a floor from step {fmt_step(floor.start)} on, which the "
                         "LR may set or a larger LR may escape; "
                         + one_run_cannot_tell(current))
    elif verdict == "ok":
        rec.notes.append(one_run_cannot_tell(current))
    conf = confidence(verdict, rule, cause.severity if cause else 0.0, n, pace_points=pace)
    return Diagnosis(run=history.run, source=history.source, metric=history.metric,
                     history=history, findings=findings, verdict=verdict,
                     recommendation=rec, current_lr=current, notes=notes, curve=curve,
                     confidence=conf)


def _curve(history: History) -> detect.Curve:
    """The curve the detectors read: from the loss's points, or from the summary a run
    followed point by point keeps instead of them (``lrdoctor.monitor.Stream``)."""
    summary = getattr(history, "summary", None)
    if summary is not None:
        return detect.Curve(summary=summary)
    logged = history.columns["logged"]
    lr_col = history.columns["lr"]
    if lr_col is not None and not logged.all():
        lr_col = lr_col[logged]  # an LR column with no value is told by Curve.lr_range
    grad = history.columns["grad_norm"]
    if grad is not None and not logged.all():
        grad = grad[logged]  # read at the loss's points (where the detector compares them)
    return detect.Curve(steps=history.logged_steps, values=history.logged_loss, lr=lr_col,
                        grad_norm=grad)


def _overfitting(history: History, curve: detect.Curve) -> list[Finding]:
    """The overfitting finding (``detect.Overfitting``) from the validation loss, if any."""
    cols = history.columns
    val = cols["val_loss"] if "val_loss" in cols else None
    if val is None or curve.n_bins < 2 or curve.n_finite_prefix < curve.n:
        return []
    k = curve.trend_settled
    return detect.Overfitting()(history.steps, val, curve.step_at(np.arange(k)),
                                curve.level[:k])


def diagnose(data, *, step=None, loss=None, lr=None, context: str = "scratch",
             detectors: dict | None = None, run: str = "run") -> Diagnosis:
    """Diagnose a loss history you already have in memory.

    Parameters
    ----------
    data : History, pandas.DataFrame, pandas.Series or array-like
        A Series is the loss indexed by step. A DataFrame needs a loss column (found by
        name, or given as ``loss=``) and may have step and LR columns.
    step, loss : str, optional
        Column names in a DataFrame.
    lr : float or str, optional
        The current LR (a number), or the name of a DataFrame's LR column.
    context : {'scratch', 'finetune'}
    detectors : dict, optional
        From :func:`lrdoctor.detect.default_detectors` with your thresholds.
    """
    import pandas as pd

    lr_value = lr if isinstance(lr, (int, float)) or lr is None else None
    if isinstance(data, History):
        hist = data
    elif isinstance(data, pd.DataFrame):
        from lrdoctor.readers._table import Selection, build

        cols = [str(c) for c in data.columns]
        df = data.copy()
        df.columns = cols
        if step is None and df.index.name and str(df.index.name) not in cols:
            step = str(df.index.name)  # a named index is the step (df.set_index("step"))
            df = df.reset_index()
            df.columns = [str(c) for c in df.columns]
            cols = list(df.columns)
        sel = Selection(cols, step=step, metric=loss,
                        lr_column=lr if isinstance(lr, str) else None, source=run)

        def get(name):
            v = pd.to_numeric(df[name], errors="coerce").to_numpy(np.float64)
            return v, df[name].notna().to_numpy()

        hist = build(sel, get, None, path=run)[0]
        hist.run = run
    else:
        s = data if isinstance(data, pd.Series) else pd.Series(np.asarray(data, dtype=float))
        idx = s.index.to_numpy()
        if idx.dtype.kind not in "iuf":
            idx = np.arange(len(s))
        hist = from_columns(idx, s.to_numpy(np.float64), run=run, source=run,
                            metric=str(s.name) if s.name is not None else "loss")
    return diagnose_history(hist, lr=lr_value, context=context, detectors=detectors)


def analyze(path, *, lr: float | None = None, context: str = "scratch", step=None,
            metric=None, lr_column=None, format=None, pattern=None,
            detectors=None, experiment=None, run=None) -> list[Diagnosis]:
    """Read a log file (every run it holds) and diagnose each run.

    ``path`` may also be an MLflow tracking database (``mlflow.db``, ``sqlite:///...``) or
    server (``http://host:5000``), narrowed by ``experiment`` and ``run`` (name or id).

    Raises
    ------
    LrDoctorError
        When the file cannot be read; the message names the file, the place and the fix.
    """
    from lrdoctor.readers import is_tracker, read

    if not is_tracker(path) and not Path(path).exists():
        raise LrDoctorError("no such file; check the path", str(path))
    hists = read(path, format=format, step=step, metric=metric, lr_column=lr_column,
                 pattern=pattern, experiment=experiment, run=run)
    return [diagnose_history(h, lr=lr, context=context, detectors=detectors) for h in hists]
