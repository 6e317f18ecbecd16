"""lrdoctor/readers/_columns.py: the loss found by meaning, in every reader."""
import json
import subprocess
import sys

import numpy as np
import pytest

from lrdoctor import LrDoctorError
from lrdoctor.readers import _columns as C
from lrdoctor.readers import expand, read

from logs import mlflow_store, tb_write, wandb_write


@pytest.mark.parametrize("columns,picked", [
    # a total over its parts, whatever the parts are called
    (["Conductor_Copper_loss", "Dielectric_Air_loss", "epoch", "mean_loss", "step"],
     ["mean_loss"]),
    (["data_loss", "mean_loss", "epoch"], ["mean_loss"]),
    (["loss_cls", "loss_box_reg", "sum_loss"], ["sum_loss"]),
    # camelCase and spaces
    (["step", "train/CrossEntropyLoss", "train/Perplexity", "optim/total_grad_norm"],
     ["train/CrossEntropyLoss"]),
    (["Iter", "Val loss", "Train loss", "Learning Rate"], ["Train loss"]),
    (["valloss", "trainloss"], ["trainloss"]),
    # training over validation, even when the validation name comes first
    (["eval/loss", "test_loss", "objective/loss"], ["objective/loss"]),
    # per step over per epoch
    (["physics_loss_epoch", "physics_loss_step"], ["physics_loss_step"]),
    # no total: the parts of one phase and cadence summed, duplicates left out
    (["epoch", "train/box_loss", "train/cls_loss", "val/box_loss", "val/cls_loss"],
     ["train/box_loss", "train/cls_loss"]),
    (["loss_ce", "loss_ce_unscaled", "loss_bbox"], ["loss_ce", "loss_bbox"]),
    # only a validation loss: it is diagnosed, never summed
    (["eval_g0_loss", "eval_g1_loss", "eval_g0_accuracy"], ["eval_g0_loss"]),
])
def test_the_loss_is_found_by_meaning(columns, picked):
    assert C.pick_loss(columns)[0] == picked


@pytest.mark.parametrize("columns", [
    ["step", "loss_scale", "lr"],            # fp16's loss scaler
    ["a - train/loss__MIN", "a - train/loss__MAX"],  # a chart export's band
    ["file", "loss_column", "why"],          # a table about losses
    ["step", "grad_norm", "tokens", "glossary"],
])
def test_names_that_only_mention_a_loss_are_not_one(columns):
    assert C.pick_loss(columns) is None


def test_the_name_lists_stay_the_first_exact_preference():
    # 'loss' is on the list; the ranking alone would also take a total, but the list
    # decides before it
    assert C.find(["total_loss", "loss", "mean_loss"], C.LOSS) == "loss"


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_picks_the_total_and_the_report_names_it_and_the_others(tmp_path):
    rows = "".join(f"{s},{s // 10},{1 / (s + 1)},{2 / (s + 1)},{3 / (s + 1)}\n"
                   for s in range(50))
    p = write(tmp_path, "pinn.csv", "step,epoch,data_loss,physics_loss,mean_loss\n" + rows)
    [h] = read(p)
    assert h.metric == "mean_loss" and h.loss.iloc[0] == 3.0
    assert set(h.available) == {"data_loss", "physics_loss"}
    assert any("loss found by name: 'mean_loss'" in n and "'data_loss'" in n
               for n in h.notes)
    [h] = read(p, metric="physics_loss")  # --metric overrides
    assert h.metric == "physics_loss" and h.loss.iloc[0] == 2.0


def test_padded_names_are_shown_stripped(tmp_path):
    p = write(tmp_path, "results.csv",
              "       epoch,   train/box_loss,   train/cls_loss,     val/box_loss\n" +
              "".join(f"{e:>12},{1 / (e + 1):>17},{2 / (e + 1):>17},{1.5:>17}\n"
                      for e in range(20)))
    [h] = read(p)
    assert h.metric == "train/box_loss + train/cls_loss"
    assert h.available == ["val/box_loss"]
    assert h.loss.iloc[0] == 3.0
    assert all("  " not in n for n in h.notes)


def test_jsonlines_parts_without_a_total_are_summed(tmp_path):
    lines = [json.dumps({"iteration": i, "loss_cls": 1.0, "loss_box": 0.5, "lr": 0.01})
             for i in range(30)]
    [h] = read(write(tmp_path, "m.jsonl", "\n".join(lines) + "\n"))
    assert h.metric == "loss_cls + loss_box" and (h.loss == 1.5).all()
    assert h.lr.iloc[0] == 0.01


def test_trainer_state_with_a_camelcase_loss(tmp_path):
    hist = [{"step": s, "train/CrossEntropyLoss": 10 - s / 10, "learning_rate": 3e-4}
            for s in range(1, 40)]
    p = write(tmp_path, "trainer_state.json", json.dumps({"log_history": hist}))
    [h] = read(p)
    assert h.metric == "train/CrossEntropyLoss" and len(h.loss) == 39


