"""lrdoctor/many.py and the CLI's --jobs, --format jsonl, --scheduler and --fail-on."""
import json
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import lrdoctor
from lrdoctor.cli import main
from lrdoctor.many import RunRecord

from conftest import SAMPLES
from test_sweep import GRID, write_sweep


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def mixed_folder(tmp_path):
    """A sweep, single runs, a range test, a manifest that is no log, a damaged log and a
    non-finite run: every kind of result a folder gives."""
    root = tmp_path / "runs"
    write_sweep(root / "sweep", GRID, seeds=(0, 1))
    for f in SAMPLES.glob("*.csv"):
        shutil.copy(f, root / f.name)
    lr = 1e-6 * 10 ** (np.arange(300) / 50)
    loss = 2.3 - 0.5 * np.tanh(np.log10(lr / 1e-4)) + np.where(lr > 0.05, (lr / 0.05) ** 2, 0)
    (root / "range_test.csv").write_text("step,lr,loss\n" + "".join(
        f"{i},{a},{b}\n" for i, (a, b) in enumerate(zip(lr, loss))))
    (root / "MANIFEST.csv").write_text("file,bytes\na.csv,10\n")
    (root / "broken.csv").write_text("step,loss\n0,1\n1,abc\n")
    return root


def test_jobs_2_equals_jobs_1_and_the_full_diagnoses_on_tmp_logs(tmp_path, capsys):
    root = mixed_folder(tmp_path)
    outs = {}
    for name, extra in {"jobs1": ["--jobs", "1"], "jobs2": ["--jobs", "2"],
                        "full": ["--jobs", "1", "--plot", str(tmp_path / "all.png")]}.items():
        for fmt in ("json", "text"):
            code, out, err = run(["analyze", str(root), "--format", fmt, *extra], capsys)
            assert code == 2 and "broken.csv" in err and "skipped, not a loss log" in err
            outs[name, fmt] = out.replace(f"figure written to {tmp_path / 'all.png'}\n", "")
    doc = json.loads(outs["jobs1", "json"])
    assert {r["verdict"] for r in doc["runs"]} >= {"too_high", "too_low", "ok", "range_test"}
    assert len(doc["sweeps"]) == 1 and len(doc["errors"]) == 1
    for fmt in ("json", "text"):  # a pool, and the Diagnosis objects with their histories
        assert outs["jobs2", fmt] == outs["jobs1", fmt] == outs["full", fmt]


def test_jobs_2_equals_jobs_1_on_the_benchmark_sweeps(shared, capsys):
    runs = sorted((shared / "benchmarks" / "lr_sweeps" / "runs").glob("*.csv"))
    models = sorted({f.name.split("__")[0] for f in runs})[:3]
    subset = [str(f) for f in runs if f.name.split("__")[0] in models]
    assert len(subset) >= 40
    _, one, _ = run(["analyze", *subset, "--format", "json", "--jobs", "1"], capsys)
    _, two, _ = run(["analyze", *subset, "--format", "json", "--jobs", "2"], capsys)
    assert one == two
    assert len(json.loads(one)["sweeps"]) >= 3


def test_jsonl_streams_run_objects_then_sweeps_then_errors(tmp_path, capsys):
    root = mixed_folder(tmp_path)
    _, doc, _ = run(["analyze", str(root), "--format", "json"], capsys)
    code, out, _ = run(["analyze", str(root), "--format", "jsonl", "--jobs", "2"], capsys)
    assert code == 2
    lines = [json.loads(x) for x in out.splitlines()]
    kinds = ["sweep" if "sweep" in x else "error" if "error" in x else "run" for x in lines]
    assert kinds == sorted(kinds, key=["run", "sweep", "error"].index)
    runs = sorted((x for x in lines if "verdict" in x), key=lambda x: x["order"])
    doc = json.loads(doc)
    assert [{k: v for k, v in x.items() if k != "order"} for x in runs] == doc["runs"]
    assert [x["sweep"] for x in lines if "sweep" in x] == doc["sweeps"]
    assert [x["error"] for x in lines if "error" in x] == doc["errors"]
    # runs without an LR cannot be in a sweep: they did not wait for the end
    sweep_runs = set(doc["sweeps"][0]["runs"])
    first_swept = next(i for i, x in enumerate(lines) if x.get("source") in sweep_runs)
    assert all(x["current_lr"] is not None for x in lines[first_swept:] if "verdict" in x)


