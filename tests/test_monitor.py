"""lrdoctor.Monitor: streaming equals batch on every prefix, a non-finite loss re-diagnoses at
once, the buffers grow geometrically, and a callback's internal error becomes one warning."""
import math
import warnings

import numpy as np
import pytest

import lrdoctor
from lrdoctor import Monitor
from lrdoctor.callbacks import LrDoctorWarning, Watch


def _write_csv(path, steps, loss, lr):
    """A log of the prefix, as ``lrdoctor analyze`` reads it (floats written exactly)."""
    rows = ["step,loss" + (",lr" if lr is not None else "")]
    for i in range(len(steps)):
        cells = [repr(float(steps[i])) if steps[i] != int(steps[i]) else str(int(steps[i])),
                 repr(float(loss[i]))]
        if lr is not None:
            cells.append("" if math.isnan(lr[i]) else repr(float(lr[i])))
        rows.append(",".join(cells))
    path.write_text("\n".join(rows) + "\n")


def _answer(d):
    return (d.verdict, [(f.kind, f.start, f.end, round(f.severity, 3)) for f in d.findings],
            d.recommendation.action, d.recommendation.suggested_lr)


def _columns(path):
    d = lrdoctor.analyze(path)[0]
    h = d.history
    lr = h.columns["lr"]
    if lr is not None:
        lr = lr[h.columns["logged"]]
        lr = None if np.isnan(lr).all() else lr
    return h.logged_steps, h.logged_loss, lr


def _check_prefixes(path, tmp_path, rng, cuts):
    steps, loss, lr = _columns(path)
    n = len(loss)
    if n < 2:
        return 0
    every = int(rng.integers(1, max(2, n // 3) + 1))
    mon = Monitor(every=every)
    ks = sorted(set(int(k) for k in rng.integers(1, n + 1, cuts)) | {n})
    done = 0
    for k in ks:
        while mon.n_points < k:
            i = mon.n_points
            d = mon.update(steps[i], loss[i], None if lr is None else lr[i])
        got = mon.diagnosis()
        _write_csv(tmp_path / "prefix.csv", steps[:k], loss[:k],
                   None if lr is None else lr[:k])
        [batch] = lrdoctor.analyze(tmp_path / "prefix.csv")
        assert _answer(got) == _answer(batch), f"{path} cut at {k} of {n} points"
        done += 1
    return done


def test_streaming_equals_batch_on_random_prefixes_of_the_real_logs(shared, tmp_path):
    rng = np.random.default_rng(11)
    import csv

    with open(shared / "real_logs" / "MANIFEST.csv") as f:
        files = [shared / "real_logs" / r["file"] for r in csv.DictReader(f)]
    assert len(files) >= 20
    checked = sum(_check_prefixes(p, tmp_path, rng, 4) for p in files)
    assert checked >= 40


def test_streaming_equals_batch_on_random_prefixes_of_the_benchmark_sweeps(shared, tmp_path):
    rng = np.random.default_rng(12)
    runs = sorted((shared / "benchmarks/lr_sweeps/runs").glob("*.csv"))
    picked = [runs[i] for i in rng.choice(len(runs), 40, replace=False)]
    assert sum(_check_prefixes(p, tmp_path, rng, 3) for p in picked) >= 100


def test_update_returns_a_diagnosis_every_n_points():
    mon = Monitor(every=10)
    got = [mon.update(s, 2.0 * 0.98 ** s, lr=1e-3) for s in range(35)]
    assert [i for i, d in enumerate(got) if d is not None] == [9, 19, 29]
    assert got[29].history.logged_steps[-1] == 29


def test_a_nonfinite_loss_rediagnoses_at_once_and_once_per_streak():
    mon = Monitor(every=100)
    for s in range(20):
        assert mon.update(s, 1.0 / (s + 1)) is None
    d = mon.update(20, float("nan"))
    assert d is not None and d.verdict == "too_high"
    assert [f.kind for f in d.findings if f.kind == "nonfinite"] == ["nonfinite"]
    assert mon.update(21, float("inf")) is None  # the same streak
    assert mon.update(22, 0.5) is None
    assert mon.update(23, float("nan")) is not None  # a new streak


def test_buffers_grow_geometrically_and_keep_every_point():
    mon = Monitor(every=10**9)
    caps = set()
    for s in range(5000):
        mon.update(s, 1.0, lr=0.1 if s % 2 else None)
        caps.add(mon.capacity)
    assert sorted(caps) == [1024, 2048, 4096, 8192]  # log2(n) reallocations, not n
    h = mon.diagnosis().history
    assert len(h.logged_loss) == 5000 and np.isnan(h.columns["lr"][::2]).all()


def test_monitor_arguments_are_checked():
    with pytest.raises(ValueError, match="every"):
        Monitor(every=0)
    with pytest.raises(ValueError, match="context"):
        Monitor(context="pretrain")
    with pytest.raises(ValueError, match="stop_on"):
        Watch(stop_on=("nan",))
    with pytest.raises(TypeError, match="loss must be a number.*NoneType"):
        Monitor().update(0, None)


def test_an_internal_error_becomes_one_warning_and_turns_the_callback_off(monkeypatch):
    w = Watch(every=5)

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(w.monitor, "diagnosis", broken)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        stops = [w.record(s, 1.0) for s in range(20)]
        w.finish()
    msgs = [str(r.message) for r in rec if issubclass(r.category, LrDoctorWarning)]
    assert len(msgs) == 1 and "boom" in msgs[0] and "turned itself off" in msgs[0]
    assert not any(stops) and not w.active and w.monitor.n_points == 5


def test_a_warning_per_change_of_verdict_with_the_advice():
    w = Watch(every=10, stop_on="nonfinite")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        stops = [w.record(s, 2.0 * 0.97 ** s, 1e-3) for s in range(60)]
        stops.append(w.record(60, float("nan"), 1e-3))
    msgs = [str(r.message) for r in rec if issubclass(r.category, LrDoctorWarning)]
    assert stops[-1] and not any(stops[:-1]) and w.stopped_by_.kind == "nonfinite"
    assert len(msgs) == len(set(msgs)) and "LR too high" in msgs[-1]
    assert "nonfinite: loss becomes NaN at step 60" in msgs[-1] and "lower 5-10x" in msgs[-1]
