"""lrdoctor/detect/oscillation.py."""
from lrdoctor import detect

import curves
from curves import kinds


def test_oscillation_told_apart_from_minibatch_noise():
    assert "oscillation" in kinds(curves.oscillating())
    # heavy multiplicative noise on a healthy curve is not an oscillation
    assert "oscillation" not in kinds(curves.healthy(noise=0.3))


def test_heavy_scatter_on_a_slow_run_is_not_oscillation():
    # the scatter is ~0.6x of the small drop, but only ~15% of the loss level
    x = curves.slow_noisy()
    assert "oscillation" not in kinds(x)
    assert "oscillation" in kinds(x, oscillation=detect.Oscillation(min_relative=0.05))
