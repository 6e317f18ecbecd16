"""Follow training logs while they are written: :class:`Watcher` (``lrdoctor watch``).

A :class:`Watcher` polls every path it was given (no inotify: plain ``os.stat`` every
``interval`` seconds) and turns what changed into *events*, plain dicts ready for JSON:

``start``
    a run is seen for the first time (the run object of the JSON contract);
``verdict``
    a run's verdict changed (``since_step``: where the finding that decides it began);
``finding``
    a run shows a kind of finding it did not show before (``finding``: that finding);
``note``
    something about an input worth saying once (a file deleted, truncated, waited for, a
    damaged line skipped);
``error``
    an input that cannot be read as it is now (watching goes on; it is tried again when it
    changes);
``end``
    the run as it stands when watching stops.

Run events carry the run object of ``lrdoctor analyze --format json`` plus ``event``,
``time`` (Unix seconds) and ``alert``: the conditions (``too_high``, ``too_low``,
``nonfinite``) that became true with this event, for the command line's ``--exit-on``,
``--on-alert`` and ``--webhook``.

How each format is followed:

- CSV/TSV and JSON lines (appended to): only the new bytes are read, up to the last complete
  line (a partial last line waits until it is complete). The CSV header is parsed once
  (:class:`lrdoctor.readers._table.Selection`, as the batch reader does) and each new chunk
  of rows is converted with pyarrow's CSV parser and
  :func:`lrdoctor.readers.delimited.column_values`; JSON lines go through
  :func:`lrdoctor.readers.jsonlines.parse_lines` and the same number conversion as
  :func:`lrdoctor.readers.jsonlines.from_records`. The columns are accumulated and the
  History is built by :func:`lrdoctor.readers._table.build`, exactly as the batch readers
  build it, so the verdict equals :func:`lrdoctor.analyze` on the same prefix.
- Text logs (console output): the new complete bytes are read and appended to a private
  copy of the log's complete lines, which the text reader (:mod:`lrdoctor.readers.text`)
  then reads whole. The dialect of a text log is chosen on the whole text (its head and its
  tail) and Keras epochs span lines, so reading only the new lines would not be guaranteed
  to give the batch answer; the disk is read incrementally, the parse is not.
- ``trainer_state.json``, TensorBoard run folders and event files, MLflow runs and metric
  files, W&B run files and gzip-compressed logs: re-read whole with the batch reader when
  their size or modification time (for a folder: of any file in it) changes.

A file truncated (smaller than what was read) or replaced (another inode) is read again from
the start, as ``tail -F`` does, with a note. A directory is walked again at every poll, so
runs that appear in it are followed from then on. Each run is judged on its own curve (no
sweep grouping).
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from lrdoctor.errors import LrDoctorError

#: The conditions an event can turn true (``--exit-on``, ``--on-alert``, ``--webhook``).
CONDITIONS = ("too_high", "too_low", "nonfinite")
#: Finding kinds that mean the loss went non-finite.
NONFINITE = ("nonfinite", "hidden_nonfinite")
#: At most this many new bytes are read from one file in one poll (memory stays bounded
#: when a large log is first opened; the rest is read at the next poll, without waiting).
CHUNK_BYTES = 64 << 20


class Watcher:
    """Follow logs and report what changes.

    Parameters
    ----------
    paths : list of str
        Log files, run folders, directories (walked at every poll) or glob patterns; a path
        that does not exist yet is waited for.
    interval : float
        Seconds between polls (default 2).
    lr, context, step, metric, lr_column, format, pattern
        As for :func:`lrdoctor.analyze`.

    Attributes
    ----------
    diagnoses_ : dict
        The latest :class:`~lrdoctor.diagnosis.Diagnosis` of every run, by its source.
    """

    def __init__(self, paths, *, interval: float = 2.0, lr=None, context: str = "scratch",
                 step=None, metric=None, lr_column=None, format=None, pattern=None):
        self.paths = [str(p) for p in paths]
        self.interval = float(interval)
        self.options = dict(step=step, metric=metric, lr_column=lr_column)
        self.lr, self.context, self.format, self.pattern = lr, context, format, pattern
        self.diagnoses_: dict = {}
        self._sources: dict[str, _Source] = {}
        self._names: dict[str, str] = {}  # file found by walking -> its run name
        self._said: set = set()  # (source, message) of notes already given
        self._state: dict[str, dict] = {}  # run source -> kinds, verdict, conditions
        self._waiting: set[str] = set()
        self._produced: set[str] = set()  # inputs (as given) that gave a run
        self._scratch = tempfile.mkdtemp(prefix="lrdoctor-watch-")

    # ------------------------------------------------------------------ public verbs
    def poll(self) -> list[dict]:
        """One pass over every input: the events of what changed since the last pass."""
        events: list[dict] = []
        for item in self.paths:
            for f, name in self._expand(item, events):
                src = self._sources.get(f)
                if src is None:
                    src = self._sources[f] = _Source(f, self, item)
                    if name is not None:
                        self._names[f] = name
                events.extend(self._update(src))
        return events

    def run(self, *, timeout: float | None = None, once: bool = False):
        """Poll every ``interval`` seconds, yielding the events of each pass (a list, empty
        when nothing changed).

        Stops after one pass with ``once``, after ``timeout`` seconds, or when the caller
        stops iterating (or presses Ctrl-C); :meth:`end_events` then gives the last state.
        """
        t0 = time.monotonic()
        while True:
            began = time.monotonic()
            yield self.poll()
            if once or (timeout is not None and time.monotonic() - t0 >= timeout):
                return
            left = self.interval - (time.monotonic() - began)
            if timeout is not None:
                left = min(left, timeout - (time.monotonic() - t0))
            if left > 0:
                time.sleep(left)

    def end_events(self) -> list[dict]:
        """An ``end`` event for every run, as it stands now."""
        return [_event("end", d) for d in self.diagnoses_.values()]

    def unread_inputs(self) -> list[str]:
        """The inputs (as given) that never gave a run: missing or unreadable throughout."""
        return [p for p in self.paths if p not in self._produced]

    def close(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"Watcher(paths={self.paths!r}, interval={self.interval!r})"

    # ------------------------------------------------------------------ internals
    def note(self, source: str, message: str, kind: str = "note") -> list[dict]:
        """A note (or error) event, once per source and message."""
        if (source, message) in self._said:
            return []
        self._said.add((source, message))
        return [{"event": kind, "time": round(time.time(), 3), "source": source,
                 "message": message}]

    def _expand(self, item: str, events: list) -> list[tuple[str, str | None]]:
        """The files and run folders an input names now, with their run names when found
        by walking a directory."""
        from lrdoctor.readers import _is_run_folder, name_by_path, walk

        p = Path(item)
        if p.is_dir() and not _is_run_folder(p):
            found = walk(p)
            if not found:
                events.extend(self.note(item, "no loss log in this directory yet; waiting "
                                              "for one to appear"))
            return [(f, name_by_path(Path(f), p)) for f in found]
        if p.exists():
            self._waiting.discard(item)
            return [(item, None)]
        if any(ch in item for ch in "*?["):
            import glob

            found = sorted(f for f in glob.glob(item, recursive=True)
                           if Path(f).is_file() or _is_run_folder(Path(f)))
            if not found:
                events.extend(self.note(item, "the pattern matches no file yet; waiting"))
            return [(f, None) for f in found]
        if item in self._sources:  # it was there: its source says it was deleted
            return [(item, None)]
        if item not in self._waiting:
            self._waiting.add(item)
            events.extend(self.note(item, "no such file yet; waiting for it to appear"))
        return []

    def _update(self, src: _Source) -> list[dict]:
        events: list[dict] = []
        try:
            hists = src.poll(events)
        except LrDoctorError as exc:
            return events + self.note(exc.source or src.path, exc.message, "error")
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # one damaged input never stops the others
            return events + self.note(src.path, f"could not be read ({type(exc).__name__}: "
                                                f"{exc}); watching goes on", "error")
        if hists is None:
            return events
        from lrdoctor.diagnosis import diagnose_history

        self._produced.add(src.given)
        for h in hists:
            if src.path in self._names:  # found by walking: named by its path there
                name = self._names[src.path]
                h.run = name if len(hists) == 1 else f"{name}/{h.run}"
            d = diagnose_history(h, lr=self.lr, context=self.context)
            events.extend(self._compare(d))
        return events

    def _compare(self, d) -> list[dict]:
        """The events between a run's last diagnosis and this one."""
        key = d.source
        old = self._state.get(key)
        self.diagnoses_[key] = d
        kinds = {f.kind for f in d.findings}
        now = {c for c in CONDITIONS if _holds(c, d)}
        self._state[key] = {"kinds": kinds, "verdict": d.verdict, "conditions": now}
        if old is None:
            ev = _event("start", d)
            ev["since_step"] = since_step(d)
            ev["alert"] = sorted(now)
            return [ev]
        events = []
        turned = now - old["conditions"]
        for f in d.findings:
            if f.kind in old["kinds"]:
                continue
            old["kinds"].add(f.kind)
            ev = _event("finding", d)
            ev["finding"] = f.to_dict()
            ev["alert"] = sorted(c for c in turned if c == "nonfinite" and f.kind in NONFINITE)
            turned -= set(ev["alert"])
            events.append(ev)
        if d.verdict != old["verdict"]:
            ev = _event("verdict", d)
            ev["previous"] = old["verdict"]
            ev["since_step"] = since_step(d)
            ev["alert"] = sorted(turned)
            turned = set()
            events.append(ev)
        if turned and events:
            events[-1]["alert"] = sorted(set(events[-1]["alert"]) | turned)
        return events


