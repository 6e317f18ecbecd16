"""CSV and TSV logs (also gzip-compressed), read with pyarrow's multi-threaded parser.

Only the columns that play a role are converted. Empty cells are missing values (a
validation row's empty training loss); ``nan``, ``NaN``, ``inf``, ``-inf``, ``Infinity`` are
values the run wrote.
"""
from __future__ import annotations

import contextlib
import csv
import io
import re
import sys
from pathlib import Path

import numpy as np

from lrdoctor.errors import LrDoctorError
from lrdoctor.history import History, from_columns
from lrdoctor.readers import _io
from lrdoctor.readers._table import Selection, build


def _header_line(text: str) -> str:
    """The first non-empty line (pyarrow skips empty lines before the header too), as
    ``splitlines`` gives it; only the lines up to it are split, not the whole sample."""
    text, start = text.lstrip("\ufeff"), 0
    while True:
        nl = text.find("\n", start)
        end = len(text) if nl < 0 else nl + 1
        line = next((line for line in text[start:end].splitlines() if line), None)
        if line is not None:
            return line
        if nl < 0:
            return ""
        start = end


def sniff_delimiter(sample: str, path: Path) -> str:
    first = _header_line(sample)
    if path.name.lower().removesuffix(".gz").endswith(".tsv"):
        return "\t"
    counts = {d: first.count(d) for d in (",", "\t", ";")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def read(path: Path, *, step=None, metric=None, lr_column=None,
         peeked: _io.Peek | None = None) -> list[History]:
    """``peeked``: what :func:`lrdoctor.readers._io.peek` read of the file already (a
    small plain file is then parsed from memory, never opened again)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    src = str(path)
    peeked = peeked or _io.peek(path)
    sample, data = peeked.sample, peeked.data
    _io.check_text(path, sample)
    text = sample.decode("utf-8", errors="replace")
    if not text.lstrip("\ufeff").strip():
        raise LrDoctorError("the file is empty; it needs a header line and rows of losses", src)
    sep = sniff_delimiter(text, path)
    header_line = _header_line(text)
    if len(header_line) >= len(text) - 1 and len(sample) >= (1 << 16):
        # a header longer than the head read (a W&B export of thousands of columns): read
        # up to the line-length cap, past which it is no log's header
        sample = _io.head(path, _io.MAX_LINE_BYTES + 2)
        text = sample.decode("utf-8", errors="replace")
        header_line = _header_line(text)
        if len(header_line) >= len(text) - 1 and len(sample) > _io.MAX_LINE_BYTES:
            _raise_long_line(path)
    try:
        header = next(csv.reader(io.StringIO(header_line), delimiter=sep))
    except csv.Error as exc:  # a field past the csv module's 128 KiB limit
        raise LrDoctorError(f"line 1: the header cannot be read ({exc}); it should be one "
                            "line of column names", src) from None
    wandb_runs = _wandb_chart_runs(header)
    if wandb_runs:
        return _read_wandb_chart(path, sep, header, wandb_runs, step=step, metric=metric,
                                 lr_column=lr_column)
    try:
        sel = Selection(header, step=step, metric=metric, lr_column=lr_column, source=src)
    except LrDoctorError:
        from lrdoctor.readers import _columns as C

        if all(_is_number(c) for c in header) and not all(_lr_name(c) for c in header):
            raise LrDoctorError("line 1 holds numbers, not column names: the header line "
                                "is missing; add one (step,loss,...)", src) from None
        if metric is None and step is None and len(header) >= 2 and \
                C.find(header, C.STEP) is None and C.find(header, C.EPOCH) is None:
            wide = _read_wide(path, sep, header)
            if wide is not None:
                return wide
        raise
    if data is not None:  # a plain file's lines are checked now (a gzip file's as parsed)
        _io.check_lines(data, path, _io.MAX_LINE_BYTES)
    elif not peeked.gzip:
        with _io.open_log(path, _io.MAX_LINE_BYTES):
            pass
    wanted = sel.numeric()
    # Detection needs the step, the loss, the LR and the validation loss (the overfitting
    # check reads it whenever the log has one: parsed later it cost a second parse of the
    # whole file); the epoch is parsed on first access (the frame), which keeps a 1e7-row
    # read lean. A file split by a run column needs it now, row-aligned with the split.
    # A validation column with a cell that is not a number is parsed on first access too,
    # so the training loss is still read (the error comes when the column is looked at).
    core = (sel.step, sel.loss, sel.lr, *sel.parts)
    later = [] if sel.run else [c for c in (sel.epoch,) if c is not None and c not in core]
    deferrable = None if sel.run or sel.val in core else sel.val
    now = [c for c in wanted if c not in later]
    types = {c: pa.float64() for c in now}
    if sel.step is not None and _integral_cells(text, sep, header, sel.step):
        types[sel.step] = pa.int64()  # steps stay integers, no float copy to convert
    include = now + ([sel.run] if sel.run else [])
    if sel.run:
        types[sel.run] = pa.string()

    short_rows: list = []

    def short_row(row):  # a row with too few or too many cells: noted, judged below
        short_rows.append(row.text)
        return "skip"

    nulls = [""]
    if _maybe_null(sample) and _NULL_CELL.search(text):  # None/NULL/null cells in the head
        nulls = [""] + NULL_WORDS

    decimal = ["."]

    def parse(include, types):
        short_rows.clear()
        with _undecodable_rows_quiet(), _csv_input(path, data) as source:
            return pacsv.read_csv(
                source,
                read_options=pacsv.ReadOptions(block_size=_io.MAX_LINE_BYTES * 4),
                parse_options=pacsv.ParseOptions(delimiter=sep, newlines_in_values=False,
                                                 invalid_row_handler=short_row),
                convert_options=pacsv.ConvertOptions(
                    include_columns=include, column_types=types, null_values=nulls,
                    strings_can_be_null=True, quoted_strings_can_be_null=True,
                    decimal_point=decimal[0]),
            )

    try:
        while True:
            try:
                table = parse(include, types)
                break
            except pa.ArrowInvalid as exc:
                bad = _conversion_error(str(exc), header)
                if bad is None:
                    raise
                if bad[1].strip().lower() in ("none", "null") and len(nulls) == 1:
                    nulls = [""] + NULL_WORDS  # None/NULL/null further down
                elif sep != "," and decimal[0] == "." and _DECIMAL_COMMA.fullmatch(
                        bad[1].strip()):
                    decimal[0] = ","  # 2,6 under a ';' header: a European spreadsheet's
                elif bad[0] == sel.step and types.get(sel.step) == pa.int64():
                    types[sel.step] = pa.float64()  # a fractional step further down
                elif bad[0] == deferrable and deferrable in include:
                    later.append(deferrable)  # named when the column is looked at
                    now.remove(deferrable)
                    include.remove(deferrable)
                    types.pop(deferrable)
                else:
                    raise
    except pa.ArrowInvalid as exc:
        _raise_parse_error(path, sep, header, now, str(exc))
    except KeyError:  # pyarrow's ArrowKeyError: a chosen column's name is not UTF-8
        _raise_not_utf8_name(include, src)
    except OSError as exc:  # a read error of the disk
        raise LrDoctorError(f"cannot be read ({exc})", src) from None
    notes = []
    if decimal[0] == ",":
        notes.append("numbers are written with decimal commas (2,5 for 2.5): read so")
    if len(nulls) > 1:
        notes.extend(_null_note(path, sep, wanted))
    if short_rows:
        row_text = short_rows[0]
        last_line = _io.last_line_unterminated(path) if data is None else \
            _last_line_unterminated(data)
        if len(short_rows) == 1 and last_line is not None and row_text == last_line:
            notes.append(f"the last line ({row_text[:40]!r}) is incomplete (a log still "
                         f"being written?) and was left out")
        else:
            _raise_ragged_line(path, sep, header)
    if table.num_rows == 0:
        raise LrDoctorError("header only, no rows of losses yet", src)
    # a column parsed on first access reads the file again: the History keeps no copy of
    # its content (a report holds a thousand Histories)
    data = None  # parse() sees the change

    runs = None
    if sel.run:
        runs = np.asarray(table.column(sel.run).fill_null("").to_numpy(zero_copy_only=False))
    # Each column is joined when first asked for and its parsed chunks are let go at once,
    # so the next join reuses their memory (on a 1e7-row log this keeps the peak near one
    # copy of the data instead of two).
    pending = {name: table.column(name) for name in now}
    del table
    done: dict = {}

    def get(name):
        if name not in done:
            if name in later:  # parsed now, on first access
                try:
                    col = parse([name], {name: pa.float64()}).column(name)
                except pa.ArrowInvalid as exc:
                    _raise_parse_error(path, sep, header, [name], str(exc))
                except KeyError:
                    _raise_not_utf8_name([name], src)
            else:
                col = pending.pop(name)
            done[name] = column_values(col)
        return done[name]

    return build(sel, get, runs, path=src, notes=notes)


def _maybe_null(sample: bytes) -> bool:
    """Whether the head may hold a None/NULL/null cell (a byte search, so the regex below
    runs only on the few logs that hold the words)."""
    low = sample.lower()
    return b"null" in low or b"none" in low


def _last_line_unterminated(data: bytes) -> str | None:
    """:func:`lrdoctor.readers._io.last_line_unterminated` of content in memory."""
    if not data or data.endswith(b"\n"):
        return None
    return data.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace").rstrip("\r")


#: Cells that say "no value" as databases and pandas write it (any case): missing values,
#: counted in a note. pyarrow matches null values exactly, so every spelling is listed.
NULL_WORDS = sorted({"".join(c.upper() if k >> i & 1 else c for i, c in enumerate(w))
                     for w in ("none", "null") for k in range(16)})
#: A number written with a decimal comma (a spreadsheet in a European locale saves
#: ``0;2,60000;0,001`` with ';' between cells).
_DECIMAL_COMMA = re.compile(r"[-+]?\d*,\d+(?:[eE][-+]?\d+)?")
_NULL_CELL = re.compile(r"(?im)(?:^|[,;\t])[ \t]*(?:none|null)[ \t]*(?=[,;\t\r]|$)")


@contextlib.contextmanager
def _csv_input(path: Path, data: bytes | None = None):
    """What pyarrow reads: ``data`` (a small file's content, already read) from memory,
    the plain file (natively), or a gzip file's content through
    :class:`lrdoctor.readers._io.Bounded` (a bomb stops at the bounds, long lines are
    refused as they arrive). pyarrow never picks a decompressor from the file's name."""
    import pyarrow as pa

    if data is not None:
        yield pa.BufferReader(data)
    elif _io.is_gzip(path):
        with _io.for_arrow(path, _io.MAX_LINE_BYTES) as fh:
            yield fh
    elif str(path).isascii() or _utf8(str(path)):
        with pa.OSFile(str(path)) as fh:
            yield fh
    else:  # a name that is not UTF-8 (pyarrow takes only UTF-8 paths): opened by Python
        with open(path, "rb") as fh:
            yield fh


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _conversion_error(msg: str, header: list[str]) -> tuple[str, str] | None:
    """(column name, cell) of pyarrow's 'In CSV column #k: CSV conversion error to double:
    invalid value 'x'', or None for another error."""
    m = re.search(r"column #(\d+): CSV conversion error to \w+: invalid value '(.*)'$",
                  msg.splitlines()[0] if msg else "")
    if m is None or int(m.group(1)) >= len(header):
        return None
    return header[int(m.group(1))], m.group(2)


def _null_note(path: Path, sep: str, wanted: list[str]) -> list[str]:
    """A note counting the None/NULL/null cells of the columns read (taken as missing
    values). Only for a file that holds them: its columns are read again as text."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    try:
        with _csv_input(path) as source:
            table = pacsv.read_csv(source, parse_options=pacsv.ParseOptions(
                delimiter=sep, invalid_row_handler=lambda row: "skip"),
                convert_options=pacsv.ConvertOptions(
                    include_columns=wanted, column_types={c: pa.string() for c in wanted}))
    except (pa.ArrowInvalid, KeyError, OSError):
        return []
    words = pa.array(["none", "null"])
    counts = {c: pc.sum(pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(table.column(c))),
                                 value_set=words)).as_py() or 0 for c in wanted}
    counts = {c: k for c, k in counts.items() if k}
    if not counts:
        return []
    where = ", ".join(f"{c!r}: {k:,}" for c, k in counts.items())
    return [f"{sum(counts.values()):,} cells hold None/NULL/null ({where}): read as "
            "missing values"]


def _line_chunks(path: Path):
    """(number of its first line, whole lines) of the file's content, a few MiB at a time
    (the error paths: memory bounded, one pass at memory speed)."""
    carry, line = b"", 1
    with _io.open_log(path) as fh:
        while True:
            data = fh.read(_io.CHUNK)
            if not data:
                if carry:
                    yield line, carry
                return
            data = carry + data if carry else data
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            chunk, carry = data[:cut], data[cut:]
            yield line, chunk
            line += chunk.count(b"\n")


def _find_line(path: Path, needle: bytes, fits) -> tuple[int, str] | None:
    """(line number, text) of the first line holding ``needle`` for which ``fits(text)``
    holds: the bytes are searched at memchr speed, only lines with a hit are looked at."""
    if not needle:
        return None
    for first, chunk in _line_chunks(path):
        at = chunk.find(needle)
        while at >= 0:
            start = chunk.rfind(b"\n", 0, at) + 1
            end = chunk.find(b"\n", at)
            end = len(chunk) if end < 0 else end
            text = chunk[start:end].decode("utf-8", errors="replace").removesuffix("\r")
            if fits(text):
                return first + chunk.count(b"\n", 0, start), text
            at = chunk.find(needle, end)
    return None


def _cells(text: str, sep: str) -> list[str] | None:
    try:
        return next(csv.reader([text], delimiter=sep), [])
    except csv.Error:
        return None


_WANDB_COL = re.compile(r"^(?P<run>.+?) - (?P<metric>.+?)(?P<agg>__MIN|__MAX)?$")


def _wandb_chart_runs(header: list[str]) -> dict[str, dict[str, str]]:
    """A W&B chart export: an x-axis column (``Step``, ``epoch``, ...) and ``<run name> -
    <metric>`` columns (with ``__MIN``/``__MAX`` companions). Returns ``{run: {metric:
    column}}``, or {} when the header is not one."""
    from lrdoctor.readers import _columns as C

    runs: dict[str, dict[str, str]] = {}
    for col in header:
        m = _WANDB_COL.match(col.strip())
        if m and not m.group("agg"):
            runs.setdefault(m.group("run"), {})[m.group("metric")] = col
    if not runs or not _chart_x(header):
        return {}
    if not any(C.find(list(cols), C.LOSS) or C.pick_loss(list(cols))
               for cols in runs.values()):
        return {}
    return runs


def _chart_x(header: list[str]) -> list[str]:
    """The columns of a chart export that belong to no run: its x axis."""
    return [c for c in header if not _WANDB_COL.match(c.strip())]


def _read_wandb_chart(path: Path, sep: str, header: list[str], runs: dict, *, step=None,
                      metric=None, lr_column=None) -> list[History]:
    """One History per run of a W&B chart export (the ``__MIN``/``__MAX`` band is left
    out: the middle line is the run's value). The step is the chart's x axis (a step
    column, else the first column that belongs to no run, such as ``epoch``)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from lrdoctor.readers import _columns as C

    src = str(path)
    x = _chart_x(header)
    step_col = C.find(header, C.STEP, step) or C.find(x, C.EPOCH) or x[0]
    wanted = list(dict.fromkeys([step_col] + [c for cols in runs.values()
                                              for c in cols.values()]))
    try:
        with _csv_input(path) as source:
            table = pacsv.read_csv(source, parse_options=pacsv.ParseOptions(delimiter=sep),
                                   convert_options=pacsv.ConvertOptions(
                                       include_columns=wanted, null_values=[""],
                                       column_types={c: pa.float64() for c in wanted}))
    except pa.ArrowInvalid as exc:
        _raise_parse_error(path, sep, header, wanted, str(exc))
    except KeyError:  # pyarrow's ArrowKeyError: a chosen column's name is not UTF-8
        _raise_not_utf8_name(wanted, src)
    steps = column_values(table.column(step_col))[0]
    out = []
    for run, cols in runs.items():
        names = list(cols)
        try:
            sel = Selection(names, metric=metric, lr_column=lr_column, source=src)
        except LrDoctorError:
            continue  # this run exported no loss (another chart's metric)
        get = {n: column_values(table.column(cols[n])) for n in names}

        def col(role):
            return None if role is None else get[role][0]

        loss, present = get[sel.loss]
        if not present.any():
            continue
        lr, notes = col(sel.lr), ["a W&B chart export: one run per column group"]
        if lr is None:  # a sweep's run names often carry the LR
            lr = lr_in_name(run, len(steps))
            if lr is not None:
                notes.append(f"LR {lr[0]:g} read from the run name")
        out.append(from_columns(steps, loss, logged=present, lr=lr,
                                val_loss=col(sel.val), run=run, source=f"{src}::{run}",
                                metric=sel.label, available=sel.available,
                                notes=sel.notes() + notes))
    if not out:
        raise LrDoctorError("a W&B chart export without a loss column for any run; "
                            "name the metric with --metric", src)
    return out


def lr_in_name(name: str, n: int) -> np.ndarray | None:
    """A constant LR column from a name such as ``learning_rate_0.01``, ``adam-lr3e-4`` or
    a bare ``0.003``, or None when the name carries no LR."""
    from lrdoctor.readers._columns import LR_IN_NAME

    m = LR_IN_NAME.search(name)
    if m is None:
        return np.full(n, float(name)) if _lr_name(name) else None
    return np.full(n, float(m.group(1)))


def _lr_name(name: str) -> bool:
    """A column named by a bare LR (a sweep saved as {lr: losses}): a number in (0, 1]."""
    return _is_number(name) and 0 < float(name) <= 1


def _read_wide(path: Path, sep: str, header: list[str]) -> list[History] | None:
    """A sweep saved one run per column, with no step column: one History per column.

    Only taken when every column is numeric; the LR is read from a column name such as
    ``learning_rate_0.01`` or ``lr=3e-4``.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from lrdoctor.history import from_columns

    if len(set(header)) != len(header):  # runs are told apart by their column names
        return None
    try:
        with _csv_input(path) as source:
            table = pacsv.read_csv(source, parse_options=pacsv.ParseOptions(delimiter=sep),
                                   convert_options=pacsv.ConvertOptions(
                                       column_types={c: pa.float64() for c in header},
                                       null_values=[""]))
    except (pa.ArrowInvalid, OSError):
        return None
    out = []
    for name in header:
        values, present = column_values(table.column(name))
        if not present.any():
            continue
        lr = lr_in_name(name, len(values))
        keep = present
        out.append(from_columns(None, values[keep], lr=None if lr is None else lr[keep],
                                run=name, source=f"{path}::{name}", metric=name,
                                notes=["a wide file: one run per column, the row number "
                                       "is the step"]))
    return out or None


def column_values(col) -> tuple[np.ndarray, np.ndarray]:
    """(values, present mask) of a float64 or int64 pyarrow ChunkedArray.

    Float columns get NaN where a cell is empty; an int64 column stays int64 unless it has
    empty cells (then float64 with NaN). The chunks are joined by Arrow (its pooled
    allocator reuses the parser's freed pages, which is an order of magnitude faster on a
    1e7-row column than faulting in a fresh NumPy array) and viewed without a copy,
    read-only. pyarrow's own ``to_numpy`` is not used: it imports pandas, which would cost
    the command line a quarter of a second.
    """
    import pyarrow as pa

    chunks = col.chunks
    arr = chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks)
    n, off = len(arr), arr.offset
    validity, data = arr.buffers()[:2]
    dtype = np.int64 if pa.types.is_integer(arr.type) else np.float64
    values = np.frombuffer(data, dtype=dtype, count=off + n)[off:]
    if not arr.null_count:
        return values, np.ones(n, dtype=bool)
    present = np.unpackbits(np.frombuffer(validity, dtype=np.uint8),
                            count=off + n, bitorder="little")[off:].view(bool)
    return np.where(present, values, np.nan), present


def _raise_parse_error(path: Path, sep: str, header: list[str], wanted: list[str],
                       msg: str) -> None:
    """One clear line for what pyarrow could not parse."""
    src = str(path)
    if "conversion error" in msg:
        _raise_bad_cell(path, sep, header, wanted, msg)
    if "straddl" in msg or "block" in msg:
        _raise_long_line(path)
    if "Expected" in msg and "columns" in msg:
        _raise_ragged_line(path, sep, header)
    if "Empty CSV" in msg:
        raise LrDoctorError("the file is empty; it needs a header line and rows of losses",
                            src) from None
    raise LrDoctorError(f"cannot parse as a delimited log: {msg.splitlines()[0]}",
                        src) from None


def _raise_ragged_line(path: Path, sep: str, header: list[str]) -> None:
    """One line for the first row whose cell count is not the header's (error path only:
    a few MiB of lines at a time, the separators of every line counted at once, the few
    candidates checked with the csv module, which knows quoting)."""
    looked = 0
    for first, chunk in _line_chunks(path):
        data = np.frombuffer(chunk, dtype=np.uint8)
        ends = np.flatnonzero(data == ord("\n"))
        if len(ends) == 0 or ends[-1] != len(data) - 1:
            ends = np.r_[ends, len(data)]
        starts = np.r_[0, ends[:-1] + 1]

        def per_line(byte):
            c = np.r_[0, np.cumsum(data == ord(byte), dtype=np.int32)]
            return c[ends] - c[starts]

        # a line is a candidate when its separators are not the header's, or it has a
        # quote or a carriage return inside (which change how the line splits)
        odd = (per_line(sep) != len(header) - 1) | (per_line('"') > 0) | \
            (per_line("\r") > (data[np.maximum(ends - 1, 0)] == ord("\r")))
        for k in np.flatnonzero(odd):
            looked += 1
            if looked > 1000:  # candidates, not lines
                break
            text = chunk[starts[k]:ends[k]].decode("utf-8", errors="replace")
            text = text.removesuffix("\r")
            if first + k == 1 or not text.strip():
                continue
            cells = _cells(text, sep)
            if cells is None or len(cells) != len(header):
                what = "is damaged (a carriage return inside it)" if cells is None else \
                    f"has {len(cells)} cells where the header has {len(header)}"
                raise LrDoctorError(f"line {first + k} {what}: {text[:60]!r}; check the "
                                    "delimiter or a damaged line", str(path)) from None
        if looked > 1000:
            break
    raise LrDoctorError("rows do not match the header; check the delimiter or a damaged "
                        "line", str(path)) from None


def _raise_undecodable_line(path: Path) -> None:
    """One line for the first line that is not UTF-8 text, if there is one (a chunk of
    whole lines at a time: a character never spans a newline)."""
    for first, chunk in _line_chunks(path):
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = first + chunk.count(b"\n", 0, exc.start)
            raise LrDoctorError(f"line {line} holds bytes that are not UTF-8 text; a "
                                "damaged line? fix or delete it", str(path)) from None


@contextlib.contextmanager
def _undecodable_rows_quiet():
    """pyarrow decodes a bad row's text before it calls the invalid-row handler; a row
    that is not UTF-8 makes that fail, and Python would print the ignored exception with
    its traceback. The row is then a parse error, reported in one line like any other."""
    hook = sys.unraisablehook

    def quiet(unraisable):
        if not isinstance(unraisable.exc_value, UnicodeDecodeError):
            hook(unraisable)

    sys.unraisablehook = quiet
    try:
        yield
    finally:
        sys.unraisablehook = hook


def _raise_not_utf8_name(names: list, src: str):
    bad = next((c for c in names if "\ufffd" in c), names[0])
    raise LrDoctorError(f"line 1: the column name {bad!r} holds bytes that are not "
                        "UTF-8 text; fix the header", src) from None


def _integral_cells(text: str, sep: str, header: list[str], name: str,
                    rows: int = 200) -> bool:
    """Whether the column's cells in the first ``rows`` rows are all plain integers (then
    it is parsed as int64; a fractional cell further down makes the reader fall back)."""
    try:
        k = header.index(name)
    except ValueError:
        return False
    lines = _first_rows(text, rows)
    try:
        parsed = list(csv.reader(lines, delimiter=sep))
    except csv.Error:  # damage in the sample: the float parse will find and name it
        return False
    cells = [r[k].strip() for r in parsed if len(r) > k and r[k].strip()]
    return bool(cells) and all(_INT.fullmatch(c) for c in cells)


_INT = re.compile(r"[+-]?[0-9]+")


def _first_rows(text: str, rows: int) -> list[str]:
    """``text.splitlines()[1:-1][:rows]`` (past the header line; the sample may cut its
    last line), splitting only the first lines of the text, not all of it."""
    cut = -1
    for _ in range(rows + 2):
        cut = text.find("\n", cut + 1)
        if cut < 0:
            return text.splitlines()[1:-1][:rows]
    if cut == len(text) - 1:  # the text ends there: its last line is the sample's last
        return text.splitlines()[1:-1][:rows]
    return text[:cut + 1].splitlines()[1:][:rows]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _raise_bad_cell(path: Path, sep: str, header: list[str], wanted: list[str],
                    msg: str = "") -> None:
    """Name the line, column and cell that is not a number (error path only). pyarrow's
    message gives the column and the cell, not the row: the cell's bytes are searched for
    (memchr speed, memory a few MiB), only the lines holding them parsed; the whole column
    is read as text only when that finds nothing (a quoted cell, say)."""
    bad = _conversion_error(msg, header)
    if bad is not None:
        name, value = bad
        k = header.index(name)

        head = [h.strip() for h in header]
        past_header = [False]

        def fits(text):
            cells = _cells(text, sep)
            if cells is None or len(cells) <= k or cells[k].strip() != value.strip():
                return False
            if not past_header[0] and [c.strip() for c in cells] == head:
                past_header[0] = True  # the header itself names the column: not a row
                return False
            return True

        found = _find_line(path, value.strip().encode("utf-8", errors="replace"), fits)
        if found is not None:
            if [c.strip() for c in _cells(found[1], sep)] == head:
                raise LrDoctorError(
                    f"line {found[0]} repeats the header (logs joined one after another, or "
                    "a resumed run that wrote its header again); delete that line",
                    str(path)) from None
            raise LrDoctorError(f"line {found[0]}: column {name!r} holds {value!r}, not a "
                                "number; fix or delete that line", str(path)) from None
    _raise_bad_cell_by_column(path, sep, header, wanted)


def _raise_bad_cell_by_column(path: Path, sep: str, header: list[str],
                              wanted: list[str]) -> None:
    """Find the first cell that is not a number by reading the columns as text."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        with _csv_input(path) as source:
            table = pacsv.read_csv(
                source, parse_options=pacsv.ParseOptions(delimiter=sep),
                convert_options=pacsv.ConvertOptions(
                    include_columns=wanted, column_types={c: pa.string() for c in wanted},
                    null_values=[""], strings_can_be_null=True))
    except pa.ArrowInvalid as exc:  # the damage is not (only) a word in a number cell
        if "Expected" in str(exc) and "columns" in str(exc):
            _raise_ragged_line(path, sep, header)
        _raise_undecodable_line(path)
        raise LrDoctorError(f"cannot parse as a delimited log: {str(exc).splitlines()[0]}",
                            str(path)) from None
    for name in wanted:
        s = table.column(name).to_pandas()
        num = pd.to_numeric(s.str.strip(), errors="coerce")
        bad = s.notna() & num.isna() & ~s.str.strip().str.lower().isin(
            ["nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity",
             "-infinity", "none", "null"])
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise LrDoctorError(
                f"line {row + 2}: column {name!r} holds {s.iloc[row]!r}, not a number; "
                "fix or delete that line", str(path)) from None
    raise LrDoctorError("a numeric column holds text that is not a number", str(path))


def _raise_long_line(path: Path, limit: int | None = None) -> None:
    line = _io.first_long_line(path, limit)
    if line is not None:
        raise _io.long_line_error(path, line, limit) from None
    raise LrDoctorError("a line is too long, far longer than any training-log line; this "
                        "does not look like a loss log", str(path)) from None
