"""TensorBoard event files (``events.out.tfevents.*``), read without TensorFlow.

An event file is a sequence of TFRecords (``uint64 length, uint32 crc, data, uint32 crc``),
each holding an ``Event`` protocol buffer; scalars live in its ``summary.value`` entries as a
``simple_value`` (PyTorch's SummaryWriter, tensorboardX, Keras through TF1 summaries) or as a
one-element ``tensor`` (TF2 ``tf.summary.scalar``, TensorBoard's own writer). The wire format
has been fixed for years, so this module decodes the few fields it needs itself:

- walking the records is one cheap pass (each length gives the next offset);
- the common layouts (one value per event: wall time, step, summary, tag, then a float, a
  double or a one-element tensor) are decoded for all records at once with NumPy;
- anything else (several values in one event, unusual field orders) goes through a small
  general decoder, record by record.

No dependency is needed, and it reads a 1e6-event file faster than tbparse or TensorBoard's
own loader (``benchmarks/read_speed.py``). Where the walk over the records shows damage,
their lengths are checked against their CRCs (all at once), and damaged bytes in mid-file
are skipped to the next record whose length and data CRCs check out, with a note saying
how many bytes and records were lost. A truncated last record ends the read with a note; a
file with no record at all is an error.

A folder of event files (a resumed run writes a new file) is one run; where a step repeats,
the last write wins, as in TensorBoard.
"""
from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lrdoctor.errors import LrDoctorError
from lrdoctor.history import History
from lrdoctor.readers import _io
from lrdoctor.readers._table import Selection, from_series

EVENT_FILE = re.compile(r"(^|\.)events\.out\.tfevents\.")

# TensorProto dtypes we take as scalars
_DT_FLOAT, _DT_DOUBLE, _DT_INT32, _DT_INT64, _DT_HALF = 1, 2, 3, 9, 19


def is_event_file(path: Path) -> bool:
    return bool(EVENT_FILE.search(path.name))


def event_files(folder: Path) -> list[Path]:
    """The event files directly inside ``folder``, oldest first (by their timestamp)."""
    return sorted((p for p in folder.iterdir() if p.is_file() and is_event_file(p)),
                  key=lambda p: (_stamp(p), p.name))


def _stamp(p: Path) -> int:
    m = re.search(r"tfevents\.(\d+)", p.name)
    return int(m.group(1)) if m else 0


def run_name(path: Path) -> str:
    """``yolodog.events.out.tfevents.123`` -> ``yolodog``; else the folder's name."""
    if path.is_dir():
        return path.name
    prefix = EVENT_FILE.split(path.name)[0]
    return prefix or path.parent.name or path.name


# ---------------------------------------------------------------------------- records

def _walk(buf: bytes, pos: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """(start, length) of each record's data from ``pos`` on, and the offset where the walk
    stopped (a record that does not fit in the file).

    The walk is sequential by nature (each record's length gives the next offset); it does
    nothing but unpack one integer per record.
    """
    n = len(buf)
    starts, lengths = [], []
    unpack = struct.Struct("<Q").unpack_from
    while pos + 12 <= n:
        (length,) = unpack(buf, pos)
        end = pos + 12 + length
        if end + 4 > n:
            break
        starts.append(pos + 12)
        lengths.append(length)
        pos = end + 4
    return (np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64), pos)


def _crc_table() -> np.ndarray:
    """The byte table of CRC-32C (Castagnoli, reflected polynomial 0x82F63B78)."""
    crc = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        crc = np.where(crc & 1, (crc >> np.uint32(1)) ^ np.uint32(0x82F63B78),
                       crc >> np.uint32(1))
    return crc.astype(np.uint32)


_CRC = _crc_table()
_CRC_LIST = _CRC.tolist()


