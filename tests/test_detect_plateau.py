"""lrdoctor/detect/plateau.py: plateau and slow progress."""
import numpy as np

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
    assert "slow" in kinds(np.linspace(0.6, 0.2, 10))


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
    assert late_only(Curve(np.arange(1000), curves.healthy())) == []


def test_real_creeping_run_with_a_noisy_start_is_slow(shared):
    # friedman at 3e-5 (a third of the best run's progress): its first points sit below the
    # starting level, so only the second-half share tells
    p = shared / "benchmarks/lr_sweeps/runs/friedman_mlp__constant__lr3e-05__s2.csv"
    [d] = lrdoctor.analyze(p)
    assert d.verdict == "too_low" and any("late_share" in f.evidence for f in d.findings)
