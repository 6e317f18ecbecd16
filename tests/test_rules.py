"""Every row of the rules table in ../shared/docs/lr_rules.md."""
import numpy as np
import pytest

import lrdoctor
from lrdoctor.rules import recommend

import curves


@pytest.mark.parametrize("curve", [curves.with_nan, curves.exploding, curves.oscillating,
                                   curves.diverging])
def test_unstable_curves_lower_5_to_10x(curve):
    d = lrdoctor.diagnose(curve(), lr=1e-3)
    r = d.recommendation
    assert d.verdict == "too_high" and r.action == "lower"
    assert r.factor == (5, 10)
    assert 1e-4 <= r.suggested_lr <= 2e-4
    assert "lower 5-10x" in r.rule


@pytest.mark.parametrize("curve", [curves.flat, curves.slow])
def test_barely_moving_raise_3_to_5x(curve):
    d = lrdoctor.diagnose(curve(), lr=1e-4)
    r = d.recommendation
    assert d.verdict == "too_low" and r.action == "raise" and r.factor == (3, 5)
    assert 3e-4 <= r.suggested_lr <= 5e-4


def test_flat_from_the_start_at_a_very_large_lr_is_stuck_high():
    # the same flat curve reads "too low" at 1e-4 and "stuck high" above the rules' range
    d = lrdoctor.diagnose(curves.flat(), lr=0.3)
    assert d.verdict == "too_high" and d.recommendation.action == "lower"
    assert "stuck" in d.recommendation.rule and 0.03 <= d.recommendation.suggested_lr <= 0.06
    assert any("stuck high" in n for n in d.notes)
    assert lrdoctor.diagnose(curves.flat(), lr=1e-2).verdict == "too_low"  # inside range
    assert lrdoctor.diagnose(curves.flat()).verdict == "too_low"  # LR unknown
    ft = lrdoctor.diagnose(curves.flat(), lr=1e-3, context="finetune")
    assert ft.verdict == "too_high"  # above the fine-tuning range 1e-5..5e-4


def test_healthy_keep():
    d = lrdoctor.diagnose(curves.healthy(), lr=1e-3)
    assert (d.verdict, d.recommendation.action, d.recommendation.factor) == ("ok", "keep",
                                                                            (1, 1))
    assert d.recommendation.suggested_lr == 1e-3


def test_severity_places_the_suggestion_inside_the_range():
    mild = recommend("too_high", cause="spike", severity=0.0, current_lr=1e-3)
    hard = recommend("too_high", cause="explosion", severity=1.0, current_lr=1e-3)
    assert mild.suggested_lr == pytest.approx(2e-4)
    assert hard.suggested_lr == pytest.approx(1e-4)


def test_unknown_lr_gives_factor_and_starting_values():
    r = recommend("too_low", cause="slow", severity=0.5, current_lr=None)
    assert r.suggested_lr is None
    assert any("1e-3" in n or "0.001" in n for n in r.notes)


def test_context_range_checks():
    r = recommend("too_low", cause="slow", severity=1.0, current_lr=3e-3)
    assert any("very large for Adam" in n for n in r.notes)  # 1.5e-2 > 1e-2
    r = recommend("too_low", cause="slow", severity=1.0, current_lr=2e-4, context="finetune")
    assert any("finetune range" in n for n in r.notes)  # 1e-3 > 5e-4
    with pytest.raises(ValueError):
        recommend("ok", cause="ok", severity=0, current_lr=1e-3, context="bogus")


def test_constant_lr_noisy_late_suggests_warmup_cosine():
    x = curves.healthy(noise=0.8)
    df = __import__("pandas").DataFrame({"step": np.arange(len(x)), "loss": x, "lr": 1e-3})
    d = lrdoctor.diagnose(df)
    if d.verdict == "ok":
        assert any("warmup + cosine" in n for n in d.recommendation.notes)


def test_trouble_where_warmup_ends_points_at_the_peak():
    n = 1000
    lr = np.where(np.arange(n) < 100, np.linspace(1e-5, 1e-2, n)[:n] * 0 +
                  np.arange(n) / 100 * 1e-2, 1e-2)
    x = curves.healthy(n)
    x[100:] = 2.3 * np.geomspace(3, 1e3, n - 100)
    import pandas as pd
    d = lrdoctor.diagnose(pd.DataFrame({"step": np.arange(n), "loss": x, "lr": lr}))
    assert d.verdict == "too_high"
    assert d.current_lr == pytest.approx(1e-2)
    assert any("warmup ends" in n for n in d.recommendation.notes)


def test_short_log_is_unknown_not_an_error():
    d = lrdoctor.diagnose([2.3, 2.2, 2.1])
    assert d.verdict == "unknown" and d.recommendation.action == "keep"
    assert any("at least 10" in n for n in d.notes)


def test_below_the_range_the_suggestion_goes_to_the_rules_start():
    # 3-5x from 1e-6 would take four rounds to reach the rules' range: go to the rules'
    # starting value (1e-3 from scratch, 3e-5 for fine-tuning)
    r = recommend("too_low", cause="plateau", severity=1.0, current_lr=1e-6)
    assert r.suggested_lr == pytest.approx(1e-3) and r.factor == (1000, 1000)
    assert any("below the scratch range" in n and "--context finetune" in n
               for n in r.notes)
    ft = recommend("too_low", cause="slow", severity=0.0, current_lr=1e-7, context="finetune")
    assert ft.suggested_lr == pytest.approx(3e-5)
    below = recommend("too_low", cause="slow", severity=0.0, current_lr=3e-5)
    assert below.suggested_lr == pytest.approx(1e-3)
    # inside the range, the rules' own factor stands
    inside = recommend("too_low", cause="slow", severity=0.0, current_lr=2e-4)
    assert inside.factor == (3, 5) and inside.suggested_lr == pytest.approx(6e-4)
    # fine-tuning just below its start but inside its range: 3-5x, never a move down
    ft_in = recommend("too_low", cause="slow", severity=1.0, current_lr=2e-5,
                      context="finetune")
    assert ft_in.factor == (3, 5) and ft_in.suggested_lr == pytest.approx(1e-4)
    # above the range a too-high LR still moves by 5-10x (tasks whose best lies above exist)
    high = recommend("too_high", cause="explosion", severity=1.0, current_lr=1.0)
    assert high.factor == (5, 10) and high.suggested_lr == pytest.approx(0.1)


def test_the_strongest_evidence_decides_the_rule_quoted():
    from lrdoctor.diagnosis import weigh
    from lrdoctor.finding import Finding

    mild = Finding("explosion", 0, None, 0.3, "a mild jump", {})
    strong = Finding("oscillation", 10, None, 0.9, "violent swings", {})
    assert weigh([mild, strong], 500) == ("too_high", strong)
    # equal severity: the fixed order breaks the tie (non-finite before explosion)
    nan = Finding("nonfinite", 50, None, 1.0, "nan", {})
    boom = Finding("explosion", 5, None, 1.0, "boom", {})
    assert weigh([boom, nan], 500)[1] is nan


def test_a_move_into_the_range_is_shown_as_one_factor():
    d = lrdoctor.diagnose(curves.flat(), lr=1e-6)
    text = d.summary()
    assert "raise 1000x: 1e-06 -> 0.001" in text and "1000-1000x" not in text
    assert "raise 3-5x" in lrdoctor.diagnose(curves.flat(), lr=2e-4).summary()
