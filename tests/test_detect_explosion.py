"""lrdoctor/detect/explosion.py: explosion and divergence."""
import numpy as np

import curves
from curves import kinds


def test_explosion_found_where_it_starts():
    f = kinds(curves.exploding())["explosion"]
    assert 300 <= f.start <= 303  # where it passes 5x the start
    assert f.evidence["ratio"] > 100


def test_divergence_stays_open_to_the_end():
    f = kinds(curves.diverging())["divergence"]
    assert f.end is None
    assert 500 <= f.start <= 800


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
