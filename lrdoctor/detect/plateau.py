"""Plateau and slow progress: stuck from the start, or creeping down too slowly."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrdoctor.detect._curve import Curve, fmt_step
from lrdoctor.finding import Finding


@dataclass(frozen=True)
class Progress:
    """How much and how fast the loss came down.

    Parameters
    ----------
    min_progress : float, default 0.1
        A run whose loss ends (the median of its last 5% of points) less than this share
        below its starting loss has a ``plateau`` (it barely moved).
    slow_half : float, default 0.1
        A run that needed more than this share of its length (after any warmup) to make half
        of its progress is ``slow``: with a good Adam LR the bulk of the drop comes early.
    still_falling : float, default 0.3
        A run that made more than this share of its progress in its second half is also
        ``slow``: it was still creeping down when it stopped (a good Adam LR makes the bulk
        of the drop early, whatever the schedule).
    early_points : int, default 5
        The pace readings (``slow``) need the first ``slow_half`` of the run to hold at
        least this many points (a median of five rejects one outlier): a log of fewer than
        ``pace_points = early_points / slow_half`` points (50) cannot tell when half of the
        drop came, nor how much came late, against its own noise; it is judged only for
        a flat loss (``plateau``).
    peak_share : float, default 0.9
        Under a schedule, the points whose LR is at least this share of the peak are "at
        the peak"; those at most ``decayed_share`` of it (later on) are "decayed".
    decayed_share : float, default 0.6
    resumes : float, default 4.0
        Progress waits for the schedule when the trend moved less than one noise unit (the
        robust scatter of single points) over the whole stretch at the peak, and fell more
        than this many noise units over the decayed stretch after it.
    floor_early : float, default 0.1
    floor_done : float, default 0.8
    floor_from : float, default 0.25
    floor_flat : float, default 0.05
        A ``floor``: at least ``floor_done`` of the drop (in trend space) came in the first
        ``floor_early`` of the run (after any warmup), and from ``floor_from`` of the run
        to its end the trend fell less than ``1 - floor_done`` of the drop and less than
        ``floor_flat`` (5%, in log space): the loss collapsed onto a level early and sat
        there for most of the run. Not a verdict by itself: at an LR above the rules'
        range the LR likely sets that floor (too high); inside it, a healthy run that
        converged early and one stuck on a plateau look the same.

    Two readings keep a schedule's run from being called slow, because its speed then says
    nothing against the peak LR: the log ends while the LR is still warming up (the peak
    was never reached), or the loss stalled while the LR was at its peak and fell only once
    it had decayed (progress waits for the schedule: a larger LR would not have helped).
    """

    min_progress: float = 0.1
    slow_half: float = 0.1
    still_falling: float = 0.3
    early_points: int = 5
    peak_share: float = 0.9
    decayed_share: float = 0.6
    resumes: float = 4.0
    floor_early: float = 0.1
    floor_done: float = 0.8
    floor_from: float = 0.25
    floor_flat: float = 0.05

    def __call__(self, curve: Curve) -> list[Finding]:
        if curve.n_bins < 10:
            return []
        s0 = curve.start_level
        level = curve.level
        # the end is the median of the last 5% of points, not the trend's last value (its
        # window is padded there with the last bin: on a noisy flat curve one bin decides)
        end = curve.final_level
        drop = s0 - end
        progress = drop / abs(s0) if s0 else 0.0
        first = curve.first_step
        if progress < -self.min_progress:
            return []  # the loss went up: explosion and divergence speak to that
        if progress < self.min_progress:
            sev = float(np.clip(1 - max(progress, 0) / self.min_progress, 0.4, 1.0))
            return [Finding(
                "plateau", first, None, sev,
                f"loss barely moves: from {s0:.3g} to {end:.3g} "
                f"({100 * progress:+.1f}%) over {curve.n_finite_prefix} points",
                {"progress": progress, "start_level": s0, "end_level": end})]
        held = self._held_by_schedule(curve)
        if held is not None:
            if held == "warming":
                return []
            peak_bin, decay_bin = held
            return [Finding(
                "schedule_bound", curve.step_at(peak_bin), None, 0.3,
                f"loss stalls while the LR is at its peak (from step "
                f"{fmt_step(curve.step_at(peak_bin))}) and falls only once it has decayed "
                f"(from step {fmt_step(curve.step_at(decay_bin))}): progress waits for the "
                "schedule, so the peak LR is not too low, and may be too high",
                {"peak_step": float(curve.step_at(peak_bin)),
                 "decayed_step": float(curve.step_at(decay_bin))})]
        frac = curve.fraction
        # when half of the drop was made for good: the first bin after the last one whose
        # trend is still above the halfway line (a noisy trend that dips below it early
        # and comes back has not made half of its drop there)
        above = np.flatnonzero(level[: curve.trend_settled] > s0 - 0.5 * drop)
        half = min(len(level) - 1, int(above[-1]) + 1) if len(above) else 0
        w = curve.warmup_end
        t_w = (w / max(1, curve.n_finite_prefix - 1)) if w is not None else 0.0
        t_half = max(0.0, float(frac[half]) - t_w)
        # half the drop by the second logged point is as fast as the log can show (a
        # per-epoch log of 10 points cannot resolve 10% of the run)
        if curve.n_finite_prefix < self.pace_points:
            return []
        if t_half > self.slow_half and half >= 2:
            sev = float(np.clip((t_half - self.slow_half) / (0.5 - self.slow_half), 0.3, 1.0))
            return [Finding(
                "slow", first, None, sev,
                f"loss creeps down: half of its drop ({s0:.3g} -> {end:.3g}) took "
                f"{100 * t_half:.0f}% of the run (step {fmt_step(curve.step_at(half))})",
                {"t_half": t_half, "progress": progress})]
        # still creeping: a large share of the drop came in the second half. Measured from
        # the trend at mid-run to the median of the last 5% of points (not the trend's
        # padded end), against the drop from the start to that same end level.
        mid = int(np.searchsorted(frac, 0.5))
        final = curve.final_level
        total = s0 - final
        late = float((level[min(mid, len(level) - 1)] - final) / total) if total > 0 else 0.0
        if late > self.still_falling:
            sev = float(np.clip(late, 0.3, 1.0))
            return [Finding(
                "slow", curve.step_at(mid), None, sev,
                f"loss still creeping down: {100 * late:.0f}% of its drop came in the second "
                f"half of the run", {"late_share": late, "progress": progress})]
        floor = self._floor(curve, t_w)
        return [] if floor is None else [floor]

    def _floor(self, curve: Curve, t_w: float) -> Finding | None:
        """The ``floor`` finding (see the class notes), or None."""
        z, frac = curve.trend, curve.fraction
        top = curve.trend_settled - 1
        z0, z_end = float(curve.to_z(curve.start_level)), float(curve.to_z(curve.final_level))
        total = z0 - z_end
        if not total > 0:
            return None
        early = min(top, int(np.searchsorted(frac, t_w + self.floor_early)))
        late = min(top, int(np.searchsorted(frac, t_w + self.floor_from)))
        done = (z0 - float(z[early])) / total
        after = float(z[late]) - z_end
        flat = after < (1 - self.floor_done) * total and (
            not curve.log_space or after < self.floor_flat)
        if done < self.floor_done or not flat:
            return None
        return Finding(
            "floor", curve.step_at(early), None, 0.5,
            f"loss drops fast, then sits on a floor: {100 * min(done, 1):.0f}% of its drop "
            f"came by step {fmt_step(curve.step_at(early))} "
            f"({100 * (t_w + self.floor_early):.0f}% of the run), and from step "
            f"{fmt_step(curve.step_at(late))} to the end it fell only "
            f"{100 * max(after, 0) / total:.0f}% more",
            {"early_share": done, "late_share": max(after, 0) / total,
             "floor": float(curve.final_level)})

    @property
    def pace_points(self) -> int:
        """The fewest points on which the pace of progress is judged."""
        return int(np.ceil(self.early_points / self.slow_half))

    def _held_by_schedule(self, curve: Curve):
        """Whether the LR schedule, not the peak LR, set the pace (see the class notes):
        None when not, ``"warming"`` when the log ends still warming up, else the bins
        where the peak and the decayed stretch begin."""
        rng = curve.lr_range
        if rng is None or not rng[1] > 0 or rng[0] >= 0.5 * rng[1]:
            return None  # no LR, or (nearly) constant
        lr = curve.bin_lr  # the LR at the start of each bin, carried over points lacking it
        peak = rng[1]
        if lr[0] < 0.5 * peak and curve.fraction[int(np.argmax(lr >= peak))] >= 0.95:
            return "warming"  # still warming up when the log ends: the peak is its last LR
        at_peak = np.flatnonzero(lr >= self.peak_share * peak)
        if len(at_peak) < 3:  # (none when the peak came after the loss went non-finite)
            return None
        decayed = np.flatnonzero(lr <= self.decayed_share * peak)
        decayed = decayed[decayed > at_peak[-1]]
        if len(decayed) < 3:
            return None
        z = curve.trend
        at_peak_fall = z[at_peak[0]] - z[at_peak[-1]]
        decayed_fall = z[decayed[0]] - z[decayed[-1]]
        if at_peak_fall <= curve.noise and decayed_fall > self.resumes * curve.noise:
            return int(at_peak[0]), int(decayed[0])
        return None
