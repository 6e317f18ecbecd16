"""lrdoctor/detect/gradnorm.py: the gradient norm logged beside the loss."""
import numpy as np
import pandas as pd
import pytest

import lrdoctor
from lrdoctor import detect
from lrdoctor.history import from_columns

from curves import grad_norms, healthy
from logs import FIXTURES


def _diagnose(loss, grad, lr=1e-3):
    h = from_columns(np.arange(len(loss)), loss, grad_norm=grad, lr=np.full(len(loss), lr),
                     run="r", source="r")
    return lrdoctor.diagnose(h)


def _kinds(d):
    return {f.kind: f for f in d.findings}


def test_healthy_loss_with_repeated_grad_norm_spikes_is_too_high():
    g = grad_norms(spikes_at=range(200, 1000, 100))
    d = _diagnose(healthy(), g)
    f = _kinds(d)["grad_spike"]
    assert f.severity >= 0.5 and f.evidence["count"] == 8 and f.start == 200
    assert "spike" not in _kinds(d)  # the loss itself looks fine
    assert d.verdict == "too_high" and d.recommendation.action == "lower"
    assert "gradient-norm spikes" in d.recommendation.rule and d.confidence == "medium"


def test_one_grad_norm_outlier_is_ok():
    d = _diagnose(healthy(), grad_norms(spikes_at=[500]))
    f = _kinds(d).get("grad_spike")
    assert f is None or f.severity < 0.5
    assert d.verdict == "ok"


def test_a_settling_start_is_not_spikes():
    g = grad_norms()
    g[1:3] *= 6  # a fresh model's norm jumps about while it settles (OLMo-1B: 11.6, 59, 54)
    d = _diagnose(healthy(), g)
    assert "grad_spike" not in _kinds(d) and d.verdict == "ok"


def test_intermittent_nan_grad_norm_with_a_moving_loss_is_ok_with_a_note():
    g = grad_norms()
    g[[100, 340, 341, 700, 998]] = np.inf  # written nan: inf in a History
    d = _diagnose(healthy(), g)
    k = _kinds(d)
    assert "hidden_nonfinite" not in k and d.verdict == "ok"
    assert k["grad_nonfinite"].evidence["count"] == 5
    assert any("grad_norm is nan/inf at 5 of 1000 logged steps while the loss stays finite: "
               "mixed-precision loss-scale skips" in n for n in d.notes)


@pytest.mark.parametrize("hide", ["zero", "repeat"])
def test_loss_hidden_by_the_logger_while_grad_norm_is_nan_is_too_high(hide):
    loss, g = healthy(n=300), grad_norms(n=300)
    k = 180
    g[k:] = np.inf
    loss[k + 1:] = 0.0 if hide == "zero" else loss[k]  # the step k window still had a mean
    d = _diagnose(loss, g)
    f = _kinds(d)["hidden_nonfinite"]
    assert f.start == k and f.end is None and f.severity == 1.0
    assert d.verdict == "too_high" and d.confidence == "high"
    assert d.recommendation.suggested_lr in (1e-4, 2e-4)
    assert "grad_nonfinite" not in _kinds(d)


def test_one_zero_loss_is_not_enough():
    loss, g = healthy(n=300), grad_norms(n=300)
    g[-1], loss[-1] = np.inf, 0.0
    assert "hidden_nonfinite" not in _kinds(_diagnose(loss, g))


def test_no_grad_norm_no_findings_and_detector_is_configurable():
    c = detect.Curve(steps=np.arange(300), values=healthy(n=300))
    assert detect.GradNorm()(c) == []
    g = grad_norms(n=300, spikes_at=[150])
    c = detect.Curve(steps=np.arange(300), values=healthy(n=300), grad_norm=g)
    [f] = detect.GradNorm(min_repeats=1, rate=0.001)(c)
    assert f.kind == "grad_spike" and f.severity >= 0.5


def test_grad_norm_from_a_dataframe():
    g = grad_norms(spikes_at=range(200, 1000, 100))
    df = pd.DataFrame({"step": np.arange(1000), "loss": healthy(), "grad_norm": g})
    d = lrdoctor.diagnose(df, lr=1e-3)
    assert d.verdict == "too_high" and "grad_spike" in _kinds(d)
    assert d.history.frame["grad_norm"].iloc[200] == pytest.approx(g[200])


def test_json_kinds():
    d = lrdoctor.analyze(FIXTURES / "console" / "hf_trainer_nan.log")[0]
    kinds = [f["kind"] for f in d.to_dict()["findings"]]
    assert "hidden_nonfinite" in kinds and d.to_dict()["verdict"] == "too_high"


# ------------------------------------------------------------------ the tools' own logs
def test_hf_trainer_nan_filter_hides_the_nan():
    """logging_nan_inf_filter=True: 'loss': '0' with 'grad_norm': 'nan' from step 10."""
    [d] = lrdoctor.analyze(FIXTURES / "console" / "hf_trainer_nan.log", lr=1e5)
    f = _kinds(d)["hidden_nonfinite"]
    assert f.start == 1 and f.evidence["hidden"] == 10  # the 2nd log (step 10) on
    assert d.verdict == "too_high" and d.confidence == "high"
    assert d.recommendation.rule.startswith("non-finite gradient norm")


def test_hf_trainer_nan_without_filter_is_a_plain_nonfinite():
    [d] = lrdoctor.analyze(FIXTURES / "console" / "hf_trainer_nan_nofilter.log")
    k = _kinds(d)
    assert "nonfinite" in k and "hidden_nonfinite" not in k and "grad_nonfinite" not in k
    assert d.verdict == "too_high"


@pytest.mark.parametrize("name,verdict", [("hf_trainer_explode.log", "too_high"),
                                          ("hf_trainer_tqdm.log", "ok")])
def test_hf_trainer_other_fixtures_unchanged(name, verdict):
    [d] = lrdoctor.analyze(FIXTURES / "console" / name)
    assert d.history.columns["grad_norm"] is not None
    assert not {"hidden_nonfinite", "grad_nonfinite", "grad_spike"} & set(_kinds(d))
    assert d.verdict == verdict


def test_real_logs_with_nan_grad_norms_stay_keep(shared):
    """Labelled keep (low confidence): fp16 scaler skips; they must not become 'lower'."""
    for name, nan_at in (("hf_console/timemoe_issue71_intermittent_gradnan.log", 2),
                         ("mmengine/xtuner_issue187_gradnorm_nan.log", 2)):
        [d] = lrdoctor.analyze(shared / "real_logs" / name)
        assert d.recommendation.action == "keep", name
        assert _kinds(d)["grad_nonfinite"].evidence["count"] == nan_at
        assert any("mixed-precision loss-scale skips" in n for n in d.notes)


def test_real_olmo_early_grad_norm_spike_settles(shared):
    [d] = lrdoctor.analyze(shared / "real_logs" / "olmo_console" / "b_olmo1b_scratch_train.log")
    g = d.history.grad_norm
    assert len(g) == 2003 and g.iloc[1] == pytest.approx(59.18)
    assert "grad_spike" not in _kinds(d) and d.recommendation.action == "keep"
