"""The gradient-norm column through every reader (lrdoctor/readers/_columns.py GRAD_NORM,
_table.Selection.grad_norm): NaN where not logged, inf where a non-finite one was written."""
import json

import numpy as np
import pytest

from lrdoctor.readers import _columns as C
from lrdoctor.readers import read

from logs import FIXTURES, mlflow_store, tb_write


@pytest.mark.parametrize("cols,want", [
    (["loss", "grad_norm"], "grad_norm"),
    (["loss", "optim/total_grad_norm"], "optim/total_grad_norm"),
    (["loss", "train/GradNorm"], "train/GradNorm"),
    (["loss", "Gradient L2 Norm"], "Gradient L2 Norm"),
    (["loss", "grad_norm/layer1", "grad_norm/total_all"], "grad_norm/total_all"),
    (["loss", "max_grad_norm"], None), (["loss", "clip_grad_norm"], None),
    (["loss", "eval_grad_norm"], None), (["loss", "lr"], None)])
def test_grad_norm_found_by_name_and_meaning(cols, want):
    assert C.find_grad_norm(cols) == want


def _check(h, n=4):
    g = h.columns["grad_norm"]
    assert g is not None and len(g) == n
    assert g[0] == pytest.approx(1.5) and np.isinf(g[2]) and np.isnan(g[3])
    assert list(h.frame.columns) == ["loss", "lr", "val_loss", "epoch", "grad_norm", "logged"]


def test_csv(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("step,loss,grad_norm\n0,2.0,1.5\n1,1.9,1.2\n2,1.8,nan\n3,1.7,\n")
    _check(read(p)[0])


def test_csv_without_grad_norm_has_none(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("step,loss\n0,2.0\n1,1.9\n")
    [h] = read(p)
    assert h.columns["grad_norm"] is None and h.grad_norm is None
    assert h.frame["grad_norm"].isna().all()


def test_csv_run_column(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("run,step,loss,grad_norm\na,0,2.0,1.5\nb,0,2.0,3.0\na,1,1.9,inf\n")
    a, b = read(p)
    assert np.isinf(a.columns["grad_norm"][1]) and b.columns["grad_norm"][0] == 3.0


def test_json_lines(tmp_path):
    p = tmp_path / "metrics.jsonl"
    rows = [{"step": 0, "loss": 2.0, "grad_norm": 1.5}, {"step": 1, "loss": 1.9,
            "grad_norm": 1.2}, {"step": 2, "loss": 1.8, "grad_norm": "nan"},
            {"step": 3, "loss": 1.7}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _check(read(p)[0])


def test_trainer_state_json(tmp_path):
    p = tmp_path / "trainer_state.json"
    log = [{"step": 5, "loss": 2.0, "grad_norm": 1.5, "learning_rate": 1e-4},
           {"step": 10, "loss": 1.9, "grad_norm": 1.2, "learning_rate": 1e-4},
           {"step": 15, "loss": 1.8, "grad_norm": float("nan"), "learning_rate": 1e-4},
           {"step": 20, "loss": 1.7, "learning_rate": 1e-4},
           {"step": 20, "eval_loss": 1.9}]
    p.write_text(json.dumps({"log_history": log, "global_step": 20}))
    [h] = read(p)
    g = h.columns["grad_norm"]
    assert g[0] == 1.5 and np.isinf(g[2]) and np.isnan(g[3])


def test_tensorboard(tmp_path):
    scalars = [(s, "train/loss", 2.0 - s / 10) for s in range(4)] + \
        [(0, "train/grad_norm", 1.5), (1, "train/grad_norm", 1.2),
         (2, "train/grad_norm", float("nan"))]
    tb_write(tmp_path, scalars)
    _check(read(tmp_path)[0])


def test_mlflow(tmp_path):
    store, exp, ids = mlflow_store(tmp_path, {"r": (1e-3, [2.0, 1.9, 1.8, 1.7])})
    m = store / exp / ids["r"] / "metrics" / "grad_norm"
    m.write_text("1700000000000 1.5 0\n1700000000001 1.2 1\n1700000000002 nan 2\n")
    _check(read(store / exp / ids["r"])[0])


def test_text_hf_console_dicts():
    [h] = read(FIXTURES / "console" / "hf_trainer_nan.log")
    g = h.columns["grad_norm"]
    assert g[0] == pytest.approx(1.425e6) and np.isinf(g[1:]).all()
    assert (h.logged_loss[2:] == 0).all()


def test_text_mmengine_and_olmo(shared):
    [h] = read(shared / "real_logs" / "mmengine" / "xtuner_issue187_gradnorm_nan.log")
    g = h.columns["grad_norm"]
    assert g[0] == pytest.approx(3.0608) and np.isinf(g[-2:]).all() and np.isfinite(g[:4]).all()
    [h] = read(shared / "real_logs" / "olmo_console" / "b_olmo1b_scratch_train.log")
    assert h.grad_norm.iloc[0] == pytest.approx(11.55)
