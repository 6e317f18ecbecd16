"""lrdoctor/detect/overfitting.py, and the confidence and honesty notes of a verdict."""
import numpy as np
import pandas as pd

import lrdoctor
from lrdoctor.confidence import confidence

import curves


def frame(train, val_every=20, val=None):
    n = len(train)
    df = pd.DataFrame({"step": np.arange(n), "loss": train})
    if val is not None:
        v = np.full(n, np.nan)
        v[::val_every] = val(np.arange(0, n, val_every) / n)
        df["val_loss"] = v
    return df


def test_validation_turning_up_while_training_falls_is_overfitting():
    train = curves.healthy(1000, rate=8)  # still falling after 30% of the run
    # validation falls to its best at 30% of the run, then climbs 50%
    d = lrdoctor.diagnose(frame(train, val=lambda t: 1.0 + 2 * (t - 0.3) ** 2), lr=1e-3)
    [f] = [f for f in d.findings if f.kind == "overfitting"]
    assert 280 <= f.start <= 320 and f.evidence["rise"] > 0.1
    assert d.verdict == "ok" and d.recommendation.action == "keep"  # not an LR fault
    assert any(f"stop at step {f.start:g}" in n for n in d.recommendation.notes)


def test_no_overfitting_when_validation_follows_or_both_turn():
    train = curves.healthy(1000)
    d = lrdoctor.diagnose(frame(train, val=lambda t: 1.0 + np.exp(-5 * t)), lr=1e-3)
    assert not any(f.kind == "overfitting" for f in d.findings)
    # a validation bump at the very end (the best two points from the end) is not a trend
    d = lrdoctor.diagnose(frame(train, val=lambda t: 1.0 + 3 * (t > 0.95)), lr=1e-3)
    assert not any(f.kind == "overfitting" for f in d.findings)
    # the training loss turned too (divergence), so it is not a generalisation gap
    up = np.r_[curves.healthy(500), np.linspace(0.25, 2.0, 500)]
    d = lrdoctor.diagnose(frame(up, val=lambda t: 1.0 + 2 * (t - 0.3) ** 2), lr=1e-3)
    assert not any(f.kind == "overfitting" for f in d.findings)


def test_the_real_seq2seq_run_overfits_from_its_best_checkpoint(shared):
    [d] = lrdoctor.analyze(shared / "real_logs/hf_trainer/whisper_small_hi_trainer_state.json")
    [f] = [f for f in d.findings if f.kind == "overfitting"]
    assert f.start == 1000 and d.verdict == "ok"


def test_confidence_follows_the_evidence():
    assert confidence("too_high", "nonfinite", 1.0, 500) == "high"
    assert confidence("too_high", "spike", 0.6, 500) == "medium"
    assert confidence("too_low", "plateau", 0.9, 500) == "high"
    assert confidence("too_low", "slow", 0.3, 500) == "low"
    assert confidence("ok", None, 0.0, 500) == "medium"
    assert confidence("ok", None, 0.0, 30) == "low"
    assert confidence("unknown", None, 0.0, 5) == "low"
    d = lrdoctor.diagnose(curves.with_nan(), lr=1e-3)
    assert d.confidence == "high" and d.to_dict()["confidence"] == "high"


def test_a_healthy_run_names_the_uncertainty_and_the_cheapest_way_to_know():
    d = lrdoctor.diagnose(curves.healthy(), lr=1e-3)
    assert d.verdict == "ok"
    assert any("run 3x and 1/3x of it (0.003 and 0.00033)" in n
               for n in d.recommendation.notes)
    d = lrdoctor.diagnose(curves.healthy())
    assert any("1e-4, 1e-3 and 1e-2" in n for n in d.recommendation.notes)
    assert "[confidence: medium]" in d.summary()


def test_a_creep_while_validation_turns_up_is_no_case_for_a_larger_lr():
    slow = curves.slow(1000)
    assert lrdoctor.diagnose(frame(slow), lr=1e-3).verdict == "too_low"
    d = lrdoctor.diagnose(frame(slow, val=lambda t: 1.0 + 2 * (t - 0.4) ** 2), lr=1e-3)
    assert d.verdict == "ok" and d.recommendation.action == "keep"
    assert any("not a case for a larger LR" in n for n in d.notes)
