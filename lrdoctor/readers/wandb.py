"""W&B run files (``run-<id>.wandb``, what an offline run writes), read without wandb.

The file is W&B's data store: a 7-byte header (``:W&B``, a magic number, a version), then
LevelDB-style log blocks of 32 KiB whose records (``crc32c, uint16 length, type``; FULL, or
FIRST/MIDDLE/LAST fragments) each hold one ``Record`` protocol buffer. History rows are
``Record.history`` (field 2): items of ``key`` (1), ``nested_key`` (2) and ``value_json``
(16), and the step (``step.num``). The run's name is ``Record.run.display_name``.

Only those few fields are decoded (with the protobuf field decoder of the TensorBoard
reader), so no package is needed. Recent wandb versions no longer ship a Python reader for
this file; the layout is the one their ``wandb sync`` reads.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from lrdoctor.errors import LrDoctorError
from lrdoctor.history import History
from lrdoctor.readers import _io
from lrdoctor.readers._table import Selection, from_series
from lrdoctor.readers.tensorboard import _fields

MAGIC = b":W&B"
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def is_wandb_file(path: Path, head: bytes | None = None) -> bool:
    head = head if head is not None else _io.head(path, 8)
    return head.startswith(MAGIC)


def _records(buf: bytes) -> tuple[list[bytes], str | None]:
    """The payloads of the data store, and a note when it ends in damage."""
    out: list[bytes] = []
    pos, n = 7, len(buf)
    pending: list[bytes] = []
    while pos + 7 <= n:
        room = _BLOCK - (pos % _BLOCK)
        if room < 7:  # a block's tail too short for a header is padding
            pos += room
            continue
        length, kind = struct.unpack_from("<HB", buf, pos + 4)
        if kind == 0 and length == 0:  # zero padding at the end of a block
            pos += room
            continue
        start, end = pos + 7, pos + 7 + length
        if end > n or kind not in (_FULL, _FIRST, _MIDDLE, _LAST):
            return out, f"the file ends in an incomplete or damaged record at byte {pos}"
        data = buf[start:end]
        if kind == _FULL:
            out.append(data)
        elif kind == _FIRST:
            pending = [data]
        else:
            pending.append(data)
            if kind == _LAST:
                out.append(b"".join(pending))
                pending = []
        pos = end
    return out, None if pos >= n or not buf[pos:].strip(b"\0") else \
        f"the last {n - pos} bytes are an incomplete record (a run still writing?)"


def _history_row(rec: bytes) -> tuple[int | None, dict] | None:
    """(step, {key: value}) of a history record; None for other records."""
    history = None
    for field, wire, v in _fields(rec, 0, len(rec)):
        if field == 2 and wire == 2:
            history = v
    if history is None:
        return None
    step, row = None, {}
    for field, wire, v in _fields(rec, *history):
        if field == 1 and wire == 2:
            key, nested, value = None, [], None
            for f2, w2, v2 in _fields(rec, *v):
                if f2 == 1 and w2 == 2:
                    key = rec[v2[0]:v2[1]].decode("utf-8", errors="replace")
                elif f2 == 2 and w2 == 2:
                    nested.append(rec[v2[0]:v2[1]].decode("utf-8", errors="replace"))
                elif f2 == 16 and w2 == 2:
                    value = rec[v2[0]:v2[1]]
            name = "/".join(nested) if nested else key
            if name is not None and value is not None:
                row[name] = value
        elif field == 2 and wire == 2:
            for f2, w2, v2 in _fields(rec, *v):
                if f2 == 1 and w2 == 0:
                    step = v2
    return step, row


def _run_name(records: list[bytes]) -> str | None:
    for rec in records[:50]:  # the run record comes first
        try:
            for field, wire, v in _fields(rec, 0, len(rec)):
                if field == 17 and wire == 2:
                    for f2, w2, v2 in _fields(rec, *v):
                        if f2 == 8 and w2 == 2:  # RunRecord.display_name
                            return rec[v2[0]:v2[1]].decode("utf-8", errors="replace")
        except (ValueError, IndexError):
            continue
    return None


def _number(raw: bytes) -> float:
    try:
        v = json.loads(raw)
    except ValueError:
        return float("nan")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):  # W&B writes NaN and Infinity as strings
        try:
            return float(v)
        except ValueError:
            return float("nan")
    return float("nan")


def read(path: Path, *, step=None, metric=None, lr_column=None) -> list[History]:
    src = str(path)
    buf = _io.read_bytes(path)
    if not buf.startswith(MAGIC):
        raise LrDoctorError("not a W&B run file (it does not start with ':W&B')", src)
    records, damage = _records(buf)
    notes = [damage] if damage else []
    series: dict[str, tuple[list, list]] = {}
    row_index = 0
    for rec in records:
        try:
            got = _history_row(rec)
        except (ValueError, IndexError):
            notes.append(f"record {row_index + 1} is damaged and was skipped")
            continue
        if got is None:
            continue
        s, row = got
        s = row_index if s is None else s
        row_index += 1
        for key, raw in row.items():
            if key.startswith("_"):  # _step, _runtime, _timestamp: W&B's own bookkeeping
                continue
            steps, values = series.setdefault(key, ([], []))
            steps.append(s)
            values.append(_number(raw))
    if not series:
        raise LrDoctorError("the W&B run file holds no history rows (nothing was logged "
                            "with wandb.log yet)", src)
    arrays = {k: (np.asarray(s, dtype=np.int64), np.asarray(v, dtype=np.float64))
              for k, (s, v) in series.items()}
    sel = Selection(list(arrays), metric=metric, lr_column=lr_column, source=src)
    name = _run_name(records) or path.stem.removeprefix("run-")
    return [from_series(arrays, sel, src, name, notes)]
