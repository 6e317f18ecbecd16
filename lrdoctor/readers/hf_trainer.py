"""Hugging Face Trainer ``trainer_state.json``: the ``log_history`` list.

Training entries carry ``loss``, ``learning_rate``, ``grad_norm``, ``step``, ``epoch``; eval
entries carry ``eval_loss`` instead (kept as the validation loss). The final summary entry
(``train_loss``, ``train_runtime``) is not a step of the curve and is left out.
"""
from __future__ import annotations

import json
from pathlib import Path

from lrdoctor.errors import LrDoctorError
from lrdoctor.history import History
from lrdoctor.readers import _io
from lrdoctor.readers.jsonlines import from_records


def read(path: Path, *, step=None, metric=None, lr_column=None) -> list[History]:
    src = str(path)
    data = _io.read_bytes(path)
    _io.check_text(path, data[: 1 << 16])
    try:
        doc = json.loads(data.decode("utf-8", errors="replace").lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise LrDoctorError(f"line {exc.lineno}: not valid JSON ({exc.msg} at column "
                            f"{exc.colno}); the trainer_state.json is damaged", src) from None
    hist = doc.get("log_history") if isinstance(doc, dict) else None
    if not isinstance(hist, list):
        raise LrDoctorError("no 'log_history' list: not a Hugging Face trainer_state.json",
                            src)
    records = [r for r in hist if isinstance(r, dict) and "train_runtime" not in r]
    if not records:
        raise LrDoctorError("'log_history' is empty: the Trainer logged no steps yet", src)
    keys = list(dict.fromkeys(k for r in records for k in r))
    return from_records(records, keys, src, [], step=step, metric=metric, lr_column=lr_column)
