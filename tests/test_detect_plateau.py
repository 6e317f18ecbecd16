"""lrdoctor/detect/plateau.py: plateau and slow progress."""
import numpy as np
import pandas as pd

import lrdoctor
from lrdoctor import detect
from lrdoctor.detect import Curve

import curves
from curves import kinds


def test_plateau_and_slow_told_apart():
    assert "plateau" in kinds(curves.flat())
    got = kinds(curves.slow())
    assert "slow" in got and "plateau" not in got


def test_slow_needs_more_than_the_logs_time_resolution():
    # a 10-epoch log whose loss halves by the second epoch is not slow
    x = np.array([0.6, 0.27, 0.25, 0.23, 0.2, 0.28, 0.22, 0.15, 0.157, 0.165])
    assert "slow" not in kinds(x)
    # (a 10-point straight line is not judged either: too few points for the pace)
    assert "slow" not in kinds(np.linspace(0.6, 0.2, 10))
    assert "slow" in kinds(np.linspace(0.6, 0.2, 60))


def test_fast_first_transient_then_a_creep_is_slow():
    # the first few updates drop the loss a little (output bias), then it creeps down in a
    # straight line: most of the drop came late
    rng = np.random.default_rng(3)
    n = 800
    x = np.r_[np.linspace(1.05, 0.95, 8), np.linspace(0.95, 0.62, n - 8)]
    x = x * np.exp(rng.normal(0, 0.12, n))
    late_only = detect.Progress(slow_half=1.0)  # the half-time test switched off
    [f] = late_only(Curve(np.arange(n), x))
    assert f.kind == "slow" and f.evidence["late_share"] > 0.3
    assert lrdoctor.diagnose(x, lr=3e-5).verdict == "too_low"
    # a healthy run's second half holds little of its drop
    assert "slow" not in [f.kind for f in late_only(Curve(np.arange(1000), curves.healthy()))]


def test_real_creeping_run_with_a_noisy_start_is_slow(shared):
    # friedman at 3e-5 (a third of the best run's progress): its first points sit below the
    # starting level, and its last ones scatter widely: read against the median of its
    # last 5%, half of its drop took 41% of the run
    p = shared / "benchmarks/lr_sweeps/runs/friedman_mlp__constant__lr3e-05__s2.csv"
    [d] = lrdoctor.analyze(p)
    assert d.verdict == "too_low" and [f.kind for f in d.findings] == ["slow"]


def _curve(x, lr):
    return Curve(steps=np.arange(len(x)), values=np.asarray(x, float), lr=np.asarray(lr))


def test_not_slow_while_the_lr_is_still_warming_up():
    # the log ends inside a linear warmup: the peak LR was never reached
    n = 300
    x = curves.slow(n)
    assert "slow" in kinds(x)  # the same curve without an LR is slow
    lr = np.linspace(1e-6, 2.5e-4, n)
    assert not any(f.kind == "slow" for f in detect.run(_curve(x, lr)))


def test_not_slow_when_progress_waits_for_the_schedule():
    # warmup, a long stall at the peak, and a fall only as the LR decays
    rng = np.random.default_rng(0)
    n = 600
    t = np.arange(n) / n
    share = np.where(t < 0.1, t / 0.1, np.where(t < 0.5, 1.0, 1.0 - 1.6 * (t - 0.5)))
    # down to 2.5 early in the warmup, then a fall as the LR decays below 90% of its peak
    level = np.where(t < 0.05, 3.0 - 10 * t,
                     np.where(t < 0.5, 2.5, 2.5 - 2.0 * np.maximum(0, 0.9 - share)))
    lr = share * 3e-2
    x = level * np.exp(rng.normal(0, 0.01, n))
    found = detect.run(_curve(x, lr))
    assert not any(f.kind == "slow" for f in found)
    [f] = [f for f in found if f.kind == "schedule_bound"]
    assert 50 <= f.start <= 70 and 430 <= f.evidence["decayed_step"] <= 470
    d = lrdoctor.diagnose(pd.DataFrame({"step": np.arange(n), "loss": x, "lr": lr}))
    assert d.verdict == "ok" and any("1/3 of the peak (0.01)" in n
                                      for n in d.recommendation.notes)
    # the same loss at one constant LR is slow: nothing else set its pace
    assert any(f.kind == "slow" for f in detect.run(_curve(x, np.full(n, 3e-2))))


