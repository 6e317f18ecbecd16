"""lrdoctor/detect/nonfinite.py."""
import curves
from curves import kinds


def test_nonfinite_reports_first_step_and_count():
    f = kinds(curves.with_nan())["nonfinite"]
    assert f.start == 600
    assert f.evidence["count"] == 400
    assert f.end is None  # still non-finite at the end of the log
    assert "NaN at step 600" in f.message
