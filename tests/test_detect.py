"""lrdoctor/detect/__init__.py: the detectors run together on curves with known answers."""
import numpy as np
import pytest

import lrdoctor
from lrdoctor import detect

import curves
from curves import kinds


def test_healthy_curve_has_no_findings():
    # its fast drop onto a flat level is a ``floor``, a shape fact that says nothing
    # against an LR inside the rules' range: the diagnosis lists no finding
    assert set(kinds(curves.healthy())) <= {"floor"}
    d = lrdoctor.diagnose(curves.healthy(), lr=1e-3)
    assert d.verdict == "ok" and d.findings == []


def test_thresholds_are_parameters():
    x = curves.spiky(every=400)
    assert "spike" in kinds(x)
    assert "spike" not in kinds(x, spikes=detect.Spikes(min_ratio=100))
    with pytest.raises(TypeError):
        detect.default_detectors(nonsense=detect.Spikes())


def test_prefix_gives_same_answer_as_batch_of_that_prefix():
    # the live monitor's contract: a detector on a prefix sees only the prefix
    x = curves.exploding()
    full = lrdoctor.diagnose(x[:400])
    again = lrdoctor.diagnose(np.concatenate([x[:400]]))
    assert full.to_dict() == again.to_dict()
    assert full.verdict == "too_high"
