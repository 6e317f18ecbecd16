"""What every training callback shares: a :class:`~lrdoctor.Monitor`, a warning per change of
verdict, the stop rule, the report at the end, and a guard that turns the callback off
(with one warning) instead of raising into the user's training loop."""
from __future__ import annotations

import warnings

from lrdoctor.diagnosis import weigh
from lrdoctor.monitor import Monitor
from lrdoctor.render import HEADLINE, advice_line

#: Finding kinds that ``stop_on`` may name.
STOP_KINDS = ("nonfinite", "hidden_nonfinite", "explosion", "divergence", "oscillation",
              "spike", "grad_spike")
#: The number each verdict is logged as (loggers take numbers, not strings).
VERDICT_CODE = {"unknown": -1.0, "ok": 0.0, "too_low": 1.0, "too_high": 2.0}


class LrDoctorWarning(UserWarning):
    """A training callback's verdict changed (the finding and the advice are in the text)."""


def need(module: str, extra: str):
    """Import a framework, or raise an ImportError naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"this lrdoctor callback needs {module!r}: "
                          f"pip install lrdoctor[{extra}]") from e


class Watch:
    """The framework-free core of a training callback.

    Parameters
    ----------
    every : int, optional
        Re-diagnose every this many steps (and at once on a non-finite loss or a jump far
        above the run's level). Left out: every 250 steps, or further apart where steps are
        so short that this would take over 0.25% of the training's time
        (:class:`lrdoctor.Monitor`).
    stop_on : tuple of str, default ()
        Finding kinds that stop training (``("nonfinite", "explosion")``), through the
        framework's own stop mechanism. Empty: never stop.
    report : str or path, optional
        Write the report (``.html`` or ``.md``, with the figure) there when training ends.
    context, detectors, run, lr_values
        As :class:`lrdoctor.Monitor`.

    Attributes
    ----------
    monitor : Monitor
    diagnosis_ : Diagnosis or None
        The latest diagnosis.
    stopped_by_ : Finding or None
        The finding that stopped training, if one did.
    active : bool
        False once an internal error turned the callback off.
    """

    def __init__(self, every: int | None = None, *, stop_on=(), report=None,
                 context: str = "scratch", detectors: dict | None = None, run: str = "run",
                 lr_values=None):
        stop_on = (stop_on,) if isinstance(stop_on, str) else tuple(stop_on)
        bad = [k for k in stop_on if k not in STOP_KINDS]
        if bad:
            raise ValueError(f"stop_on names unknown finding kind(s) {bad}; "
                             f"known: {list(STOP_KINDS)}")
        self.monitor = Monitor(every, context=context, detectors=detectors, run=run,
                               lr_values=lr_values)
        self.stop_on = stop_on
        self.report = report
        self.active = True
        self.diagnosis_ = None
        self.stopped_by_ = None
        self._warned_verdict = None

    # -- called by the adapters, never raising -------------------------------------------
    def record(self, step, loss, lr=None) -> bool:
        """Record one point; True when training should stop now."""
        if not self.active:
            return False
        try:
            d = self.monitor.update(step, loss, lr)
            return d is not None and self.judge(d)
        except Exception as e:  # noqa: BLE001 - never raise into the training loop
            self.fail(e)
            return False

    def conclude(self) -> None:
        """Diagnose everything recorded (unless nothing was since the latest diagnosis)."""
        m = self.monitor
        if not self.active or m.n_points == 0:
            return
        try:
            if m.pending or m.last_diagnosis_ is None:
                self.judge(m.diagnosis())
            elif self.diagnosis_ is not m.last_diagnosis_:
                self.judge(m.last_diagnosis_)
        except Exception as e:  # noqa: BLE001
            self.fail(e)

    def finish(self) -> None:
        """Diagnose everything recorded and write the report, if asked."""
        self.conclude()
        if not self.active or self.diagnosis_ is None or self.report is None:
            return
        try:
            from lrdoctor.report import write_report

            write_report([self.diagnosis_], self.report)
        except Exception as e:  # noqa: BLE001
            self.fail(e)

    def fail(self, exc: BaseException) -> None:
        """Turn the callback off with one warning."""
        self.active = False
        warnings.warn(f"lrdoctor: the callback turned itself off after an internal error "
                      f"({type(exc).__name__}: {exc}); training goes on unwatched",
                      LrDoctorWarning, stacklevel=3)

    @property
    def verdict_code(self) -> float:
        return VERDICT_CODE.get(self.diagnosis_.verdict if self.diagnosis_ else "unknown",
                                -1.0)

    # ------------------------------------------------------------------------------------
    def judge(self, d) -> bool:
        """Take a diagnosis the monitor made: warn on a change of verdict; True when it
        should stop training."""
        self.diagnosis_ = d
        if d.verdict != self._warned_verdict and d.verdict != "unknown":
            # the first 'ok' is no news; every other change of verdict is
            if not (self._warned_verdict is None and d.verdict == "ok"):
                warnings.warn(self._message(d), LrDoctorWarning, stacklevel=4)
            self._warned_verdict = d.verdict
        if self.stop_on and self.stopped_by_ is None:
            fatal = [f for f in d.findings if f.kind in self.stop_on]
            if fatal:
                self.stopped_by_ = min(fatal, key=lambda f: STOP_KINDS.index(f.kind))
                return True
        return False

    def _message(self, d) -> str:
        n, _, last, _ = d.outline()
        at = f"step {last:g}" if n else "the start"
        cause = weigh(d.findings, n)[1]
        parts = [f"lrdoctor at {at} ({d.run}): {HEADLINE[d.verdict]}"]
        if cause is not None and d.verdict != "ok":
            parts.append(f"{cause.kind}: {cause.message}")
        parts.append(f"advice: {advice_line(d)}")
        parts += d.recommendation.notes[:1]
        return "; ".join(parts)


class Adapter:
    """What a framework's callback shares: its :class:`Watch` and the results on it."""

    watch: Watch

    @property
    def diagnosis_(self):
        """The latest Diagnosis (None before the first re-diagnosis)."""
        return self.watch.diagnosis_

    @property
    def stopped_by_(self):
        """The finding that stopped training, or None."""
        return self.watch.stopped_by_
