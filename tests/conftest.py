from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLES = ROOT / "sample_logs"


@pytest.fixture
def shared():
    if not (SHARED / "real_logs").is_dir():
        pytest.skip("../shared is absent (it is on a developer's or CI's machine, not a "
                    "user's): real-log and benchmark tests skipped")
    return SHARED