def _masked(crc):
    """TFRecord's masked CRC: rotated right by 15 bits plus a constant (mod 2**32)."""
    if isinstance(crc, np.ndarray):
        rot = (crc >> np.uint32(15)) | (crc << np.uint32(17))
        return (rot.astype(np.uint64) + 0xA282EAD8).astype(np.uint32)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _length_crc(length_bytes) -> np.ndarray:
    """The masked CRC-32C of 8-byte lengths, given as 8 byte arrays (eight table lookups
    for all of them at once)."""
    crc = np.full(len(length_bytes[0]), 0xFFFFFFFF, dtype=np.uint32)
    for b in length_bytes:
        crc = _CRC[(crc ^ b) & np.uint32(0xFF)] ^ (crc >> np.uint32(8))
    return _masked(crc ^ np.uint32(0xFFFFFFFF))


def _header_crc_ok(data: np.ndarray, at: np.ndarray, lengths: np.ndarray | None = None
                   ) -> np.ndarray:
    """Whether the 8 length bytes at each offset match the masked CRC-32C after them.
    With the lengths known and small (as in every event file), the CRC of each possible
    length is taken once and looked up."""
    raw = np.empty((len(at), 4), dtype=np.uint8)
    for k in range(4):
        raw[:, k] = data[at + 8 + k]
    stored = raw.view("<u4").ravel()
    if lengths is not None and len(lengths) and 0 <= lengths.min() and \
            lengths.max() < (1 << 16):
        every = np.arange(int(lengths.max()) + 1, dtype=np.uint64)
        lut = _length_crc([((every >> np.uint64(8 * k)) & np.uint64(0xFF)).astype(np.uint32)
                           for k in range(8)])
        return lut[lengths] == stored
    return _length_crc([data[at + k] for k in range(8)]) == stored


def _data_crc_ok(buf: bytes, start: int, length: int) -> bool:
    """Whether a record's data matches the masked CRC-32C after it (one record: only the
    records around damage are checked this way)."""
    crc, table = 0xFFFFFFFF, _CRC_LIST
    for b in buf[start:start + length]:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    (stored,) = struct.unpack_from("<I", buf, start + length)
    return _masked(crc ^ 0xFFFFFFFF) == stored


def _resync(buf: bytes, data: np.ndarray, pos: int) -> tuple[int | None, int]:
    """The offset of the first valid record at or after ``pos`` (its length's CRC and its
    data's CRC check out), or None; and how many records with an intact length but damaged
    data were passed on the way. Offsets are tried a window at a time, all at once."""
    n, window, dropped = len(buf), 1 << 16, 0
    while pos + 16 <= n:
        at = np.arange(pos, min(pos + window, n - 15), dtype=np.int64)
        ok = _header_crc_ok(data, at)
        for q in at[ok].tolist():
            (length,) = struct.unpack_from("<Q", buf, q)
            if q + 16 + length > n:
                continue
            if _data_crc_ok(buf, q + 12, length):
                return q, dropped
            dropped += 1
        pos = int(at[-1]) + 1
    return None, dropped


