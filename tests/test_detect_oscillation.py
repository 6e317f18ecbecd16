"""lrdoctor/detect/oscillation.py."""
import numpy as np
import pytest

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


@pytest.mark.parametrize("n, nperseg", [(1000, 256), (257, 256), (100, 100), (99, 31), (40, 32)])
def test_welch_spectrum_equals_scipys(n, nperseg):
    from scipy.signal import welch as scipy_welch

    from lrdoctor.detect.oscillation import welch

    x = np.random.default_rng(n).normal(size=n) + np.sin(np.arange(n) / 5)
    f, p = welch(x, nperseg)
    f_ref, p_ref = scipy_welch(x, nperseg=nperseg)
    np.testing.assert_allclose(f, f_ref)
    np.testing.assert_allclose(p, p_ref, rtol=1e-10, atol=1e-14)
