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