def _frame(buf: bytes, name: str, checked: bool | None = None
           ) -> tuple[np.ndarray, np.ndarray, list, list[str], int, bool | None]:
    """(start, length) of each record's data; each damaged stretch skipped, as (index of
    the first record after it, file name, first byte, next valid record or None, records
    lost); a note on an incomplete last record; the offset where reading stopped (past the
    last complete record; at the damage when no valid record follows it); and whether the
    records' CRCs are checked (None: not looked at yet; False: the writer leaves them zero),
    given back by a caller that frames a file piece by piece (:func:`decode`).

    The records are walked by their lengths. Where the walk shows a sign of damage (a
    record that runs past the end of the file, or one that does not start as an event),
    every length is checked against its CRC, all at once: the first that fails, or the one
    that runs past the end while its CRC fails, starts the damage, and the bytes from there
    are skipped to the next record whose length and data CRCs both check out; reading goes
    on from there. A file whose lengths never match their CRC (a writer that leaves them
    zero) is read by the lengths alone.
    """
    n = len(buf)
    data = np.frombuffer(buf, dtype=np.uint8)
    all_starts, all_lengths, damage, notes = [], [], [], []
    pos, got, end = 0, 0, n
    while True:
        starts, lengths, stop = _walk(buf, pos)
        bad_at = None
        # the CRCs are checked where the walk shows a sign of damage: a record that runs
        # past the end, or one that does not start as an event does (its wall time)
        suspect = stop < n or not (data[starts] == 0x09).all()
        if suspect and checked is not False and len(starts):
            ok = _header_crc_ok(data, starts - 12, lengths)
            if checked is None and not ok.any():
                checked = False  # no CRCs written: lengths alone, as before
            else:
                checked = True
                k = int(np.argmin(ok)) if not ok.all() else len(ok)
                if k < len(ok):
                    bad_at = int(starts[k]) - 12
                    starts, lengths = starts[:k], lengths[:k]
        if bad_at is None and checked is not False and stop + 12 <= n and \
                not _header_crc_ok(data, np.array([stop], dtype=np.int64))[0]:
            bad_at = stop  # a length that runs past the end and fails its CRC: damage
        if bad_at is None:
            all_starts.append(starts)
            all_lengths.append(lengths)
            end = stop
            if stop < n:
                got += len(starts)
                notes.append(f"{name}: the last {n - stop} bytes are an incomplete "
                             f"record (a run still writing, or a damaged file); "
                             f"read {got} records up to byte {stop}")
            break
        dropped = 0
        # the record before the damage may hold its first bytes: keep it only when whole
        if len(starts) and not _data_crc_ok(buf, int(starts[-1]), int(lengths[-1])):
            bad_at = int(starts[-1]) - 12
            starts, lengths = starts[:-1], lengths[:-1]
            dropped = 1
        all_starts.append(starts)
        all_lengths.append(lengths)
        got += len(starts)
        nxt, passed = _resync(buf, data, bad_at + 1)
        dropped += passed
        damage.append((got, name, bad_at, nxt, dropped))
        if nxt is None:
            end = bad_at
            break
        pos = nxt
    return (np.concatenate(all_starts), np.concatenate(all_lengths), damage, notes, end,
            checked)


def _damage_notes(damage: list, handled: np.ndarray, step: np.ndarray, size: int,
                  base: int = 0) -> list[str]:
    """One note per damaged stretch: where, how many bytes and records were lost, the steps
    of the scalars read on either side of it, where reading resumed (``base``: the file
    offset of the bytes framed, when a piece of the file was)."""
    idx = np.flatnonzero(handled)
    out = []
    for k, name, bad_at, nxt, dropped in damage:
        bad_at, nxt, size = bad_at + base, None if nxt is None else nxt + base, size + base
        at = int(np.searchsorted(idx, k))
        before = f"step {step[idx[at - 1]]}" if at > 0 else "the start"
        after = f"step {step[idx[at]]}" if at < len(idx) else "the end"
        end = size if nxt is None else nxt
        lost = f"at least {dropped} record(s) lost" if dropped else "no intact record in them"
        resumed = ("no valid record after them" if nxt is None else
                   f"read on from the next valid record (byte {nxt})")
        out.append(f"{name}: bytes {bad_at}-{end - 1} ({end - bad_at} bytes, between "
                   f"{before} and {after}) are damaged and were skipped, {lost}; {resumed}")
    return out


