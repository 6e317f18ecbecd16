"""Generators of loss curves with known answers (they drive the detector tests)."""
from __future__ import annotations

import numpy as np


def healthy(n=1000, start=2.3, floor=0.2, rate=30.0, noise=0.05, seed=0):
    """Fast exponential drop to a floor, multiplicative minibatch noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / n
    return (floor + (start - floor) * np.exp(-rate * t)) * np.exp(rng.normal(0, noise, n))


def flat(n=1000, level=2.3, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    return level * np.exp(rng.normal(0, noise, n))


def slow(n=1000, start=2.3, end=1.2, noise=0.02, seed=0):
    """A straight creep down: half the drop takes half the run."""
    rng = np.random.default_rng(seed)
    return np.linspace(start, end, n) * np.exp(rng.normal(0, noise, n))


def with_nan(n=1000, at=600, seed=0):
    x = healthy(n, seed=seed)
    x[at:] = np.nan
    x[at + 5] = np.inf
    return x


def exploding(n=1000, at=300, seed=0):
    x = healthy(n, seed=seed)
    x[at:at + 20] = 2.3 * np.geomspace(2, 1e4, 20)
    x[at + 20:] = 2.3 * np.exp(np.random.default_rng(seed).normal(0, 0.01, n - at - 20))
    return x


def diverging(n=1000, at=500, seed=0):
    """Comes down, then climbs back to the start and stays."""
    x = healthy(n, seed=seed)
    x[at:] = np.linspace(x[at], 2.5, n - at) * np.exp(
        np.random.default_rng(seed + 1).normal(0, 0.02, n - at))
    return x


def oscillating(n=1000, seed=0):
    """Progress made, then swings back toward the start level for the rest of the run."""
    x = healthy(n, seed=seed)
    t = np.arange(n)
    swing = 1.6 * np.maximum(0, np.sin(2 * np.pi * t / 40)) ** 2
    x[n // 4:] += swing[n // 4:]
    return x


def spiky(n=2000, every=50, seed=0):
    x = healthy(n, seed=seed)
    x[100::every] *= 25
    return x


def slow_noisy(n=800, start=1.0, end=0.7, noise=0.15, seed=0):
    """A slow creep under heavy but ordinary minibatch scatter (~15% of the level): the
    scatter is large next to the small drop, yet no larger than the run's own noise."""
    rng = np.random.default_rng(seed)
    return np.linspace(start, end, n) * np.exp(rng.normal(0, noise, n))


def kinds(x, **kw):
    """{kind: Finding} of the default detectors (with ``kw`` replacing some) on ``x``."""
    from lrdoctor import detect

    c = detect.Curve(steps=np.arange(len(x)), values=np.asarray(x, float))
    return {f.kind: f for f in detect.run(c, detect.default_detectors(**kw))}


def grad_norms(n=1000, level=1.0, noise=0.2, spikes_at=(), factor=20.0, seed=0):
    """A gradient norm that settles from 3x its level to it, with lognormal scatter, and
    ``factor``-fold jumps at the points ``spikes_at``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / n
    g = level * (1 + 2 * np.exp(-30 * t)) * np.exp(rng.normal(0, noise, n))
    g[list(spikes_at)] *= factor
    return g
