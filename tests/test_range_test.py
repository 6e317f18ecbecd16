"""LR range tests (lrdoctor/range_test.py): detection, the suggestion on curves of known
shape, the tools' result formats, the real range tests, and the command line."""
import json
import math

import numpy as np
import pandas as pd
import pytest

import lrdoctor
from lrdoctor.cli import main
from lrdoctor.history import from_columns
from lrdoctor.range_test import is_geometric_ramp, is_range_test


def synthetic(n=200, lo=1e-7, hi=10.0, noise=0.03, seed=0):
    """Loss flat at 2.3 up to LR ~1e-4, falling to 0.3 by ~1e-2, lowest near 3e-2, then
    blowing up (4x its minimum near 0.1): (lr, loss)."""
    rng = np.random.default_rng(seed)
    lr = np.geomspace(lo, hi, n)
    x = np.log10(lr)
    fall = 2.0 / (1 + np.exp(-(x + 2.8) * 3))          # the drop, centred at 1.6e-3
    blow = np.exp(np.clip((x + 1.5) * 4, -50, 50))      # takes off past ~3e-2
    loss = (2.3 - fall + 0.3 * blow) * np.exp(rng.normal(0, noise, n))
    return lr, loss


def hist(lr, loss, steps=None):
    return from_columns(steps, loss, lr=lr, run="rt", source="rt.csv")


# ---------------------------------------------------------------- detection
def test_a_geometric_ramp_over_eight_decades_is_a_range_test():
    lr, loss = synthetic()
    assert is_range_test(hist(lr, loss))


def test_a_staircase_ramp_with_logging_every_ten_steps_is_a_range_test():
    steps = np.arange(0, 1000, 10)
    lr = 1e-6 * 10 ** (np.floor(steps / 100) / 2)  # x3.16 every 100 steps: 1e-6 .. 3e-2
    assert is_geometric_ramp(steps, lr)


