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


def test_memory_is_bounded_by_the_summary_not_the_run():
    mon = Monitor(every=1000)
    rng = np.random.default_rng(0)
    n = 300_000
    loss = 2.0 * np.exp(-np.arange(n) / 5e4) + 0.1 * rng.random(n) + 0.1
    for s in range(n):
        mon.update(s, loss[s], lr=1e-3)
        assert len(mon._steps) < mon.every  # the pending points: flushed at each diagnosis
    st = mon.stream
    assert st.ramp is None  # a constant LR past RAMP_KEEP points: no raw rows kept
    s = st.current().summary  # with the rows at the last step (they wait for the next)
    assert s.n == n and s.m <= 4096 and len(s.t_x) < s.w and s.samp.shape == (4096, 32)
    d = mon.diagnosis()
    assert d.to_dict()["n_points"] == n and d.to_dict()["last_step"] == n - 1
    assert len(d.history.logged_steps) <= 4097 * 32


def _summary_state_equal(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _summary_state_equal(a[k], b[k])
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b or (a != a and b != b), (a, b)


@pytest.mark.parametrize("n", [7, 4096, 4097, 8194, 70_000, 300_001])
def test_summary_built_in_chunks_equals_the_summary_built_at_once(n):
    from lrdoctor.detect._summary import Summary

    rng = np.random.default_rng(n)
    x = np.exp(-np.arange(n) / n) + 0.1 * rng.random(n)
    x[rng.choice(n, max(1, n // 1000))] *= 50  # spikes
    if n > 100:
        x[n - n // 7] = np.nan  # the finite prefix ends; counted after
        x[n - n // 9] = np.inf
    steps = np.arange(n) * 2
    lr = np.where(rng.random(n) < 0.3, np.nan, 1e-3 * (1 + np.arange(n) % 5))
    g = np.where(rng.random(n) < 0.5, np.nan, rng.random(n) + 0.5)
    g[rng.random(n) < 0.01] = np.inf
    once = Summary.of(steps, x, lr, g)
    grown = Summary()
    i = 0
    while i < n:
        k = int(rng.integers(1, max(2, n // 5)))
        grown.extend(steps[i:i + k], x[i:i + k], lr[i:i + k], g[i:i + k])
        i += k
    _summary_state_equal(once.state(), grown.state())
    # the answer of every detector is the same too
    from lrdoctor import detect

    a = detect.run(detect.Curve(summary=once))
    b = detect.run(detect.Curve(summary=grown))
    assert [(f.kind, f.start, f.end, f.severity, f.message) for f in a] == \
        [(f.kind, f.start, f.end, f.severity, f.message) for f in b]


def test_streaming_equals_batch_on_random_prefixes_of_long_runs():
    # past MAX_BINS * SAMPLE points the bins keep a sample: still the batch answer
    from lrdoctor.diagnosis import diagnose_history
    from lrdoctor.history import from_columns

    rng = np.random.default_rng(5)
    n = 200_000
    t = np.arange(n)
    loss = 2.5 * np.exp(-t / 3e4) + 0.2 + 0.05 * rng.standard_normal(n)
    loss[rng.choice(n, 40, replace=False)] *= 40  # spikes
    loss[150_000:150_300] *= 20  # a blow-up that comes back
    loss[190_000] = np.nan
    lr = np.minimum(1e-3, 1e-3 * (t + 1) / 2000)  # warmup
    mon = Monitor(every=7919)
    cuts = sorted({int(k) for k in rng.integers(100, n, 5)} | {n})
    for k in cuts:
        while mon.n_points < k:
            i = mon.n_points
            mon.update(int(t[i]), loss[i], lr[i])
        got = mon.diagnosis()
        batch = diagnose_history(from_columns(t[:k], loss[:k], lr=lr[:k], run="run",
                                              source="run"))
        assert _answer(got) == _answer(batch), f"cut at {k}"


def test_range_tests_streamed_equal_batch(shared, tmp_path):
    rng = np.random.default_rng(13)
    runs = sorted((shared / "benchmarks/range_tests/runs").glob("*.csv"))
    picked = [runs[i] for i in rng.choice(len(runs), 6, replace=False)]
    assert sum(_check_prefixes(p, tmp_path, rng, 3) for p in picked) >= 12
    [d] = lrdoctor.analyze(picked[0])
    mon = Monitor(every=10**9)
    for s, v, r in zip(*_columns(picked[0])):
        mon.update(s, v, r)
    assert mon.diagnosis().verdict == d.verdict == "range_test"


def test_writes_in_a_row_at_one_step_are_spread_as_in_a_log(tmp_path):
    steps = np.repeat(np.arange(40), 3)  # three losses logged at every step
    loss = 2.0 * 0.99 ** np.arange(len(steps))
    mon = Monitor(every=7)
    for s, v in zip(steps, loss):
        mon.update(int(s), v, 1e-3)
    got = mon.diagnosis()
    _write_csv(tmp_path / "p.csv", steps, loss, np.full(len(steps), 1e-3))
    [batch] = lrdoctor.analyze(tmp_path / "p.csv")
    assert _answer(got) == _answer(batch) and got.notes == batch.notes
    assert any("written in a row" in n for n in got.notes)
    assert got.to_dict()["n_points"] == batch.to_dict()["n_points"] == 120


def test_a_step_that_goes_back_is_refused_in_one_line():
    from lrdoctor.monitor import StepsWentBack

    mon = Monitor(every=5)
    for s in range(10):
        mon.update(s, 1.0)
    with pytest.raises(StepsWentBack, match="step 3 comes after step 9"):
        mon.update(3, 1.0)


class _Clock:
    """A stand-in for ``time`` in lrdoctor.monitor: each step takes ``step`` seconds of
    training, each re-diagnosis ``rediagnosis`` seconds."""

    def __init__(self, step, rediagnosis):
        self.now, self.step, self.rediagnosis = 0.0, step, rediagnosis

    def perf_counter(self):
        return self.now


def _paced_run(monkeypatch, step, n=12_000, every=None, nan_at=None):
    """The points at which a Monitor re-diagnosed a run of ``n`` steps on a clock where each
    step takes ``step`` seconds and a re-diagnosis 1 ms."""
    import lrdoctor.monitor as M

    clock = _Clock(step, 1e-3)
    monkeypatch.setattr(M, "time", clock)
    mon = Monitor(every)
    made, diagnosis = [], mon.diagnosis

    def timed():
        clock.now += clock.rediagnosis
        made.append(mon.n_points)
        return diagnosis()

    mon.diagnosis = timed
    loss = 2.0 * np.exp(-np.arange(n) / 3000) + 0.1
    if nan_at is not None:
        loss[nan_at] = np.nan
    for k in range(n):
        clock.now += step
        mon.update(k, float(loss[k]), 1e-3)
    return made


def test_default_cadence_keeps_rediagnoses_under_a_quarter_percent_of_the_time(
        monkeypatch):
    # steps of 10 ms: 250 of them take 2.5 s, 2,500 re-diagnoses: every 250 steps
    assert _paced_run(monkeypatch, 10e-3) == list(range(250, 12_001, 250))
    # steps of 0.2 ms: 250 take 50 ms; a re-diagnosis waits 400 ms after the last one
    made = _paced_run(monkeypatch, 2e-4)
    assert np.all(np.abs(np.diff(made) - 2000) <= 1) and made[0] == 250
    assert len(made) * 1e-3 <= 0.0025 * 12_000 * 2e-4 + 1e-3
    # steps of 1 us: never more than 4,000 steps apart
    assert _paced_run(monkeypatch, 1e-6) == [250, 4250, 8250]
    # a given ``every`` is kept exactly, however short the steps
    assert _paced_run(monkeypatch, 1e-6, every=250) == list(range(250, 12_001, 250))


def test_paced_cadence_still_tells_a_nonfinite_loss_at_once(monkeypatch):
    made = _paced_run(monkeypatch, 2e-4, nan_at=3_000)
    assert 3_001 in made  # the point count when the NaN is recorded


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


# ------------------------------------------------------- the re-diagnosis's faster paths
def test_running_median_through_scipy_equals_the_selection_it_replaces(monkeypatch):
    # a Stream loads scipy.ndimage and the trend then goes through its median_filter:
    # the same numbers, whole or from a start, on ties, short curves and wide windows
    import sys

    import scipy.ndimage  # noqa: F401

    from lrdoctor.detect._curve import running_median

    rng = np.random.default_rng(21)
    cases = []
    for i in range(400):
        n = int(rng.integers(1, 500))
        z = (rng.standard_t(3, n).cumsum() if i % 3 == 0 else
             rng.integers(0, 4, n).astype(float) if i % 3 == 1 else np.round(rng.random(n), 2))
        cases.append((z, int(rng.integers(1, 80)) | 1, int(rng.integers(0, n + 1))))
    fast = [running_median(z, w, start) for z, w, start in cases]
    monkeypatch.delitem(sys.modules, "scipy.ndimage")
    for (z, w, start), got in zip(cases, fast):
        ref = running_median(z, w, start)
        assert got.shape == ref.shape and np.array_equal(got, ref), (len(z), w, start)


def test_median_and_robust_scale_equal_numpys():
    from lrdoctor.detect._summary import median, robust_scale

    rng = np.random.default_rng(22)
    for i in range(3000):
        n = int(rng.integers(1, 50)) if i % 10 else int(rng.integers(50, 20_000))
        a = rng.standard_normal(n) if i % 4 < 2 else rng.integers(0, 5, n).astype(float)
        if i % 4 == 3 and n > 2:
            a[rng.integers(0, n)] = np.nan if i % 8 == 3 else np.inf
        ref = float(np.median(a))
        got = median(a)
        assert got == ref or (np.isnan(got) and np.isnan(ref)), (n, ref, got)
        ref = float(1.4826 * np.median(np.abs(a - np.median(a))))
        got = robust_scale(a, 1.4826)
        assert got == ref or (np.isnan(got) and np.isnan(ref)), (n, ref, got)
    a = np.array([3.0, 1.0, 2.0])
    median(a)
    assert a.tolist() == [3.0, 1.0, 2.0]  # the input is left as it was


@pytest.mark.parametrize("n", [1, 33, 4097, 8193, 140_001, 300_007])
def test_summary_points_are_the_points_at_the_multiples_of_their_stride(n):
    # the kept points sit at every multiple of the bins' stride, so the points of a span
    # are those of its positions that are multiples of t: the raw points there
    from lrdoctor.detect._summary import Summary

    rng = np.random.default_rng(n)
    x = rng.random(n) + 0.1
    st = np.arange(n) * 3 + 7
    s = Summary()
    for part in np.array_split(np.arange(n), 5):
        s.extend(st[part], x[part])
    for _ in range(100):
        lo = int(rng.integers(-3, n + 3))
        hi = int(rng.integers(lo, n + 5))
        most = int(rng.choice([1, 3, 100, 16384, 1 << 40]))
        pos, val, stp = s.points(lo, hi, most)
        a, b = max(0, lo), min(n, hi)
        t = s.stride
        while -(-(b - a) // t) > most:
            t *= 2
        want = np.arange(-(-a // t) * t, b, t)
        assert np.array_equal(pos, want) and pos.dtype == np.int64
        assert np.array_equal(val, x[want]) and np.array_equal(stp, st[want])
        assert stp.dtype == st.dtype or not len(stp)


def test_a_jump_far_above_the_level_rediagnoses_at_once_and_is_told_there():
    # every=250 would wait; a loss jumping past 3x its start and its level does not
    mon = Monitor(every=250)
    loss = [2.0 * 0.99 ** s for s in range(300)]
    got = [mon.update(s, v, lr=1e-3) for s, v in enumerate(loss)]
    assert [i for i, d in enumerate(got) if d is not None] == [249]  # no jump: on schedule
    ds = [mon.update(300 + k, v, lr=1e-3) for k, v in enumerate([40.0, 60.0, 80.0, 90.0])]
    assert ds[0] is not None and ds[1] is not None  # the first two points of the jump
    assert ds[2] is None and ds[3] is None  # then the schedule again
    assert ds[1].verdict == "too_high"
    assert [f.kind for f in ds[1].findings if f.kind == "explosion"] == ["explosion"]
    assert mon.update(304, 0.3, lr=1e-3) is None
    assert mon.update(305, 50.0, lr=1e-3) is not None  # a new jump


def test_a_jump_in_the_first_steps_is_told_before_the_first_scheduled_diagnosis():
    mon = Monitor(every=250)
    for s in range(30):
        assert mon.update(s, 2.3 - 0.01 * s + 0.02 * (s % 3), lr=1.0) is None
    assert mon.update(30, 30.0, lr=1.0) is not None  # > 3x the first loss
    d = mon.update(31, 40.0, lr=1.0)
    assert d is not None and d.verdict == "too_high"
    assert [f.kind for f in d.findings] == ["explosion"]


def test_noise_and_spikes_below_the_jump_wait_for_the_schedule():
    rng = np.random.default_rng(3)
    loss = 2.0 * np.exp(-np.arange(2000) / 400) + 0.3 + 0.1 * rng.standard_normal(2000)
    loss[1200] *= 2.5  # a spike, under 3x the start: the schedule tells it
    mon = Monitor(every=250)
    got = [mon.update(s, v) for s, v in enumerate(loss)]
    assert [i for i, d in enumerate(got) if d is not None] == list(range(249, 2000, 250))
