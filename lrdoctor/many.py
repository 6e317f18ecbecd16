"""Many runs: analyze logs in a process pool or on a cluster, each result as it finishes.

:func:`analyze_many` reads and diagnoses every log a list of paths names (files, folders,
globs, as ``lrdoctor analyze`` does) and yields one :class:`LogResult` per log in the order
the logs finish. The work is one task per log, :func:`analyze_log`, handed to a
``concurrent.futures``-style executor: a process pool of its own (``jobs``), or the one you
pass (``executor=``), such as a ``dask.distributed`` client's ``client.get_executor()``, so
the same code runs on a laptop, a Slurm cluster (dask-jobqueue) or a Kubernetes one.

A task sends back what the reports need, not the history: each run as a
:class:`RunRecord` (the verdict, findings and recommendation of its :class:`Diagnosis`, the
outline of its history, and the few numbers a sweep is judged on), a few kilobytes however
long the log. ``keep_history=True`` sends the whole Diagnosis (for figures and reports).
Sort by ``LogResult.index`` for the order of ``lrdoctor analyze``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np

from lrdoctor.diagnosis import Diagnosis
from lrdoctor.errors import LrDoctorError

#: From this many logs on, ``jobs=None`` means one worker per CPU (fewer stay in-process:
#: starting a pool costs more than it saves).
MANY = 50
#: The most logs one task of the pool analyzes (a task per small log costs the pool more
#: than the log takes; more per task makes the results come in coarser steps).
CHUNK = 32
#: Errors that, for a file found by walking a folder, mean "nothing to judge here": not a
#: loss log (a manifest), or a log with no rows yet (a run that has just started, whose
#: folder a CI gate walks): skipped with a note, not an error that fails the walk.
NOT_A_LOG = ("no loss column found", "no loss found in this text")
NO_ROWS_YET = ("header only, no rows", "the file is empty")


@dataclass(repr=False)
class RunRecord(Diagnosis):
    """A :class:`Diagnosis` without its history: what the summary table, the text report,
    the JSON run object and the sweep need (``history`` and ``curve`` are None).

    Attributes
    ----------
    points : tuple
        ``(n_points, first_step, last_step, other_metrics)`` (:meth:`Diagnosis.outline`).
    final_loss : float
        The run's result in a sweep (``lrdoctor.sweep.result``): inf when it diverged.
    final_val_loss : float
        Its last finite validation loss; NaN without one.
    range_test : RangeTest or None
        An LR range test's answer, without its arrays but the first and last LR.
    """

    points: tuple = (0, None, None, [])
    final_loss: float = np.inf
    final_val_loss: float = np.nan
    range_test: object = None
    run_params: dict = None

    @property
    def params(self) -> dict:
        return self.run_params or {}

    @classmethod
    def of(cls, d: Diagnosis) -> "RunRecord":
        from lrdoctor.sweep import _val_result, result

        rt = getattr(d, "range_test", None)
        if rt is not None:
            rt = replace(rt, lr=rt.lr[[0, -1]], loss=None, curve=None)
        return cls(run=d.run, source=d.source, metric=d.metric, history=None,
                   findings=d.findings, verdict=d.verdict, recommendation=d.recommendation,
                   current_lr=d.current_lr, notes=d.notes, confidence=d.confidence,
                   points=d.outline(), final_loss=result(d), final_val_loss=_val_result(d),
                   range_test=rt, run_params=dict(d.params))

    def outline(self) -> tuple:
        return self.points

    def to_dict(self) -> dict:
        out = super().to_dict()
        if self.range_test is not None:
            out["range_test"] = self.range_test.to_dict()
        return out

    def plot(self, ax=None, **kwargs):
        raise LrDoctorError("a RunRecord keeps no history to draw: analyze with "
                            "keep_history=True for figures", self.source)


@dataclass
class LogResult:
    """What one input gave.

    Attributes
    ----------
    path : str
        The log (file or run folder); for an input that named nothing, the input.
    index : int
        Its place among the logs (-1 for an input that named nothing): sorting by it gives
        the order of ``lrdoctor analyze``.
    total : int
        How many logs the paths named.
    runs : list of RunRecord or Diagnosis
    error : LrDoctorError or None
        Why the log could not be read.
    skipped : str or None
        Why a file found by walking a folder was left out (it holds no loss, as a manifest;
        or no rows yet, as a run that has just started), or why a folder could not be
        searched: the whole reason, as printed after "skipped, ".
    """

    path: str
    index: int
    total: int
    runs: list = field(default_factory=list)
    error: LrDoctorError | None = None
    skipped: str | None = None


class _Kind:
    """A finding as a sweep reads it: its kind alone (one shared object per kind)."""

    __slots__ = ("kind",)
    _made: dict = {}

    def __init__(self, kind: str):
        self.kind = kind

    @classmethod
    def of(cls, kind: str) -> "_Kind":
        if kind not in cls._made:
            cls._made[kind] = cls(kind)
        return cls._made[kind]


class _Rule:
    """A recommendation as a sweep reads it: its rule."""

    __slots__ = ("rule",)

    def __init__(self, rule: str):
        self.rule = rule


class SweepStandIn:
    """What :mod:`lrdoctor.sweep` reads of a run with an LR and writes when it judges it
    (verdict, confidence, recommendation, sweep), and no more: a :class:`Spool` keeps one
    of these in memory per run, the run itself on disk."""

    __slots__ = ("run", "source", "metric", "current_lr", "params", "verdict", "confidence",
                 "recommendation", "findings", "final_loss", "final_val_loss", "sweep")
    history = None  # lrdoctor.sweep.result reads final_loss / final_val_loss, as of a record

    def __init__(self, d):
        from lrdoctor.sweep import _val_result, result

        self.run, self.source, self.metric = d.run, d.source, d.metric
        self.current_lr, self.params = d.current_lr, dict(d.params) or None
        self.verdict, self.confidence = d.verdict, d.confidence
        self.recommendation = _Rule(d.recommendation.rule)
        self.findings = tuple(_Kind.of(f.kind) for f in d.findings)
        self.final_loss, self.final_val_loss = result(d), _val_result(d)
        self.sweep = None


class Spool:
    """Runs kept on disk until they are written, in their order, whatever order they came
    in: what stays in memory is a row per run (its place in the file) and, for a run with
    an LR, a :class:`SweepStandIn` for ``lrdoctor.sweep.find_sweeps`` to group and judge.
    Iterating reads each run back with its sweep's judgement, so the parent of 10,000 runs
    holds about as much as that of 1,000.

    ``memory=True`` keeps the runs themselves instead (a figure needs their histories): the
    stand-in of a run is then the run, judged in place. Without a temporary file (none can
    be made, or the disk is full) the runs that could not be written stay in memory.
    """

    _full = None  # the file, once the disk was full

    def __init__(self, *, memory: bool = False):
        import tempfile

        self.memory, self._file = memory, None
        if not memory:
            try:
                self._file = tempfile.TemporaryFile(prefix="lrdoctor-runs-")
            except OSError:  # no temporary folder to write to: the runs stay in memory
                pass
        self._rows: list = []  # (order, _At in the file or the run, stand-in or None)
        self._sorted = True

    def add(self, order: tuple, d) -> None:
        """Keep run ``d``; ``order`` ((log index, run in the log)) places it."""
        from lrdoctor.sweep import run_lr

        if self.memory:
            where, stand = d, d if run_lr(d) is not None else None
        else:
            where = self._put(d)
            stand = SweepStandIn(d) if run_lr(d) is not None else None
        if self._rows and order < self._rows[-1][0]:
            self._sorted = False
        self._rows.append((order, where, stand))

    def _in_order(self) -> list:
        if not self._sorted:
            self._rows.sort(key=lambda row: row[0])
            self._sorted = True
        return self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def stand_ins(self) -> list:
        """The runs with an LR, in order, as the sweeps see them."""
        return [stand for _, _, stand in self._in_order() if stand is not None]

    def find_sweeps(self, *, explicit: bool = False) -> list:
        """``lrdoctor.sweep.find_sweeps`` of the runs, the same sweeps in the same order,
        found a group at a time: as soon as a group is judged, the judgement of each of its
        runs (verdict, confidence, recommendation) goes to the file, so that what stays in
        memory per run is its stand-in, not a recommendation of its own."""
        from lrdoctor.sweep import find_sweeps, group_key

        stand_ins = self.stand_ins()
        if self.memory or explicit:  # (one group: every run with an LR)
            return find_sweeps(stand_ins, explicit=explicit)
        groups: dict = {}
        for d in stand_ins:
            groups.setdefault(group_key(d), []).append(d)
        out = []
        for members in groups.values():
            out += find_sweeps(members)  # one group: that group's sweep, if it is one
            for d in members:
                if d.sweep is not None:
                    d.recommendation = self._put((d.verdict, d.confidence, d.recommendation))
        return out

    def _put(self, obj):
        """Where ``obj`` is in the file (an :class:`_At`), or ``obj`` when it could not be
        written there."""
        import pickle

        if self._file is None:
            return obj
        blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self._file.seek(0, 2)
            at = _At(self._file.tell(), len(blob))
            self._file.write(blob)
            self._file.flush()
        except OSError:  # the disk is full: this and what follows stay in memory
            self._full, self._file = self._file, None
            return obj
        return at

    def _get(self, where):
        import pickle

        if not isinstance(where, _At):
            return where
        file = self._file or self._full
        file.seek(where.offset)
        return pickle.loads(file.read(where.size))

    def items(self) -> Iterator[tuple]:
        """(order, run) in order, each run read back with its sweep's judgement."""
        for order, where, stand in self._in_order():
            if self.memory:
                yield order, where
                continue
            d = self._get(where)
            if stand is not None and stand.sweep is not None:  # judged by its sweep
                d.sweep = stand.sweep
                judged = stand.recommendation
                if isinstance(judged, (_At, tuple)):  # put away by find_sweeps
                    d.verdict, d.confidence, d.recommendation = self._get(judged)
                else:
                    d.verdict, d.confidence, d.recommendation = \
                        stand.verdict, stand.confidence, judged
            yield order, d

    def __iter__(self):
        return (d for _, d in self.items())

    def close(self) -> None:
        for file in (self._file, self._full):
            if file is not None:
                file.close()


