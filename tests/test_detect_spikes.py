"""lrdoctor/detect/spikes.py."""
import numpy as np

import lrdoctor

import curves
from curves import kinds


def test_spikes_counted_and_robust_to_heavy_tailed_noise():
    f = kinds(curves.spiky())["spike"]
    assert f.evidence["count"] == len(range(100, 2000, 50))
    rng = np.random.default_rng(1)
    x = curves.healthy(2000) * np.exp(0.05 * rng.standard_t(3, 2000))
    assert "spike" not in kinds(x) or kinds(x)["spike"].severity < 0.5


def _with_spikes(x, at, width=1, factor=50.0):
    x = x.copy()
    for a in at:
        x[a:a + width] *= factor
    return x


def test_one_or_two_isolated_spikes_are_events_not_a_pattern():
    # a short log (40 points) with two single-point spikes that are back on the trend at
    # once, and one lasting two points: no verdict from spikes however high the rate
    x = _with_spikes(curves.healthy(40, rate=5), [12, 25])
    assert kinds(x)["spike"].severity < 0.5
    x = _with_spikes(curves.healthy(40, rate=5), [12], width=2)
    assert kinds(x)["spike"].severity < 0.5
    d = lrdoctor.diagnose(_with_spikes(curves.healthy(40, rate=5), [12, 25]))
    assert d.verdict == "ok"


def test_spikes_that_repeat_or_last_are_instability():
    # two spikes that each last two points: repeated and lasting
    x = _with_spikes(curves.healthy(200, rate=5), [60, 130], width=2)
    f = kinds(x)["spike"]
    assert f.evidence["count"] == 2 and f.evidence["transient"] == 0 and f.severity >= 0.5
    # six one-point transients in 300 points: repeated often enough to count
    x = _with_spikes(curves.healthy(300, rate=5), range(40, 300, 45))
    f = kinds(x)["spike"]
    assert f.evidence["transient"] == 6 and f.severity >= 0.5
    # four of them: transients, not yet a pattern
    x = _with_spikes(curves.healthy(300, rate=5), range(40, 220, 45))
    assert kinds(x)["spike"].severity < 0.5


def test_a_steep_short_curve_has_noise_and_no_spikes_wherever_its_zero_is():
    """A curve that falls faster than its noise is sorted within the running median's
    window, so the median passes through most points and the MAD of the scatter reads 0;
    every small wiggle then stood 8 'noise units' above the trend. The same decay shifted
    below zero (a Gaussian NLL, a flow's loss) was 'frequent spikes: lower 5-10x'."""
    from lrdoctor.detect import Curve

    t = np.arange(100)
    base = 2.5 * np.exp(-t / 30) + 0.1 + 0.02 * np.random.default_rng(0).normal(size=100)
    for shift in (-3.0, 3.0):
        x = base + shift
        c = Curve(steps=t, values=x)
        scale = c.noise if not c.log_space else c.noise * np.median(x)  # back to loss units
        assert 0.01 < scale < 0.04  # the N(0, 0.02) it was drawn with
        assert "spike" not in kinds(x)
        assert lrdoctor.diagnose(x).verdict != "too_high"
    # a real spike on that curve is still one
    x = base - 3.0
    x[60] += 1.0
    assert kinds(x)["spike"].evidence["count"] == 1


def test_noise_of_an_ordinary_noisy_curve_is_the_mad_of_its_scatter():
    """The second-difference estimate stands in only when the MAD reads zero."""
    from lrdoctor.detect import Curve
    from lrdoctor.detect._curve import _robust_scale

    rng = np.random.default_rng(3)
    x = curves.healthy(500) * np.exp(0.05 * rng.normal(size=500))
    c = Curve(steps=np.arange(500), values=x)
    assert c.noise == _robust_scale(c.resid) > 0
