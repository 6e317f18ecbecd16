"""LR range tests: a log whose LR rises geometrically is read as a search for the LR, not as
a blow-up.

An LR range test (Smith 2017, "Cyclical learning rates"; fastai's ``lr_find``, Lightning's
``Tuner.lr_find``, torch-lr-finder) trains for a few hundred steps while the LR grows
exponentially, from far too small (1e-7) to far too large (10), and watches the loss: flat
while the LR is too small to matter, falling once it bites, lowest near the edge of stability,
then blowing up. The answer is an LR on the falling stretch, well below the blow-up.

The rule, in words (see :func:`analyze` for the reasons behind each constant):

1. Smooth the loss (raw per-step logs only: the tools' results are smoothed already) with a
   centered window of half a decade of LR, in log space.
2. Cut the curve where it diverges: the first non-finite loss, or the smoothed loss beyond
   4x its running minimum.
3. The minimum of the smoothed loss before that is ``min_loss_lr``; the steepest descent
   (most negative slope of log loss against log LR) before the minimum is ``steepest_lr``.
4. Suggest an order of magnitude below the divergence point (the rules' "lower 5-10x" for
   an LR shown to blow up, at its safe end), never above ``min_loss_lr``; the range runs
   from ``steepest_lr`` (at least 3x below the suggestion) to ``divergence_lr / 5`` (the
   other end of the rules' advice), also never above ``min_loss_lr``. A test that never
   blew up falls back on fastai's ``min_loss_lr / 10``.
5. Cap the suggestion and the range at the top of the context's search range
   (``lrdoctor.rules.CONTEXTS``), with a note; advise warmup for the high end; warn (low
   confidence) when the curve is too short, too flat or too noisy to say.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from lrdoctor.detect._curve import _robust_scale, running_median
from lrdoctor.diagnosis import Diagnosis
from lrdoctor.errors import LrDoctorError
from lrdoctor.history import History
from lrdoctor.rules import CONTEXTS, Recommendation, _round_lr

#: A range test spans at least this many decades of LR (issue 10: "two decades or more");
#: warmup ramps and step schedules change the LR by one or two decades at most, and never
#: along a straight line in log LR.
MIN_DECADES = 2.0
#: A log of more points is a training run, never a range test (the live monitor keeps a
#: run's raw points only this long to tell; ``lrdoctor.monitor.RAMP_KEEP``).
MAX_POINTS = 20_000
#: How far log10(LR) may stray from a straight line in step, as a share of its span: 10%
#: lets a staircase of half-decade steps over 3+ decades pass and keeps a linear warmup out
#: (the log of a linear ramp bends by most of its span within its first tenth).
STRAIGHTNESS = 0.1
#: Fewer logged LRs than this cannot show a line (the detectors' own FEW_POINTS).
MIN_LR_POINTS = 10
#: The loss has diverged once its smoothed value passes this multiple of its running
#: minimum (fastai's and Lightning's stopping rule, ``diverge_th``/``early_stop_threshold``).
DIVERGE_FACTOR = 4.0
#: Width of the smoothing window in decades of LR. The answer is wanted to the rules' grid
#: (1e-3, 3e-4, 1e-4: steps of half a decade), so detail finer than that is noise to it.
SMOOTH_DECADES = 0.5
#: The first share of the points is not searched for the steepest descent: a tool's
#: debiased moving average is still an average of a handful of batches there (fastai's
#: ``skip_start=10`` of its default 100 points).
SKIP_START = 0.1
#: The suggestion is an order of magnitude below the LR that blew up: the rules' own advice
#: for an LR shown to be too high ("lower 5-10x", its safe end); the high end of the range is
#: the other end of that advice (5x). Both stay at or below the minimum of the loss, the
#: last LR at which the test still gained: past it the LR already costs progress.
BELOW_DIVERGENCE = 10.0
HIGH_BELOW_DIVERGENCE = 5.0
#: A test that never blew up has no divergence point: then fastai's "minimum / 10", and
#: one grid step (half a decade, ~3x) below the minimum for the high end.
BELOW_MIN = 10.0
HIGH_BELOW_MIN = 3.0
#: The low end is the steepest descent (where the LR surely bites), and at least one grid
#: step (half a decade) below the suggestion.
LOW_BELOW_SUGGESTION = 3.0
#: Too flat: the smoothed loss falls from its start by less than 5%, or by less than three
#: standard errors of the smoothed level (a fall the minibatch scatter could draw alone).
MIN_DROP = 0.05
NOISE_Z = 3.0
#: Too noisy: the per-point scatter exceeds half the fall (the descent is not visible from
#: one point to the next).
NOISY_SHARE = 0.5
#: Too short: fewer points than this before the blow-up hold under four smoothing windows
#: on a 1e-7..10 test: the steepest point and the minimum are then one window apart.
SHORT_POINTS = 20
#: The minimum must lie this many decades above the first LR, or the flat start, which
#: shows where the LR starts to bite, is missing (the test started too high).
MIN_LEAD_DECADES = 1.0
#: Lag-1 autocorrelation of the residual around a running median above which a curve is
#: taken as smoothed already: white minibatch noise gives about 0, a moving average (the
#: tools' beta=0.98 or smooth_f=0.05) close to 1; 0.5 is halfway.
SMOOTHED_AUTOCORR = 0.5
#: Curves longer than this are reduced to medians of equal bins first (the window of half
#: a decade then holds tens of bins: nothing the answer needs is lost).
MAX_POINTS = 4000


@dataclass(frozen=True)
class RangeTest:
    """What an LR range test says.

    Attributes
    ----------
    suggested_lr : float or None
        The LR to train with; None when the curve is too flat to say.
    low, high : float or None
        The range of LRs the test supports; warm up when training near ``high``.
    min_loss_lr : float or None
        LR at the minimum of the smoothed loss (before divergence).
    divergence_lr : float or None
        LR where the loss became non-finite or passed 4x its minimum; None when it never did.
    steepest_lr : float or None
        LR of the steepest descent of the smoothed loss before the minimum.
    method : str
        How the suggestion was formed.
    confidence : str
        ``high``, ``medium`` (the loss never turned up: the minimum may lie further right)
        or ``low`` (too short, flat or noisy: see ``warnings``).
    smoothed : bool
        Whether lrdoctor smoothed the loss (False for the tools' smoothed results).
    capped : bool
        Whether the context's range lowered the suggestion or the range.
    warnings, notes : list of str
    context : str
    lr, loss, curve : ndarray
        The points read (LR, loss) and the smoothed curve the rule read (per point of
        ``lr``; NaN after the cut).
    """

    suggested_lr: float | None
    low: float | None
    high: float | None
    min_loss_lr: float | None
    divergence_lr: float | None
    steepest_lr: float | None
    method: str
    confidence: str
    smoothed: bool
    capped: bool = False
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    context: str = "scratch"
    lr: np.ndarray = field(default=None, repr=False, compare=False)
    loss: np.ndarray = field(default=None, repr=False, compare=False)
    curve: np.ndarray = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """The ``range_test`` object of a run's JSON."""
        return {"suggested_lr": self.suggested_lr, "low": self.low, "high": self.high,
                "min_loss_lr": self.min_loss_lr, "divergence_lr": self.divergence_lr,
                "steepest_lr": self.steepest_lr, "method": self.method,
                "confidence": self.confidence, "smoothed_by_lrdoctor": self.smoothed,
                "capped": self.capped, "warnings": list(self.warnings)}

    def plot(self, ax=None):
        """Loss against LR (log x axis) with the suggestion and the range marked."""
        from lrdoctor.plot import plot_range_test

        return plot_range_test(self, ax=ax)

    def evidence(self) -> str:
        """Where the loss was lowest, fell fastest and blew up, and the confidence."""
        parts = []
        if self.min_loss_lr is not None:
            parts.append(f"loss lowest at LR {self.min_loss_lr:.2g}")
        if self.steepest_lr is not None:
            parts.append(f"steepest descent at {self.steepest_lr:.2g}")
        parts.append(f"blows up at {self.divergence_lr:.2g}" if self.divergence_lr
                     else "never blows up")
        return "; ".join(parts) + f" (confidence {self.confidence})"

    def summary(self) -> str:
        """One sentence with the numbers."""
        if self.suggested_lr is None:
            return f"LR range test: no LR picked ({'; '.join(self.warnings)})"
        return (f"LR range test: suggested LR {self.suggested_lr:.2g} (range {self.low:.2g}-"
                f"{self.high:.2g}); {self.evidence()}")


# ---------------------------------------------------------------------------- detection
def is_geometric_ramp(steps, lr) -> bool:
    """Whether ``lr`` rises geometrically in ``steps`` over at least ``MIN_DECADES``:
    monotone (never falling), log10(LR) within ``STRAIGHTNESS`` of its span from a straight
    line in step. NaN cells (LR not logged at that step) are skipped."""
    if lr is None:
        return False
    lr = np.asarray(lr, dtype=np.float64)
    keep = np.isfinite(lr)
    if keep.sum() < MIN_LR_POINTS or not (lr[keep] > 0).all():
        return False
    x = np.asarray(steps, dtype=np.float64)[keep]
    y = np.log10(lr[keep])
    span = y[-1] - y[0]
    if span < MIN_DECADES or np.any(np.diff(y) < 0) or x[-1] <= x[0]:
        return False
    slope, icept = np.polyfit(x - x[0], y, 1)  # least squares: a staircase's ends count
    return bool(np.max(np.abs(y - (icept + slope * (x - x[0])))) <= STRAIGHTNESS * span)


def is_range_test(history: History) -> bool:
    """Whether a History is an LR range test (see :func:`is_geometric_ramp`)."""
    from lrdoctor.detect._curve import lr_range

    lr = history.columns["lr"]
    rng = lr_range(lr)  # no copies: most logs are ruled out here, at memory speed
    if rng is None or not rng[0] > 0 or rng[1] < rng[0] * 10 ** MIN_DECADES:
        return False
    logged = history.columns["logged"]
    if int(logged.sum()) > MAX_POINTS:
        return False
    return is_geometric_ramp(history.steps[logged], lr[logged])


# ---------------------------------------------------------------------------- analysis
def _odd(k: int) -> int:
    return int(k) | 1


def _smooth(z: np.ndarray, width: int) -> np.ndarray:
    """Running median (spikes out) then running mean (a slope that can be read) over the
    same centered window; edges padded with the edge values."""
    if len(z) < 3:
        return z.copy()
    width = min(width, _odd(len(z) - 2))
    med = running_median(z, width)
    h = width // 2
    padded = np.concatenate((np.full(h, med[0]), med, np.full(h, med[-1])))
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def looks_smoothed(z: np.ndarray, width: int = 5) -> bool:
    """Whether a loss curve (finite, before its blow-up) is smoothed already: its residual
    around a running median of ``width`` points is correlated from one point to the next
    (lag-1 autocorrelation above ``SMOOTHED_AUTOCORR``). Minibatch noise leaves residuals
    near 0 correlation; a moving average (or a full-batch loss) leaves a smooth residual
    whose autocorrelation is close to 1."""
    if len(z) < 2 * width:
        return False
    r = z - running_median(z, width)
    a, b = r[:-1] - r[:-1].mean(), r[1:] - r[1:].mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return bool(den == 0 or (a * b).sum() / den > SMOOTHED_AUTOCORR)


def _bin(lr: np.ndarray, loss: np.ndarray, limit: int):
    """Medians of the loss and geometric means of the LR over equal bins (a non-finite loss
    stays visible: a bin holding one is non-finite)."""
    b = -(-len(lr) // limit)
    m = len(lr) // b
    lr_b = np.exp(np.log(lr[: m * b]).reshape(m, b).mean(axis=1))
    blk = loss[: m * b].reshape(m, b)
    loss_b = np.where(np.isfinite(blk).all(axis=1), np.median(blk, axis=1), np.inf)
    return lr_b, loss_b


def analyze(lr, loss, *, smoothed: bool | None = None, context: str = "scratch") -> RangeTest:
    """Read one range test given as LR and loss arrays (LR rising).

    Parameters
    ----------
    lr, loss : array-like
        One value per point; the LR rising.
    smoothed : bool, optional
        Whether the loss is smoothed already (the tools' results are): then it is read as
        given. Default: judged from the curve (:func:`looks_smoothed`).
    context : {'scratch', 'finetune'}
        The rules' range that caps the answer.
    """
    if context not in CONTEXTS:
        raise LrDoctorError(f"context must be one of {sorted(CONTEXTS)}, not {context!r}")
    lr = np.asarray(lr, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    if lr.shape != loss.shape or lr.ndim != 1:
        raise LrDoctorError(f"a range test needs as many LRs as losses (got {lr.size} LRs "
                            f"and {loss.size} losses)")
    if not (np.isfinite(lr).all() and (lr > 0).all()):
        raise LrDoctorError("a range test's LRs must be positive numbers; drop the rows "
                            "without one")
    if len(lr) < 3 or np.any(np.diff(lr) < 0) or lr[-1] <= lr[0]:
        raise LrDoctorError("a range test's LR must rise from point to point (at least 3 "
                            "points); this LR does not")
    if len(lr) > MAX_POINTS:
        lr, loss = _bin(lr, loss, MAX_POINTS)
    notes: list[str] = []
    warnings: list[str] = []
    bad = ~np.isfinite(loss)
    cut = int(np.argmax(bad)) if bad.any() else len(loss)
    x = loss[:cut]
    log_space = bool(cut) and float(x.min()) > 0
    z = np.log(x) if log_space else x
    decades = np.log10(lr)
    step_dec = float(np.median(np.diff(decades))) if len(lr) > 1 else 1.0
    width = _odd(max(5, round(SMOOTH_DECADES / max(step_dec, 1e-12))))
    if smoothed is None:
        smoothed = looks_smoothed(z, width)
    s = z.copy() if (smoothed or cut < 5) else _smooth(z, width)
    # divergence: non-finite, or the smoothed loss beyond DIVERGE_FACTOR x its running min
    run_min = np.minimum.accumulate(s) if cut else s
    over = (s - run_min > np.log(DIVERGE_FACTOR)) if log_space else (
        (s - run_min) > (DIVERGE_FACTOR - 1) * np.abs(run_min))
    div = int(np.argmax(over)) if over.any() else cut
    divergence_lr = float(lr[div]) if div < len(lr) else None
    curve = np.full(len(lr), np.nan)
    curve[:cut] = np.exp(s) if log_space else s
    result = dict(lr=lr, loss=loss, curve=curve, smoothed=not smoothed and cut >= 5,
                  context=context, divergence_lr=divergence_lr, warnings=warnings,
                  notes=notes)
    if div < 3:
        warnings.append(f"the loss blows up within {div} point(s) of the start: start the "
                        "test at a lower LR")
        return RangeTest(None, None, None, None, divergence_lr, None, "none", "low",
                         **_fields(result))
    s_r, d_r = s[:div], decades[:div]
    i_min = int(np.argmin(s_r))
    min_lr = float(lr[i_min])
    skip = max(1, int(np.ceil(SKIP_START * div)))
    steep_lr = None
    if i_min - skip >= 2:
        slope = np.gradient(s_r[: i_min + 1], d_r[: i_min + 1])
        steep_lr = float(lr[skip + int(np.argmin(slope[skip:]))])
    # flat, noisy, short
    start = float(np.median(s_r[: max(1, div // 10)]))
    fall = start - float(s_r[i_min])
    rel_fall = fall if log_space else fall / max(abs(start), 1e-300)
    resid = z[:div] - (s_r if not smoothed else running_median(s_r, min(5, _odd(div - 2))))
    noise = _robust_scale(resid)
    se = noise / np.sqrt(width) if not smoothed else noise
    confidence = "high"
    if rel_fall < MIN_DROP or fall < NOISE_Z * se:
        warnings.append(f"too flat to say: the smoothed loss falls only {100 * rel_fall:.1g}% "
                        "below its start before it turns up; rerun over a wider LR range "
                        "or more steps")
        return RangeTest(None, None, None, min_lr, divergence_lr, steep_lr, "none", "low",
                         **_fields(result))
    if div < SHORT_POINTS:
        warnings.append(f"too short to be sure: {div} point(s) before the loss blows up "
                        f"(at least {SHORT_POINTS}); rerun with more steps")
        confidence = "low"
    if noise > NOISY_SHARE * fall:
        warnings.append(f"too noisy to be sure: the loss scatters by {noise:.2g} (log units) "
                        f"around its trend, against a fall of {fall:.2g}; rerun with a "
                        "larger batch or more steps")
        confidence = "low"
    if d_r[i_min] - d_r[0] < MIN_LEAD_DECADES:
        warnings.append(f"the loss is lowest within {MIN_LEAD_DECADES:g} decade of the first "
                        "LR: the flat start is missing; start the test lower")
        confidence = "low"
    if divergence_lr is None and confidence == "high":
        confidence = "medium"
        notes.append(f"the loss never rose {DIVERGE_FACTOR:g}x above its minimum: the test "
                     "may have stopped early; its minimum may lie at a higher LR")
    # the suggestion and the range
    if divergence_lr is not None:
        suggested = min(divergence_lr / BELOW_DIVERGENCE, min_lr)
        high = min(divergence_lr / HIGH_BELOW_DIVERGENCE, min_lr)
        method = "divergence/10, at most the loss minimum"
    else:
        suggested, high = min_lr / BELOW_MIN, min_lr / HIGH_BELOW_MIN
        method = "minimum/10 (no blow-up seen)"
    low = min(suggested / LOW_BELOW_SUGGESTION,
              steep_lr if steep_lr is not None else suggested)
    lo_ctx, top = CONTEXTS[context]["search"]
    capped = False
    if high > top * 1.01:
        capped = True
        notes.append(f"capped at {top:g}, the top of the {context} search range of the rules "
                     f"(the test allows up to {high:.2g})")
        high, suggested = top, min(suggested, top)
        low = min(low, suggested / LOW_BELOW_SUGGESTION)
    elif suggested < lo_ctx * 0.99:
        hint = " (fine-tuning a pretrained model? use --context finetune)" if (
            context == "scratch") else ""
        notes.append(f"{suggested:.2g} is below the {context} range {lo_ctx:g}-{top:g} of the "
                     f"rules: the test says this model wants a small LR{hint}")
    suggested, low, high = _round_lr(suggested), _round_lr(low), _round_lr(high)
    notes.append(f"near the high end ({high:.2g}) warm up over the first ~5% of the run: it is "
                 "close to where the loss stopped improving")
    result.update(capped=capped)
    return RangeTest(suggested, low, high, min_lr, divergence_lr, steep_lr, method,
                     confidence, **_fields(result))


def _fields(result: dict) -> dict:
    keep = ("smoothed", "capped", "warnings", "notes", "context", "lr", "loss", "curve")
    return {k: result[k] for k in keep if k in result}


# ---------------------------------------------------------------------------- public API
_LR_NAMES = ("lr", "lrs", "learning_rate", "learning_rates")
_LOSS_NAMES = ("loss", "losses", "smooth_loss", "train_loss")


def _as_floats(v, what: str) -> np.ndarray:
    try:
        return np.asarray(v, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        try:  # a list of 0-d tensors (fastai's recorder)
            return np.array([float(x) for x in v], dtype=np.float64)
        except (TypeError, ValueError):
            raise LrDoctorError(f"the range test's {what} are not numbers") from None


def _pick(names, keys, given, what):
    if given is not None:
        if given not in keys:
            raise LrDoctorError(f"no {what} column {given!r}; the columns are "
                                f"{', '.join(map(str, keys))}")
        return given
    low = {str(k).lower(): k for k in keys}
    for n in names:
        if n in low:
            return low[n]
    raise LrDoctorError(f"no {what} found among {', '.join(map(str, keys))}; name it with "
                        f"{what}=")


def _lr_loss(data, lr, loss):
    """(lr, loss) arrays from any accepted input."""
    if isinstance(data, History):
        if data.columns["lr"] is None:
            raise LrDoctorError("this log has no LR column: a range test needs the LR of "
                                "every step", data.source)
        m = data.columns["logged"]
        steps = data.steps[m].astype(np.float64)
        lrs, losses = data.columns["lr"][m], data.columns["loss"][m]
        known = np.isfinite(lrs) & (lrs > 0)
        if known.sum() < 2:
            raise LrDoctorError("this log's LR column has fewer than 2 values", data.source)
        if not known.all():  # LR logged at other steps: read it off its straight line
            lrs = np.exp(np.interp(steps, steps[known], np.log(lrs[known])))
        return lrs, losses
    results = getattr(data, "results", None)
    if isinstance(results, dict):  # Lightning's _LRFinder
        data = results
    if isinstance(data, dict):
        keys = list(data)
        a, b = _pick(_LR_NAMES, keys, lr, "lr"), _pick(_LOSS_NAMES, keys, loss, "loss")
        # torch-lr-finder's history and Lightning's results hold smoothed losses
        return _as_floats(data[a], "LRs"), _as_floats(data[b], "losses")
    if hasattr(data, "lrs") and hasattr(data, "losses"):  # fastai's recorder
        return _as_floats(data.lrs, "LRs"), _as_floats(data.losses, "losses")
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):  # a DataFrame
        keys = [str(c) for c in data.columns]
        a, b = _pick(_LR_NAMES, keys, lr, "lr"), _pick(_LOSS_NAMES, keys, loss, "loss")
        cols = dict(zip(keys, data.columns))
        return (_as_floats(data[cols[a]].to_numpy(), "LRs"),
                _as_floats(data[cols[b]].to_numpy(), "losses"))
    if lr is not None and loss is None and not isinstance(lr, str):
        return _as_floats(lr, "LRs"), _as_floats(data, "losses")
    raise LrDoctorError(f"cannot read a range test from a {type(data).__name__}: pass a "
                        "History, a DataFrame or dict with lr and loss, fastai's recorder "
                        "(lrs, losses) or Lightning's lr finder (results)")


def range_test(data, *, lr=None, loss=None, smoothed: bool | None = None,
               context: str = "scratch") -> RangeTest:
    """Read an LR range test and suggest an LR.

    Parameters
    ----------
    data : History, DataFrame, dict or a tool's result
        A History or DataFrame with LR and loss columns; a dict ``{"lr": [...], "loss":
        [...]}`` (torch-lr-finder's ``history``, Lightning's ``_LRFinder.results``); an
        object with ``results`` (Lightning's ``_LRFinder``) or with ``lrs`` and ``losses``
        (fastai's recorder after ``lr_find``); or the losses as an array with ``lr=`` the
        LRs.
    lr, loss : str, optional
        Column or key names (found by name when omitted).
    smoothed : bool, optional
        Whether the loss is smoothed already. The tools smooth it (a moving average), and
        lrdoctor must not smooth it twice; by default this is judged from the curve.
    context : {'scratch', 'finetune'}
        The rules' range that caps the suggestion.

    Returns
    -------
    RangeTest

    Raises
    ------
    LrDoctorError
        When the input holds no usable LR and loss, or its LR does not rise.
    """
    lrs, losses = _lr_loss(data, lr, loss)
    keep = np.isfinite(lrs)
    if not keep.all():
        lrs, losses = lrs[keep], losses[keep]
    return analyze(lrs, losses, smoothed=smoothed, context=context)


# ---------------------------------------------------------------------------- diagnosis
RULE = "LR range test: pick below the loss minimum, an order of magnitude below the blow-up"
RULE_NONE = "LR range test: too flat, short or noisy to pick an LR"


@dataclass(repr=False)
class RangeTestDiagnosis(Diagnosis):
    """A :class:`Diagnosis` whose run is an LR range test: verdict ``range_test``, the
    suggestion in ``recommendation.suggested_lr`` and the whole answer in ``range_test``."""

    range_test: RangeTest | None = None

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["range_test"] = self.range_test.to_dict()
        return d

    def __repr__(self) -> str:
        return super().__repr__()


def diagnose_range_test(history: History, *, lr: float | None = None,
                        context: str = "scratch") -> RangeTestDiagnosis | None:
    """The Diagnosis of a History that is an LR range test; None when it is not one."""
    if not is_range_test(history):
        return None
    from lrdoctor import detect

    rt = range_test(history, context=context)
    rng = rt.lr[[0, -1]]
    notes = list(history.notes)
    notes.insert(0, f"the LR rises geometrically from {rng[0]:.2g} to {rng[1]:.2g}: read as an "
                 f"LR range test; {rt.evidence()}")
    if lr is not None:
        notes.append(f"--lr {lr:g} is not used: a range test has no one LR")
    rec = Recommendation("keep", (1, 1), rt.suggested_lr,
                         RULE if rt.suggested_lr is not None else RULE_NONE,
                         list(rt.warnings) + list(rt.notes))
    curve = detect.Curve(steps=history.logged_steps, values=history.logged_loss)
    extra = ({"confidence": rt.confidence} if "confidence" in
             {f.name for f in fields(Diagnosis)} else {})
    return RangeTestDiagnosis(run=history.run, source=history.source, metric=history.metric,
                              history=history, findings=[], verdict="range_test",
                              recommendation=rec, current_lr=None, notes=notes, curve=curve,
                              range_test=rt, **extra)
