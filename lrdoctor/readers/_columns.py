"""Finding the step, loss, LR, validation-loss, epoch, gradient-norm and run columns by name.

Each list is in order of preference: the first name present wins. Names are compared after
lower-casing and turning spaces into underscores, so ``Train Loss`` matches ``train_loss``.

When no name on the loss list is present, the loss is found by meaning
(:func:`rank_losses`): any name one of whose words is ``loss`` (``mean_loss``,
``train/CrossEntropyLoss``, ``Train loss``, ``loss_cls``) is a candidate, and one ranking
picks among them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

STEP = ["step", "global_step", "trainer/global_step", "train/global_step", "iteration", "iter",
        "it", "_step", "steps", "num_updates", "update", "batch"]
LOSS = ["loss", "train_loss", "train/loss", "training_loss", "train_loss_step", "loss_step",
        "train/loss_step", "trainer/loss", "loss/train", "train/total_loss", "total_loss",
        "train_total_loss", "training/loss", "train/loss_epoch", "train_loss_epoch",
        "loss_epoch", "running_loss", "batch_loss", "epoch_loss"]
#: Ultralytics YOLO logs one LR per parameter group, the biases' first (``lr/pg0``, YOLOv5's
#: ``x/lr0``), whose warmup starts high at ``warmup_bias_lr`` (0.1) and falls while the
#: weights' (``lr/pg1``, ``x/lr1``) rises: the weights' group is the LR.
LR = ["lr", "learning_rate", "learning-rate", "train/lr", "train/learning_rate", "lr-adam",
      "lr-adamw", "lr/pg1", "lr/pg0", "x/lr1", "x/lr0", "train_lr", "lr_0", "lr-sgd", "optimizer/lr", "epoch_learning_rate",
      "batch_learning_rate", "epoch_lr"]
VAL = ["val_loss", "eval_loss", "valid/loss", "val/loss", "validation_loss", "valid_loss",
       "eval/loss", "validation/loss", "loss/val", "val_loss_epoch", "test_loss"]
EPOCH = ["epoch", "epochs", "train/epoch"]
#: The total gradient norm (before clipping, as the trainers log it); when none of these is
#: present, :func:`find_grad_norm` looks for one by meaning.
GRAD_NORM = ["grad_norm", "gradient_norm", "grad-norm", "total_grad_norm",
             "optim/total_grad_norm", "train/grad_norm", "grad_norm_total", "global_grad_norm",
             "train/gradient_norm", "train/total_grad_norm", "train/global_grad_norm",
             "optim/grad_norm", "grad_norm/total", "grad_2.0_norm_total", "gradnorm", "gnorm",
             "grad_norm_step", "train/grad_norm_step"]
RUN = ["run", "run_name", "run_id"]
#: An LR written into a name (``learning_rate_0.01``, ``adam-lr3e-4``, ``LR=1e-3``,
#: ``learning-rate 0.1``): the value is group 1. Column names (a wide sweep) and run and file
#: names (the sweep view) are read with this one pattern.
LR_IN_NAME = re.compile(
    r"(?i)(?<![a-z])(?:lr|learning[_-]?rate)[_=\- ]?(\d*\.?\d+(?:e[-+]?\d+)?)")


def normalize(name: str) -> str:
    return str(name).strip().lower().replace(" ", "_")


def find(columns: list[str], candidates: list[str], override: str | None = None,
         *, prefix: str | None = None) -> str | None:
    """The column among ``columns`` that best matches ``candidates``.

    ``override`` (a user's ``--metric`` and friends) must name a column exactly or up to
    case; it returns None when absent so the caller can report it. ``prefix`` also accepts a
    column that starts with it (``lr-`` for Lightning's ``lr-AdamW``).
    """
    norm = {normalize(c): c for c in reversed(columns)}  # first spelling wins on clashes
    if override is not None:
        if override in columns:
            return override
        return norm.get(normalize(override))
    for cand in candidates:
        if cand in norm:
            return norm[cand]
    if prefix:
        for c in columns:
            if normalize(c).startswith(prefix):
                return c
    return None


#: Words that make a gradient-norm name something else: a clipping threshold or a config
#: value (``max_grad_norm``), a statistic over layers or steps, a norm after clipping.
NOT_A_GRAD_NORM = frozenset({"max", "min", "clip", "clipped", "clipping", "threshold",
                             "ratio", "std", "var", "mean", "avg", "after", "post", "scale",
                             "scaled", "count", "coef", "weight", "weights", "param",
                             "params", "update"})


def find_grad_norm(columns: list[str]) -> str | None:
    """The total gradient norm's column: a name of :data:`GRAD_NORM`, else by meaning a
    name whose words include ``grad``/``gradient``/``grads`` and ``norm`` and none of
    :data:`NOT_A_GRAD_NORM` nor a validation word; among several, a total (``total``,
    ``global``, ``all``) first, then the shortest name (a per-layer norm is longer), then
    the columns' order."""
    found = find(columns, GRAD_NORM)
    if found is not None:
        return found
    got = []
    for k, c in enumerate(columns):
        ws = set(words(c))
        if not ({"grad", "gradient", "grads", "gradnorm"} & ws) or not \
                ({"norm", "gradnorm"} & ws) or (NOT_A_GRAD_NORM | VALIDATION_WORDS) & ws:
            continue
        got.append((not ({"total", "global", "all"} & ws), len(words(c)), k, c))
    return min(got)[3] if got else None


def loss_like(columns: list[str]) -> list[str]:
    """Columns whose name says they hold a loss (for the 'other metrics available' line)."""
    return [c for c in columns if "loss" in normalize(c)]


# ---------------------------------------------------------------------- loss by meaning
#: Words that make a name a validation metric.
VALIDATION_WORDS = frozenset({"val", "valid", "validation", "eval", "evaluation", "test",
                              "testing", "dev", "holdout"})
#: Words that make a name a training metric (or are only a namespace).
TRAIN_WORDS = frozenset({"train", "training", "trainer", "metrics", "metric", "losses"})
#: Words that make a loss the total of its parts.
TOTAL_WORDS = frozenset({"total", "mean", "sum", "overall", "full", "all", "avg",
                         "average", "combined", "final", "objective"})
#: Words of how often a value was written.
STEP_WORDS = frozenset({"step", "steps", "batch", "iter", "iteration", "update"})
EPOCH_WORDS = frozenset({"epoch", "epochs"})
#: Words that make a loss-named value something other than a loss: fp16's loss scale, a
#: loss's weight in a sum, an aggregate band of a chart export (``__MIN``/``__MAX``), the
#: name of a loss function or column (a config value, a table about losses).
NOT_A_LOSS = frozenset({"scale", "scaler", "scaling", "weight", "weights", "coef", "coeff",
                        "coefficient", "factor", "lambda", "std", "var", "min", "max",
                        "count", "ratio", "improvement", "best", "column", "col", "name",
                        "type", "fn", "func", "function", "key", "id", "kind"})
#: A part that repeats another (DETR logs each part scaled and ``_unscaled``): not summed.
DUPLICATE_WORDS = frozenset({"unscaled", "raw", "unweighted"})

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[a-z0-9]+")


def words(name: str) -> list[str]:
    """A name's words, lower-cased: ``train/CrossEntropyLoss`` -> train, cross, entropy,
    loss; ``val_loss_epoch`` -> val, loss, epoch."""
    return _WORD.findall(_CAMEL.sub("_", str(name).strip()).lower())


@dataclass(frozen=True)
class LossName:
    """How a name that holds a loss reads: its phase, whether it is a total, how often."""

    name: str
    validation: bool
    total: bool
    #: 0 per step, 1 not said, 2 per epoch
    every: int
    duplicate: bool

    @property
    def kind(self) -> str:
        return ("validation " if self.validation else "") + \
            ("total" if self.total else "part")


def read_loss_name(name: str) -> LossName | None:
    """The reading of ``name`` as a loss, or None when no word of it is ``loss``."""
    ws = words(name)
    # ``loss`` as a word, or glued to others in one lower-case word (``valloss``, ``nllloss``)
    is_loss = [w in ("loss", "losses") or (len(w) > 4 and w.endswith("loss")
                                           and w[:-4].isalpha() and w != "gloss")
               for w in ws]
    if not any(is_loss) or NOT_A_LOSS.intersection(ws):
        return None
    # a loss word glued to a phase (valloss, trainloss) says the phase too
    glued = {w[:-4] for w, k in zip(ws, is_loss) if k and w not in ("loss", "losses")}
    ws_all = set(ws) | glued
    validation = bool(VALIDATION_WORDS & ws_all)
    every = 0 if STEP_WORDS & ws_all else 2 if EPOCH_WORDS & ws_all else 1
    rest = [w for w, k in zip(ws, is_loss) if not k and w not in VALIDATION_WORDS
            and w not in TRAIN_WORDS and w not in STEP_WORDS and w not in EPOCH_WORDS]
    rest += [g for g in glued if g not in VALIDATION_WORDS | TRAIN_WORDS]
    total = bool(TOTAL_WORDS.intersection(rest)) or not rest
    return LossName(str(name), validation, total, every, bool(DUPLICATE_WORDS & ws_all))


def rank_losses(columns: list[str]) -> list[LossName]:
    """The names among ``columns`` that hold a loss, best first.

    The ranking: training before validation (``val``, ``eval``, ``test``, ...); a total
    (``total``, ``mean``, ``sum``, or a plain ``loss``) before a part of it (``box_loss``,
    ``loss_cls``, ``CrossEntropyLoss``); per step before not said before per epoch; then
    the columns' own order.
    """
    got = [r for r in map(read_loss_name, columns) if r is not None]
    order = {c: k for k, c in enumerate(columns)}
    return sorted(got, key=lambda r: (r.validation, not r.total, r.every, order[r.name]))


def pick_loss(columns: list[str]) -> tuple[list[str], str] | None:
    """The training loss by meaning: ``([name], why)`` for one column, ``([part, ...],
    why)`` for parts to be summed (no total is logged), or None when no name is a loss.

    A validation loss is picked only when the log has no training loss at all.
    """
    ranked = rank_losses(columns)
    if not ranked:
        return None
    best = ranked[0]
    others = [r.name for r in ranked[1:]]
    also = f"; other losses: {', '.join(repr(o) for o in others[:8])}" + \
        (f" and {len(others) - 8} more" if len(others) > 8 else "") if others else ""
    if best.total:
        what = "the only loss" if not others else "a total, ranked first"
        if best.validation:
            what = "a validation loss: the log has no training loss"
        return [best.name], f"loss found by name: {best.name!r} ({what}){also}"
    parts = [r.name for r in ranked if not r.total and not r.validation
             and r.every == best.every and not r.duplicate]
    if len(parts) >= 2 and not best.validation:
        return parts, ("no total loss is logged: the training loss is the sum of "
                       f"{', '.join(p.strip() for p in parts)}")
    return [best.name], f"loss found by name: {best.name!r} (one part, no total){also}"