def _holds(condition: str, d) -> bool:
    if condition == "nonfinite":
        return any(f.kind in NONFINITE for f in d.findings)
    return d.verdict == condition


def since_step(d):
    """The step where the finding that decides the verdict began (the last step when no
    finding decides it)."""
    from lrdoctor.diagnosis import weigh

    _, cause = weigh(d.findings, len(d.history.logged_steps))
    if cause is not None and cause.start is not None and d.verdict in ("too_high", "too_low"):
        return cause.to_dict()["start"]
    return d.to_dict()["last_step"]


def _event(kind: str, d) -> dict:
    from lrdoctor.render import _clean

    return _clean({"event": kind, "time": round(time.time(), 3), **d.to_dict()})


# ---------------------------------------------------------------------- one input
class _Source:
    """One file or run folder being followed, in the way its format allows."""

    def __init__(self, path: str, watcher: Watcher, given: str):
        self.path, self.watcher, self.given = path, watcher, given
        self.mode: str | None = None  # csv, jsonl, text, reread
        self.tail: _Tail | None = None
        self.follower = None
        self.signature = None
        self.gone = False

    def poll(self, events: list) -> list | None:
        """The run histories when the input changed, else None."""
        w = self.watcher
        p = Path(self.path)
        if not p.exists():
            if not self.gone:
                self.gone = True
                events.extend(w.note(self.path, "the file was deleted; waiting for it to "
                                                "come back"))
                w._said.discard((self.path, "the file is back; read again from the start"))
            return None
        if self.gone:
            self.gone = False
            events.extend(w.note(self.path, "the file is back; read again from the start"))
            self.mode = None
            w._said.discard((self.path, "the file was deleted; waiting for it to come back"))
        if self.mode is None:
            self.mode = self._choose_mode(p)
            if self.mode is None:
                return None  # empty so far
        if self.mode == "reread":
            return self._reread(p, events)
        if self.tail is None:
            self.tail = _Tail(p)
            self.follower = self._new_follower()
        chunk, reset = self.tail.read(events, w)
        if reset:
            self.follower = self._new_follower()
        if chunk is None and not reset:
            return None
        try:
            if chunk:
                self.follower.feed(chunk, events)
        except _Unsupported:  # a W&B chart export, a wide sweep file: the batch reader
            self.mode, self.tail, self.follower = "reread", None, None
            return self._reread(p, events)
        return self.follower.histories()

    def _choose_mode(self, p: Path) -> str | None:
        from lrdoctor.readers import sniff

        if p.is_dir():
            return "reread"
        try:
            if p.stat().st_size == 0:
                return None
            fmt = self.watcher.format or ("text" if self.watcher.pattern else sniff(p))
            from lrdoctor.readers import _io

            if _io.is_gzip(p):
                return "reread"
        except OSError:
            return None
        if fmt in ("csv", "tsv", "jsonl", "text"):
            self.fmt = fmt
            return "jsonl" if fmt == "jsonl" else "text" if fmt == "text" else "csv"
        return "reread"

    def _new_follower(self):
        w = self.watcher
        if self.mode == "csv":
            return _CsvFollower(self.path, w.options)
        if self.mode == "jsonl":
            return _JsonlFollower(self.path, w.options)
        return _TextFollower(self.path, w.options, w.pattern, w._scratch)

    def _reread(self, p: Path, events: list) -> list | None:
        sig = _signature(p)
        if sig == self.signature:
            return None
        from lrdoctor.readers import read

        w = self.watcher
        try:
            hists = read(p, format=w.format, pattern=w.pattern, **w.options)
        except LrDoctorError as exc:
            if "empty" in exc.message or "header only" in exc.message:
                return None  # nothing to judge yet
            self.signature = sig  # tried again when it changes (a save half written)
            raise
        self.signature = sig
        return hists