def test_analyze_many_takes_any_executor_and_yields_light_records(tmp_path):
    root = mixed_folder(tmp_path)
    with ThreadPoolExecutor(2) as ex:
        got = list(lrdoctor.analyze_many([str(root)], executor=ex))
    got.sort(key=lambda r: r.index)
    assert [r.index for r in got] == list(range(len(got)))
    assert all(r.total == len(got) for r in got)
    runs = [d for r in got for d in r.runs]
    assert all(isinstance(d, RunRecord) and d.history is None for d in runs)
    assert [r.path.endswith("MANIFEST.csv") for r in got if r.skipped] == [True]
    assert sum(r.error is not None for r in got) == 1
    full = [d for r in lrdoctor.analyze_many(root, jobs=1, keep_history=True) for d in r.runs]
    assert [d.to_dict() for d in full] == [d.to_dict() for d in runs]
    with pytest.raises(lrdoctor.LrDoctorError, match="keeps no history"):
        runs[0].plot()


def test_analyze_many_reports_an_input_that_names_nothing_first(tmp_path):
    got = list(lrdoctor.analyze_many([str(tmp_path / "missing.csv"),
                                      str(SAMPLES / "nan_lr5.csv")], jobs=2))
    assert got[0].index == -1 and "no such file" in got[0].error.message
    assert got[1].runs[0].verdict == "too_high"


def test_fail_on_exit_codes_in_every_format_and_report(tmp_path, capsys):
    high, fine = str(SAMPLES / "nan_lr5.csv"), str(SAMPLES / "healthy_lr1e-3.csv")
    missing = str(tmp_path / "missing.csv")
    for fmt in ("text", "json", "jsonl"):
        assert run(["analyze", fine, "--format", fmt, "--fail-on", "too_high"], capsys)[0] == 0
        code, _, err = run(["analyze", high, fine, "--format", fmt,
                            "--fail-on", "too_high,too_low"], capsys)
        assert code == 1 and "1 run(s) failed: nan_lr5 (too_high)" in err
        # an unreadable input: 2 wins over 1
        assert run(["analyze", high, missing, "--format", fmt, "--fail-on", "too_high"],
                   capsys)[0] == 2
    assert run(["analyze", high], capsys)[0] == 0  # no --fail-on: verdicts never fail
    code, out, _ = run(["report", high, fine, "-o", str(tmp_path / "r.md"),
                        "--fail-on", "too_high"], capsys)
    assert code == 1 and (tmp_path / "r.md").exists()
    with pytest.raises(SystemExit) as e:
        main(["analyze", fine, "--fail-on", "too_hgih"])
    assert e.value.code == 2
    assert run(["analyze", fine, "--jobs", "0"], capsys)[0] == 2


def test_progress_bar_only_on_a_terminal(tmp_path, capsys, monkeypatch):
    root = write_sweep(tmp_path / "many", GRID, seeds=range(5))
    n = len(list(root.glob("*.csv")))
    assert n > 20  # the bar is for many logs
    code, _, err = run(["analyze", str(root), "--format", "json", "--jobs", "2"], capsys)
    assert code == 0 and err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, err = run(["analyze", str(root), "--format", "json", "--jobs", "2"], capsys)
    assert code == 0 and f"{n}/{n} logs" in err and "/s" in err and "left" in err
    assert err.endswith("\r") and json.loads(out)["runs"]  # cleared; stdout untouched


def test_dask_local_cluster(tmp_path, capsys):
    distributed = pytest.importorskip(
        "dask.distributed", reason="dask is absent: pip install 'lrdoctor[dask]'")
    root = mixed_folder(tmp_path)
    _, serial, _ = run(["analyze", str(root), "--format", "json"], capsys)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        got = list(lrdoctor.analyze_many([str(root)], executor=client.get_executor()))
        assert sum(len(r.runs) for r in got) == len(json.loads(serial)["runs"])
        code, out, _ = run(["analyze", str(root), "--format", "json",
                            "--scheduler", cluster.scheduler_address], capsys)
    assert code == 2 and out == serial


