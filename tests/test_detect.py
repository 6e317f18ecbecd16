import numpy as np
import pytest

import lrdoctor
from lrdoctor import detect
from lrdoctor.detect import Curve

import curves


def kinds(x, **kw):
    c = Curve(steps=np.arange(len(x)), values=np.asarray(x, float))
    return {f.kind: f for f in detect.run(c, detect.default_detectors(**kw))}


def test_healthy_curve_has_no_findings():
    assert kinds(curves.healthy()) == {}


def test_nonfinite_reports_first_step_and_count():
    f = kinds(curves.with_nan())["nonfinite"]
    assert f.start == 600
    assert f.evidence["count"] == 400
    assert f.end is None  # still non-finite at the end of the log
    assert "NaN at step 600" in f.message


def test_explosion_found_where_it_starts():
    f = kinds(curves.exploding())["explosion"]
    assert 300 <= f.start <= 303  # where it passes 5x the start
    assert f.evidence["ratio"] > 100


def test_divergence_stays_open_to_the_end():
    f = kinds(curves.diverging())["divergence"]
    assert f.end is None
    assert 500 <= f.start <= 800


def test_oscillation_told_apart_from_minibatch_noise():
    assert "oscillation" in kinds(curves.oscillating())
    # heavy multiplicative noise on a healthy curve is not an oscillation
    assert "oscillation" not in kinds(curves.healthy(noise=0.3))


def test_heavy_scatter_on_a_slow_run_is_not_oscillation():
    # the scatter is ~0.6x of the small drop, but only ~15% of the loss level
    x = curves.slow_noisy()
    assert "oscillation" not in kinds(x)
    assert "oscillation" in kinds(x, oscillation=detect.Oscillation(min_relative=0.05))


def test_spikes_counted_and_robust_to_heavy_tailed_noise():
    f = kinds(curves.spiky())["spike"]
    assert f.evidence["count"] == len(range(100, 2000, 50))
    rng = np.random.default_rng(1)
    x = curves.healthy(2000) * np.exp(0.05 * rng.standard_t(3, 2000))
    assert "spike" not in kinds(x) or kinds(x)["spike"].severity < 0.5


def test_plateau_and_slow_told_apart():
    assert "plateau" in kinds(curves.flat())
    got = kinds(curves.slow())
    assert "slow" in got and "plateau" not in got


def test_thresholds_are_parameters():
    x = curves.spiky(every=400)
    assert "spike" in kinds(x)
    assert "spike" not in kinds(x, spikes=detect.Spikes(min_ratio=100))
    with pytest.raises(TypeError):
        detect.default_detectors(nonsense=detect.Spikes())


def test_prefix_gives_same_answer_as_batch_of_that_prefix():
    # the live monitor's contract: a detector on a prefix sees only the prefix
    x = curves.exploding()
    full = lrdoctor.diagnose(x[:400])
    again = lrdoctor.diagnose(np.concatenate([x[:400]]))
    assert full.to_dict() == again.to_dict()
    assert full.verdict == "too_high"


def test_long_curves_are_binned_but_keep_their_extremes():
    x = curves.healthy(500_000, seed=3)
    x[250_000] = 1e6
    c = Curve(steps=np.arange(len(x)), values=x)
    assert c.n_bins <= 4096 + 1
    assert c.bin_max.max() == 1e6
    assert "spike" in kinds(x)


def test_slow_needs_more_than_the_logs_time_resolution():
    # a 10-epoch log whose loss halves by the second epoch is not slow
    x = np.array([0.6, 0.27, 0.25, 0.23, 0.2, 0.28, 0.22, 0.15, 0.157, 0.165])
    assert "slow" not in kinds(x)
    assert "slow" in kinds(np.linspace(0.6, 0.2, 10))


def test_lone_spike_late_is_not_an_explosion_but_one_at_the_first_update_is():
    x = curves.healthy(5000)
    x[3000] = 50.0  # one bad minibatch, the loss returns to its trend at once
    assert "explosion" not in kinds(x)
    x = curves.flat(800, noise=0.005)
    x[1] = 45.0  # the first update overshoots and leaves the network stuck at chance
    assert "explosion" in kinds(x)


def test_lone_blow_up_that_leaves_the_run_stuck_is_an_explosion():
    x = curves.healthy(800)
    x[40] = 20.0
    x[41:] = 2.3 * np.exp(np.random.default_rng(2).normal(0, 0.005, 759))
    assert "explosion" in kinds(x)


@pytest.mark.parametrize("n,spikes", [(3000, 5), (200_000, 7), (200_000, 20_000)])
def test_points_over_scans_only_bins_that_can_hold_them(n, spikes):
    rng = np.random.default_rng(1)
    x = curves.healthy(n=n)
    x[rng.choice(n, spikes, replace=False)] *= 30
    c = Curve(np.arange(n), x)
    for limit in (float(np.quantile(x, 0.999)), c.from_z(c.trend + 1.0)):
        per_point = limit if np.ndim(limit) == 0 else np.repeat(limit, c.bin_size)[:n]
        np.testing.assert_array_equal(c.points_over(limit), np.flatnonzero(x > per_point))


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
