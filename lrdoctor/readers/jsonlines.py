"""JSON-lines logs (``.jsonl``, also gzip): one object per line, keys are column names.

Python's ``json`` accepts the bare ``NaN``, ``Infinity`` and ``-Infinity`` that Python's own
writers emit. Lines without the loss key (evaluation lines) are kept as unlogged rows. A last
line cut off mid-write (a log still being written) is dropped with a note; a damaged line
elsewhere is an error naming its line.

Files of a MiB or more are first given to Arrow's multi-threaded JSON reader, which turns
the lines into columns without a Python object per line (it takes the bare ``NaN`` and
``Infinity`` too); anything it does not take as it is (a cut or damaged line, a chosen
column that is not numbers) is read by ``json`` instead, with the same result and the
precise messages.
"""
from __future__ import annotations

import json
import math
from itertools import chain
from pathlib import Path

import numpy as np

from lrdoctor.errors import LrDoctorError
from lrdoctor.history import History
from lrdoctor.readers import _io
from lrdoctor.readers._table import Selection, build


def parse_lines(path: Path, data: bytes) -> tuple[list[dict], list[str]]:
    """The objects of a JSON-lines file's text, and notes on what was skipped."""
    src = str(path)
    if len(data) > _io.MAX_LINE_BYTES:  # before any work per line (cheap: a jump a MiB)
        _io.LineScan(path).feed(bytes(data), last=True)
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = text.splitlines()
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    if not numbered:
        raise LrDoctorError("the file is empty; it needs one JSON object per line", src)
    notes: list[str] = []
    try:
        records = json.loads("[" + ",".join(ln for _, ln in numbered) + "]")
        if len(records) != len(numbered):  # a line held several values ('{...}, 1')
            raise json.JSONDecodeError("not one value a line", "", 0)
    except (ValueError, RecursionError):  # JSONDecodeError, or an integer of 4,300+ digits
        records = []
        for k, (lineno, ln) in enumerate(numbered):
            try:
                records.append(json.loads(ln))
            except RecursionError:
                raise LrDoctorError(f"line {lineno}: JSON nested too deep to read (a metrics "
                                    "line is one flat object); fix or delete that line",
                                    src) from None
            except json.JSONDecodeError as exc:
                if k == len(numbered) - 1 and k > 0:
                    notes.append(f"the last line ({lineno}) is incomplete (a log still being "
                                 "written?) and was skipped")
                    break
                raise LrDoctorError(f"line {lineno}: not valid JSON ({exc.msg} at column "
                                    f"{exc.colno}); fix or delete that line", src) from None
            except ValueError:  # json's refusal of an integer of more than 4,300 digits
                raise LrDoctorError(f"line {lineno}: a number of more than 4,300 digits, not "
                                    "a metric value; fix or delete that line", src) from None
    bad = next((i for i, r in enumerate(records) if not isinstance(r, dict)), None)
    if bad is not None:
        raise LrDoctorError(f"line {numbered[bad][0]}: a JSON {type(records[bad]).__name__}, "
                            "not an object of metric names and values", src)
    return records, notes


ARROW_MIN_BYTES = 1 << 20  # smaller files: json is as fast and simpler


def read(path: Path, *, step=None, metric=None, lr_column=None) -> list[History]:
    src = str(path)
    data = _io.read_text(path)  # the line-length cap is checked as it is read
    _io.check_text(path, data[: 1 << 16])
    if len(data) >= ARROW_MIN_BYTES:
        import pyarrow as pa

        fast = from_arrow(pa.BufferReader(data), src, step=step, metric=metric,
                          lr_column=lr_column)
        if fast is not None:
            return fast
    records, notes = parse_lines(path, data)
    keys = list(dict.fromkeys(chain.from_iterable(records)))
    return from_records(records, keys, src, notes, step=step, metric=metric,
                        lr_column=lr_column)


def from_records(records: list[dict], keys: list[str], src: str, notes: list[str], *,
                 step=None, metric=None, lr_column=None) -> list[History]:
    sel = Selection(keys, step=step, metric=metric, lr_column=lr_column, source=src)

    def get(name):
        raw = [r.get(name) for r in records]
        present = np.array([v is not None for v in raw], dtype=bool)
        try:
            # NumPy turns None into NaN and parses numbers written as strings ("nan",
            # "Infinity", "2.5") in one C loop
            values = np.array(raw, dtype=np.float64)
            if any(isinstance(v, bool) for v in raw[:64]) or values.ndim != 1:
                raise ValueError
        except (ValueError, TypeError):
            row = next(i for i, v in enumerate(raw) if _bad(v))
            raise LrDoctorError(f"record {row + 1}: key {name!r} holds {raw[row]!r}, not a "
                                "number; fix or delete that line", src) from None
        return values, present

    runs = None
    if sel.run:
        runs = np.array([str(r.get(sel.run, "")) for r in records])
    return build(sel, get, runs, path=src, notes=notes)


def from_arrow(source, src: str, *, step=None, metric=None, lr_column=None, rows=None,
               drop_where=None, newlines_in_values=False) -> list[History] | None:
    """Histories from JSON lines read by Arrow (``source``: a buffer reader), or None when
    Arrow does not take the text as it is, it does not find ``rows`` objects (when given),
    or a column the diagnosis needs is not numbers (the ``json`` path then reads it). Rows
    where the column ``drop_where`` has a value are left out."""
    import pyarrow as pa
    import pyarrow.json as pajson

    try:
        table = pajson.read_json(source, parse_options=pajson.ParseOptions(
            newlines_in_values=newlines_in_values))
        names = table.column_names  # a key that is not UTF-8 fails here
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None
    if rows is not None and table.num_rows != rows:
        return None
    if drop_where in names:
        import pyarrow.compute as pc

        table = table.filter(pc.is_null(table.column(drop_where)))
    if table.num_rows == 0:
        return None
    try:
        sel = Selection(names, step=step, metric=metric, lr_column=lr_column,
                        source=src)
    except LrDoctorError:
        return None  # the json path says what is missing, from every key it sees

    def number(name):
        t = table.schema.field(name).type
        return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)

    if not all(number(c) for c in sel.numeric()) or \
            (sel.run and not pa.types.is_string(table.schema.field(sel.run).type)):
        return None
    from lrdoctor.readers.delimited import column_values

    def get(name):
        return column_values(table.column(name).cast(pa.float64()))

    runs = None
    if sel.run:
        runs = np.asarray(table.column(sel.run).fill_null("").to_numpy(zero_copy_only=False))
    return build(sel, get, runs, path=src)


def _num(v) -> float:
    if v is None:
        return math.nan
    if isinstance(v, bool):
        raise ValueError
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        return float(v)  # "nan", "inf", "Infinity" and numbers written as strings
    raise ValueError


def _bad(v) -> bool:
    try:
        _num(v)
        return False
    except ValueError:
        return True
