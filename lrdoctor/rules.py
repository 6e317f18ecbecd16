"""The learning-rate rules of ``docs/lr_rules.md`` as data, and the recommender that applies them.

The recommender knows nothing of signal processing: it takes a verdict, the findings'
severities and kinds, the current LR and the context, and returns a :class:`Recommendation`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_LR = 1e-3
LOWER = (5, 10)
RAISE = (3, 5)
CONTEXTS = {
    # (low, high) of the rules' range; "very_large": above it is very large for Adam
    "scratch": {"range": (1e-4, 1e-3), "search": (1e-4, 1e-2), "start": 1e-3},
    "finetune": {"range": (1e-5, 5e-4), "search": (1e-5, 5e-4), "start": 3e-5},
}
VERY_LARGE = 1e-2

RULE_TEXT = {
    "nonfinite": "non-finite loss (NaN/inf): lower 5-10x",
    "hidden_nonfinite": "non-finite gradient norm where the logged loss reads 0 (a NaN loss "
                        "the log hides): lower 5-10x",
    "explosion": "explosion: lower 5-10x",
    "divergence": "divergence: lower 5-10x",
    "oscillation": "violent oscillation: lower 5-10x",
    "spike": "unstable (frequent spikes): lower 5-10x",
    "grad_spike": "unstable (repeated gradient-norm spikes): lower 5-10x",
    "plateau": "barely moving: raise 3-5x",
    "stuck_high": "stuck from the start at an LR above the rules' range: lower 5-10x",
    "floor_high": "fast drop onto a floor, then flat, at an LR above the rules' range: "
                  "lower 5-10x",
    "slow": "slow progress: raise 3-5x",
    "ok": "healthy: keep",
    "unknown": "too little data: keep",
}


@dataclass(frozen=True)
class Recommendation:
    """What to do with the LR.

    Attributes
    ----------
    action : str
        ``lower``, ``raise`` or ``keep``.
    factor : tuple of float
        ``(min, max)`` to divide (lower) or multiply (raise) by; ``(1, 1)`` for keep.
    suggested_lr : float or None
        A concrete LR inside that range, placed by severity; None when the current LR is
        unknown.
    rule : str
        Which rule fired, in words.
    notes : list of str
        Range checks, schedule advice, starting values.
    """

    action: str
    factor: tuple
    suggested_lr: float | None
    rule: str
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"action": self.action, "factor": list(self.factor),
                "suggested_lr": self.suggested_lr, "rule": self.rule,
                "notes": list(self.notes)}


def above_range(lr: float | None, context: str = "scratch") -> bool:
    """Whether ``lr`` lies above the top of the context's search range (1e-2 from scratch,
    where the rules call an LR very large for Adam; 5e-4 for fine-tuning)."""
    return lr is not None and lr > CONTEXTS[context]["search"][1] * 1.01


def _round_lr(v: float) -> float:
    return float(f"{v:.2g}")


def recommend(verdict: str, *, cause: str, severity: float, current_lr: float | None,
              context: str = "scratch", schedule: dict | None = None) -> Recommendation:
    """Apply the rules to a verdict.

    Parameters
    ----------
    verdict : {'too_high', 'too_low', 'ok', 'unknown'}
    cause : str
        The kind of the finding that decided the verdict (``explosion``, ``slow``, ...).
    severity : float
        0..1; places the suggested LR inside the rule's factor range (more severe, larger
        factor).
    current_lr : float or None
        The constant LR, or a schedule's peak.
    context : {'scratch', 'finetune'}
    schedule : dict, optional
        ``{"warmup_end_step": .., "after_warmup": bool, "constant": bool, "late_noise": ..}``
        from the diagnosis, for schedule-aware notes.
    """
    if context not in CONTEXTS:
        raise ValueError(f"context must be one of {sorted(CONTEXTS)}, not {context!r}")
    ctx = CONTEXTS[context]
    sched = schedule or {}
    notes: list[str] = []
    sev = min(max(float(severity), 0.0), 1.0)
    if verdict == "too_high":
        action, factor = "lower", LOWER
        f = LOWER[0] + (LOWER[1] - LOWER[0]) * sev
        suggested = None if current_lr is None else _round_lr(current_lr / f)
        if sched.get("after_warmup"):
            notes.append(f"the trouble starts where warmup ends (step "
                         f"{sched['warmup_end_step']:g}): the peak LR is the one to lower")
        elif sched.get("constant", True) and not sched.get("has_warmup"):
            notes.append("a warmup over the first ~5% of the run would soften the start")
    elif verdict == "too_low":
        action, factor = "raise", RAISE
        f = RAISE[0] + (RAISE[1] - RAISE[0]) * sev
        suggested = None if current_lr is None else _round_lr(current_lr * f)
        if current_lr is not None and abs(current_lr - DEFAULT_LR) / DEFAULT_LR < 0.05:
            notes.append("from 1e-3 one may also try 5e-3 or even 1e-2, watching closely")
    else:
        action, factor, suggested = "keep", (1, 1), current_lr
        if verdict == "ok" and sched.get("constant") and sched.get("noisy_late"):
            notes.append("the loss stays noisy late in a constant-LR run: warmup + cosine "
                         "decay would let it settle lower")
    # below the context's range, 3-5x would take rounds to get anywhere: the suggestion
    # goes to the rules' starting value for the context (1e-3 from scratch, the Adam
    # default; 3e-5 for fine-tuning), which is what the rules advise when nothing better
    # is known, and a run that barely moves below the range tells nothing better. Above
    # it, 5-10x is kept: a run that is too high already moves a decade, and tasks whose
    # best LR lies above the range exist
    lo, hi = ctx["search"]
    start = ctx["start"]
    if current_lr is not None and action == "raise" and current_lr < lo * 0.99 \
            and start > (suggested or 0):
        suggested, factor = start, (_round_lr(start / current_lr),) * 2
        notes.append(f"{current_lr:g} is below the {context} range of the rules "
                     f"({lo:g}-{hi:g}): raise it into the range, to the rules' starting "
                     f"value {start:g}, not only 3-5x"
                     + (" (fine-tuning a pretrained model? pass --context finetune)"
                        if context == "scratch" else ""))
    rule = RULE_TEXT.get(cause if verdict in ("too_high", "too_low") else verdict, verdict)
    if current_lr is None and action != "keep":
        notes.append(f"the LR is unknown (pass --lr): {action} it {factor[0]}-{factor[1]}x; "
                     f"the rules' starting value for {context} is {ctx['start']:g} "
                     f"(range {ctx['range'][0]:g}-{ctx['range'][1]:g})")
    check = suggested if suggested is not None else None
    if check is not None:
        lo, hi = ctx["search"]
        if context == "scratch" and check > VERY_LARGE:
            notes.append(f"{check:g} is above 1e-2, which is very large for Adam")
        elif check > hi * 1.01 or check < lo * 0.99:
            hint = (" (fine-tuning a pretrained model? pass --context finetune)"
                    if context == "scratch" and check < lo else "")
            notes.append(f"{check:.3g} is outside the {context} range {lo:g}-{hi:g} of the "
                         f"rules{hint}")
    return Recommendation(action, tuple(factor), suggested, rule, notes)
