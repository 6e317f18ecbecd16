"""W&B run files (``run-<id>.wandb``, what an offline run writes), read without wandb.

The file is W&B's data store: a 7-byte header (``:W&B``, a magic number, a version), then
LevelDB-style log blocks of 32 KiB whose records (``crc32c, uint16 length, type``; FULL, or
FIRST/MIDDLE/LAST fragments) each hold one ``Record`` protocol buffer. History rows are
``Record.history`` (field 2): items of ``key`` (1), ``nested_key`` (2) and ``value_json``
(16), and the step (``step.num``). The run's name is ``Record.run.display_name``.

Only those few fields are decoded, so no package is needed. Recent wandb versions no longer
ship a Python reader for this file; the layout is the one their ``wandb sync`` reads.

Two decoders give the same answer. The vectorized one (:func:`_fast_series`) walks the
record chains of all 32 KiB blocks at once (blocks are independent), and the items of all
history records at once, with NumPy; it takes the layout wandb writes (each item one key
and one ``value_json``). Anything else, a damaged file included, goes through the general
one, record by record, with the protobuf field decoder of the TensorBoard reader.
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


def _records(buf: bytes, pos: int = 7, base: int = 0
             ) -> tuple[list[bytes], str | None, int]:
    """The payloads of the data store, a note when it ends in damage, and the offset in
    ``buf`` of the first record not read whole (a record cut short, or the first fragment
    of a chain not closed yet: where a reader of a file still being written goes on).
    ``base``: the file offset of ``buf`` (the blocks are the file's: a piece of it is read
    with its place)."""
    out: list[bytes] = []
    n = len(buf)
    pending: list[bytes] = []
    chain = pos  # where the chain of fragments being joined began
    while pos + 7 <= n:
        room = _BLOCK - ((base + pos) % _BLOCK)
        if room < 7:  # a block's tail too short for a header is padding
            pos += room
            continue
        length, kind = struct.unpack_from("<HB", buf, pos + 4)
        if kind == 0 and length == 0:  # zero padding at the end of a block
            pos += room
            continue
        start, end = pos + 7, pos + 7 + length
        if end > n or kind not in (_FULL, _FIRST, _MIDDLE, _LAST):
            return (out, f"the file ends in an incomplete or damaged record at byte "
                         f"{base + pos}", chain if pending else pos)
        data = buf[start:end]
        if kind == _FULL:
            out.append(data)
        elif kind == _FIRST:
            pending, chain = [data], pos
        else:
            pending.append(data)
            if kind == _LAST:
                out.append(b"".join(pending))
                pending = []
        pos = end
    resume = chain if pending else min(pos, n)
    return out, None if pos >= n or not buf[pos:].strip(b"\0") else \
        f"the last {n - pos} bytes are an incomplete record (a run still writing?)", resume


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
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        return float("nan")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):  # W&B writes NaN and Infinity as strings
        try:
            return float(v)
        except ValueError:
            return float("nan")
    return float("nan")


# --------------------------------------------------------------------- vectorized decoder
_PAD = 16  # zero bytes after the data, so reads a varint past an end stay in the array


def _varint_at(a: np.ndarray, pos: np.ndarray, most: int = 4):
    """(value, byte count) of the varints starting at each position; a varint longer than
    ``most`` bytes gets count 0, which the callers treat as "not the layout we take"."""
    b0 = a[pos]
    multi = np.flatnonzero(b0 >= 0x80)
    if len(multi) == 0:  # lengths and small numbers: one byte each
        return b0.astype(np.int64), np.int64(1)
    value, count = b0.astype(np.int64), np.ones(len(pos), np.int64)
    p = pos[multi]
    v, c = np.zeros(len(p), np.int64), np.zeros(len(p), np.int64)
    going = np.ones(len(p), bool)
    for k in range(most):  # bytes of one varint, not steps
        bk = a[p + k].astype(np.int64)
        v |= np.where(going, (bk & 0x7F) << (7 * k), 0)
        ends = going & (bk < 0x80)
        c[ends] = k + 1
        going &= ~ends
    value[multi], count[multi] = v, c
    return value, count


def _fragments(a: np.ndarray):
    """(position, length, kind) of every record fragment in file order, the position where
    the file is damaged or cut (or None) and where the last block's chain ends; None when a
    record runs past its block. Blocks are independent, so the record chains of all blocks
    are walked together, a record a round."""
    n = len(a)
    pos = np.arange(0, n, _BLOCK, dtype=np.int64)
    block_end = np.minimum(pos + _BLOCK, n)
    pos[0] = 7
    found, bad = [], []
    live = np.flatnonzero(pos + 7 <= block_end)
    while len(live):  # as many rounds as the fullest block has records
        p = pos[live]
        length = a[p + 4].astype(np.int64) | a[p + 5].astype(np.int64) << 8
        kind = a[p + 6]
        end = p + 7 + length
        padding = (kind == 0) & (length == 0)
        wrong = ~padding & ((kind < _FULL) | (kind > _LAST) | (end > n))
        if (~padding & ~wrong & (end > block_end[live])).any():
            return None  # a record running into the next block: not LevelDB's framing
        ok = ~padding & ~wrong
        bad.append(p[wrong])
        found.append((p[ok], length[ok], kind[ok]))
        pos[live[ok]] = end[ok]
        live = live[ok]
        live = live[pos[live] + 7 <= block_end[live]]
    if not found:  # the header alone
        return [np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8)], \
            None, 7
    frag = [np.concatenate([f[i] for f in found]) for i in range(3)]
    order = np.argsort(frag[0])
    bad_at = np.concatenate(bad)
    return ([f[order] for f in frag], int(bad_at.min()) if len(bad_at) else None,
            int(pos[-1]))


def _whole_records(a, fpos, flen, fkind):
    """(data, start, length) of the whole records: ``data`` is the file followed by the
    records that were split across blocks, joined, and _PAD zero bytes; ``start`` indexes
    it. None when fragments do not pair up (FIRST, MIDDLE..., LAST)."""
    opens = (fkind == _FULL) | (fkind == _FIRST)
    closes = (fkind == _FULL) | (fkind == _LAST)
    depth = np.cumsum(opens.astype(np.int64) - closes)
    before = np.r_[0, depth[:-1]]  # records open before each fragment
    if (before[opens] != 0).any() or (before[~opens] != 1).any():
        return None
    if len(depth) and depth[-1]:  # a record cut off at the end of the file: left out
        cut = np.flatnonzero(opens)[-1]
        fpos, flen, fkind, opens = fpos[:cut], flen[:cut], fkind[:cut], opens[:cut]
    heads = np.flatnonzero(opens)
    length = np.add.reduceat(flen, heads) if len(heads) else flen[:0]
    split = np.flatnonzero(fkind != _FULL)  # fragments of the records split across blocks
    sl, src = flen[split], fpos[split] + 7
    off = np.cumsum(sl) - sl
    side = a[np.arange(int(sl.sum())) - np.repeat(off - src, sl)]
    start = fpos[heads] + 7
    is_split = fkind[heads] == _FIRST
    start[is_split] = len(a) + off[np.searchsorted(split, heads[is_split])]
    data = np.concatenate((a, side, np.zeros(_PAD, np.uint8)))
    return data, start, length


def _fast_series(buf: bytes):
    """({key: (steps, values)}, first records, notes) of a file in the layout wandb
    writes, or None when it is in another (the general decoder then reads it)."""
    a = np.frombuffer(buf, dtype=np.uint8)
    framed = _fragments(a)
    if framed is None:
        return None
    (fpos, flen, fkind), damage, tail = framed
    notes = []
    if damage is not None:
        keep = fpos < damage
        fpos, flen, fkind = fpos[keep], flen[keep], fkind[keep]
        notes.append(f"the file ends in an incomplete or damaged record at byte {damage}")
    elif tail < len(a) and a[tail:].any():
        notes.append(f"the last {len(a) - tail} bytes are an incomplete record (a run still "
                     "writing?)")
    whole = _whole_records(a, fpos, flen, fkind)
    if whole is None:
        return None
    data, rs, rl = whole
    first = [data[b:b + k].tobytes() for b, k in zip(rs[:50], rl[:50])]
    # Record: num (field 1, varint), then history (field 2, bytes) in a history record
    re_ = rs + rl
    _, k = _varint_at(data, rs + 1, most=10)
    at = np.where(data[rs] == 0x08, rs + 1 + k, rs)
    hist = (rl > 0) & (at < re_) & (data[at] == 0x12) & ((data[rs] != 0x08) | (k > 0))
    at, re_ = at[hist], re_[hist]
    hlen, k = _varint_at(data, at + 1)
    pos = at + 1 + k
    hend = pos + hlen
    if (k == 0).any() or (hend > re_).any():
        return None
    step = np.arange(len(pos))  # history rows without a step are numbered as they come
    items = []
    live = np.flatnonzero(pos < hend)
    while len(live):  # as many rounds as a row has fields
        p = pos[live]
        tag = data[p]
        ln, k = _varint_at(data, p + 1)
        body = p + 1 + k
        end = body + ln
        if (k == 0).any() or (end > hend[live]).any():
            return None
        is_item = tag == 0x0A  # key (1) or one nested_key (2), then value_json (16)
        is_step = tag == 0x12  # HistoryRecord.step: {num (1): varint}; empty is step 0
        if not (is_item | is_step).all():
            return None
        if is_step.any():
            b, e = body[is_step], end[is_step]
            num, nk = _varint_at(data, b + 1, most=10)
            empty = b == e
            if (~empty & ((data[b] != 0x08) | (nk == 0) | (b + 1 + nk != e))).any():
                return None
            step[live[is_step]] = np.where(empty, 0, num)
        if is_item.any():
            b, e = body[is_item], end[is_item]
            klen, k1 = _varint_at(data, b + 1)
            ks = b + 1 + k1
            vt = ks + klen
            if (k1 == 0).any() or (vt + 3 > e).any():  # a key running past its item
                return None
            vlen, k2 = _varint_at(data, vt + 2)
            vs = vt + 2 + k2
            if ((data[b] != 0x0A) & (data[b] != 0x12)).any() \
                    or (k2 == 0).any() or (data[vt] != 0x82).any() \
                    or (data[vt + 1] != 0x01).any() or (vs + vlen != e).any():
                return None
            mine = data[ks] != ord("_")  # _step, _runtime, _timestamp: W&B's bookkeeping
            items.append((ks[mine], klen[mine], vs[mine], vlen[mine], live[is_item][mine]))
        pos[live] = end
        live = live[end < hend[live]]
    if not items:
        return {}, first, notes
    ks, kl, vs, vl, row = (np.concatenate([t[i] for t in items]) for i in range(5))
    order = np.lexsort((vs, row))  # file order (the rounds went field by field)
    return _group(data, ks[order], kl[order], vs[order], vl[order], step[row[order]]), \
        first, notes


def _words(data: np.ndarray) -> np.ndarray:
    """Little-endian uint64 starting at every byte of ``data`` (whose last _PAD bytes are
    padding): a strided view, so 8 bytes of many texts are gathered in one step."""
    return np.ndarray((len(data) - 8,), dtype="<u8", buffer=data, strides=(1,))


def _text_words(words: np.ndarray, start: np.ndarray, length: np.ndarray, width: int):
    """The texts at (start, length) as rows of ``width`` 8-byte words, zero past each end."""
    out = np.zeros((len(start), width), "<u8")
    full = np.uint64(0xFFFFFFFFFFFFFFFF)
    for m in range(width):  # 8-byte words of a text, not texts
        left = np.clip(length - 8 * m, 0, 8).astype(np.uint64)
        mask = np.where(left == 8, full, (np.uint64(1) << (np.uint64(8) * left)) - 1)
        out[:, m] = words[np.minimum(start + 8 * m, len(words) - 1)] & mask
    return out


def _group(data, ks, kl, vs, vl, steps) -> dict:
    """{key: (steps, values)} of the items, keys told apart by their bytes (hashed, then
    checked), values parsed from their JSON text at once."""
    if len(ks) == 0:
        return {}
    words = _words(data)
    keys = _text_words(words, ks, kl, -(-int(kl.max()) // 8))
    h = kl.astype(np.uint64)
    with np.errstate(over="ignore"):
        for m in range(keys.shape[1]):  # words of a key
            h = (h ^ keys[:, m]) * np.uint64(0x100000001B3)
    _, first, inv = np.unique(h, return_index=True, return_inverse=True)
    if ((keys != keys[first][inv]).any(axis=1) | (kl != kl[first][inv])).any():
        raise AssertionError("two W&B keys share a hash")  # 2**-64: never in practice
    out = {}
    for u in np.argsort(first):  # the distinct keys (a handful), as they first came
        m = np.flatnonzero(inv == u)
        f = first[u]
        key = data[ks[f]:ks[f] + kl[f]].tobytes().decode("utf-8", errors="replace")
        out[key] = (steps[m].astype(np.int64), _json_numbers(words, vs[m], vl[m]))
    return out


def _json_numbers(words, start, length) -> np.ndarray:
    """The JSON texts at (start, length) as float64, as :func:`_number` reads each: numbers
    parsed all at once; objects and arrays (a histogram) NaN; the rest (the strings W&B
    writes for non-finite values, ``NaN``, ``true``, ...) one by one, they are rare."""
    width = -(-int(length.max()) // 8) if len(length) else 1
    text = _text_words(words, start, length, width).view(np.uint8)  # little-endian bytes
    s = text.view(f"S{8 * width}").ravel()
    out = np.full(len(s), np.nan)
    c0 = text[:, 0]
    num = ((c0 >= ord("0")) & (c0 <= ord("9"))) | (c0 == ord("-"))
    other = ~num & (c0 != ord("{")) & (c0 != ord("["))
    try:
        out[num] = s[num].astype(np.float64)
    except ValueError:  # a malformed number: the general rule, value by value
        other |= num
    if other.any():
        out[other] = [_number(v) for v in s[other]]
    return out


def read(path: Path, *, step=None, metric=None, lr_column=None) -> list[History]:
    src = str(path)
    buf = _io.read_bytes(path)
    if not buf.startswith(MAGIC):
        raise LrDoctorError("not a W&B run file (it does not start with ':W&B')", src)
    fast = _fast_series(buf)
    series, first, notes = fast if fast is not None else _general_series(buf)
    if not series:
        raise LrDoctorError("the W&B run file holds no history rows (nothing was logged "
                            "with wandb.log yet)", src)
    sel = Selection(list(series), metric=metric, lr_column=lr_column, source=src)
    name = _run_name(first) or path.stem.removeprefix("run-")
    return [from_series(series, sel, src, name, notes)]


def _general_series(buf: bytes):
    """({key: (steps, values)}, first records, notes) record by record, any layout."""
    records, damage, _ = _records(buf)
    notes = [damage] if damage else []
    arrays, _ = history_series(records, 0, notes)
    return arrays, records[:50], notes


def history_series(records: list[bytes], row_index: int, notes: list[str]
                   ) -> tuple[dict, int]:
    """({key: (steps, values)}, rows so far) of the history records among ``records``
    (``row_index``: the history rows before them, the step of a row without one). One
    decoder for the batch reader's general path and for ``lrdoctor watch`` (the records
    appended since it last read)."""
    series: dict[str, tuple[list, list]] = {}
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
    arrays = {k: (np.asarray(s, dtype=np.int64), np.asarray(v, dtype=np.float64))
              for k, (s, v) in series.items()}
    return arrays, row_index