@pytest.mark.parametrize("name,lr", [
    ("constant", np.full(500, 1e-3)),
    ("warmup+cosine", np.concatenate((np.linspace(1e-6, 1e-3, 50),
                                      1e-3 * 0.5 * (1 + np.cos(np.linspace(0, np.pi, 450)))))),
    ("step decay", 1e-2 * 0.1 ** (np.arange(500) // 150)),
    ("linear rise over one decade", np.linspace(1e-4, 1e-3, 500)),
    ("linear warmup from 1e-8 then constant", np.minimum(np.linspace(1e-8, 2e-3, 500), 1e-3)),
    ("linear warmup only, from 1e-7", np.linspace(1e-7, 1e-3, 500)),
])
def test_schedules_are_never_taken_for_a_range_test(name, lr):
    loss = np.linspace(2.3, 0.5, len(lr))
    assert not is_range_test(hist(lr, loss)), name
    d = lrdoctor.diagnose(pd.DataFrame({"step": np.arange(len(lr)), "loss": loss, "lr": lr}))
    assert d.verdict != "range_test"


def test_a_log_without_lr_is_not_a_range_test():
    assert not is_range_test(from_columns(None, np.ones(50), run="r", source="r"))


# ---------------------------------------------------------------- curves of known shape
def test_the_suggestion_lies_on_the_falling_stretch_well_below_the_blow_up():
    lr, loss = synthetic()
    rt = lrdoctor.range_test({"lr": lr, "loss": loss}, smoothed=False)
    assert rt.confidence == "high" and not rt.warnings
    assert rt.smoothed  # raw per-step loss: lrdoctor smoothed it
    assert 1e-2 < rt.min_loss_lr < 6e-2
    assert 5e-2 < rt.divergence_lr < 0.3
    assert rt.suggested_lr <= rt.divergence_lr / 10 * 1.01
    assert rt.low <= rt.suggested_lr <= rt.high <= rt.min_loss_lr
    assert 1e-4 < rt.steepest_lr < 1e-2
    i = np.searchsorted(lr, rt.suggested_lr)  # on the falling stretch, below its start
    assert loss[:20].mean() > 1.5 * np.median(loss[i - 3:i + 3])
    assert any("warm up" in n for n in rt.notes)


def test_the_smoothing_is_judged_from_the_curve():
    lr, loss = synthetic()
    assert lrdoctor.range_test({"lr": lr, "loss": loss}).smoothed  # raw: smoothed here
    ema = pd.Series(loss).ewm(alpha=0.05).mean().to_numpy()  # torch-lr-finder's smoothing
    rt = lrdoctor.range_test({"lr": lr, "loss": ema})
    assert not rt.smoothed  # not smoothed twice
    assert rt.suggested_lr is not None


def test_a_flat_curve_gets_no_suggestion_and_a_warning():
    lr = np.geomspace(1e-7, 10, 200)
    loss = 2.3 * np.exp(np.random.default_rng(1).normal(0, 0.02, 200))
    rt = lrdoctor.range_test({"lr": lr, "loss": loss})
    assert rt.suggested_lr is None and rt.confidence == "low"
    assert any("too flat" in w for w in rt.warnings)


def test_a_short_test_warns_low_confidence():
    lr, loss = synthetic(n=18)
    rt = lrdoctor.range_test({"lr": lr, "loss": loss})
    assert rt.confidence == "low"
    assert any("too short" in w or "too flat" in w for w in rt.warnings)


def test_a_noisy_test_warns_low_confidence():
    lr, loss = synthetic(noise=0.8, seed=3)
    rt = lrdoctor.range_test({"lr": lr, "loss": loss}, smoothed=False)
    assert rt.confidence == "low"


def test_a_nan_is_the_divergence_point():
    lr, loss = synthetic()
    loss[150:] = np.nan
    rt = lrdoctor.range_test({"lr": lr, "loss": loss})
    assert rt.divergence_lr <= lr[150]


def test_the_suggestion_is_capped_by_the_context():
    lr, loss = synthetic()
    rt = lrdoctor.range_test({"lr": lr, "loss": loss}, context="finetune")
    assert rt.capped and rt.suggested_lr <= 5e-4 and rt.high <= 5e-4
    assert any("capped at 0.0005" in n for n in rt.notes)


def test_a_test_that_never_blows_up_is_medium_confidence():
    lr, loss = synthetic(hi=1e-2)
    rt = lrdoctor.range_test({"lr": lr, "loss": loss})
    assert rt.divergence_lr is None and rt.confidence == "medium"
    assert rt.method.startswith("minimum/10")


# ---------------------------------------------------------------- the tools' formats
class FastaiRecorder:  # fastai's learn.recorder after lr_find: lists (of 0-d tensors)
    def __init__(self, lrs, losses):
        self.lrs, self.losses = list(lrs), list(losses)


class LightningFinder:  # Lightning's _LRFinder: .results {"lr": [...], "loss": [...]}
    def __init__(self, lrs, losses):
        self.results = {"lr": list(lrs), "loss": list(losses)}


@pytest.mark.parametrize("wrap", [
    lambda lr, y: {"lr": list(lr), "loss": list(y)},               # torch-lr-finder history
    lambda lr, y: FastaiRecorder(lr, y),
    lambda lr, y: LightningFinder(lr, y),
    lambda lr, y: pd.DataFrame({"learning_rate": lr, "loss": y}),
    lambda lr, y: hist(lr, y),
], ids=["torch-lr-finder", "fastai", "lightning", "dataframe", "history"])
def test_the_tools_results_are_read_without_smoothing_twice(wrap):
    lr, raw = synthetic()
    ema = pd.Series(raw).ewm(alpha=0.02).mean().to_numpy()  # the tools' beta=0.98, debiased
    rt = lrdoctor.range_test(wrap(lr, ema))
    assert not rt.smoothed
    assert rt.suggested_lr is not None and rt.suggested_lr < rt.divergence_lr / 5


def test_bad_input_is_one_clear_error():
    with pytest.raises(lrdoctor.LrDoctorError, match="must rise"):
        lrdoctor.range_test({"lr": [1e-3, 1e-4, 1e-5], "loss": [1, 2, 3]})
    with pytest.raises(lrdoctor.LrDoctorError, match="no lr found"):
        lrdoctor.range_test({"rate": [1, 2], "loss": [1, 2]})
    with pytest.raises(lrdoctor.LrDoctorError, match="as many LRs"):
        lrdoctor.range_test({"lr": [1e-3, 1e-2], "loss": [1, 2, 3]})
    with pytest.raises(lrdoctor.LrDoctorError, match="cannot read a range test"):
        lrdoctor.range_test(object())


# ---------------------------------------------------------------- the diagnosis and the CLI
def test_a_range_test_log_is_diagnosed_as_one(tmp_path):
    lr, loss = synthetic()
    d = lrdoctor.diagnose(pd.DataFrame({"step": np.arange(len(lr)), "loss": loss, "lr": lr}))
    assert d.verdict == "range_test" and d.findings == []
    assert d.recommendation.action == "keep"
    assert d.recommendation.suggested_lr == d.range_test.suggested_lr
    assert d.recommendation.rule.startswith("LR range test")
    j = d.to_dict()
    assert j["range_test"]["suggested_lr"] == d.range_test.suggested_lr
    assert set(j["range_test"]) >= {"suggested_lr", "low", "high", "min_loss_lr",
                                    "divergence_lr", "method", "confidence"}
    ax = d.plot()
    assert ax.get_xscale() == "log"
    assert "LR range test" in d.summary()


def test_cli_json_and_text_for_a_range_test_log(tmp_path, capsys):
    lr, loss = synthetic()
    p = tmp_path / "lr_find.csv"
    pd.DataFrame({"step": np.arange(len(lr)), "loss": loss, "lr": lr}).to_csv(p, index=False)
    q = tmp_path / "healthy.csv"
    pd.DataFrame({"step": np.arange(300), "loss": np.linspace(2, 1, 300),
                  "lr": 1e-3}).to_csv(q, index=False)
    assert main(["analyze", str(p), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [run] = doc["runs"]
    assert run["verdict"] == "range_test" and run["current_lr"] is None
    assert run["recommendation"]["action"] == "keep"
    assert math.isclose(run["recommendation"]["suggested_lr"],
                        run["range_test"]["suggested_lr"])
    assert main(["analyze", str(p), str(q), "--plot", str(tmp_path / "f.png")]) == 0
    out = capsys.readouterr().out
    assert "LR RANGE TEST" in out and "set " in out and "1 range_test" in out
    assert (tmp_path / "f.png").stat().st_size > 0
    assert main(["analyze", str(p), "--plot", str(tmp_path / "one.png")]) == 0
    assert main(["report", str(p), str(q), "-o", str(tmp_path / "r.html")]) == 0


# ---------------------------------------------------------------- the real range tests
def test_every_real_range_test_is_read_as_one_with_a_suggestion(shared):
    index = pd.read_csv(shared / "benchmarks" / "range_tests" / "index.csv")
    for f in index.file:
        [d] = lrdoctor.analyze(shared / "benchmarks" / "range_tests" / f)
        assert d.verdict == "range_test", f
        rt = d.range_test
        assert rt.suggested_lr is not None, f
        assert rt.suggested_lr <= rt.high <= rt.min_loss_lr, f
        if rt.divergence_lr is not None:
            assert rt.suggested_lr <= rt.divergence_lr / 10 * 1.01, f


def test_no_run_of_the_dev_sweeps_is_a_range_test(shared):
    runs = sorted((shared / "benchmarks" / "lr_sweeps" / "runs").glob("*.csv"))
    assert runs
    for p in runs[::7]:
        assert all(d.verdict != "range_test" for d in lrdoctor.analyze(p)), p.name