class _At:
    """Where a pickled object is in a Spool's file."""

    __slots__ = ("offset", "size")

    def __init__(self, offset: int, size: int):
        self.offset, self.size = offset, size


def analyze_log(path: str, *, index: int = 0, total: int = 1, name: str | None = None,
                label: str | None = None, keep_history: bool = False,
                **options) -> LogResult:
    """Read one log and diagnose its runs: one task of :func:`analyze_many`.

    Never raises for a bad log (the error is in the result). ``name`` is the run name its
    place in a walked folder gives it (a file there that is not a loss log is skipped);
    ``label`` the run name of a log given by path whose own name clashes with another's
    (:func:`lrdoctor.readers.names_apart`); ``options`` are :func:`lrdoctor.analyze`'s
    reading options.
    """
    from lrdoctor.diagnosis import analyze

    out = LogResult(path, index, total)
    try:
        found = analyze(path, **options)
    except LrDoctorError as exc:
        if name is not None and exc.message.startswith(NOT_A_LOG + NO_ROWS_YET):
            why = exc.message.split(";")[0]
            out.skipped = f"not a loss log ({why})" if exc.message.startswith(NOT_A_LOG) \
                else f"no rows yet ({why}): a run that has just started?"
        else:
            out.error = exc
        return out
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # never a traceback for one bad input
        out.error = LrDoctorError(f"could not be analyzed ({type(exc).__name__}: {exc}); "
                                  "please report this with the file", path)
        return out
    if name is not None or label is not None:  # named by its path (a walk, a clash)
        for d in found:
            d.run = (name or label) if len(found) == 1 else f"{name or label}/{d.run}"
    out.runs = found if keep_history else [RunRecord.of(d) for d in found]
    return out


