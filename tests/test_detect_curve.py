"""lrdoctor/detect/_curve.py: the shared statistics every detector reads."""
import numpy as np
import pytest

from lrdoctor.detect import Curve

import curves
from curves import kinds


def test_long_curves_are_binned_but_keep_their_extremes():
    x = curves.healthy(500_000, seed=3)
    x[250_000] = 1e6
    c = Curve(steps=np.arange(len(x)), values=x)
    assert c.n_bins <= 4096 + 1
    assert c.bin_max.max() == 1e6
    assert "spike" in kinds(x)


@pytest.mark.parametrize("n,spikes", [(3000, 5), (100_000, 7), (100_000, 20_000),
                                      (400_000, 7), (400_000, 20_000)])
def test_points_over_scans_only_bins_that_can_hold_them(n, spikes):
    rng = np.random.default_rng(1)
    x = curves.healthy(n=n)
    x[rng.choice(n, spikes, replace=False)] *= 30
    c = Curve(np.arange(n), x)
    for limit in (float(np.quantile(x, 0.999)), c.from_z(c.trend + 1.0)):
        per_point = limit if np.ndim(limit) == 0 else np.repeat(limit, c.bin_size)[:n]
        truth = np.flatnonzero(x > per_point)
        got = c.points_over(limit)
        if c.summary.stride == 1:  # the bins keep every point: exact
            np.testing.assert_array_equal(got, truth)
        else:  # a sample of each bin, and its max: only points truly over, every bin seen
            assert np.isin(got, truth).all()
            np.testing.assert_array_equal(np.unique(got // c.bin_size),
                                          np.unique(truth // c.bin_size))


def test_running_median_by_selection_equals_numpys_median():
    from lrdoctor.detect._curve import running_median

    rng = np.random.default_rng(3)
    for n, w in [(7, 3), (100, 5), (1000, 51), (4096, 205)]:
        z = rng.standard_t(3, n).cumsum()
        h = w // 2
        padded = np.concatenate((np.full(h, z[0]), z, np.full(h, z[-1])))
        ref = np.median(np.lib.stride_tricks.sliding_window_view(padded, w), axis=1)
        assert np.array_equal(running_median(z, w), ref)
    z[5] = np.nan  # NaN goes through np.median, which propagates it
    assert np.isnan(running_median(z, 5)[3:8]).all()
