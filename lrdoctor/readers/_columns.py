"""Finding the step, loss, LR, validation-loss, epoch and run columns by name.

Each list is in order of preference: the first name present wins. Names are compared after
lower-casing and turning spaces into underscores, so ``Train Loss`` matches ``train_loss``.
"""
from __future__ import annotations

STEP = ["step", "global_step", "trainer/global_step", "train/global_step", "iteration", "iter",
        "it", "_step", "steps", "num_updates", "update", "batch"]
LOSS = ["loss", "train_loss", "train/loss", "training_loss", "train_loss_step", "loss_step",
        "train/loss_step", "trainer/loss", "loss/train", "train/total_loss", "total_loss",
        "train_total_loss", "training/loss", "train/loss_epoch", "train_loss_epoch",
        "loss_epoch", "running_loss", "batch_loss", "epoch_loss"]
LR = ["lr", "learning_rate", "learning-rate", "train/lr", "train/learning_rate", "lr-adam",
      "lr-adamw", "lr/pg0", "train_lr", "lr_0", "lr-sgd", "optimizer/lr", "epoch_learning_rate",
      "batch_learning_rate", "epoch_lr"]
VAL = ["val_loss", "eval_loss", "valid/loss", "val/loss", "validation_loss", "valid_loss",
       "eval/loss", "validation/loss", "loss/val", "val_loss_epoch", "test_loss"]
EPOCH = ["epoch", "epochs", "train/epoch"]
RUN = ["run", "run_name", "run_id"]


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


def loss_like(columns: list[str]) -> list[str]:
    """Columns whose name says they hold a loss (for the 'other metrics available' line)."""
    return [c for c in columns if "loss" in normalize(c)]