def _signature(p: Path):
    """What says a rewritten file or run folder changed: inode, size and mtime of it (of
    every file in it, for a folder)."""
    def one(f: Path):
        s = f.stat()
        return (str(f), s.st_ino, s.st_size, s.st_mtime_ns)

    try:
        if p.is_dir():
            return tuple(one(f) for f in sorted(p.rglob("*")) if f.is_file())
        return one(p)
    except OSError:
        return None


class _Tail:
    """New complete lines of an appended file: the byte offset after the last complete line
    read, with the file's identity, as ``tail -F`` keeps them."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.ident = None

    def read(self, events: list, w: Watcher) -> tuple[bytes | None, bool]:
        """(the new complete lines, or None when there are none; whether the file was
        truncated or replaced, so that it is read again from the start)."""
        try:
            fh = open(self.path, "rb")
        except OSError:
            return None, False
        with fh:
            st = os.fstat(fh.fileno())
            ident = (st.st_dev, st.st_ino)
            reset = False
            if self.ident is not None and (ident != self.ident or st.st_size < self.offset):
                what = "replaced" if ident != self.ident else "truncated"
                w._said.discard((str(self.path), f"the file was {what}; read again from "
                                                 "the start"))
                events.extend(w.note(str(self.path), f"the file was {what}; read again "
                                                     "from the start"))
                self.offset, reset = 0, True
            self.ident = ident
            if st.st_size <= self.offset:
                return None, reset
            fh.seek(self.offset)
            data = fh.read(min(st.st_size - self.offset, CHUNK_BYTES))
        end = data.rfind(b"\n")
        if end < 0:
            return None, reset  # a partial line: it waits until it is complete
        self.offset += end + 1
        return data[: end + 1], reset


class _Grow:
    """A column that grows: values (float64, or int64 while every cell is an integer) and
    the present mask, in arrays with spare room (appending is amortized O(new rows))."""

    def __init__(self, dtype=np.float64):
        self.n = 0
        self.values = np.empty(1024, dtype=dtype)
        self.present = np.empty(1024, dtype=bool)

    def append(self, values: np.ndarray, present: np.ndarray, at: int) -> None:
        """Write rows ``at..at+len`` (rows before ``at`` this column lacks are filled as
        missing)."""
        if values.dtype.kind == "f" and self.values.dtype.kind != "f":
            self.values = self.values.astype(np.float64)
        end = at + len(values)
        if end > len(self.values):
            cap = max(end, 2 * len(self.values))
            grown = np.empty(cap, dtype=self.values.dtype)
            grown[: self.n] = self.values[: self.n]
            mask = np.empty(cap, dtype=bool)
            mask[: self.n] = self.present[: self.n]
            self.values, self.present = grown, mask
        if at > self.n:
            self.fill(at)
        self.values[at:end] = values
        self.present[at:end] = present
        self.n = end

    def fill(self, n: int) -> None:
        """Pad with missing cells up to ``n`` rows."""
        if n <= self.n:
            return
        self.append(np.full(n - self.n, np.nan), np.zeros(n - self.n, bool), self.n)

    def get(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(values, present) of the first ``n`` rows, as the batch readers give them: an
        integer column with a missing cell is float64 with NaN there."""
        self.fill(n)
        v, m = self.values[:n], self.present[:n]
        if v.dtype.kind != "f" and not m.all():
            v = np.where(m, v, np.nan)
        return v, m


