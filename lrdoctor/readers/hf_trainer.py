"""Hugging Face Trainer ``trainer_state.json``: the ``log_history`` list.

Training entries carry ``loss``, ``learning_rate``, ``grad_norm``, ``step``, ``epoch``; eval
entries carry ``eval_loss`` instead (kept as the validation loss). The final summary entry
(``train_loss``, ``train_runtime``) is not a step of the curve and is left out.
"""
from __future__ import annotations

import json
import re
from itertools import chain
from pathlib import Path

from lrdoctor.errors import LrDoctorError
from lrdoctor.history import History
from lrdoctor.readers import _io
from lrdoctor.readers.jsonlines import ARROW_MIN_BYTES, from_arrow, from_records


def read(path: Path, *, step=None, metric=None, lr_column=None) -> list[History]:
    src = str(path)
    data = _io.read_bytes(path)
    _io.check_text(path, data[: 1 << 16])
    fast = _read_fast(data, src, step=step, metric=metric, lr_column=lr_column)
    if fast is not None:
        return fast
    try:
        doc = json.loads(data.decode("utf-8", errors="replace").lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise LrDoctorError(f"line {exc.lineno}: not valid JSON ({exc.msg} at column "
                            f"{exc.colno}); the trainer_state.json is damaged", src) from None
    except RecursionError:
        raise LrDoctorError(f"line {_deep_line(data)}: JSON nested too deep to read (a "
                            "trainer_state.json's log_history holds flat objects of numbers); "
                            "the file is damaged or not a trainer_state.json", src) from None
    hist = doc.get("log_history") if isinstance(doc, dict) else None
    if not isinstance(hist, list):
        raise LrDoctorError("no 'log_history' list: not a Hugging Face trainer_state.json",
                            src)
    notes = []
    others = [k for k, r in enumerate(hist) if not isinstance(r, dict)]
    if others:
        what = (f"'log_history' holds {len(others)} entries that are not objects "
                f"({_where(hist, others)})")
        if len(others) == len(hist):
            raise LrDoctorError(f"{what} and no step; each entry is an object such as "
                                '{"step": 10, "loss": 2.3}: the trainer_state.json is damaged',
                                src)
        notes.append(f"{what}: left out")
    records = [r for r in hist if isinstance(r, dict) and "train_runtime" not in r]
    if not records:
        raise LrDoctorError("'log_history' is empty: the Trainer logged no steps yet", src)
    keys = list(dict.fromkeys(chain.from_iterable(records)))
    return from_records(records, keys, src, notes, step=step, metric=metric,
                        lr_column=lr_column)


def _where(hist: list, at: list[int]) -> str:
    """``entry 1 (1), entry 3 ('x'), ...``: the first few entries that are not objects."""
    def shown(v):
        text = json.dumps(v)
        return text if len(text) <= 20 else text[:17] + "..."

    out = ", ".join(f"entry {k + 1}: {shown(hist[k])}" for k in at[:4])
    return out + (", ..." if len(at) > 4 else "")


def _deep_line(data: bytes) -> int:
    """The line where brackets first nest deeper than Python's parser goes (brackets in
    strings are counted too: where to look, not a parse)."""
    import sys

    import numpy as np

    b = np.frombuffer(data, dtype=np.uint8)
    step = ((b == ord("[")) | (b == ord("{"))).astype(np.int32) - \
        ((b == ord("]")) | (b == ord("}")))
    depth = np.cumsum(step, dtype=np.int32)
    at = int(np.argmax(depth >= min(sys.getrecursionlimit(), int(depth.max(initial=1)))))
    return 1 + int(np.count_nonzero(b[:at] == ord("\n")))


_ENTRY_SEP = re.compile(rb"}\s*,\s*{")
_ARRAY_END = re.compile(rb"}\s*]")


def _read_fast(data: bytes, src: str, **kw) -> list[History] | None:
    """``log_history`` parsed by Arrow's multi-threaded JSON reader (about twice as fast
    as ``json`` on a 1e6-entry file). Its entries are flat objects of numbers, so the array
    becomes JSON lines by splitting between them; anything unexpected (a nested value, a
    count that does not add up, a column that is not numbers) returns None and the plain
    ``json`` path reads the file instead, with its precise error messages. The final summary entry
    (``train_runtime``) is not a step and is left out."""
    import pyarrow as pa

    start = data.find(b'"log_history"')
    if start < 0 or len(data) < ARROW_MIN_BYTES:
        return None
    open_ = data.find(b"[", start)
    end = _ARRAY_END.search(data, open_)
    if open_ < 0 or end is None:
        return None
    body = data[open_ + 1:end.start() + 1]
    n_objects = body.count(b"{")
    if n_objects == 0 or body.count(b"}") != n_objects or b"[" in body:
        return None
    return from_arrow(pa.BufferReader(_ENTRY_SEP.sub(b"}\n{", body)), src, rows=n_objects,
                      drop_where="train_runtime", newlines_in_values=True, **kw)
