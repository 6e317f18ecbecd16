"""Detectors: one module per phenomenon, each a frozen dataclass of named thresholds whose
call takes a prepared :class:`Curve` and returns a list of :class:`~lrdoctor.finding.Finding`.

>>> from lrdoctor import detect
>>> detectors = detect.default_detectors(oscillation=detect.Oscillation(min_swing=0.3))
"""
from __future__ import annotations

import numpy as np

from lrdoctor.detect._curve import Curve
from lrdoctor.detect.explosion import Divergence, Explosion
from lrdoctor.detect.gradnorm import GradNorm
from lrdoctor.detect.nonfinite import NonFinite
from lrdoctor.detect.oscillation import Oscillation
from lrdoctor.detect.overfitting import Overfitting
from lrdoctor.detect.plateau import Progress
from lrdoctor.detect.spikes import Spikes

__all__ = ["Curve", "NonFinite", "Explosion", "Divergence", "Spikes", "Oscillation",
           "Progress", "GradNorm", "Overfitting", "default_detectors", "run"]


def default_detectors(**replace) -> dict:
    """The detectors lrdoctor runs, by name; pass ``name=Detector(...)`` to change one."""
    d = {"nonfinite": NonFinite(), "explosion": Explosion(), "divergence": Divergence(),
         "spikes": Spikes(), "oscillation": Oscillation(), "progress": Progress(),
         "gradnorm": GradNorm()}
    unknown = set(replace) - set(d)
    if unknown:
        raise TypeError(f"unknown detector(s) {sorted(unknown)}; known: {sorted(d)}")
    d.update(replace)
    return d


def run(curve: Curve, detectors: dict | None = None) -> list:
    """All findings of all detectors on one curve, in step order.

    Losses near the float maximum (1e308 in a corrupt or blown-up log), or a zero spread,
    take the detectors' arithmetic to inf or NaN, which they read as any non-finite value:
    no warning."""
    out = []
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        for det in (detectors or default_detectors()).values():
            out.extend(det(curve))
    return sorted(out, key=lambda f: (f.start if f.start is not None else 0))
