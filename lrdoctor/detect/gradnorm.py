"""The gradient norm: a NaN the loss column hides, loss-scale skips, and spikes.

A log that has the total gradient norm beside the loss (the Hugging Face Trainer's
``grad_norm``, mmengine's, OLMo's ``optim/total_grad_norm``) shows trouble the loss can hide:

- ``hidden_nonfinite``: the gradient norm is non-finite from some step to the end while the
  logged loss reads exactly 0 or repeats its previous value there. The Trainer's
  ``logging_nan_inf_filter`` (on by default) leaves NaN/inf losses out of the logged mean, so
  a window of nothing but NaN losses is logged as ``0``: the loss went NaN and the log hides
  it. Evidence for too high an LR, as strong as a NaN loss. A kind of its own, not
  ``nonfinite``: that one says the loss column itself holds NaN/inf (``first_index`` counts
  its points), and a script reading the JSON should be able to tell a hidden NaN from a
  written one.
- ``grad_nonfinite``: non-finite gradient norms while the loss stays finite and keeps moving
  are mixed-precision loss-scale skips (the scaler finds inf/NaN gradients, skips the step
  and halves the scale): a note, never evidence about the LR.
- ``grad_spike``: the gradient norm jumps far above its running level, repeatedly: evidence
  for too high an LR even while the loss still looks fine (counted like frequent loss
  spikes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrdoctor.detect._curve import FEW_POINTS, Curve, fmt_step
from lrdoctor.finding import Finding


@dataclass(frozen=True)
class GradNorm:
    """Read the gradient norm logged beside the loss (``Curve.grad_norm``; nothing to do
    without one). Non-finite written values are inf there, NaN means not logged.

    Parameters
    ----------
    min_hidden : int, default 2
        Points of the non-finite tail (the gradient norm non-finite from there to the end)
        where the loss reads exactly 0 or repeats its previous value exactly, needed to call
        it a hidden NaN (one such point could be a coincidence of rounding).
    sigmas : float, default 6.0
        A gradient norm is a spike when it lies more than this many robust noise units
        (1.4826 MAD of the scatter of log grad norm around its running median) above the
        running median ...
    min_ratio : float, default 3.0
        ... and more than this factor above it.
    rate : float, default 0.005
        Counted spike events per logged gradient norm at which severity reaches 0.5 (the
        verdict's level, as for loss spikes).
    min_repeats : int, default 3
        Spikes are evidence only when repeated: with fewer counted events than this the
        severity stays below the verdict's level (one outlier is a bad batch).
    skip_start : float, default 0.05
        The first share of the logged gradient norms (at least ``FEW_POINTS`` / 2 points) is
        left out of the spike count: the gradient norm of a freshly initialized model is
        large and jumps about while it settles (OLMo-1B's first steps: 11.6, 59.2, 53.8,
        7.9), which says nothing about the LR.
    """

    min_hidden: int = 2
    sigmas: float = 6.0
    min_ratio: float = 3.0
    rate: float = 0.005
    min_repeats: int = 3
    skip_start: float = 0.05

    def __call__(self, curve: Curve) -> list[Finding]:
        gs = curve.summary.grad
        if gs is None or not gs.written:
            return []
        out: list[Finding] = []
        skips, listed, last = gs.skips, gs.skip_first, gs.skip_last
        if gs.t_count and gs.t_masks >= self.min_hidden:
            # the non-finite tail (from the last finite norm to the end) hides a NaN loss
            zero = gs.t_zero == gs.t_masks
            out.append(Finding(
                "hidden_nonfinite", gs.t_step, None, 1.0,
                f"gradient norm non-finite from step {fmt_step(gs.t_step)} to the end "
                f"({gs.t_count} logged point(s)) while the loss reads "
                f"{'exactly 0' if zero else 'exactly its previous value'} at "
                f"{gs.t_masks} of them: the loss went NaN and the log hides it "
                "(the Hugging Face Trainer's logging_nan_inf_filter leaves NaN losses "
                "out of the logged mean)",
                {"first_index": gs.t_point, "count": gs.t_count, "hidden": gs.t_masks}))
            # the skips before the tail
            skips = gs.skips - gs.t_finite
            listed = [s for s in listed if s < gs.t_step]
            last = gs.skip_last_before_tail
        if skips:
            out.append(Finding(
                "grad_nonfinite", listed[0], last, 0.0,
                f"grad_norm is nan/inf at {skips} of {gs.written} logged steps "
                "while the loss stays finite: mixed-precision loss-scale skips (the step "
                "is skipped and the scaler halves), not a sign of too high an LR",
                {"count": skips, "logged": gs.written, "steps": list(listed[:200])}))
        out.extend(self._spikes(gs.ok))
        return out

    def _spikes(self, ok) -> list[Finding]:
        """Spikes of the finite positive norms (``ok``: their summary)."""
        if ok.n < 2 * FEW_POINTS:
            return []
        c = Curve(summary=ok)
        margin = max(self.sigmas * c.noise, np.log(self.min_ratio))
        start = max(FEW_POINTS // 2, int(np.ceil(self.skip_start * c.n)))
        over = c.over(c.from_z(c.trend + margin), lo=start, ratio_to=c.level)
        if len(over) == 0:
            return []
        events = len(over)
        rate = events / c.n
        sev = float(np.clip(0.5 * rate / self.rate, 0.05,
                            1.0 if events >= self.min_repeats else 0.3))
        at = over.first_step
        ratio = float(over.ratio.max())
        return [Finding(
            "grad_spike", at[0], at[-1] if events > 1 else at[0], sev,
            f"gradient norm spikes {events} time(s) far above its running level (up to "
            f"{ratio:.3g}x; {1000 * rate:.1f} per 1000 logged norms), first at step "
            f"{fmt_step(at[0])}" + ("" if events >= self.min_repeats else
                                    ": too few to be a pattern"),
            {"count": events, "rate": rate, "steps": at[:200].tolist(),
             "highest_ratio": ratio})]
