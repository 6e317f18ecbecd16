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
  :func:`lrdoctor.readers.jsonlines.from_records`. The rows are not kept: each chunk is split
  into roles as :func:`lrdoctor.readers._table.build` splits a table and appended to each
  run's :class:`lrdoctor.monitor.Stream`, the bounded summary that ``lrdoctor analyze``
  builds at once, so the verdict equals :func:`lrdoctor.analyze` on the same prefix while
  memory stays flat however long the log grows. When a JSON key appears that changes the
  columns' roles (an ``eval_loss`` at the first evaluation), the log is read again from the
  start with it known; a log whose steps go back (a resumed run) is read whole from then on,
  with a note.
- Text logs (console output, ``--pattern``): only the new complete lines are read, and
  parsed alone (:class:`_TextFollower`) with what the lines before them left: the generic
  reader's templates (a line of a known shape costs a dictionary look-up), the record
  still open, the last loss row (a progress bar redrawn at one step), the Keras epoch
  block still printing. Their rows go into the run's Stream as for CSV. What the batch
  reader chooses on the whole text (the dialect, on the head and tail of the text; the
  roles of the generic reader's names, on how many lines carry each) is chosen again at
  every piece on the same evidence, kept as it grows; when a choice changes (the first
  evaluation line names a validation loss), the log is read again from the start. A log
  whose step is a counter within an epoch (made one step over the whole log), or whose
  sample matches no reader, is read whole (its complete lines) at each change.
- TensorBoard event files and run folders (:class:`_EventFollower`): record by record,
  from the offset past the last complete record, decoded by the batch reader's decoder
  (:func:`lrdoctor.readers.tensorboard.decode`); a partial last record waits; damaged
  bytes in mid-file are skipped to the next valid record with a note; a new event file in
  the folder is followed too. MLflow run folders and metric files
  (:class:`_MetricsFollower`): each metric file line by line. W&B run files
  (:class:`_WandbFollower`): record by record, from the first record not read whole. Their
  named series (tags, keys) become rows as :func:`lrdoctor.readers._table.from_series`
  makes them on the whole of them (:class:`_SeriesRows`).
- ``trainer_state.json`` (:class:`_StateFollower`): rewritten whole at each save, so parsed
  whole when it changes, but only the ``log_history`` entries beyond those already fed go
  into the run's streams.
- Keras' ``train/`` + ``validation/`` TensorBoard layout and gzip-compressed logs: re-read
  whole with the batch reader when their size or modification time (for a folder: of any
  file in it) changes.

A file truncated (smaller than what was read) or replaced (another inode) is read again from
the start, as ``tail -F`` does, with a note. A directory is walked again at every poll, so
runs that appear in it are followed from then on. Each run is judged on its own curve (no
sweep grouping).
"""
from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path

import numpy as np

from lrdoctor.errors import LrDoctorError

#: The conditions an event can turn true (``--exit-on``, ``--on-alert``, ``--webhook``).
CONDITIONS = ("too_high", "too_low", "nonfinite")
#: Finding kinds that mean the loss went non-finite.
NONFINITE = ("nonfinite", "hidden_nonfinite")
#: The note of a log whose steps go back (its runs cannot be kept as summaries).
STEPS_BACK = "steps go back (a resumed run?): read whole at each change from now on"
#: Rows of a run of named series (TensorBoard, MLflow) that wait for a series behind the
#: loss (:class:`_SeriesRows`) at most; past that they are taken as they are.
WAIT_ROWS = 4096
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
        """Stop following: what was kept of each input is let go."""
        self._sources.clear()

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
        from lrdoctor.monitor import StepsWentBack, Stream

        self._produced.add(src.given)
        for h in hists:
            if src.path in self._names:  # found by walking: named by its path there
                name = self._names[src.path]
                h.run = name if len(hists) == 1 else f"{name}/{h.run}"
            if isinstance(h, Stream):  # a run kept as its summary (lrdoctor.monitor)
                try:
                    d = h.diagnose(lr=self.lr, context=self.context)
                except StepsWentBack:
                    src.give_up(events)
                    return events
            else:
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

    _, cause = weigh(d.findings, d.outline()[0])
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
        if self.mode in ("tensorboard", "mlflow", "wandb"):
            return self._follow(events)
        if self.mode == "state":
            return self._state(p, events)
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
        except _Restart as again:  # the columns' roles changed: read again with them known
            self.tail.offset = 0
            self.follower = self._new_follower(keys=again.keys)
            return self.poll(events)
        except _Unsupported as why:  # a W&B chart export, a wide sweep file, a resumed
            if str(why):            # run: the batch reader
                events.extend(self.watcher.note(self.path, str(why)))
            self.mode, self.tail, self.follower = "reread", None, None
            return self._reread(p, events)
        return self.follower.histories()

    def _follow(self, events: list, keys=None) -> list | None:
        """A run of named series (TensorBoard, MLflow): its follower reads what was
        appended to its files."""
        if self.follower is None or keys is not None:
            cls = {"tensorboard": _EventFollower, "mlflow": _MetricsFollower,
                   "wandb": _WandbFollower}[self.mode]
            self.follower = cls(self.path, self.watcher.options, keys)
        try:
            if not self.follower.poll(events, self.watcher):
                return None
        except _Restart as again:  # the roles changed: read again with every name known
            return self._follow(events, keys=again.keys)
        except _Reset as why:  # a file truncated, replaced, removed: from the start
            if str(why):
                events.extend(self.watcher.note(self.path, f"{why}; read again from the "
                                                           "start"))
            self.follower = None
            return self._follow(events)
        except _Unsupported as why:  # steps that go back, a damaged line: the batch reader
            if str(why):
                events.extend(self.watcher.note(self.path, str(why)))
            self.mode, self.follower = "reread", None
            return self._reread(Path(self.path), events)
        return self.follower.histories()

    def give_up(self, events: list) -> None:
        """Steps that go back (a resumed run): this log is read whole at each change from
        now on (its runs cannot be kept as summaries)."""
        events.extend(self.watcher.note(self.path, STEPS_BACK))
        self.mode, self.tail, self.follower, self.signature = "reread", None, None, None

    def _choose_mode(self, p: Path) -> str | None:
        from lrdoctor.readers import sniff

        if p.is_dir():
            return self._folder_mode(p)
        try:
            if p.stat().st_size == 0:
                return None
            fmt = self.watcher.format or ("text" if self.watcher.pattern else sniff(p))
            from lrdoctor.readers import _io

            if _io.is_gzip(p):
                return "reread"
        except OSError:
            return None
        if fmt in ("tensorboard", "mlflow"):
            return self._file_mode(p, fmt)
        if fmt == "hf_trainer":
            return "state"
        if fmt == "wandb":
            return "wandb"
        if fmt in ("csv", "tsv", "jsonl", "text"):
            self.fmt = fmt
            return "jsonl" if fmt == "jsonl" else "text" if fmt == "text" else "csv"
        return "reread"

    def _folder_mode(self, p: Path) -> str:
        """A TensorBoard run folder of event files or an MLflow run folder is followed file
        by file; a Keras layout (``train/`` and ``validation/`` folders) is read whole."""
        from lrdoctor.readers import mlflow, tensorboard

        fmt = self.watcher.format
        if fmt in (None, "tensorboard") and tensorboard.event_files(p):
            return "tensorboard"
        if fmt in (None, "mlflow") and not tensorboard.split_run(p) and \
                mlflow.is_run_folder(p):
            return "mlflow"
        return "reread"

    def _file_mode(self, p: Path, fmt: str) -> str:
        """An event file is followed record by record; a metric file line by line (when the
        batch reader would diagnose it: a loss, or ``--metric``)."""
        if fmt == "tensorboard":
            from lrdoctor.readers.tensorboard import is_event_file

            return "tensorboard" if is_event_file(p) else "reread"
        from lrdoctor.readers import _columns as C
        from lrdoctor.readers import mlflow

        found = mlflow.run_of_metric_file(p)
        key = found[1] if found else p.name
        if self.watcher.options.get("metric") is None and C.find([key], C.LOSS) is None \
                and C.pick_loss([key]) is None:
            return "reread"  # the batch reader says why it is not read
        return "mlflow"

    def _state(self, p: Path, events: list) -> list | None:
        """``trainer_state.json``: rewritten whole at each save, so it is parsed whole
        when it changes; but only the ``log_history`` entries beyond those already fed go
        into the run's streams (:class:`_StateFollower`)."""
        sig = _signature(p)
        if sig == self.signature:
            return None
        self.signature = sig
        if self.follower is None:
            self.follower = _StateFollower(self.path, self.watcher.options)
        try:
            return self.follower.poll(events, self.watcher)
        except _Restart as again:
            self.follower = _StateFollower(self.path, self.watcher.options, again.keys)
            self.signature = None
            return self._state(p, events)
        except _Unsupported as why:  # steps that go back: the batch reader from now on
            if str(why):
                events.extend(self.watcher.note(self.path, str(why)))
            self.mode, self.follower, self.signature = "reread", None, None
            return self._reread(p, events)

    def _new_follower(self, keys=None):
        w = self.watcher
        if self.mode == "csv":
            return _CsvFollower(self.path, w.options)
        if self.mode == "jsonl":
            return _JsonlFollower(self.path, w.options, keys)
        return _TextFollower(self.path, w.options, w.pattern, upto=keys or 0)

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


class _RunStreams:
    """The runs of a tabular log, each kept as a :class:`lrdoctor.monitor.Stream` (its
    summary, not its rows): each chunk of rows is split into roles as
    :func:`lrdoctor.readers._table.build` splits a whole table, and appended."""

    def __init__(self, path: str, sel):
        from lrdoctor.readers._table import run_stem

        self.path, self.sel = path, sel
        self.streams: dict = {}
        self.rows: dict = {}  # run -> rows seen (the step of a log without one)
        self.stem = run_stem(path)

    def feed(self, get, n: int, runs) -> None:
        """Append ``n`` rows; ``get(name)`` gives a column's (values, present) for them,
        ``runs`` the run name of each row (None: one run)."""
        from lrdoctor.monitor import StepsWentBack
        from lrdoctor.readers._table import grad_norm_values, loss_values

        sel = self.sel
        if n == 0:
            return
        loss, present = loss_values(sel, get)
        cols = {}
        for role, name in (("step", sel.step), ("lr", sel.lr), ("val", sel.val),
                           ("grad", sel.grad_norm)):
            if name is None or (role == "grad" and name in (sel.loss, *sel.parts)):
                cols[role] = None
            elif role == "grad":
                cols[role] = grad_norm_values(*get(name))
            else:
                cols[role] = get(name)[0]
        groups = [(None, slice(None))] if runs is None else \
            [(str(k), runs == k) for k in np.unique(runs.astype(str))]
        try:
            for name, rows in groups:
                k = int(np.count_nonzero(rows)) if name is not None else n
                at = self.rows.get(name, 0)
                self.rows[name] = at + k
                st = self._stream(name)
                pick = (lambda a: None if a is None else a[rows])
                step = pick(cols["step"])
                st.extend(np.arange(at, at + k) if step is None else step, loss[rows],
                          logged=present[rows], lr=pick(cols["lr"]), val_loss=pick(cols["val"]),
                          grad_norm=pick(cols["grad"]))
        except StepsWentBack:
            raise _Unsupported(STEPS_BACK) from None

    def _stream(self, name):
        from lrdoctor.monitor import Stream

        st = self.streams.get(name)
        if st is None:
            sel = self.sel
            st = self.streams[name] = Stream(
                run=self.stem if name is None else name,
                source=self.path if name is None else f"{self.path}::{name}",
                metric=sel.label, available=sel.available, notes=sel.notes())
        return st

    def histories(self) -> list:
        """The runs that have a training loss so far (by name, as ``build`` orders them)."""
        out = [self.streams[k] for k in sorted(self.streams, key=lambda k: (k is not None, k))
               if self.streams[k].current().n_points]
        if not out:
            raise LrDoctorError(f"column {self.sel.label!r} has no values", self.path)
        return out


class _CsvFollower:
    """A CSV/TSV log read chunk by chunk: the header once, then only the new rows."""

    def __init__(self, path: str, options: dict):
        self.path, self.options = path, options
        self.sel = None
        self.header = None
        self.streams: _RunStreams | None = None
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
            self.streams = _RunStreams(self.path, self.sel)
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
        cols = {name: column_values(table.column(name)) for name in sel.numeric()}
        runs = None
        if sel.run:
            runs = np.asarray(table.column(sel.run).fill_null("")
                              .to_numpy(zero_copy_only=False))
        self.streams.feed(cols.__getitem__, table.num_rows, runs)
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
        if self.rows == 0:
            return None
        return self.streams.histories()


class _JsonlFollower:
    """A JSON-lines log read chunk by chunk, its runs kept as streams. The roles of the
    keys are chosen on every key seen so far; when a key that changes them appears (an
    ``eval_loss`` at the first evaluation), the log is read again from the start with the
    keys known (:class:`_Restart`), as a batch read would choose them."""

    def __init__(self, path: str, options: dict, keys=None):
        self.path, self.options = path, options
        self.keys: dict[str, None] = dict.fromkeys(keys or ())
        self.bad: dict[str, str] = {}  # key -> why it is not a number column
        self.sel = None
        self.streams: _RunStreams | None = None
        self.rows = 0

    def feed(self, chunk: bytes, events: list) -> None:
        from lrdoctor.readers.jsonlines import parse_lines

        if not chunk.strip():
            return
        try:
            records, _ = parse_lines(Path(self.path), chunk)
        except LrDoctorError:
            records = self._salvage(chunk, events)
        self.take(records)

    def take(self, records: list[dict]) -> None:
        """Append parsed records (JSON objects) to the runs' streams."""
        from lrdoctor.readers._table import Selection
        from lrdoctor.readers.jsonlines import _bad

        if not records:
            return
        at = self.rows
        new = [k for k in dict.fromkeys(k for r in records for k in r) if k not in self.keys]
        if new:
            self.keys.update(dict.fromkeys(new))
        try:
            sel = Selection(list(self.keys), source=self.path, **self.options)
        except LrDoctorError:
            if self.sel is not None:
                raise
            self.rows += len(records)  # no loss key yet: nothing to keep
            return
        if self.sel is not None and _roles(sel) != _roles(self.sel) or \
                self.sel is None and self.rows:
            raise _Restart(list(self.keys))
        if self.sel is None:
            self.sel, self.streams = sel, _RunStreams(self.path, sel)
        cols, runs = {}, None
        for name in sel.numeric() + ([sel.run] if sel.run else []):
            raw = [r.get(name) for r in records]
            if name == sel.run:
                runs = np.array([str(v) if v is not None else "" for v in raw])
                continue
            if name in self.bad:
                raise LrDoctorError(self.bad[name], self.path)
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
                raise LrDoctorError(self.bad[name], self.path) from None
            cols[name] = (values, present)
        self.streams.feed(cols.__getitem__, len(records), runs)
        self.rows += len(records)

    def _salvage(self, chunk: bytes, events: list) -> list[dict]:
        import json

        records, bad = [], 0
        for ln in chunk.decode("utf-8", errors="replace").splitlines():
            if not ln.strip():
                continue
            try:
                r = json.loads(ln)
            except (ValueError, RecursionError):  # not JSON, nested too deep, huge integer
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
        if self.rows == 0:
            return None
        if self.streams is None:  # keys seen, none of them a loss: as the batch reader says
            from lrdoctor.readers._table import Selection

            Selection(list(self.keys), source=self.path, **self.options)
            return None
        return self.streams.histories()


class _StateFollower:
    """A Hugging Face ``trainer_state.json``. The Trainer rewrites the whole file at each
    save, so it cannot be read in part: it is parsed whole when it changes. But its
    ``log_history`` only grows, so only the entries beyond those already fed are appended
    to the run's streams (a :class:`_JsonlFollower`'s): the history already fed is never
    fed again into the incremental summary, and the cost of a save is the parse plus the
    new entries. The entries fed are checked to be still there (the count, and the last
    one unchanged); a history that was rewritten (a run resumed from an earlier checkpoint
    cuts it) is fed again from the start, with a note. When the roles of the keys change
    (the first ``eval_loss``), the history is fed again from the start with every key
    known (:class:`_Restart`), as for JSON lines."""

    def __init__(self, path: str, options: dict, keys=None):
        self.path, self.options = path, options
        self.jsonl = _JsonlFollower(path, options, keys)
        self.fed = 0           # log_history entries fed
        self.last = None       # the last of them
        self.notes: list[str] = []

    def poll(self, events: list, w) -> list | None:
        import json

        from lrdoctor.readers import _io, hf_trainer

        data = _io.read_bytes(Path(self.path))
        try:
            doc = json.loads(data.decode("utf-8", errors="replace").lstrip("\ufeff"))
            hist = doc.get("log_history") if isinstance(doc, dict) else None
        except (ValueError, RecursionError):
            hist = None
        if not isinstance(hist, list) or not any(isinstance(r, dict) for r in hist):
            hf_trainer.read(Path(self.path), **self.options)  # its message (a save half
            return None                                       # written: tried again)
        records = [r for r in hist if isinstance(r, dict) and "train_runtime" not in r]
        if len(records) < self.fed or (self.fed and records[self.fed - 1] != self.last):
            events.extend(w.note(self.path, "log_history was rewritten (a run resumed from "
                                            "an earlier checkpoint?); read again from the "
                                            "start"))
            self.jsonl, self.fed = _JsonlFollower(self.path, self.options), 0
        others = len(hist) - sum(isinstance(r, dict) for r in hist)
        self.notes = [f"'log_history' holds {others} entries that are not objects: left "
                      "out"] if others else []
        new = records[self.fed:]
        if new:
            self.jsonl.take(new)
            self.fed, self.last = len(records), records[-1]
        out = self.jsonl.histories()
        for h in out or ():
            h.notes = [n for n in h.notes if n not in self.notes] + self.notes
        return out


def _roles(sel) -> tuple:
    return (sel.step, sel.loss, tuple(sel.parts), sel.lr, sel.val, sel.grad_norm, sel.run,
            tuple(sel.available))


class _TextFollower:
    """A text log (console output, ``--pattern``) read piece by piece: each new piece of
    complete lines is parsed alone, with what the pieces before it left (the generic
    reader's templates, the record still open, the last loss row, an epoch block of Keras
    output still printing), and its rows appended to the run's
    :class:`lrdoctor.monitor.Stream`.

    What the batch reader chooses on the whole text is chosen again at every piece on the
    same evidence, kept as it grows: the dialect on the sample of the text
    (:func:`lrdoctor.readers.text._sample`: its head and its tail, kept), the generic
    reader's roles on the counts of its templates (:class:`lrdoctor.readers._kv.Stats`,
    summed piece by piece). When a choice changes (a validation line's first appearance
    names a new role), the log is read again from the start (:class:`_Restart`), with every
    choice made on all of it. A log whose step is a counter within an epoch, whose sample
    matches nothing (the batch reader then tries the whole text), or whose choices change
    again while it is read again, is read whole at each change."""

    def __init__(self, path: str, options: dict, pattern, upto: int = 0):
        self.path, self.options, self.pattern = path, options, pattern
        self.head, self.tail, self.chars = "", "", 0
        self.fed = 0            # bytes taken
        self.rows = 0           # lines taken
        self.upto = upto        # read again from the start: the bytes read before
        self.kind = None        # the batch reader's choice: "pattern", "generic", a dialect
        self.parser = None
        self.whole = False      # read whole at each change (see the class's docstring)

    def changed(self) -> None:
        """A choice made on what was read so far changed: read again from the start (or,
        while doing so, whole at each change)."""
        if self.fed <= self.upto:
            raise _Unsupported("the roles of this log's numbers change as it is read; "
                               "read whole at each change from now on")
        raise _Restart(self.fed)

    def feed(self, chunk: bytes, events: list) -> None:
        from lrdoctor.readers import _io

        if self.fed == 0:
            _io.check_text(Path(self.path), chunk[: 1 << 16])
        try:
            self._feed(chunk)
        except _Unsupported as why:  # read whole from now on (its complete lines)
            if str(why):
                events.append({"event": "note", "time": round(time.time(), 3),
                               "source": self.path, "message": str(why)})
            self.whole, self.parser = True, None

    def _feed(self, chunk: bytes) -> None:
        from lrdoctor.readers import text

        self.fed += len(chunk)
        self.rows += chunk.count(b"\n")
        if self.whole:
            return
        piece, ascii_bytes = text.normalize(chunk, first=self.fed == len(chunk))
        self._keep_sample(piece)
        kind = self._choose()
        if kind is None:  # no loss yet (a banner)
            if self.parser is not None:
                self.changed()
            return
        if self.parser is None:
            if self.fed > len(chunk):  # the pieces before were passed over: read again
                self.changed()
            self.kind, self.parser = kind, self._parser(kind)
        elif kind != self.kind:
            self.changed()
        self.parser.feed(piece, ascii_bytes, self)

    def _keep_sample(self, piece: str) -> None:
        from lrdoctor.readers.text import _HEAD, _TAIL

        self.chars += len(piece)
        if len(self.head) < _HEAD + _TAIL:
            self.head += piece[: _HEAD + _TAIL - len(self.head)]
        self.tail = (self.tail[-(2 * _TAIL):] + piece[-(2 * _TAIL):])[-(2 * _TAIL):]

    def _sample(self) -> tuple[str, bool]:
        """The batch reader's sample of the text so far, and whether it is all of it."""
        from lrdoctor.readers.text import _HEAD, _TAIL

        if self.chars <= _HEAD + _TAIL:
            return self.head, True
        return (self.head[:_HEAD].rpartition("\n")[0] + "\n"
                + self.tail[-_TAIL:].partition("\n")[2]), False

    def _choose(self):
        from lrdoctor.readers import text

        if self.pattern is not None:
            return "pattern"
        sample, whole = self._sample()
        try:
            kind, got = text.decide(sample, sample if whole else None, self.path,
                                    self.options.get("step"), self.options.get("metric"),
                                    self.options.get("lr_column"))
        except LrDoctorError as exc:
            if exc.message.startswith(_NO_LOSS_YET):
                return None
            raise LrDoctorError(exc.message, self.path) from None
        return kind if kind in ("generic", "whole") else got[0]

    def _parser(self, kind):
        if kind == "generic":
            return _GenericRows(self.path, self.options)
        if kind == "whole":
            raise _Unsupported("")  # the batch reader reads this one whole
        return _DialectRows(self.path, kind, self.pattern)

    def histories(self) -> list | None:
        if self.whole:
            return _WholeText(self.path, self.options, self.pattern).histories(self)
        if self.parser is None:
            return None
        return self.parser.histories(self)


#: The text reader's errors that mean no loss line was written yet (a banner so far).
_NO_LOSS_YET = ("no loss found", "numbers but no loss")


class _Rows:
    """The rows of one text log's run, as a :class:`lrdoctor.monitor.Stream`."""

    def __init__(self, path: str, run: str, notes=()):
        from lrdoctor.monitor import Stream

        self.stream = Stream(run=run, source=path, metric="loss", notes=notes)
        self.n = 0  # rows fed (the step of lines without one)

    def feed(self, r: dict | None, into=None) -> None:
        """Append rows (``step``, ``loss``, ``logged``, ``lr``, ``val``, ``grad``; each
        piece's validation rows put in their place by step) to the stream, or to
        ``into``."""
        from lrdoctor.monitor import StepsWentBack

        if r is None or not len(r["loss"]):
            return
        n = len(r["loss"])
        # every piece with the same columns (a column a piece lacks: NaN there)
        r = dict(r, **{k: np.full(n, np.nan) for k in ("lr", "val") if r.get(k) is None})
        step = r["step"]
        if step is None:
            step = np.arange(self.n, self.n + len(r["loss"]), dtype=np.float64)
            r = dict(r, step=step)
        if into is None:
            self.n += len(r["loss"])
        if len(step) > 1 and np.any(step[1:] < step[:-1]):
            order = np.argsort(step, kind="stable")
            r = {k: v if v is None else v[order] for k, v in r.items()}
        try:
            (self.stream if into is None else into).extend(
                r["step"], r["loss"], logged=r["logged"], lr=r["lr"], val_loss=r["val"],
                grad_norm=r.get("grad"))
        except StepsWentBack:
            raise _Unsupported(STEPS_BACK) from None

    def with_rows(self, r: dict | None):
        """The stream with rows ``r`` appended, the stream itself unchanged."""
        if r is None or not len(r["loss"]):
            return _copy_stream(self.stream)
        out = _copy_stream(self.stream)
        self.feed(r, out)
        return out


def _copy_stream(st):
    """A copy of a Stream that rows can be appended to without changing the original
    (as :meth:`lrdoctor.monitor.Stream.current` copies it)."""
    from lrdoctor.monitor import Stream

    out = Stream.__new__(Stream)
    out.__dict__.update(st.__dict__)
    out.summary = st.summary.copy(shallow=True)
    out.val_steps, out.val = list(st.val_steps), list(st.val)
    out.ramp = None if st.ramp is None else list(st.ramp)
    out.notes, out.available = list(st.notes), list(st.available)
    return out


class _DialectRows:
    """A dialect's lines (or ``--pattern``'s) piece by piece: every dialect but Keras reads
    a line alone; Keras output is read an epoch block at a time, the block still printing
    waiting (its last loss line is the epoch's)."""

    def __init__(self, path: str, kind: str, pattern):
        from lrdoctor.readers import text

        self.kind = kind
        self.rx = text.compile_pattern(pattern, path) if kind == "pattern" else None
        name = "--pattern" if kind == "pattern" else kind
        self.rows = _Rows(path, text.run_name(Path(path)), [f"read as {name} output"])
        self.open = ""  # Keras: the epoch block still printing
        self.val = False  # a validation loss was read

    def _read(self, piece: str) -> dict | None:
        from lrdoctor.readers import text

        got = text._apply(self.rx, None, piece) if self.rx is not None else \
            text._read_dialect(self.kind, piece)
        if got is None:
            return None
        self.val |= got.get("val") is not None
        r = text.rows(got)
        if got.get("step") is None:
            r["step"] = None  # numbered by the rows fed
        return r

    def feed(self, piece: str, ascii_bytes, follower) -> None:
        if self.kind == "Keras console":
            from lrdoctor.readers.text import _KERAS_EPOCH

            piece = self.open + piece
            last = None
            for last in _KERAS_EPOCH.finditer(piece):
                pass
            if last is None:
                self.open = ""  # before the first epoch: nothing there is read
                return
            piece, self.open = piece[: last.start()], piece[last.start():]
        if piece:
            self.rows.feed(self._read(piece))

    def histories(self, follower) -> list | None:
        val = self.val
        st = self.rows.with_rows(self._read(self.open) if self.open else None)
        st.available = ["val_loss"] if self.val else []
        self.val = val
        if not st.current().n_points:
            return None
        return [st]


class _GenericRows:
    """Generic ``name: value`` lines piece by piece (:mod:`lrdoctor.readers._kv`): the
    templates are kept (a line of a known shape costs a dictionary look-up), the counts
    the roles are chosen on are summed, the record still open (an OLMo block whose
    indented lines may go on) is read again with the next piece, and the last loss row
    waits for the next one (a progress bar redrawn at one step keeps its last loss)."""

    def __init__(self, path: str, options: dict):
        from lrdoctor.readers import _kv
        from lrdoctor.readers._table import run_stem

        self.path, self.options = path, options
        self.registry = _kv.Registry()
        self.stats = _kv.Stats(np.zeros(0, dtype=np.int64), {})
        self.open = ""           # the lines of the record still open
        self.plan = None
        # what the step of the rows is made on (:meth:`_track`)
        self.steps = {"seen": False, "whole": True, "resets": False, "known": True,
                      "one": True, "first": None, "last": None}
        self.pend = None         # rows from the last loss row on
        self.rows = _Rows(path, run_stem(path))

    def _plan(self, stats):
        from lrdoctor.readers import _kv

        return _kv.plan(self.registry.templates, stats, self.path, **self.options)

    def _open_lines(self):
        from lrdoctor.readers import _kv

        return _kv.Lines(self.open[:-1], None, self.registry)

    def feed(self, piece: str, ascii_bytes, follower) -> None:
        from lrdoctor.readers import _kv

        if self.open:
            text, ascii_bytes = self.open + piece[:-1], None
        else:
            text = piece[:-1]
            ascii_bytes = None if ascii_bytes is None else ascii_bytes[:-1]
        lines = _kv.Lines(text, ascii_bytes, self.registry)
        h = int(lines.record[-1])  # the record still open starts there
        before = int(self.stats.counts.sum())  # lines of the pieces before
        self.stats = self.stats + lines.stats(h)
        start = len(text)
        for _ in range(lines.n - h):
            start = text.rfind("\n", 0, start)
        self.open = text[start + 1:] + "\n"
        try:
            p = self._plan(self.stats + self._open_lines().stats())
        except LrDoctorError as exc:
            if self.plan is not None or not exc.message.startswith(_NO_LOSS_YET):
                raise
            return  # no loss yet
        if self.plan is None:
            if before:  # lines passed over before a loss appeared: read them again
                follower.changed()
        elif p.key() != self.plan.key():
            follower.changed()
        self.plan = p
        if h:
            mode = self._mode()
            r = self._rows(lines, h)
            if self._mode() != mode and (self.rows.n or self.pend is not None):
                follower.changed()
            if self._mode() == "combined":
                raise _Unsupported("")  # the step is made over the whole log: read whole
            self._feed(r)

    def _mode(self, steps=None) -> str:
        """How the rows' step is made, as :func:`lrdoctor.readers._kv._step` makes it on
        the rows so far: ``none`` (line order), ``as_is``, or ``combined`` (a counter
        within the epoch made one step: over the whole log)."""
        p = self.plan
        st = steps or self.steps
        if p.step_mode == "epoch":
            return "as_is" if st["seen"] and st["whole"] else "none"
        if p.step_mode == "within_epoch":
            if not st["seen"] or not st["whole"]:
                return "as_is"
            from lrdoctor.readers._columns import normalize

            batch = normalize(p.sel.step) == "batch"
            if not st["resets"] and not (st["known"] and st["one"] and batch):
                return "as_is"
            return "combined"
        return "none" if p.step_mode == "none" else "as_is"

    def _track(self, get) -> None:
        """What :func:`lrdoctor.readers._kv._step` decides on, over these rows too."""
        p, st = self.plan, self.steps
        sel = p.sel
        s, have = get(sel.step)
        if p.step_mode == "epoch":
            whole = s[have]
            st["seen"] |= bool(len(whole))
            with np.errstate(invalid="ignore"):
                st["whole"] &= bool(np.array_equal(whole, np.round(whole)))
        elif p.step_mode == "within_epoch":
            e, e_have = get(sel.epoch)
            both = have & e_have
            eb, sb = e[both], s[both]
            if not len(eb):
                return
            with np.errstate(invalid="ignore"):
                st["whole"] &= bool(np.array_equal(eb, np.round(eb)))
            st["known"] &= bool(np.isfinite(get(f"{sel.step}/total")[0][both]).all())
            if st["first"] is None:
                st["first"] = eb[0]
            st["one"] &= bool((eb == st["first"]).all())
            if st["last"] is not None:
                eb, sb = np.r_[st["last"][0], eb], np.r_[st["last"][1], sb]
            de, ds = np.diff(eb), np.diff(sb)
            st["resets"] |= bool((((ds < 0) & (de >= 0)) | ((de > 0) & (ds <= 0))).any())
            st["last"] = (eb[-1], sb[-1])
            st["seen"] = True

    def _rows(self, lines, upto: int) -> dict | None:
        """The rows of records ``[:upto]`` (their roles), the epochs' state updated."""
        from lrdoctor.readers import _kv
        from lrdoctor.readers._table import grad_norm_values, loss_values

        p = self.plan
        sel = p.sel
        cols, n = _kv.columns(lines, p, upto)
        if n == 0:
            return None
        empty = (np.full(n, np.nan), np.zeros(n, dtype=bool))
        get = (lambda name: cols.get(name, empty))
        loss, present = loss_values(sel, get)
        self._track(get)
        step = None
        if sel.step is not None:
            step = get(sel.step)[0]
        grad = None
        if sel.grad_norm is not None and sel.grad_norm not in (sel.loss, *sel.parts):
            grad = grad_norm_values(*get(sel.grad_norm))
        return {"step": step, "loss": loss, "logged": present,
                "lr": get(sel.lr)[0] if sel.lr else None,
                "val": get(sel.val)[0] if sel.val else None, "grad": grad}

    def _feed(self, r: dict | None, into=None) -> None:
        """Append rows; the last loss row and the rows after it wait for the next loss
        row (unless ``into``: a copy of the stream for a diagnosis, with every row)."""
        from lrdoctor.readers import _kv

        parts = [x for x in (self.pend, r) if x is not None]
        if not parts:
            return
        r = {k: None if parts[0][k] is None else np.concatenate([x[k] for x in parts])
             for k in parts[0]}
        mode = self._mode()
        if mode == "none":
            r["step"] = None
        else:  # a progress bar redrawn at one step: its last loss is the step's
            cols = {"\x00": (r["loss"], r["logged"])}
            with np.errstate(invalid="ignore"):
                _kv._keep_last_redraw(cols, r["step"].astype(np.float64), ["\x00"])
        have = np.flatnonzero(r["logged"])
        n = len(r["loss"])
        cut = n if into is not None or mode == "none" or not len(have) else int(have[-1])
        take = {k: None if v is None else v[:cut] for k, v in r.items()}
        if into is not None:
            self.rows.feed(take, into)
            return
        self.pend = None if cut == n else \
            {k: None if v is None else v[cut:] for k, v in r.items()}
        if cut:
            self.rows.feed(take)

    def histories(self, follower) -> list | None:
        if self.plan is None:
            return None
        p = self.plan
        steps, r = dict(self.steps), None
        if self.open.strip():
            lines = self._open_lines()
            r = self._rows(lines, lines.n)
        mode = self._mode()
        self.steps = steps
        was = self._mode()
        if mode != was or mode == "combined":  # (the open record changes it): read whole
            return _WholeText(self.path, self.options).histories(follower)
        st = _copy_stream(self.rows.stream)
        self._feed(r, into=st)
        st.notes = p.sel.notes() + list(p.notes) + (
            ["no step in the lines: the line order is the step"]
            if mode == "none" and self.options.get("step") is None else [])
        st.metric, st.available = p.sel.label, list(p.sel.available)
        if not st.current().n_points:
            raise LrDoctorError(f"column {p.sel.label!r} has no values", self.path)
        return [st]


class _WholeText:
    """A text log's complete lines so far, read whole by the batch reader."""

    def __init__(self, path: str, options: dict, pattern=None):
        self.path, self.options, self.pattern = path, options, pattern

    def histories(self, follower) -> list | None:
        from lrdoctor.readers import text

        with open(self.path, "rb") as fh:
            data = fh.read(follower.fed)
        try:
            return text.read_data(data, Path(self.path), pattern=self.pattern,
                                  **self.options)
        except LrDoctorError as exc:
            if exc.message.startswith(_NO_LOSS_YET):
                return None
            raise LrDoctorError(exc.message, self.path) from None


class _Unsupported(Exception):
    """A log this follower cannot read incrementally: it is re-read whole instead."""


class _Restart(Exception):
    """The roles of a log's columns changed: it is read again from the start with every
    key seen so far known."""

    def __init__(self, keys):
        super().__init__("restart")
        self.keys = keys


# ---------------------------------------------------------------------- named series
class _SeriesRows:
    """A run logged as named series written step by step (TensorBoard tags, MLflow metric
    keys), turned into the rows :func:`lrdoctor.readers._table.from_series` builds on the
    whole of them, and appended to the run's :class:`lrdoctor.monitor.Stream`: a loss row
    at each loss step (the parts summed where every part has the step), a validation row at
    each validation step, the LR carried forward (its last write at or before the row's
    step), the gradient norm at the row's step.

    The series are taken as they are written: each one's steps never go back, and a write
    never goes back behind the loss. So a row is final once the loss has reached a later
    step (its LR and gradient norm can no longer change): rows before the loss's latest
    step are appended to the stream, the rest wait (they are added to a copy of the stream
    for each diagnosis). A write that breaks this (a resumed run rewriting its steps, a
    series logged all at once after the loss) makes the run be read whole from then on, by
    the batch reader, with a note (:data:`STEPS_BACK`). The roles are chosen on every name
    seen so far, in the batch reader's order; when they change (a validation loss logged
    for the first time), the run is read again from the start (:class:`_Restart`)."""

    def __init__(self, path: str, run: str, options: dict, source: str | None = None):
        self.path, self.run, self.options = path, run, options
        self.source = source or path
        self.sel = None
        self.names: list[str] = []
        self.stream = None
        self.fed = 0           # writes taken
        self.bound = None      # rows before this step were appended to the stream
        self.last: dict = {}   # name -> the last step written
        self.wait: dict = {}   # role -> (steps, values) written from ``bound`` on
        self.parts: dict = {}  # loss part -> (steps, values) not yet matched
        self.top = None        # the last step every loss part reached

    def select(self, names: list[str]) -> None:
        """Choose the roles on these names (every name seen so far)."""
        from lrdoctor.readers._table import Selection

        if names == self.names:
            return
        self.names = list(names)
        try:
            sel = Selection(self.names, source=self.source, metric=self.options.get("metric"),
                            lr_column=self.options.get("lr_column"))
        except LrDoctorError:
            if self.sel is not None:
                raise
            return  # no loss yet: nothing is kept
        if self.sel is None and self.fed or self.sel is not None and \
                _series_roles(sel) != _series_roles(self.sel):
            raise _Restart(self.names)
        if self.sel is None:
            from lrdoctor.monitor import Stream

            self.stream = Stream(run=self.run, source=self.source, metric=sel.label,
                                 notes=sel.notes())
        self.sel = sel

    def wanted(self) -> list[str]:
        """The names whose writes make the rows (all, before a loss is known)."""
        sel = self.sel
        if sel is None:
            return []
        loss = sel.parts or [sel.loss]
        return [t for t in dict.fromkeys([*loss, sel.lr, sel.val, sel.grad_norm])
                if t is not None]

    def feed(self, series: dict) -> None:
        """Take new writes ``{name: (steps, values)}`` (in the order written)."""
        for name, (s, v) in series.items():
            self.fed += len(s)
        if self.sel is None:
            return
        sel = self.sel
        loss = sel.parts or [sel.loss]
        roles = {"lr": sel.lr, "val": None if sel.val in loss else sel.val,
                 "grad": None if sel.grad_norm in loss else sel.grad_norm}
        for name in self.wanted():
            if name not in series or not len(series[name][0]):
                continue
            s, v = series[name]
            s = np.asarray(s)
            back = np.any(s[1:] < s[:-1]) or (name in self.last and s[0] < self.last[name])
            if sel.parts and name in sel.parts:  # parts are matched by step: no repeats
                back = back or np.any(s[1:] == s[:-1]) or \
                    (name in self.last and s[0] == self.last[name])
            if back or (self.bound is not None and s[0] < self.bound):
                raise _Unsupported(STEPS_BACK)
            self.last[name] = s[-1]
            v = np.asarray(v, dtype=np.float64)
            if name in loss:
                if sel.parts:
                    self.parts[name] = _join(self.parts.get(name), (s, v))
                else:
                    self.wait["loss"] = _join(self.wait.get("loss"), (s, v))
            for role, tag in roles.items():
                if tag == name:
                    self.wait[role] = _join(self.wait.get(role), (s, v))
        if sel.parts:
            self._match()
        frontier = self._frontier()
        behind = [self.last.get(t, -np.inf) for t in roles.values() if t is not None]
        if frontier is not None and behind and min(behind) < frontier:
            # a series behind the loss (an MLflow metric file read before its last lines
            # were written, an LR logged a step late): the rows after its last step wait
            # for it, while they are few; then they are taken as they are (a write that
            # would change them is a step going back)
            lo = min(behind)
            s = self.wait.get("loss", (np.empty(0),))[0]
            if len(s) - int(np.searchsorted(s, lo, side="left")) <= WAIT_ROWS:
                frontier = None if self.bound is None and lo == -np.inf else \
                    lo if self.bound is None else max(lo, self.bound)
        if frontier is not None and (self.bound is None or frontier > self.bound):
            rows = self._rows(frontier)
            if rows is not None:
                from lrdoctor.monitor import StepsWentBack

                try:
                    self.stream.extend(*rows[:2], **rows[2])
                except StepsWentBack:
                    raise _Unsupported(STEPS_BACK) from None
            self.bound = frontier

    def _match(self) -> None:
        """The loss parts' writes at the steps every part has (up to the last step every
        part reached) summed into loss rows."""
        sel = self.sel
        if any(p not in self.parts for p in sel.parts):
            return
        upto = min(self.parts[p][0][-1] for p in sel.parts)
        steps = None
        for p in sel.parts:
            s = self.parts[p][0]
            s = s[s <= upto]
            steps = s if steps is None else np.intersect1d(steps, s)
        total = np.zeros(len(steps))
        for p in sel.parts:
            s, v = self.parts[p]
            total += v[np.searchsorted(s, steps)]
            keep = s > upto
            self.parts[p] = (s[keep], v[keep])
        if len(steps):
            self.wait["loss"] = _join(self.wait.get("loss"), (steps, total))
        self.top = upto

    def _frontier(self):
        """The loss's latest step: rows before it are final."""
        if self.sel.parts:
            return self.top
        got = self.wait.get("loss")
        if got is not None and len(got[0]):
            return got[0][-1]
        return self.last.get(self.sel.loss)

    def _rows(self, upto=None, keep: bool = False):
        """(step, loss, columns) of the rows before step ``upto`` (all rows: None), as
        from_series makes them; they leave the waiting writes unless ``keep``."""
        from lrdoctor.readers._table import _at, _carried

        def cut(role):
            got = self.wait.get(role)
            if got is None:
                return np.empty(0), np.empty(0)
            s, v = got
            k = len(s) if upto is None else int(np.searchsorted(s, upto, side="left"))
            if not keep:
                self.wait[role] = (s[k:], v[k:])
            return s[:k], v[:k]

        ls, lv = cut("loss")
        vs, vv = cut("val")
        if not len(ls) and not len(vs):
            return None
        steps = np.r_[ls, vs]
        order = np.argsort(steps, kind="stable")  # a loss row before a validation row
        steps = steps[order]
        loss = np.r_[lv, np.full(len(vs), np.nan)][order]
        logged = np.r_[np.ones(len(ls), bool), np.zeros(len(vs), bool)][order]
        cols = {"logged": logged, "lr": None, "val_loss": None, "grad_norm": None}
        if self.sel.val is not None and self.sel.val not in (self.sel.parts or
                                                             [self.sel.loss]):
            cols["val_loss"] = np.r_[np.full(len(ls), np.nan), vv][order]
        lr = self.wait.get("lr")
        if self.sel.lr is not None and lr is not None:
            cols["lr"] = _carried(lr, steps)
            if not keep and upto is not None:  # the last write before ``upto`` carries on
                k = max(0, int(np.searchsorted(lr[0], upto, side="left")) - 1)
                self.wait["lr"] = (lr[0][k:], lr[1][k:])
        elif self.sel.lr is not None:
            cols["lr"] = np.full(len(steps), np.nan)
        grad = self.wait.get("grad")
        if self.sel.grad_norm is not None and self.sel.grad_norm not in \
                (self.sel.parts or [self.sel.loss]):
            cols["grad_norm"] = np.full(len(steps), np.nan) if grad is None else \
                _at(grad, steps)
            if grad is not None and not keep and upto is not None:
                k = int(np.searchsorted(grad[0], upto, side="left"))
                self.wait["grad"] = (grad[0][k:], grad[1][k:])
        return steps, loss, cols

    def histories(self, notes: list[str]) -> list | None:
        """The run with the waiting rows too (the stream itself unchanged)."""
        from lrdoctor.readers import _columns as C

        if self.sel is None:
            if self.names:  # names, none of them a loss: as the batch reader says
                from lrdoctor.readers._table import Selection

                Selection(self.names, source=self.source, **{
                    k: self.options.get(k) for k in ("metric", "lr_column")})
            return None
        st = _copy_stream(self.stream)
        st.run = self.run
        rows = self._rows(None, keep=True)
        if rows is not None:
            st.extend(*rows[:2], **rows[2])
        loss = self.sel.parts or [self.sel.loss]
        st.available = [t.strip() for t in C.loss_like(self.names) if t not in loss]
        st.notes = self.sel.notes() + list(notes)
        if not st.current().n_points:
            return None
        return [st]


def _series_roles(sel) -> tuple:
    return (sel.loss, tuple(sel.parts), sel.lr, sel.val, sel.grad_norm)


def _join(a, b):
    if a is None or not len(a[0]):
        return b
    return np.concatenate((a[0], b[0])), np.concatenate((a[1], b[1]))


class _EventFollower:
    """A TensorBoard run (a folder of event files, or one event file) read record by
    record: for each event file, the offset past the last complete record read (its CRCs
    checked where :func:`lrdoctor.readers.tensorboard.decode` checks them, the last one's
    always), and what the batch reader's decoder needs to go on (whether the writer writes
    CRCs). At each poll only the bytes appended since are decoded, by the batch reader's
    decoder; a partial last record waits; damaged bytes in mid-file are skipped to the next
    valid record with a note, as the batch reader skips them. A new event file in the
    folder is followed from then on; one truncated, replaced, deleted, or appearing before
    (by its timestamp) a file already read makes the run be read again from the start.
    The scalars go through :class:`_SeriesRows`."""

    def __init__(self, path: str, options: dict, keys=None):
        from lrdoctor.readers.tensorboard import run_name

        self.path, self.options = path, options
        self.rows = _SeriesRows(path, run_name(Path(path)), options)
        self.files: dict[str, dict] = {}  # name -> offset, ident, checked, tag order
        self.notes: list[str] = []
        self.records = 0
        if keys:
            self.rows.select(list(keys))

    def _listing(self) -> list[Path]:
        from lrdoctor.readers.tensorboard import event_files

        p = Path(self.path)
        return event_files(p) if p.is_dir() else [p]

    def poll(self, events: list, w) -> bool:
        """Read what was appended; whether anything was."""
        files = self._listing()
        names = [f.name for f in files]
        if [n for n in names if n in self.files] != list(self.files):
            raise _Reset("an event file was removed")
        got = []
        for k, f in enumerate(files):
            state = self.files.setdefault(f.name, {"offset": 0, "ident": None,
                                                   "checked": None, "fast": set(),
                                                   "extra": [], "records": 0})
            chunk = self._read(f, state, events, w)
            if chunk is None:
                continue
            # the batch reader reads the files in order: records appended to a file
            # before one already read (a file appearing before it) make the order change
            if any(self.files[n]["records"] for n in names[k + 1:] if n in self.files):
                raise _Reset("records were written to an event file before the last one")
            state["records"] += chunk.records
            got.append((f, state, chunk))
            if state.get("more"):  # the rest of this file first, at the next poll
                break
        self.files = {n: self.files[n] for n in names if n in self.files}
        if not got:
            return False
        names = self._names()
        self.rows.select(names)
        for f, state, d in got:
            self.records += d.records
            for note in d.notes:
                if note not in d.tail:
                    self.notes.append(note)
                    events.extend(w.note(self.path, note))
            self.rows.feed({t: (s, v) for t, (_, s, v) in d.tags.items()})
        return True

    def _read(self, f: Path, state: dict, events: list, w):
        from lrdoctor.readers.tensorboard import decode

        buf = _appended(f, state, events, w, least=12)
        if buf is None:
            return None
        d = decode(buf, f.name, base=state["offset"], checked=state["checked"],
                   hold_last=True)
        state["offset"] += d.end
        state["checked"] = d.checked
        if not d.records:
            return None
        state["fast"].update(d.fast)
        state["extra"].extend(t for t in d.tags if t not in d.fast
                              and t not in state["extra"])
        return d

    def _names(self) -> list[str]:
        """Every tag seen, in the batch reader's order: file by file, each file's tags of
        the common layout sorted, then the others as first met."""
        out: dict[str, None] = {}
        for state in self.files.values():
            for t in sorted(state["fast"], key=lambda t: t.encode()):
                out.setdefault(t)
            for t in state["extra"]:
                out.setdefault(t)
        return list(out)

    def histories(self) -> list | None:
        notes = list(self.notes)
        if self.options.get("step") is not None:
            notes.append("--step is ignored for TensorBoard files: every scalar has its step")
        if len(self.files) > 1:
            notes.append(f"{len(self.files)} event files in this run folder were read as "
                         "one run")
        return self.rows.histories(notes)


def _appended(f: Path, state: dict, events: list, w, least: int = 1) -> bytes | None:
    """The bytes of ``f`` from ``state["offset"]`` on (at most :data:`CHUNK_BYTES`;
    ``state["more"]``: whether more are there), or None when fewer than ``least`` are.
    ``state["ident"]`` keeps the file's identity: a file replaced (another inode) or
    truncated (smaller than the offset) gets a note and the run is read again from the
    start (:class:`_Reset`), as ``tail -F`` does."""
    try:
        fh = open(f, "rb")
    except OSError:
        raise _Reset(f"{f.name} could not be opened") from None
    with fh:
        st = os.fstat(fh.fileno())
        ident = (st.st_dev, st.st_ino)
        if state["ident"] is not None and (ident != state["ident"] or
                                           st.st_size < state["offset"]):
            what = "replaced" if ident != state["ident"] else "truncated"
            w._said.discard((str(f), f"the file was {what}; read again from the start"))
            events.extend(w.note(str(f), f"the file was {what}; read again from the start"))
            raise _Reset("")
        state["ident"] = ident
        if st.st_size - state["offset"] < least:
            return None
        fh.seek(state["offset"])
        data = fh.read(min(st.st_size - state["offset"], CHUNK_BYTES))
    state["more"] = st.st_size - state["offset"] > len(data)
    return data


class _WandbFollower:
    """A W&B run file (``run-<id>.wandb``) read record by record: the offset of the first
    record not read whole (a record cut short, or a chain of fragments not closed yet: the
    data store's 32 KiB blocks are kept in their places), the history rows counted. At each
    poll only the bytes appended since are framed and decoded, by the batch reader's general
    decoder (:func:`lrdoctor.readers.wandb.history_series`), and the rows go through
    :class:`_SeriesRows`. A file truncated or replaced is read again from the start."""

    def __init__(self, path: str, options: dict, keys=None):
        self.path, self.options = path, options
        self.rows = _SeriesRows(path, Path(path).stem.removeprefix("run-"), options)
        self.state = {"offset": 0, "ident": None}
        self.index = 0          # history rows read (the step of a row without one)
        self.names: dict[str, None] = {}
        self.notes: list[str] = []
        self.records = 0
        self.named = False
        if keys:
            self.names = dict.fromkeys(keys)
            self.rows.select(list(keys))

    def poll(self, events: list, w) -> bool:
        from lrdoctor.readers import wandb

        state = self.state
        start = state["offset"]
        data = _appended(Path(self.path), state, events, w, least=7 if start else 8)
        if data is None:
            return False
        if start == 0:
            if not data.startswith(wandb.MAGIC):
                raise _Unsupported("")  # the batch reader says what it is
            records, _, resume = wandb._records(data)
        else:
            records, _, resume = wandb._records(data, 0, start)
        state["offset"] = start + resume
        if not records:
            return False
        self.records += len(records)
        if not self.named:
            name = wandb._run_name(records)
            if name is not None:
                self.rows.run = name
            self.named = True
        notes: list[str] = []
        series, self.index = wandb.history_series(records, self.index, notes)
        for note in notes:
            self.notes.append(note)
            events.extend(w.note(self.path, note))
        if not series:
            return False
        self.names.update(dict.fromkeys(series))
        self.rows.select(list(self.names))
        self.rows.feed(series)
        return True

    def histories(self) -> list | None:
        return self.rows.histories(self.notes)


class _Reset(Exception):
    """A run of several files changed under its follower (a file truncated, replaced,
    removed, or appearing out of order): it is read again from the start."""


class _MetricsFollower:
    """An MLflow run folder (or one of its metric files, or a lone metric file) read line
    by line: each metric file of the run that makes the rows (the loss first, then the LR,
    the validation loss, the gradient norm) is followed as an appended log (only its new
    complete lines are read and parsed as the batch reader parses them), and its writes go
    through :class:`_SeriesRows`. A metric file that appears is picked up (its key counts
    for the roles from then on); one truncated, replaced or removed makes the run be read
    again from the start; a line the parser refuses (or a gzip file) makes it be read whole
    by the batch reader from then on, with its message."""

    def __init__(self, path: str, options: dict, keys=None):
        from lrdoctor.readers import mlflow

        p = Path(path)
        self.path, self.options, self.alone = path, dict(options), None
        found = mlflow.run_of_metric_file(p) if p.is_file() else None
        if p.is_dir():
            self.folder, run = p, mlflow.run_name(p)
        elif found and mlflow.is_run_folder(found[0]):
            self.folder, run = found[0], mlflow.run_name(found[0])
            self.options["metric"] = options.get("metric") or found[1]
        else:  # a metric file of its own
            self.folder, run, self.alone = None, p.name, found[1] if found else p.name
            self.options["metric"] = options.get("metric") or self.alone
        self.rows = _SeriesRows(path, run, self.options)
        self.tails: dict[str, dict] = {}
        self.records = 0
        if keys:
            self.rows.select(list(keys))

    def _files(self) -> dict:
        if self.folder is None:
            return {self.alone: Path(self.path)}
        root = self.folder / "metrics"
        return {str(f.relative_to(root)).replace("\\", "/"): f
                for f in sorted(root.rglob("*")) if f.is_file()}

    def poll(self, events: list, w) -> bool:
        files = self._files()
        if any(k not in files for k in self.tails):
            raise _Reset("a metric file was removed")
        if not files:
            return False
        self.rows.select(list(files))
        series = {}
        for key in self.rows.wanted():  # the loss first: the rows before its latest step
            if key in files:            # find the other keys' writes up to it
                got = self._read(key, files[key], events, w)
                if got is not None:
                    series[key] = got
        if not series:
            return False
        self.rows.feed(series)
        self.records += sum(len(s) for s, _ in series.values())
        return True

    def _read(self, key: str, f: Path, events: list, w):
        from lrdoctor.readers import _io, mlflow

        state = self.tails.setdefault(key, {"offset": 0, "ident": None, "fields": None,
                                            "n": 0})
        data = _appended(f, state, events, w)
        if data is None:
            return None
        if state["offset"] == 0 and _io.is_gzip(f):
            raise _Unsupported("")
        end = data.rfind(b"\n")
        if end < 0:
            return None
        data = data[: end + 1]
        if state["fields"] is None:
            first = next((ln for ln in data.split(b"\n") if ln.strip()), None)
            if first is None:
                state["offset"] += len(data)
                return None
            state["fields"] = len(first.split())
        try:
            steps, values = mlflow.metric_lines(data, state["fields"], f)
        except LrDoctorError:
            raise _Unsupported("") from None  # the batch reader says what is wrong
        state["offset"] += len(data)
        if steps is None:  # 'timestamp value': the line order is the step
            steps = np.arange(state["n"], state["n"] + len(values), dtype=np.float64)
        state["n"] += len(values)
        return steps, values

    def histories(self) -> list | None:
        notes = []
        if self.options.get("step") is not None and self.folder is not None:
            notes.append("--step is ignored for MLflow runs: every metric line has its step")
        return self.rows.histories(notes)


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
        what += (f" since step {where}" if event.get("verdict") in ("too_high", "too_low")
                 else f" at step {where}")
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
