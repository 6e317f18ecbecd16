"""lrdoctor/readers/wandb.py (run files written by wandb) and W&B's CSV/JSON-lines exports."""
import json

import numpy as np
import pytest

from lrdoctor import LrDoctorError
from lrdoctor.readers import read, sniff

from logs import FIXTURES


def test_wandb_run_file_written_by_wandb():
    f = FIXTURES / "wandb_offline.wandb"  # scripts/make_wandb_fixture.py, wandb 0.31
    assert f.stat().st_size > 32 * 1024  # records cross the data store's 32 KiB blocks
    assert sniff(f) == "wandb"
    [h] = read(f)
    assert h.run == "adam-lr3e-4" and h.metric == "train/loss" and len(h.loss) == 250
    assert np.isnan(h.loss.loc[150]) and h.loss.isna().sum() == 1  # a NaN is a value
    assert h.lr.iloc[0] == 3e-4 and h.val_loss.dropna().index.tolist() == [0, 50, 100, 150,
                                                                          200]
    assert h.loss.iloc[0] == pytest.approx(2.4)


def test_wandb_run_file_cut_off_is_read_up_to_the_cut(tmp_path):
    data = (FIXTURES / "wandb_offline.wandb").read_bytes()
    p = tmp_path / "run-x.wandb"
    p.write_bytes(data[: len(data) * 2 // 3])
    [h] = read(p)
    assert 100 < len(h.loss) < 250 and any("incomplete" in n for n in h.notes)
    p.write_bytes(b":W&B\xbe\xe1\x00")
    with pytest.raises(LrDoctorError, match="no history rows"):
        read(p)


def test_wandb_chart_export_one_run_per_column_group(tmp_path):
    p = tmp_path / "wandb_export.csv"
    cols = ["Step"]
    rows = []
    for name in ("adam-lr1e-3", "adam-lr0.1"):
        cols += [f"{name} - train/loss", f"{name} - train/loss__MIN",
                 f"{name} - train/loss__MAX"]
    for s in range(100):
        good, bad = 2.3 * np.exp(-s / 10) + 0.1, (2.3 if s < 50 else float("nan"))
        rows.append([s, good, good, good, bad, bad, bad])
    p.write_text(",".join(f'"{c}"' for c in cols) + "\n" +
                 "\n".join(",".join("" if isinstance(v, float) and np.isnan(v) else str(v)
                                    for v in r) for r in rows) + "\n")
    hs = read(p)
    assert [h.run for h in hs] == ["adam-lr1e-3", "adam-lr0.1"]
    assert len(hs[1].loss) == 50 and hs[0].columns["lr"][0] == 1e-3


def test_wandb_history_jsonl(tmp_path):
    p = tmp_path / "wandb-history.jsonl"
    p.write_text("".join(json.dumps({"_step": s, "_runtime": s * 0.1, "train/loss":
                                     2.0 - s / 100, "lr": 1e-3}) + "\n" for s in range(50)))
    [h] = read(p)
    assert h.metric == "train/loss" and h.steps[-1] == 49 and h.lr.iloc[0] == 1e-3
