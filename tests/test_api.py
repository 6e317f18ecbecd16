import numpy as np
import pandas as pd
import pytest

import lrdoctor

from conftest import SAMPLES
import curves


def test_analyze_returns_diagnosis_with_dict_and_plot():
    [d] = lrdoctor.analyze(SAMPLES / "nan_lr5.csv")
    assert isinstance(d, lrdoctor.Diagnosis)
    assert d.verdict == "too_high" and d.current_lr == 5.0
    assert d.to_dict()["recommendation"]["action"] == "lower"
    ax = d.plot()
    assert ax.figure is not None and ax.get_title(loc="left").endswith("LR too high")


def test_diagnose_frame_series_and_array():
    x = curves.slow()
    df = pd.DataFrame({"it": np.arange(len(x)) * 10, "my_loss": x, "lr": 1e-4})
    d = lrdoctor.diagnose(df, step="it", loss="my_loss", lr="lr")
    assert d.verdict == "too_low" and d.current_lr == 1e-4
    assert d.to_dict()["last_step"] == 9990
    s = pd.Series(x, index=np.arange(len(x)) * 10, name="loss")
    assert lrdoctor.diagnose(s, lr=1e-4).verdict == "too_low"
    assert lrdoctor.diagnose(list(x)).verdict == "too_low"


def test_errors_raise_the_documented_type(tmp_path):
    with pytest.raises(lrdoctor.LrDoctorError):
        lrdoctor.analyze(tmp_path / "none.csv")


def test_notebook_display():
    [d] = lrdoctor.analyze(SAMPLES / "healthy_lr1e-3.csv")
    html = d._repr_html_()
    assert "LR looks fine" in html and "data:image/png;base64," in html


def test_diagnose_frame_with_a_named_step_index():
    x = curves.slow()
    df = pd.DataFrame({"loss": x}, index=pd.Index(np.arange(len(x)) * 5, name="it"))
    d = lrdoctor.diagnose(df, lr=1e-4)
    assert d.to_dict()["last_step"] == 5 * (len(x) - 1)


def test_a_finding_shows_plain_numbers_and_its_evidence_briefly():
    from lrdoctor.finding import Finding

    f = Finding("spike", np.int64(100), np.float64(1950.0), np.float64(0.87654), "m",
                {"count": np.int64(38), "rate": 0.0190123, "steps": list(range(38)),
                 "late": True})
    assert repr(f) == ("Finding(kind='spike', start=100, end=1950, severity=0.877, "
                       "message='m', evidence={'count': 38, 'rate': 0.019, "
                       "'steps': <38 values>, 'late': True})")
