"""lrdoctor/detect/spikes.py."""
import numpy as np

import curves
from curves import kinds


def test_spikes_counted_and_robust_to_heavy_tailed_noise():
    f = kinds(curves.spiky())["spike"]
    assert f.evidence["count"] == len(range(100, 2000, 50))
    rng = np.random.default_rng(1)
    x = curves.healthy(2000) * np.exp(0.05 * rng.standard_t(3, 2000))
    assert "spike" not in kinds(x) or kinds(x)["spike"].severity < 0.5