def test_tensorboard_tags_picked_by_meaning(tmp_path):
    tb_write(tmp_path, [(s, tag, v) for s in range(40)
                        for tag, v in (("data_loss", 1.0), ("mean_loss", 2.0 - s / 40),
                                       ("epoch", s // 10))])
    [h] = read(tmp_path)
    assert h.metric == "mean_loss" and h.available == ["data_loss"]


def test_wandb_run_file_picked_by_meaning(tmp_path):
    rows = [(s, {"train/CrossEntropyLoss": str(5 - s / 10), "train/ZLoss": "0.01"})
            for s in range(30)]
    [h] = read(wandb_write(tmp_path / "run-x.wandb", rows))
    # two parts and no total: summed
    assert h.metric == "train/CrossEntropyLoss + train/ZLoss"
    assert h.loss.iloc[0] == pytest.approx(5.01)


def test_wandb_chart_export_one_run_per_prefix_on_an_epoch_axis(tmp_path):
    head = ['"epoch"']
    for run in ("net_lr_0.01_a", "net_lr_0.01"):
        for m in ("_step", "train/loss"):
            head += [f'"{run} - {m}"', f'"{run} - {m}__MIN"', f'"{run} - {m}__MAX"']
    rows = []
    for k in range(30):
        a = [f'"{k}"', f'"{1 / (k + 1)}"']
        b = [f'"{k}"', f'"{2 / (k + 1)}"'] if k >= 3 else ['""', '""']
        cells = [f'"{50 * k + 49}"'] + [c for c in a for _ in range(3)] + \
            [c for c in b for _ in range(3)]
        rows.append(",".join(cells))
    p = write(tmp_path, "wandb_export.csv", ",".join(head) + "\n" + "\n".join(rows) + "\n")
    a, b = read(p)
    assert (a.run, b.run) == ("net_lr_0.01_a", "net_lr_0.01")
    assert a.metric == "train/loss" and len(a.loss) == 30 and len(b.loss) == 27
    assert a.logged_steps[0] == 49 and b.logged_steps[0] == 199  # the chart's x axis
    assert a.lr.iloc[0] == 0.01


def _mlflow_run(tmp_path, key="mean_loss"):
    t = np.arange(60)
    store, exp, ids = mlflow_store(tmp_path, {"r": (1e-3, 2.0 * np.exp(-t / 20) + 0.1)})
    run = store / exp / ids["r"]
    (run / "metrics" / "train_loss").rename(run / "metrics" / key)
    return run


def test_mlflow_run_folder_without_meta_yaml(tmp_path):
    run = _mlflow_run(tmp_path)
    (run / "meta.yaml").unlink()
    [h] = read(run)
    assert h.metric == "mean_loss" and len(h.loss) == 60 and h.lr.iloc[0] == 1e-3
    assert h.run == "r"  # its mlflow.runName tag
    found, errors = expand([str(tmp_path)])
    assert found == [str(run)] and not errors


def test_mlflow_single_metric_file_reads_its_run(tmp_path):
    run = _mlflow_run(tmp_path)
    [h] = read(run / "metrics" / "mean_loss")
    assert h.metric == "mean_loss" and h.lr.iloc[0] == 1e-3 and h.run == "r"
    with pytest.raises(LrDoctorError, match="'learning_rate' is not a loss"):
        read(run / "metrics" / "learning_rate")


def test_mlflow_metric_file_alone_and_mlflow3_five_fields(tmp_path):
    lines = [f"{1628697792090 + s} {3.0 / (s + 1)} {s} train_ds 9f3a1c" for s in range(20)]
    p = write(tmp_path, "loss", "\n".join(lines) + "\n")
    [h] = read(p)
    assert h.metric == "loss" and h.loss.iloc[1] == 1.5 and h.steps[-1] == 19


def test_output_to_a_closed_pipe_ends_quietly(shared):
    runs = str(shared / "benchmarks/lr_sweeps/runs")
    p = subprocess.run(f"{sys.executable} -m lrdoctor analyze {runs} | head -2",
                       shell=True, capture_output=True, text=True,
                       executable="/bin/bash")
    assert len(p.stdout.splitlines()) == 2
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr


def test_yolo_lr_is_the_weights_group_not_the_biases_warmup(tmp_path):
    """Ultralytics logs lr/pg0 (biases: warmup from 0.1 down), lr/pg1 and lr/pg2 (weights:
    up from 0); YOLOv5 x/lr0..2 alike. The weights' group is the LR the user set."""
    from lrdoctor.readers import read

    for names in (("lr/pg0", "lr/pg1", "lr/pg2"), ("x/lr0", "x/lr1", "x/lr2")):
        p = tmp_path / "results.csv"
        rows = "".join(f"{e},{2 - e / 50:.4f},{0.1 - e * 0.03 if e < 3 else 0.01},"
                       f"{0.01 * min(1, e / 3):.4f},{0.01 * min(1, e / 3):.4f}\n"
                       for e in range(60))
        p.write_text("epoch,train/box_loss," + ",".join(names) + "\n" + rows)
        [h] = read(p)
        lr = np.asarray(h.columns["lr"], float)
        assert lr[0] == 0 and np.allclose(lr[3:], 0.01)  # pg0's 0.1 warmup is not read
