"""How sure a verdict is: ``high``, ``medium`` or ``low``, from the evidence behind it.

- ``high``: evidence that needs no comparison (the loss went non-finite, exploded or
  diverged; it barely moved at all), or a sweep that brackets the run's LR with results on
  both sides of its best (set by ``lrdoctor.sweep``);
- ``medium``: a clear reading of one curve (oscillation, frequent spikes, a plateau of
  moderate severity, slow progress of high severity, a healthy curve on a long log), or a
  sweep's verdict at its edge (where the run's own curve decides);
- ``low``: a reading that one curve can hardly support (mild slow progress, a healthy curve
  on a short log) or too little data.
"""
from __future__ import annotations

#: Kinds whose evidence stands on its own.
DECISIVE = ("nonfinite", "hidden_nonfinite", "explosion", "divergence", "stuck_high")


def confidence(verdict: str, cause: str | None, severity: float, n_points: int, *,
               pace_points: int = 50) -> str:
    """The confidence of one curve's verdict (see the module notes)."""
    if verdict == "unknown":
        return "low"
    if verdict == "too_high":
        if cause in DECISIVE:
            return "high"
        return "medium" if severity >= 0.5 else "low"
    if verdict == "too_low":
        if cause == "plateau":
            return "high" if severity >= 0.8 else "medium"
        return "medium" if severity >= 0.6 else "low"
    # a healthy-looking curve: one run cannot show whether a larger LR would do better
    return "medium" if n_points >= pace_points else "low"


def one_run_cannot_tell(lr: float | None) -> str:
    """The note that names the uncertainty of a healthy-looking run and the cheapest way to
    resolve it."""
    if lr is None:
        return ("one run cannot show whether another LR would do better: run 1e-4, 1e-3 and "
                "1e-2 and give lrdoctor all of them (it compares them as a sweep)")
    return (f"one run cannot show whether a larger LR would do better: run 3x and 1/3x of it "
            f"({3 * lr:.2g} and {lr / 3:.2g}) and give lrdoctor all three (it compares them "
            "as a sweep)")
