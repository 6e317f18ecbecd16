"""lrdoctor/readers/mlflow.py: file stores written by mlflow's client."""
from pathlib import Path

import numpy as np
import pytest

from lrdoctor import LrDoctorError
from lrdoctor.cli import main
from lrdoctor.readers import expand, read

from logs import mlflow_store


def test_mlflow_run_folder_and_tree(tmp_path):
    t = np.arange(200)
    store, exp, ids = mlflow_store(tmp_path, {
        "good": (1e-3, 2.3 * np.exp(-t / 20) + 0.1),
        "flat": (1e-6, 2.3 - 1e-4 * t)})
    [h] = read(store / exp / ids["good"])
    assert h.metric == "train_loss" and len(h.loss) == 200 and h.run == "good"
    assert h.lr.iloc[0] == 1e-3
    found, errors = expand([str(tmp_path)])
    assert not errors and sorted(Path(f).name for f in found) == sorted(ids.values())
    code = main(["analyze", str(tmp_path), "--format", "json"])
    assert code == 0


def test_mlflow_damaged_metric_line_names_the_place(tmp_path):
    t = np.arange(50)
    store, exp, ids = mlflow_store(tmp_path, {"r": (1e-3, 2.0 - t / 100)})
    f = store / exp / ids["r"] / "metrics" / "train_loss"
    lines = f.read_text().splitlines()
    lines[9] = " ".join(lines[9].split()[:2])
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(LrDoctorError, match=r"line 10: 2 field\(s\)"):
        read(store / exp / ids["r"])