def analyze_logs(tasks: list) -> list[LogResult]:
    """Several :func:`analyze_log` calls in one task, ``tasks`` holding ``(path, kwargs)``
    (a task per log costs the pool more than a small log takes)."""
    return [analyze_log(path, **kw) for path, kw in tasks]


class Progress:
    """One progress line redrawn in place on a terminal (stderr): a phase that counts
    (``[#####...............] 120/1000 figures  8/s  1:50 left``) or one that does not
    (``the figure of all 1000 runs ...``). Give it to :func:`lrdoctor.report.write_report`;
    :meth:`close` clears the line."""

    def __init__(self, stream=None):
        import sys
        import time

        self.stream = stream or sys.stderr
        self.clock = time.monotonic
        self.what, self.total, self.begun, self.shown, self.width = "", None, 0.0, 0.0, 0

    def _show(self, text: str) -> None:
        pad = max(0, self.width - len(text))
        print("\r" + text + " " * pad, end="", file=self.stream, flush=True)
        self.width = len(text)

    def start(self, what: str, total: int | None = None) -> None:
        """A new phase: its name alone, or a bar of ``total`` items."""
        self.what, self.total, self.begun = what, total, self.clock()
        self.shown = 0.0
        if total is None:
            self._show(f"{what} ...")
        else:
            self.update(0)

    def update(self, done: int) -> None:
        now = self.clock()
        if now - self.shown < 0.1 and done < (self.total or 0):
            return
        self.shown = now
        total = max(self.total or 1, 1)
        rate = done / max(now - self.begun, 1e-9)
        left = int((total - done) / rate) if rate > 0 else 0
        bar = "#" * (20 * done // total)
        eta = f"  {left // 60}:{left % 60:02d} left" if done else ""
        self._show(f"[{bar:<20}] {done}/{total} {self.what}  {rate:.0f}/s{eta}")

    def close(self) -> None:
        if self.width:
            print("\r" + " " * self.width + "\r", end="", file=self.stream, flush=True)
            self.width = 0


def cpu_count() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _start_method():
    """The multiprocessing context for the pool: fork (the fastest start) when this process
    is single-threaded; forkserver when it has threads or has loaded a library that runs
    its own (JAX, PyTorch, TensorFlow): forking those can deadlock the child."""
    import multiprocessing as mp
    import sys
    import threading

    threaded = threading.active_count() > 1 or any(
        m in sys.modules for m in ("jax", "torch", "tensorflow"))
    if threaded and "forkserver" in mp.get_all_start_methods():
        return mp.get_context("forkserver")
    return None


def map_chunks(fn, items: list, *, executor=None, jobs: int = 1, size: int = 1,
               args: tuple = (), dead=None) -> Iterator[tuple[int, object]]:
    """``fn(chunk, *args)`` for each chunk of ``size`` items, in a process pool of ``jobs``
    workers (or on ``executor``): yields ``(start, result)`` as the chunks finish, where
    ``start`` is the chunk's first index in ``items``; an exception a chunk raised (its
    worker died, say) is the result. ``jobs`` 1 without an executor: in this process, in
    order.

    ``dead(item, exc)``, when given, makes a worker that dies cost only the item it died
    on (in the pool of its own, not on ``executor``): the pool is started again, the chunks
    that had not begun are run again whole, the ones in work when it died one at a time in
    a pool of one worker, halved each time they kill it, down to the one item that does,
    whose place in its chunk's result is ``dead(item, exc)``. ``fn`` must then return one
    result per item, in order."""
    from concurrent.futures import as_completed

    starts = range(0, len(items), max(1, size))
    if executor is None and jobs <= 1:
        for i in starts:
            yield i, fn(items[i:i + size], *args)
        return
    if executor is None:
        yield from _own_pool(fn, items, [(i, len(items[i:i + size])) for i in starts],
                             jobs, args, dead)
        return
    futures = {executor.submit(fn, items[i:i + size], *args): i for i in starts}
    for fut in as_completed(futures):
        try:
            got = fut.result()
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # the worker died (killed, out of memory) or was lost
            got = exc
        yield futures.pop(fut), got  # not kept here once handed on


#: In a pool worker: the state of each task of its pool (0 waiting, 1 begun, 2 done).
_TASKS = None


def _worker_start(tasks) -> None:
    """A worker of :func:`map_chunks`' own pool: the task states it marks, and pyarrow on
    one thread (the pool already has a worker per CPU; pyarrow's own threads in each would
    only contend for them: 0.30 -> 0.21 ms of CPU per 2,000-row CSV)."""
    global _TASKS
    _TASKS = tasks
    import sys

    if "pyarrow" in sys.modules:  # forked from a process that had imported it
        sys.modules["pyarrow"].set_cpu_count(1)
        sys.modules["pyarrow"].set_io_thread_count(1)
    else:  # read by pyarrow when it is imported (a worker drawing figures never does)
        os.environ["OMP_NUM_THREADS"] = os.environ["ARROW_IO_THREADS"] = "1"


def _marked(k: int, fn, chunk, args):
    """``fn(chunk, *args)`` as task ``k``: begun and done marked for the pool's owner."""
    _TASKS[k] = 1
    out = fn(chunk, *args)
    _TASKS[k] = 2
    return out


def _own_pool(fn, items: list, pieces: list, jobs: int, args: tuple, dead):
    """:func:`map_chunks` in a process pool of its own (see there for ``dead``)."""
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    from bisect import bisect_right

    ctx = _start_method() or mp.get_context()
    firsts = [i for i, _ in pieces]
    whole = dict(pieces)  # each chunk's size, by its start
    parts: dict = {}  # a chunk whose pieces come back apart: [results so far, items left]

    def answer(start: int, n: int, got):
        """The (start, result) of a whole chunk once every piece of it is back."""
        chunk = firsts[bisect_right(firsts, start) - 1]
        if chunk == start and n == whole[chunk]:
            return chunk, got
        if isinstance(got, Exception):
            got = [got] * n
        slot = parts.setdefault(chunk, [[None] * whole[chunk], whole[chunk]])
        slot[0][start - chunk:start - chunk + n] = got
        slot[1] -= n
        return (chunk, parts.pop(chunk)[0]) if slot[1] == 0 else None

    waiting, suspects = deque(pieces), deque()
    while waiting:
        batch = list(waiting)
        waiting.clear()
        tasks = ctx.Array("b", len(batch), lock=False)
        pool = ProcessPoolExecutor(max_workers=min(jobs, len(batch)), mp_context=ctx,
                                   initializer=_worker_start, initargs=(tasks,))
        broken = []
        try:
            futures = {pool.submit(_marked, k, fn, items[i:i + n], args): k
                       for k, (i, n) in enumerate(batch)}
            for fut in as_completed(futures):
                k = futures.pop(fut)  # a result handed on is not kept here too
                try:
                    got = fut.result()
                except (MemoryError, KeyboardInterrupt):
                    raise
                except BrokenProcessPool as exc:
                    if dead is None:
                        got = exc
                    else:
                        broken.append(k)
                        continue
                except Exception as exc:
                    got = exc
                out = answer(*batch[k], got) if dead is not None else (batch[k][0], got)
                if out is not None:
                    yield out
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        # the chunks in work when a worker died hold the item it died on; the others wait
        begun = [k for k in broken if tasks[k] == 1] or broken
        suspects.extend(batch[k] for k in begun)
        waiting.extend(batch[k] for k in broken if k not in begun)
    while suspects:  # one at a time in a pool of one: a piece that kills it is halved
        i, n = suspects.popleft()
        pool = ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_worker_start,
                                   initargs=(ctx.Array("b", 1, lock=False),))
        try:
            got = pool.submit(_marked, 0, fn, items[i:i + n], args).result()
        except (MemoryError, KeyboardInterrupt):
            raise
        except BrokenProcessPool as exc:
            if n > 1:
                suspects.extendleft([(i + n // 2, n - n // 2), (i, n // 2)])
                continue
            got = [dead(items[i], exc)]
        except Exception as exc:
            got = exc
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        out = answer(i, n, got)
        if out is not None:
            yield out


def analyze_many(paths, *, executor=None, jobs: int | None = None,
                 chunksize: int | None = None, keep_history: bool = False,
                 **options) -> Iterator[LogResult]:
    """Analyze every log the paths name, yielding each :class:`LogResult` as it finishes.

    Parameters
    ----------
    paths : str or list of str
        Log files, run folders, directories (searched recursively) or glob patterns.
    executor : concurrent.futures.Executor, optional
        Where the tasks run: anything with ``submit`` returning
        ``concurrent.futures.Future`` (a ``ProcessPoolExecutor``, a ``dask.distributed``
        ``client.get_executor()``). It is not shut down here.
    jobs : int, optional
        Without an executor: the size of the process pool made for the call; 1 analyzes
        in this process. Default: one per CPU from ``MANY`` (50) logs on, else 1.
    chunksize : int, optional
        Logs per task. Default: up to ``CHUNK`` (32), small enough that each of ``jobs``
        workers (the CPU count with an executor) gets 4 tasks or more.
    keep_history : bool
        Yield whole :class:`Diagnosis` objects (needed for figures and reports) rather than
        :class:`RunRecord` ones (default).
    **options
        :func:`lrdoctor.analyze`'s reading options (``lr``, ``context``, ``metric``,
        ``format``, ``pattern``, ...), the same for every log.

    Yields
    ------
    LogResult
        First one per input that named nothing (``index`` -1), then one per log in the
        order they finish (a task's logs together); sort by ``index`` for the input
        order.

    Examples
    --------
    >>> from dask.distributed import Client                         # doctest: +SKIP
    >>> client = Client("tcp://scheduler:8786")                      # doctest: +SKIP
    >>> for res in lrdoctor.analyze_many(["runs/"], executor=client.get_executor()):
    ...     for d in res.runs:                                        # doctest: +SKIP
    ...         print(d.run, d.verdict)
    """
    from lrdoctor.readers import expand, names_apart

    walked: dict = {}
    unsearched: list = []  # folders a walk could not list: notes, not errors
    files, errors = expand([paths] if isinstance(paths, (str, os.PathLike)) else
                           [str(p) for p in paths], walked, unsearched)
    for e in errors:
        yield LogResult(e.source, -1, len(files), error=e)
    for folder, why in unsearched:
        yield LogResult(folder, -1, len(files), skipped=why)
    apart = names_apart([f for f in files if f not in walked])
    tasks = [(f, dict(index=k, total=len(files), name=walked.get(f), label=apart.get(f),
                      keep_history=keep_history, **options)) for k, f in enumerate(files)]
    if jobs is None:
        jobs = cpu_count() if len(files) >= MANY else 1
    if executor is None and (jobs <= 1 or len(files) <= 1):
        for f, kw in tasks:
            yield analyze_log(f, **kw)
        return
    workers = jobs if executor is None or jobs > 1 else cpu_count()
    size = chunksize or max(1, min(CHUNK, len(files) // (4 * workers)))
    def failed(task, exc) -> LogResult:
        f, kw = task
        return LogResult(f, kw["index"], len(files), error=LrDoctorError(
            f"could not be analyzed: its worker failed ({type(exc).__name__}: {exc})", f))

    for start, got in map_chunks(analyze_logs, tasks, executor=executor, jobs=jobs,
                                 size=size, dead=failed):
        if isinstance(got, Exception):  # on an executor: the chunk's worker was lost
            got = [failed(task, got) for task in tasks[start:start + size]]
        yield from (failed(task, r) if isinstance(r, Exception) else r
                    for task, r in zip(tasks[start:start + size], got))