def test_the_pool_does_not_fork_a_process_with_threads(monkeypatch):
    import sys
    import threading

    from lrdoctor.many import _start_method

    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.delitem(sys.modules, "jax", raising=False)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    assert _start_method() is None  # single-threaded: fork, the fastest start
    monkeypatch.setitem(sys.modules, "jax", object())  # JAX runs threads of its own
    assert _start_method().get_start_method() == "forkserver"


def _chunk_or_die(items, die_on):
    import os

    if die_on in items:
        os._exit(3)  # the worker process dies, as when the OOM killer takes it
    return [x * 10 for x in items]


def test_map_chunks_yields_each_chunk_once_and_a_dead_worker_is_an_error_not_a_crash():
    from lrdoctor.many import map_chunks

    items = list(range(10))
    serial = dict(map_chunks(_chunk_or_die, items, jobs=1, size=3, args=(-1,)))
    assert serial == {0: [0, 10, 20], 3: [30, 40, 50], 6: [60, 70, 80], 9: [90]}
    got = dict(map_chunks(_chunk_or_die, items, jobs=2, size=3, args=(-1,)))
    assert got == serial
    got = dict(map_chunks(_chunk_or_die, items, jobs=2, size=3, args=(4,)))
    assert isinstance(got[3], Exception)  # the chunk holding 4: its worker died
    assert set(got) == {0, 3, 6, 9}  # every chunk is answered, none twice (chunks that
    # were still waiting when the pool broke are errors too: BrokenProcessPool)


def _die_on_any(items, die_on):
    import os

    if set(items) & set(die_on):
        os._exit(3)  # the worker process dies on these items
    return [x * 10 for x in items]


@pytest.mark.parametrize("die_on", [(37,), (0, 61, 62, 99)])
def test_a_worker_that_dies_on_one_item_costs_that_item_alone(die_on):
    """With ``dead``, a dying worker costs only the item it died on: the chunks that had
    not begun run again whole, the ones in work are halved down to the item; each chunk
    is answered once, whole, in its place."""
    from lrdoctor.many import map_chunks

    items = list(range(100))
    got = dict(map_chunks(_die_on_any, items, jobs=2, size=8, args=(die_on,),
                          dead=lambda item, exc: ("dead", item, type(exc).__name__)))
    assert sorted(got) == list(range(0, 100, 8))
    flat = [r for k in sorted(got) for r in got[k]]
    assert flat == [("dead", x, "BrokenProcessPool") if x in die_on else 10 * x
                    for x in items]


class _Box:
    """A result a weak reference can follow."""

    def __init__(self, items):
        self.items = items


def _boxed(chunk):
    return _Box(list(chunk))


@pytest.mark.parametrize("on_executor", [False, True])
def test_map_chunks_keeps_no_result_it_has_handed_on(on_executor):
    """The parent's memory holds what its caller keeps, not every result of the pool: a
    result dropped by the caller is gone a chunk or two later, long before the pool's
    last chunk comes back."""
    import gc
    import weakref

    from lrdoctor.many import map_chunks

    items = list(range(12))
    pool = ThreadPoolExecutor(2) if on_executor else None
    seen = []
    try:
        for start, got in map_chunks(_boxed, items, jobs=2, size=2, executor=pool):
            assert got.items == items[start:start + 2]
            seen.append(weakref.ref(got))
            del got
            gc.collect()  # (the chunk in hand may still be a local of the generator)
            assert all(ref() is None for ref in seen[:-2])
    finally:
        if pool is not None:
            pool.shutdown()
    assert len(seen) == 6


def test_the_json_document_written_a_run_at_a_time_is_the_document(tmp_path):
    import io

    from lrdoctor.errors import LrDoctorError
    from lrdoctor import __version__
    from lrdoctor.render import _clean, json_document, write_json_document
    from lrdoctor.sweep import find_sweeps

    write_sweep(tmp_path, GRID)
    runs = [d for f in sorted(tmp_path.glob("*.csv")) for d in lrdoctor.analyze(f)]
    sweeps = find_sweeps(runs)
    assert sweeps and len(runs) > 2
    errors = [LrDoctorError("no loss column found \udcff\n", "a/b\udcfe.csv"),
              LrDoctorError("empty", "c.csv")]
    for args in ((runs, errors, sweeps), (runs, [], []), ([], [], []), (runs[:1], errors, [])):
        out = io.StringIO()
        write_json_document(out.write, *args)
        assert out.getvalue() == json_document(*args)
        json.loads(out.getvalue())
        d, e, s = args  # the text of json.dumps, indented, of the whole document
        assert out.getvalue() == json.dumps(_clean(
            {"lrdoctor": __version__, "runs": [r.to_dict() for r in d],
             "errors": [{"source": x.source, "message": x.message} for x in e],
             "sweeps": [w.to_dict() for w in s]}), indent=2, allow_nan=False)