def _varint(data: np.ndarray, at: np.ndarray, limit: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode a protobuf varint at each offset: (value, byte count, ok)."""
    value = np.zeros(len(at), dtype=np.uint64)
    size = np.zeros(len(at), dtype=np.int64)
    going = np.ones(len(at), dtype=bool)
    for k in range(10):  # at most 10 bytes; a loop over byte positions, not records
        pos = at + k
        inside = going & (pos >= 0) & (pos < limit)
        b = np.zeros(len(at), dtype=np.uint64)
        b[inside] = data[pos[inside]]
        value |= (b & np.uint64(0x7F)) << np.uint64(7 * k)
        size += inside
        going = inside & ((b & np.uint64(0x80)) != 0)
        if not going.any():
            break
    ok = (size > 0) & ~going
    return value, size, ok


def _byte(data: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The byte at each offset, read at the nearest end for an offset outside the data
    (a damaged length can point anywhere; the callers' checks then reject the record)."""
    return data[np.clip(at, 0, len(data) - 1)]


def _gather(data: np.ndarray, at: np.ndarray, width: int, dtype) -> np.ndarray:
    idx = at[:, None] + np.arange(width)
    v = data[idx].copy().view(dtype).ravel()
    return _float32_digits(v) if width == 4 else v


def _float32_digits(v: np.ndarray) -> np.ndarray:
    """float32 values as the decimals they were written from: 1e-3 stored as float32 reads
    0.0010000000475 in float64; rounded to float32's 7 significant digits it is 0.001."""
    v = v.astype(np.float64)
    fin = np.isfinite(v) & (v != 0)
    mag = np.floor(np.log10(np.abs(v[fin])))
    scale = 10.0 ** (6 - mag)
    v[fin] = np.round(v[fin] * scale) / scale
    return v


def _decode_fast(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
    """Decode the records laid out the common way, all at once.

    Returns (handled mask, step, value, tag start, tag length, metadata-only mask) for every
    record; the other records that start like an event go to :func:`_decode_slow`.
    """
    n = len(starts)
    end = starts + lengths
    step = np.zeros(n, dtype=np.int64)
    value = np.full(n, np.nan)
    ok = lengths > 9
    p = starts.copy()
    # 1: wall_time (fixed64), always written
    ok &= np.where(ok, _byte(data, p) == 0x09, False)
    p = p + 9
    # 2: step (varint); proto3 leaves out step 0
    has_step = ok & (_byte(data, p) == 0x10)
    s, sz, good = _varint(data, p + 1, end)
    step[has_step] = s[has_step].astype(np.int64)
    ok &= ~has_step | good
    p = np.where(has_step, p + 1 + sz, p)
    # 5: summary (length-delimited); other events (file_version, graph, ...) carry none
    is_summary = ok & (p < end) & (_byte(data, p) == 0x2A)
    ok &= is_summary
    slen, sz, good = _varint(data, p + 1, end)
    ok &= good
    p = p + 1 + sz
    s_end = p + slen.astype(np.int64)
    ok &= (s_end >= p) & (s_end <= end)  # a damaged length (a huge uint64) fails here
    # summary.value[0] (field 1, length-delimited)
    ok &= _byte(data, p) == 0x0A
    vlen, sz, good = _varint(data, p + 1, s_end)
    ok &= good
    p = p + 1 + sz
    v_end = p + vlen.astype(np.int64)
    single = v_end == s_end  # one value per event (else: the general decoder)
    ok &= single & (v_end >= p)
    # value.tag (field 1, string)
    ok &= _byte(data, p) == 0x0A
    tlen, sz, good = _varint(data, p + 1, v_end)
    ok &= good
    tag_at = p + 1 + sz
    tag_len = tlen.astype(np.int64)
    p = tag_at + tag_len
    ok &= (tag_len >= 0) & (p < v_end)
    field = _byte(data, p)
    # value.simple_value (field 2, fixed32)
    simple = ok & (field == 0x15) & (p + 5 <= v_end)
    if simple.any():
        value[simple] = _gather(data, p[simple] + 1, 4, "<f4")
    # value.tensor (field 8): a scalar tensor
    tensor = ok & (field == 0x42)
    handled = simple.copy()
    if tensor.any():
        tl, sz, good = _varint(data, p + 1, v_end)
        t_at = p + 1 + sz
        t_end = t_at + tl.astype(np.int64)
        got, val = _scalar_tensor(data, t_at, t_end,
                                  tensor & good & (t_end >= t_at) & (t_end <= v_end))
        value[got] = val[got]
        handled |= got
    # a value with metadata only (field 9): holds no number
    meta_only = ok & (field == 0x4A)
    return handled, step, value, tag_at, tag_len, meta_only


def _scalar_tensor(data, at, end, mask):
    """One-element float/double tensors: dtype, optional shape, then the number."""
    n = len(at)
    val = np.full(n, np.nan)
    got = np.zeros(n, dtype=bool)
    p = at.copy()
    ok = mask & (_byte(data, p) == 0x08)  # dtype
    dt, sz, good = _varint(data, p + 1, end)
    ok &= good
    p = p + 1 + sz
    # tensor_shape (field 2): skip it (a scalar's is empty or all ones)
    has_shape = ok & (_byte(data, p) == 0x12)
    sl, sz, good = _varint(data, p + 1, end)
    ok &= ~has_shape | good
    after = p + 1 + sz + sl.astype(np.int64)
    ok &= ~has_shape | ((after > p) & (after <= end))
    p = np.where(has_shape, after, p)
    f = _byte(data, p)
    dt = dt.astype(np.int64)
    # float_val packed (0x2A len=4) or unpacked (0x2D); double_val packed (0x32 len=8) or 0x31
    for tagbyte, width, kind, packed, dtype_code in (
            (0x2D, 4, "<f4", False, _DT_FLOAT), (0x2A, 4, "<f4", True, _DT_FLOAT),
            (0x31, 8, "<f8", False, _DT_DOUBLE), (0x32, 8, "<f8", True, _DT_DOUBLE)):
        sel = ok & (f == tagbyte) & (dt == dtype_code)
        if packed:
            sel &= _byte(data, p + 1) == width
        off = 2 if packed else 1
        sel &= p + off + width <= end
        if sel.any():
            val[sel] = _gather(data, p[sel] + off, width, kind)
            got |= sel
    # tensor_content (field 4, 0x22): raw little-endian bytes of one float or double
    sel = ok & (f == 0x22)
    if sel.any():
        for width, kind, code in ((4, "<f4", _DT_FLOAT), (8, "<f8", _DT_DOUBLE)):
            s2 = sel & (dt == code) & (_byte(data, p + 1) == width) & \
                (p + 2 + width <= end)
            if s2.any():
                val[s2] = _gather(data, p[s2] + 2, width, kind)
                got |= s2
    return got, val


# ---------------------------------------------------------------------------- slow path

def _fields(buf: bytes, pos: int, end: int):
    """Yield (field number, wire type, value) of one protobuf message."""
    while pos < end:
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, pos = _read_varint(buf, pos)
        elif wire == 1:
            v, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            ln, pos = _read_varint(buf, pos)
            v, pos = (pos, pos + ln), pos + ln
        elif wire == 5:
            v, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        if pos > end:
            raise ValueError("field runs past its message")
        yield field, wire, v


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _decode_slow(buf: bytes, start: int, length: int) -> list[tuple[int, str, float]]:
    """(step, tag, value) of every scalar in one event, any layout."""
    step, out = 0, []
    summary = None
    for field, wire, v in _fields(buf, start, start + length):
        if field == 2 and wire == 0:
            step = v
        elif field == 5 and wire == 2:
            summary = v
    if summary is None:
        return out
    for field, wire, v in _fields(buf, *summary):
        if field != 1 or wire != 2:
            continue
        tag, number = None, None
        for f2, w2, v2 in _fields(buf, *v):
            if f2 == 1 and w2 == 2:
                tag = buf[v2[0]:v2[1]].decode("utf-8", errors="replace")
            elif f2 == 2 and w2 == 5:
                number = float(_float32_digits(np.frombuffer(v2, "<f4"))[0])
            elif f2 == 8 and w2 == 2:
                number = _tensor_scalar(buf, *v2)
        if tag is not None and number is not None:
            out.append((step, tag, number))
    return out


def _tensor_scalar(buf: bytes, start: int, end: int) -> float | None:
    dtype, vals = None, []
    for field, wire, v in _fields(buf, start, end):
        if field == 1 and wire == 0:
            dtype = v
        elif field == 4 and wire == 2:
            raw = buf[v[0]:v[1]]
            fmt = {_DT_FLOAT: "<f", _DT_DOUBLE: "<d"}.get(dtype)
            if fmt and len(raw) == struct.calcsize(fmt):
                vals.append(struct.unpack(fmt, raw)[0])
        elif field == 5:
            vals += ([struct.unpack("<f", v)[0]] if wire == 5 else
                     list(struct.unpack(f"<{(v[1] - v[0]) // 4}f", buf[v[0]:v[1]])))
        elif field == 6:
            vals += ([struct.unpack("<d", v)[0]] if wire == 1 else
                     list(struct.unpack(f"<{(v[1] - v[0]) // 8}d", buf[v[0]:v[1]])))
        elif field in (7, 10) and wire == 0:  # int_val / int64_val, unpacked
            vals.append(float(v))
    return float(vals[0]) if len(vals) == 1 else None


# ---------------------------------------------------------------------------- scalars

class Decoded(NamedTuple):
    """The scalars of a run of records (:func:`decode`)."""

    #: ``{tag: (record index, step, value)}`` in the batch reader's order: the tags of the
    #: common layout sorted, then the general decoder's others as first met
    tags: dict
    #: the tags of the common layout (the rest came from the general decoder)
    fast: list
    #: damaged stretches skipped, the incomplete last record (also in ``tail``: a file
    #: being written waits for its rest), damaged records
    notes: list
    tail: list
    #: records framed, the offset past the last one read, whether CRCs are checked
    records: int
    end: int
    checked: bool | None


def decode(buf: bytes, name: str, *, base: int = 0, checked: bool | None = None,
           hold_last: bool = False) -> Decoded:
    """Every scalar of the records in ``buf``: one decoder for the batch reader (a whole
    file, :func:`scalars`) and for ``lrdoctor watch`` (the bytes appended since the last
    read, from ``base`` in the file, with ``checked`` as the last read left it).

    With ``hold_last``, a last record whose length's CRC checks out but whose data's does
    not is left unread (``end`` before it): in a file being written, it may be one whose
    bytes are not all there yet; it is read with the bytes after it."""
    starts, lengths, damage, tail, end, checked = _frame(buf, name, checked)
    data = np.frombuffer(buf, dtype=np.uint8)
    if hold_last and checked is not False and len(starts):
        s0, n0 = int(starts[-1]), int(lengths[-1])
        if _header_crc_ok(data, np.array([s0 - 12], dtype=np.int64))[0] and \
                not _data_crc_ok(buf, s0, n0):
            starts, lengths, end = starts[:-1], lengths[:-1], s0 - 12
            damage = [d for d in damage if d[0] <= len(starts)]
    if hold_last and damage and damage[-1][3] is None:
        # damaged bytes with no valid record after them yet: read again with what follows
        # (the note is given once reading goes on past them)
        damage = damage[:-1]
    if not len(starts):
        return Decoded({}, [], [], tail, 0, end, checked)
    handled, step, value, tag_at, tag_len, meta_only = _decode_fast(data, starts, lengths)
    notes = _damage_notes(damage, handled, step, len(buf), base) + tail
    # the general decoder takes every other record that starts like an event (the file
    # version record, graphs, histograms, several values in one event, unusual layouts)
    starts_like_event = data[np.minimum(starts, len(data) - 1)] == 0x09
    rest = np.flatnonzero(~handled & ~meta_only & starts_like_event & (lengths > 0))
    extra: dict[str, list[tuple[int, int, float]]] = {}  # tag -> (record, step, value)
    for r in rest:  # unusual layouts only: usually none, at most a few
        try:
            for s, t, v in _decode_slow(buf, int(starts[r]), int(lengths[r])):
                extra.setdefault(t, []).append((int(r), s, v))
        except (ValueError, IndexError, struct.error):
            notes.append(f"{name}: record {r + 1} (byte {base + int(starts[r]) - 12}) is "
                         "damaged; the records before and after it were read")
    out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    idx = np.flatnonzero(handled)
    if len(idx):
        maxlen = int(tag_len[idx].max())
        grid = tag_at[idx, None] + np.arange(maxlen)
        valid = np.arange(maxlen) < tag_len[idx, None]
        raw = np.where(valid, data[np.minimum(grid, len(data) - 1)], 0).astype(np.uint8)
        keys, inverse = np.unique(raw.view(f"S{maxlen}").ravel(), return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(keys) + 1))
        for k, key in enumerate(keys):
            rows = idx[order[bounds[k]:bounds[k + 1]]]
            out[key.decode("utf-8", errors="replace")] = (rows, step[rows], value[rows])
    fast = list(out)
    for t, found in extra.items():  # merged with the fast path's values in file order
        a = np.asarray(found, dtype=np.float64)
        rows, steps, values = out.get(t, (np.empty(0, np.int64), np.empty(0, np.int64),
                                          np.empty(0)))
        rows = np.r_[rows, a[:, 0].astype(np.int64)]
        order = np.argsort(rows, kind="stable")
        out[t] = (rows[order], np.r_[steps, a[:, 1].astype(np.int64)][order],
                  np.r_[values, a[:, 2]][order])
    return Decoded(out, fast, notes, tail, len(starts), end, checked)


def scalars(path: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Every scalar tag of one event file: ``{tag: (steps, values)}`` in file order, and
    notes (a damaged tail)."""
    src = str(path)
    buf = _io.read_bytes(path)
    if len(buf) < 12:
        raise LrDoctorError("too short to be a TensorBoard event file (no complete record)",
                            src)
    got = decode(buf, path.name)
    if got.records == 0:
        raise LrDoctorError("no complete TensorBoard record; the event file is damaged or "
                            "not an event file", src)
    return {t: (steps, values) for t, (_, steps, values) in got.tags.items()}, got.notes


# ---------------------------------------------------------------------------- read

#: Subfolders in which Keras' TensorBoard callback (and others) put the validation scalars
#: of a run whose training scalars are in a sibling ``train/``.
VALIDATION_DIRS = ("validation", "val", "eval")


def split_run(folder: Path) -> tuple[Path, Path] | None:
    """(train folder, validation folder) when ``folder`` is laid out as Keras writes a run
    (``train/`` and ``validation/`` subfolders of event files), else None."""
    train = folder / "train"
    if not (train.is_dir() and event_files(train)):
        return None
    for name in VALIDATION_DIRS:
        val = folder / name
        if val.is_dir() and event_files(val):
            return train, val
    return None


def _series(files: list[Path], notes: list[str]) -> dict:
    tags: dict[str, list] = {}
    for f in files:
        got, n = scalars(f)
        notes += n
        for t, (s, v) in got.items():
            tags.setdefault(t, []).append((s, v))
    return {t: (np.concatenate([s for s, _ in parts]), np.concatenate([v for _, v in parts]))
            for t, parts in tags.items()}


def read(path: Path, *, step=None, metric=None, lr_column=None) -> list[History]:
    """One History from an event file, from every event file in a run folder, or from a
    run folder with ``train/`` and ``validation/`` subfolders (the validation folder's loss
    becomes the validation loss)."""
    notes: list[str] = []
    pair = split_run(path) if path.is_dir() and not event_files(path) else None
    files = (event_files(pair[0]) if pair else event_files(path)) if path.is_dir() \
        else [path]
    if not files:
        raise LrDoctorError("no TensorBoard event files (events.out.tfevents.*) in this "
                            "folder", str(path))
    series = _series(files, notes)
    src = str(path)
    if not series:
        raise LrDoctorError("the event file holds no scalar summaries (only graphs, "
                            "histograms or images?)", src)
    if step is not None:
        notes.append("--step is ignored for TensorBoard files: every scalar has its step")
    sel = Selection(list(series), metric=metric, lr_column=lr_column, source=src)
    if pair:
        val = _series(event_files(pair[1]), notes)
        try:
            vsel = Selection(list(val), source=src)
        except LrDoctorError:
            vsel = None
        if vsel is not None and not vsel.parts and sel.val is None:
            series["validation/" + vsel.loss] = val[vsel.loss]
            sel.val = "validation/" + vsel.loss
            notes.append(f"validation loss: {vsel.loss!r} of {pair[1].name}/")
    if len(files) > 1:
        notes.append(f"{len(files)} event files in this run folder were read as one run")
    return [from_series(series, sel, src, run_name(path), notes)]