class _CsvFollower:
    """A CSV/TSV log read chunk by chunk: the header once, then only the new rows."""

    def __init__(self, path: str, options: dict):
        self.path, self.options = path, options
        self.sel = None
        self.header = None
        self.cols: dict[str, _Grow] = {}
        self.runs: list[np.ndarray] = []
        self.rows = 0
        self.said_damage = False

    def feed(self, chunk: bytes, events: list) -> None:
        from lrdoctor.readers._table import Selection
        from lrdoctor.readers.delimited import _wandb_chart_runs, sniff_delimiter

        if self.header is None:
            text = ""
            while not text and chunk:  # empty lines before the header are skipped
                line, _, chunk = chunk.partition(b"\n")
                text = line.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r")
            if not text:
                return  # no header yet
            self.sep = sniff_delimiter(text, Path(self.path))
            self.header = next(csv.reader(io.StringIO(text), delimiter=self.sep))
            if _wandb_chart_runs(self.header):
                raise _Unsupported
            try:
                self.sel = Selection(self.header, source=self.path, **self.options)
            except LrDoctorError:
                raise _Unsupported from None  # a wide sweep file, or no loss: batch reader
        if chunk.strip():
            self._parse(chunk, events)

    def _parse(self, chunk: bytes, events: list) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        from lrdoctor.readers.delimited import _undecodable_rows_quiet, column_values

        sel = self.sel
        include = sel.numeric() + ([sel.run] if sel.run else [])
        bad_rows: list[str] = []

        def skip(row):
            bad_rows.append(row.text)
            return "skip"

        def parse(types):
            bad_rows.clear()
            with _undecodable_rows_quiet():  # a damaged row that is not UTF-8: no traceback
                return pacsv.read_csv(
                    io.BytesIO(chunk),
                    read_options=pacsv.ReadOptions(column_names=self.header,
                                                   block_size=1 << 22),
                    parse_options=pacsv.ParseOptions(delimiter=self.sep,
                                                     newlines_in_values=False,
                                                     invalid_row_handler=skip),
                    convert_options=pacsv.ConvertOptions(
                        include_columns=include, column_types=types, null_values=[""],
                        strings_can_be_null=True, quoted_strings_can_be_null=True))

        types = {c: pa.float64() for c in sel.numeric()}
        if sel.run:
            types[sel.run] = pa.string()
        if sel.step is not None:
            types[sel.step] = pa.int64()
        try:
            try:
                table = parse(types)
            except pa.ArrowInvalid:
                if sel.step is not None:
                    types[sel.step] = pa.float64()  # a fractional step: as the batch reader
                table = parse(types)
        except pa.ArrowInvalid:
            table = self._salvage(chunk, include, events)
        if bad_rows:
            self._damaged(events, f"{len(bad_rows)} damaged line(s) (cells not matching the "
                                  f"header, e.g. {bad_rows[0][:40]!r}) skipped")
        at = self.rows
        for name in sel.numeric():
            v, m = column_values(table.column(name))
            self.cols.setdefault(name, _Grow(v.dtype)).append(v, m, at)
        if sel.run:
            self.runs.append(np.asarray(table.column(sel.run).fill_null("")
                                        .to_numpy(zero_copy_only=False)))
        self.rows += table.num_rows

    def _salvage(self, chunk: bytes, include: list, events: list):
        """A chunk with a cell that is not a number (a damaged line): its rows parsed as
        text, the damaged ones left out with a note."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        from lrdoctor.readers.delimited import _undecodable_rows_quiet

        with _undecodable_rows_quiet():  # a damaged row that is not UTF-8: no traceback
            table = pacsv.read_csv(
                io.BytesIO(chunk),
                read_options=pacsv.ReadOptions(column_names=self.header),
                parse_options=pacsv.ParseOptions(delimiter=self.sep,
                                                 invalid_row_handler=lambda r: "skip"),
                convert_options=pacsv.ConvertOptions(
                    include_columns=include,
                    column_types={c: pa.string() for c in include},
                    null_values=[""], strings_can_be_null=True))
        good = np.ones(table.num_rows, bool)
        out = {}
        for name in self.sel.numeric():
            raw = table.column(name).to_pylist()
            present = np.array([c is not None for c in raw], dtype=bool)
            vals = np.full(len(raw), np.nan)
            for i, cell in enumerate(raw):
                try:
                    vals[i] = float(cell) if cell is not None else np.nan
                except ValueError:
                    good[i] = False
            out[name] = (vals, present)
        self._damaged(events, f"{int((~good).sum())} line(s) with a cell that is not a "
                              "number skipped (a line damaged mid-write?)")
        arrays = {n: pa.array(v[good], mask=~m[good]) for n, (v, m) in out.items()}
        if self.sel.run:
            arrays[self.sel.run] = table.column(self.sel.run).filter(pa.array(good))
        return pa.table(arrays)

    def _damaged(self, events: list, message: str) -> None:
        events.append({"event": "note", "time": round(time.time(), 3),
                       "source": self.path, "message": message})

    def histories(self) -> list | None:
        from lrdoctor.readers._table import build

        if self.rows == 0:
            return None
        n = self.rows
        runs = np.concatenate(self.runs) if self.runs else None
        return build(self.sel, lambda name: self.cols[name].get(n), runs, path=self.path)


class _JsonlFollower:
    """A JSON-lines log read chunk by chunk, each key a growing column."""

    def __init__(self, path: str, options: dict):
        self.path, self.options = path, options
        self.keys: dict[str, None] = {}
        self.cols: dict[str, _Grow] = {}
        self.bad: dict[str, str] = {}  # key -> why it is not a number column
        self.text: dict[str, list] = {}  # run-name keys: their values as text
        self.rows = 0

    def feed(self, chunk: bytes, events: list) -> None:
        from lrdoctor.readers import _columns as C
        from lrdoctor.readers.jsonlines import _bad, parse_lines

        if not chunk.strip():
            return
        try:
            records, _ = parse_lines(Path(self.path), chunk)
        except LrDoctorError:
            records = self._salvage(chunk, events)
        at = self.rows
        new = list(dict.fromkeys(k for r in records for k in r))
        self.keys.update(dict.fromkeys(new))
        for name in new:
            raw = [r.get(name) for r in records]
            if C.find([name], C.RUN):
                self.text.setdefault(name, []).append(
                    (at, [str(v) if v is not None else "" for v in raw]))
            if name in self.bad:
                continue
            present = np.array([v is not None for v in raw], dtype=bool)
            try:  # as jsonlines.from_records converts a column
                values = np.array(raw, dtype=np.float64)
                first = raw[: max(0, 64 - at)]
                if any(isinstance(v, bool) for v in first) or values.ndim != 1:
                    raise ValueError
            except (ValueError, TypeError):
                row = next((i for i, v in enumerate(raw) if _bad(v)), 0)
                self.bad[name] = (f"record {at + row + 1}: key {name!r} holds {raw[row]!r}, "
                                  "not a number; fix or delete that line")
                continue
            self.cols.setdefault(name, _Grow()).append(values, present, at)
        self.rows += len(records)

    def _salvage(self, chunk: bytes, events: list) -> list[dict]:
        import json

        records, bad = [], 0
        for ln in chunk.decode("utf-8", errors="replace").splitlines():
            if not ln.strip():
                continue
            try:
                r = json.loads(ln)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(r, dict):
                records.append(r)
            else:
                bad += 1
        events.append({"event": "note", "time": round(time.time(), 3), "source": self.path,
                       "message": f"{bad} damaged line(s) (not a JSON object) skipped"})
        return records

    def histories(self) -> list | None:
        from lrdoctor.readers._table import Selection, build

        if self.rows == 0:
            return None
        n = self.rows
        keys = list(self.keys)
        sel = Selection(keys, source=self.path, **self.options)

        def get(name):
            if name in self.bad:
                raise LrDoctorError(self.bad[name], self.path)
            return self.cols[name].get(n)

        runs = None
        if sel.run:
            runs = np.full(n, "", dtype=object)
            for at, vals in self.text.get(sel.run, []):
                runs[at: at + len(vals)] = vals
            runs = runs.astype(str)
        return build(sel, get, runs, path=self.path)


class _TextFollower:
    """A text log: its new complete lines appended to a private copy, which the text
    reader reads whole (see the module docstring for why)."""

    def __init__(self, path: str, options: dict, pattern, scratch: str):
        self.path, self.options, self.pattern = path, options, pattern
        folder = Path(tempfile.mkdtemp(dir=scratch))
        self.copy = folder / Path(path).name  # the same name: the same run name
        self.copy.write_bytes(b"")
        self.rows = 0

    def feed(self, chunk: bytes, events: list) -> None:
        with open(self.copy, "ab") as fh:
            fh.write(chunk)
        self.rows += chunk.count(b"\n")

    def histories(self) -> list | None:
        from lrdoctor.readers import text

        if self.rows == 0:
            return None
        try:
            hists = text.read(self.copy, pattern=self.pattern, **self.options)
        except LrDoctorError as exc:
            if exc.message.startswith("no loss found"):
                return None  # no loss line yet (a banner, a config dump)
            raise LrDoctorError(exc.message, self.path) from None
        for h in hists:
            h.source = self.path
        return hists


class _Unsupported(Exception):
    """A log this follower cannot read incrementally: it is re-read whole instead."""


# ---------------------------------------------------------------------- alerts
#: Seconds an --on-alert command or a webhook may take before it is given up.
ALERT_TIMEOUT = 10.0


def alert_text(event: dict) -> str:
    """One line for people (Slack's ``text``): what happened to which run, and the advice."""
    from lrdoctor.render import HEADLINE

    where = event.get("since_step")
    rec = event.get("recommendation") or {}
    advice = rec.get("action", "")
    if rec.get("suggested_lr") is not None:
        advice += f" to {rec['suggested_lr']:.2g}"
    what = HEADLINE.get(event.get("verdict"), event.get("verdict"))
    if event.get("event") == "finding":
        f = event["finding"]
        what = f"{f['kind']} at step {f['start']}: {f['message']}"
    elif where is not None:
        what += f" since step {where}"
    return f"lrdoctor: run {event.get('run')!r}: {what} (advice: {advice}; {event.get('source')})"


def run_alert_command(cmd: str, event: dict, timeout: float = ALERT_TIMEOUT) -> str | None:
    """Run ``cmd`` (a shell command) with the event as JSON on its stdin; its output is
    discarded. Returns None, or one line that says why it failed."""
    import json
    import subprocess

    from lrdoctor.render import _clean

    try:
        done = subprocess.run(cmd, shell=True, input=json.dumps(_clean(event)).encode(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"--on-alert command did not finish within {timeout:g} s; it was stopped"
    except OSError as exc:
        return f"--on-alert command could not be run ({exc})"
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip().splitlines()
        return (f"--on-alert command exited with status {done.returncode}"
                + (f": {err[-1][:200]}" if err else ""))
    return None


def post_webhook(url: str, event: dict, timeout: float = ALERT_TIMEOUT) -> str | None:
    """POST the event as JSON with a Slack-compatible ``text`` field. Returns None, or one
    line that says why it failed."""
    import json
    import urllib.error
    import urllib.request

    from lrdoctor.render import _clean

    body = json.dumps(_clean({"text": alert_text(event), **event})).encode()
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        return f"--webhook {url}: the server answered {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"--webhook {url}: not delivered ({getattr(exc, 'reason', exc)})"
    return None
