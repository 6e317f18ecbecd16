"""Short runs: a non-finite loss, an explosion or a divergence is a verdict at any length
(lower 5-10x, saying how few points there were); too few points to judge a run slow or
healthy leave it ``unknown``."""
import json

import numpy as np
import pytest

import lrdoctor
from lrdoctor.cli import main
from lrdoctor.diagnosis import MIN_POINTS

import curves

NAN, INF = float("nan"), float("inf")
#: an MLX LoRA run at a constant LR 7e-5 (its validation loss first, then train losses):
#: down to 1.41, then 3.32, 6.44 and above 4.6 to the end
MLX_BLOWUP = [2.086, 1.593, 1.406, 3.316, 6.437, 5.478, 4.857, 4.874, 4.604]


def lowered(x, kind, lr=1e-3):
    d = lrdoctor.diagnose(x, lr=lr)
    r = d.recommendation
    assert d.verdict == "too_high" and r.action == "lower" and r.factor == (5, 10)
    assert kind in [f.kind for f in d.findings] and "lower 5-10x" in r.rule
    assert 1e-4 <= r.suggested_lr <= 2e-4
    assert any(f"judged on only {len(x)} point(s)" in n and "needs no history" in n
               for n in d.notes)
    return d


@pytest.mark.parametrize("x", [[NAN], [NAN] * 7, [2.3, INF], [2.3, 2.0, NAN, 1.7, 1.6],
                               [2.3, -INF, 2.1]])
def test_a_non_finite_loss_is_a_verdict_at_any_length(x):
    d = lowered(x, "nonfinite")
    assert any("a non-finite loss needs no history" in n for n in d.notes)


def test_nan_from_the_first_epoch_without_an_lr_gives_the_factor():
    d = lrdoctor.diagnose([NAN] * 7)
    assert d.verdict == "too_high" and d.recommendation.suggested_lr is None
    assert any("lower it 5-10x" in n for n in d.recommendation.notes)


@pytest.mark.parametrize("x", [MLX_BLOWUP, MLX_BLOWUP[1:]])
def test_a_blow_up_that_stays_up_within_nine_points(x):
    d = lrdoctor.diagnose(x, lr=7e-5, context="finetune")
    assert d.verdict == "too_high" and d.recommendation.action == "lower"
    assert {f.kind for f in d.findings} & {"explosion", "divergence"}
    assert 7e-6 <= d.recommendation.suggested_lr <= 1.4e-5


def test_a_five_point_divergence():
    lowered([2.3, 2.1, 2.0, 4.5, 4.8], "divergence")


def test_a_jump_far_above_the_start_in_two_points_is_an_explosion():
    lowered([1.0, 100.0], "explosion")


@pytest.mark.parametrize("x", [[2.3], [2.3, 2.2], [1.0, 1.1, 1.05], [2.3, 2.2, 2.1],
                               list(curves.healthy(9, noise=0.1, rate=3)),
                               list(curves.healthy(7, noise=0.2))])
def test_a_short_run_without_trouble_stays_unknown(x):
    d = lrdoctor.diagnose(x, lr=1e-3)
    assert d.findings == []
    assert d.verdict == "unknown" and d.recommendation.action == "keep"
    assert any(f"at least {MIN_POINTS} are needed" in n for n in d.notes)


@pytest.mark.parametrize("gen", [curves.healthy, curves.flat, curves.slow])
def test_noisy_short_runs_are_not_false_alarms(gen):
    # 10% scatter per point, 3 to 9 points, 100 draws each: at most 2% called too high
    called = sum(lrdoctor.diagnose(gen(n, noise=0.1, seed=s)).verdict == "too_high"
                 for n in range(3, MIN_POINTS) for s in range(100))
    assert called <= 0.02 * 100 * (MIN_POINTS - 3)


def test_history_detectors_do_not_judge_short_runs():
    # a 9-point curve that is flat (a plateau at 10 points or more) and swings: unknown
    x = 2.3 * (1 + 0.3 * (np.arange(9) % 2))
    d = lrdoctor.diagnose(x, lr=1e-4)
    assert d.verdict == "unknown" and d.findings == []


def test_long_runs_keep_their_verdicts():
    assert lrdoctor.diagnose(curves.healthy(), lr=1e-3).verdict == "ok"
    assert lrdoctor.diagnose(curves.flat(), lr=1e-4).verdict == "too_low"
    assert lrdoctor.diagnose(curves.diverging(), lr=1e-3).verdict == "too_high"


def test_cli_short_nan_run(tmp_path, capsys):
    log = tmp_path / "nan7.csv"
    log.write_text("step,loss\n" + "".join(f"{i},nan\n" for i in range(1, 8)))
    assert main(["analyze", str(log), "--lr", "1e-3", "--format", "json"]) == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    assert run["n_points"] == 7 and run["verdict"] == "too_high"
    assert [f["kind"] for f in run["findings"]] == ["nonfinite"]
    assert run["recommendation"]["action"] == "lower"
    assert run["recommendation"]["factor"] == [5, 10]
    assert any("judged on only 7 point(s)" in n for n in run["notes"])
    assert main(["analyze", str(log), "--lr", "1e-3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("LR TOO HIGH")
    assert "lower 5-10x" in out and "judged on only 7 point(s)" in out
