"""Overfitting: the validation loss turns up while the training loss still falls.

Not an LR fault: its advice is to keep the LR and stop at the best checkpoint (or regularize),
so it never decides the verdict; it is reported beside it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrdoctor.detect._curve import fmt_step
from lrdoctor.finding import Finding


@dataclass(frozen=True)
class Overfitting:
    """The validation loss ends well above its best while the training loss kept falling.

    Parameters
    ----------
    rise : float, default 0.1
        The validation loss at the end (the median of its last three points) must lie more
        than this share above its best (a 10% climb is beyond evaluation noise on any
        held-out set worth the name).
    min_points : int, default 5
        Validation points needed; the best must have at least two points after it, and the
        climb must be steady (the later half of the points after the best higher than the
        earlier half), not a jump at the very end.
    still_falling : float, default 0.02
        The training loss's trend must end at least this share below its level at the
        validation loss's best: it was still learning the training set.
    """

    rise: float = 0.1
    min_points: int = 5
    still_falling: float = 0.02

    def __call__(self, val_steps: np.ndarray, val: np.ndarray, train_steps: np.ndarray,
                 train_level: np.ndarray) -> list[Finding]:
        keep = np.isfinite(val)
        vs, v = np.asarray(val_steps, float)[keep], np.asarray(val, float)[keep]
        if len(v) < self.min_points or len(train_level) < 2:
            return []
        best = int(np.argmin(v))
        if best > len(v) - 3:
            return []
        end = float(np.median(v[-3:]))
        lowest = float(v[best])
        climb = (end - lowest) / abs(lowest) if lowest else np.inf
        after = v[best + 1:]
        h = len(after) // 2
        steady = np.median(after[h:]) > np.median(after[:h]) if h else False
        if not (climb > self.rise and steady):
            return []
        at_best = float(np.interp(vs[best], train_steps, train_level))
        train_end = float(train_level[-1])
        if not train_end < at_best * (1 - self.still_falling):
            return []  # both turned: not a generalisation gap
        sev = float(np.clip(climb / 0.5, 0.1, 1.0))
        return [Finding(
            "overfitting", vs[best], None, sev,
            f"validation loss turns up from step {fmt_step(vs[best])} (its best, "
            f"{lowest:.3g}) to {end:.3g} at the end ({100 * climb:+.0f}%) while the "
            f"training loss still falls ({at_best:.3g} -> {train_end:.3g})",
            {"best_step": float(vs[best]), "best_val_loss": lowest, "end_val_loss": end,
             "rise": climb})]
