"""Explosion (the loss jumps far above where it started) and divergence (it climbs back
away from its running best and stays there)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrdoctor.detect._curve import FEW_POINTS, Curve, fmt_step
from lrdoctor.finding import Finding


@dataclass(frozen=True)
class Explosion:
    """Loss rising far above its starting level.

    Parameters
    ----------
    factor : float, default 5.0
        A point counts when the loss exceeds ``factor`` times the starting loss.
    noise_sigmas : float, default 6.0
        ... and lies more than this many robust noise units (measured over the first fifth
        of the run, the scatter at the starting level) above it, so heavy-tailed minibatch
        noise alone does not trigger it.
    early_points, early_fraction : int, float, default 5 and 0.01
        Within the first ``max(early_points, early_fraction * n)`` points (the first
        updates) a single point over the limit counts (a blow-up at the first updates);
        later, only two or more in a row do (a lone excursion is a spike) ...
    early_factor : float, default 2.0
        ... and among the first updates, two or more points above ``early_factor`` times the
        start (and the noise bound) are a blow-up too, even when the run recovers: the
        starting loss is the untrained model's, and Adam's first steps at a sane LR do not
        take the loss back above twice it; a first step that overshoots that far does.
    stuck_progress : float, default 0.1
        ... unless the trend never again comes this share below the start after it (the
        blow-up left the run stuck).
    warmup_window : float, default 0.1
        An explosion starting within this fraction of the run after the LR peak of a warmup
        is reported as a blow-up right after warmup.
    """

    factor: float = 5.0
    noise_sigmas: float = 6.0
    warmup_window: float = 0.1
    early_points: int = 5
    early_fraction: float = 0.01
    stuck_progress: float = 0.1
    early_factor: float = 2.0

    def __call__(self, curve: Curve) -> list[Finding]:
        if curve.n_bins < 2:
            return []
        s0 = min(curve.start_level, curve.first_value) if curve.log_space else curve.start_level
        z0 = curve.to_z(s0)
        noise = curve.noise_early

        def limit(factor):
            if curve.log_space:
                return curve.from_z(z0 + max(np.log(factor), self.noise_sigmas * noise))
            return curve.from_z(z0 + max((factor - 1) * abs(s0), self.noise_sigmas * noise))

        nf = curve.n_finite_prefix
        early = max(self.early_points, int(self.early_fraction * nf))
        over = curve.over(limit(self.factor))  # runs of points above the limit
        # the first updates overshooting: two or more of them above early_factor x the start
        first = curve.over(limit(min(self.early_factor, self.factor)), hi=early)
        if first.n_points >= 2:
            over = over.union(first, gap=curve.summary.stride)
        if len(over) == 0:
            return []
        # a blow-up is sustained (two points in a row or more) or comes with the very first
        # updates ("explodes early"); a lone excursion later is a spike, for Spikes to count
        hit = over.take((over.count >= 2) | (over.first < early))
        if len(hit) == 0:
            # a lone blow-up after which the loss never comes down again (stuck at or above
            # its start for the rest of the run) killed the training: that is an explosion
            first = int(over.first[0])
            after = curve.level[min(int(curve.bin_of(first)) + 1, curve.n_bins - 1):]
            if len(after) == 0 or after.min() < (1 - self.stuck_progress) * s0:
                return []
            hit = over
        p0 = int(hit.first[0])
        top = float(hit.peak.max())
        end = None if int(hit.last[-1]) == nf - 1 else hit.last_step[-1]
        ratio = top / s0 if s0 > 0 else float("inf")
        sev = float(np.clip(np.log10(max(ratio, 1.0)) / 2.0, 0.4, 1.0))
        times = f"{ratio:.0f}" if ratio < 1e4 else f"{ratio:.2g}"  # not 24966923726946968x
        msg = (f"loss jumps to {top:.3g}, {times}x its starting {s0:.3g}, "
               f"at step {fmt_step(hit.first_step[0])}")
        ev = {"peak": top, "start_level": s0, "ratio": ratio, "n_points_over": hit.n_points}
        w = curve.warmup_end
        if w is not None:
            if w - self.warmup_window * curve.n <= p0 <= w + self.warmup_window * curve.n:
                ev["after_warmup"] = True
                ev["warmup_end_step"] = float(curve.warmup_end_step)
                msg += f", right where warmup ends (step {fmt_step(curve.warmup_end_step)})"
        return [Finding("explosion", hit.first_step[0], end, sev, msg, ev)]


@dataclass(frozen=True)
class Divergence:
    """The trend leaves its running best far behind and stays there.

    Parameters
    ----------
    rebound : float, default 0.3
        A bin counts as diverged when the trend has climbed back more than this share of the
        way from its running best to the starting level (linear units), or ends above the
        starting level.
    min_fraction : float, default 0.1
        ... for an unbroken stretch of at least this share of the run.
    min_progress : float, default 0.2
        Climbing back counts only after the loss came at least this share below its start.
    """

    rebound: float = 0.3
    min_fraction: float = 0.1
    min_progress: float = 0.2

    def __call__(self, curve: Curve) -> list[Finding]:
        if curve.n_bins < 3:  # a trend, a best and a climb need three points
            return []
        s0 = curve.start_level
        level = curve.level
        best_z = np.minimum.accumulate(curve.trend)
        best = curve.from_z(best_z)  # the running best (from_z is increasing)
        gap = np.maximum(s0 - best, 1e-12 * max(abs(s0), 1e-300))
        climbed = (level - best) / gap
        # a climb must stand out of the trend's own wobble (noise of a running median); a
        # few-point curve's trend, best and start are each about one point
        few = curve.n_bins < FEW_POINTS
        wobble = curve.noise / np.sqrt(1 if few else curve.trend_window * curve.bin_size)
        margin = np.abs(best - curve.from_z(best_z + 4 * wobble))
        made_progress = (s0 - best) > self.min_progress * abs(s0)
        bad = ((climbed > self.rebound) & made_progress & (level - best > margin)) | \
              (level > s0 + margin + 0.1 * abs(s0))
        if not bad.any():
            return []
        # unbroken stretches of diverged bins
        edges = np.diff(np.concatenate(([0], bad.astype(np.int8), [0])))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        frac = curve.fraction
        out = []
        # a few-point curve has no history to show that a climb which came back down was
        # more than an excursion: there, only a climb that lasts to the end counts
        for a, b in zip(starts, stops):  # a handful of stretches, not steps
            span = frac[b - 1] - frac[a] if b - 1 > a else 0.0
            if b != curve.n_bins and (span < self.min_fraction or few):
                continue
            if b == curve.n_bins and span < self.min_fraction / 2:
                continue
            worst = float(climbed[a:b].max())
            sev = float(np.clip(worst, 0.4, 1.0))
            end = None if b == curve.n_bins else curve.step_at(b - 1)
            best_at = float(best[a])
            out.append(Finding(
                "divergence", curve.step_at(a), end, sev,
                f"loss climbs from its best {best_at:.3g} back to {float(level[a:b].max()):.3g} "
                f"(starting level {s0:.3g}) from step {fmt_step(curve.step_at(a))}"
                + (" and stays there" if end is None else f" to {fmt_step(end)}"),
                {"best": best_at, "climbed": worst, "rebound": self.rebound}))
        return out
