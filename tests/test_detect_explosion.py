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


def test_first_updates_overshooting_twice_the_start_is_an_explosion_even_if_it_recovers():
    # Adam's first steps at LR 0.3 on a char model: the loss goes from 4.9 to ~11 for a few
    # updates, then comes back down and trains (the shape of a real too-high sweep run)
    x = curves.healthy(500, start=4.9, floor=2.5, rate=20, noise=0.05)
    x[1:5] = [12.1, 9.5, 9.9, 9.7]
    f = kinds(x)["explosion"]
    assert f.start == 1 and 2.0 < f.evidence["ratio"] < 3.0
    assert f.evidence["n_points_over"] == 2  # 12.1 and 9.9; 9.5 and 9.7 are under 2 x 4.9


def test_one_noisy_first_update_or_a_late_double_is_not_an_explosion():
    x = curves.healthy(500, start=4.9, floor=2.5, rate=20, noise=0.05)
    x[2] = 11.0  # one bad early minibatch, under the 5x bound
    assert "explosion" not in kinds(x)
    x = curves.healthy(500, start=4.9, floor=2.5, rate=20, noise=0.05)
    x[200:203] = 11.0  # past the first updates, 2x the start is a spike's business
    assert "explosion" not in kinds(x)


def test_early_factor_is_a_threshold_callers_can_change():
    from lrdoctor import detect

    x = curves.healthy(500, start=4.9, floor=2.5, rate=20, noise=0.05)
    x[1:5] = [12.1, 9.5, 9.9, 9.7]
    assert "explosion" not in kinds(x, explosion=detect.Explosion(early_factor=3.0))


def test_a_huge_jump_is_written_in_exponent_form():
    x = np.r_[np.full(50, 0.5), np.full(50, 1e16)]
    msg = kinds(x)["explosion"].message
    assert "2e+16x its starting" in msg