def _records(tmp_path):
    """RunRecords (as the pool sends them) of two sweeps and a run without an LR."""
    from lrdoctor.many import analyze_log

    write_sweep(tmp_path / "a", GRID, seeds=(0, 1))
    write_sweep(tmp_path / "b", GRID, model="cnn", val=lambda lr: abs(np.log10(lr) + 3))
    (tmp_path / "b" / "plain.csv").write_text(
        "step,loss\n" + "".join(f"{i},{2 * 0.99 ** i + 0.1}\n" for i in range(300)))
    files = sorted(tmp_path.rglob("*.csv"))
    return [(i, r) for i, f in enumerate(files) for r in analyze_log(str(f)).runs]


class _FillingFile:
    """A temporary file on a disk that is full after ``room`` bytes."""

    def __init__(self, file, room):
        self.file, self.room = file, room

    def write(self, b):
        if self.file.tell() + len(b) > self.room:
            raise OSError(28, "No space left on device")
        return self.file.write(b)

    def __getattr__(self, name):
        return getattr(self.file, name)


@pytest.mark.parametrize("memory", [False, True, "no temporary folder", "disk full"])
def test_a_spool_gives_the_runs_and_sweeps_of_the_runs_kept_in_memory(tmp_path, memory,
                                                                        monkeypatch):
    """Added in any order, a Spool's runs come back in order, judged by the same sweeps
    (found a group at a time) as the same records judged in memory; on disk, it keeps no
    run object. Without a temporary file, or once the disk is full, the runs not written
    stay in memory, and the result is the same."""
    import gc
    import random
    import tempfile
    import weakref

    from lrdoctor.many import Spool
    from lrdoctor.sweep import find_sweeps

    if memory == "no temporary folder":
        def refused(*a, **kw):
            raise PermissionError(13, "Permission denied", "/tmp")
        monkeypatch.setattr(tempfile, "TemporaryFile", refused)
    elif memory == "disk full":
        real = tempfile.TemporaryFile
        monkeypatch.setattr(tempfile, "TemporaryFile",
                            lambda **kw: _FillingFile(real(**kw), 5_000))

    records = _records(tmp_path)
    want = [r for _, r in sorted(_records(tmp_path), key=lambda x: x[0])]
    want_sweeps = find_sweeps(want)
    assert len(want_sweeps) == 2 and any(r.sweep is None for r in want) and \
        sum(r.sweep is not None for r in want) > 10
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    spool = Spool(memory=memory is True)
    refs = []
    for i, r in shuffled:
        spool.add((i, 0), r)
        refs.append(weakref.ref(r))
    del records, shuffled, r
    gc.collect()
    kept = sum(ref() is not None for ref in refs)
    assert kept == {False: 0, True: len(refs), "no temporary folder": len(refs)}.get(
        memory, kept) and (memory != "disk full" or 0 < kept < len(refs))
    got_sweeps = spool.find_sweeps()
    assert [s.to_dict() for s in got_sweeps] == [s.to_dict() for s in want_sweeps]
    for _ in range(2):  # read twice (the text report does), the same both times
        got = list(spool)
        assert [d.to_dict() for d in got] == [d.to_dict() for d in want]
        assert [d.sweep is None for d in got] == [d.sweep is None for d in want]
    assert len(spool) == len(want)
    spool.close()


def test_the_text_report_written_a_run_at_a_time_is_the_report(tmp_path):
    import io

    from lrdoctor.render import text_report, write_text_report
    from lrdoctor.sweep import find_sweeps

    runs = [r for _, r in _records(tmp_path)]
    sweeps = find_sweeps(runs)
    for args in ((runs, sweeps), (runs, []), (runs[:2], []), (runs[:1], []), ([], [])):
        for color in (False, True):
            out = io.StringIO()
            write_text_report(out.write, args[0], color=color, sweeps=args[1])
            assert out.getvalue() == text_report(args[0], color=color, sweeps=args[1])