def test_a_slow_run_under_a_schedule_is_still_slow():
    # a steady creep that does not stall at the peak: the schedule does not explain it
    n = 600
    t = np.arange(n) / n
    lr = np.where(t < 0.05, t / 0.05, 0.5 * (1 + np.cos(np.pi * (t - 0.05) / 0.95))) * 1e-5
    assert any(f.kind == "slow" for f in detect.run(_curve(curves.slow(n), lr)))


def test_the_pace_is_not_judged_on_a_short_log():
    # 30 points creeping down in a straight line: too few to judge the pace of progress
    x = curves.slow(30)
    assert "slow" not in kinds(x) and "slow" in kinds(curves.slow(60))
    d = lrdoctor.diagnose(x)
    assert d.verdict == "ok" and any("too few to judge the pace" in n for n in d.notes)
    # a flat loss is still judged
    assert lrdoctor.diagnose(curves.flat(30)).verdict == "too_low"


def _floor_curve(n=1000, seed=0):
    """A fast drop onto a level reached by a tenth of the run, then flat with noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / n
    return (1.9 + 2.7 * np.exp(-t / 0.02)) * np.exp(rng.normal(0, 0.06, n))


def test_a_fast_drop_onto_a_floor_is_found():
    [f] = detect.Progress()(Curve(np.arange(1000), _floor_curve()))
    assert f.kind == "floor" and f.evidence["early_share"] >= 0.8
    assert f.evidence["late_share"] < 0.2
    # still falling through the run (in log space) is no floor, nor is a slow creep
    t = np.arange(1000) / 1000
    falling = (1.9 * (1 - 0.5 * t) + 2.7 * np.exp(-t / 0.02))
    assert "floor" not in kinds(falling)
    assert "floor" not in kinds(curves.slow())


def test_a_floor_above_the_rules_range_is_too_high_and_inside_it_is_evidence_only():
    x = _floor_curve()
    high = lrdoctor.diagnose(x, lr=0.1)
    assert high.verdict == "too_high" and high.recommendation.action == "lower"
    assert "floor" in high.recommendation.rule
    assert [f.kind for f in high.findings] == ["floor"]
    fine = lrdoctor.diagnose(x, lr=1e-3)
    # inside the range an early convergence and a stuck plateau look the same: keep, no
    # finding listed as a fault, and the cheapest way to know named
    assert fine.verdict == "ok" and fine.findings == []
    assert any("floor" in n and "run 3x and 1/3x" in n for n in fine.recommendation.notes)


def test_a_flat_noisy_run_whose_last_points_run_high_is_a_plateau():
    # the trend's last value is padded from the last bin; the end level is the median of
    # the last 5% of points, so a noisy flat run still reads as flat
    rng = np.random.default_rng(5)
    x = 600 * np.exp(rng.normal(0, 0.11, 600))
    x[-4:] = 760
    [f] = detect.Progress()(Curve(np.arange(600), x))
    assert f.kind == "plateau" and abs(f.evidence["progress"]) < 0.1


def test_a_noisy_late_creep_is_train_longer_not_raise():
    # a straight creep over two decades: most of its drop comes late (the half-time test
    # switched off, so the late share decides)
    det = detect.default_detectors()
    det["progress"] = detect.Progress(slow_half=1.0)
    n = 1000
    x = np.r_[np.linspace(1.05, 0.95, 8), np.linspace(0.95, 0.03, n - 8)]
    quiet = lrdoctor.diagnose(x * np.exp(np.random.default_rng(2).normal(0, 0.1, n)),
                              lr=1e-3, detectors=det)
    assert quiet.verdict == "too_low"
    noisy = lrdoctor.diagnose(x * np.exp(np.random.default_rng(2).normal(0, 0.55, n)),
                              lr=1e-3, detectors=det)
    assert noisy.verdict == "ok" and noisy.recommendation.action == "keep"
    assert any("train longer" in n for n in noisy.notes)
