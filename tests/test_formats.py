"""The formats of issue 3: TensorBoard, MLflow, W&B exports, plain-text console output,
folder walks. Fixtures are written by the real libraries where they install here
(tensorboard's event writer, mlflow's file store, Keras for the console output in
tests/fixtures/), else in the exact printed format of the tool."""
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from lrdoctor import LrDoctorError, analyze
from lrdoctor.cli import main
from lrdoctor.readers import expand, read, sniff

FIXTURES = Path(__file__).parent / "fixtures"


# ------------------------------------------------------------------------- TensorBoard

def tb_write(folder: Path, scalars, *, style="simple", suffix=""):
    """Write scalars [(step, tag, value)] with TensorBoard's own event writer."""
    from tensorboard.compat.proto import summary_pb2, tensor_pb2, types_pb2
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    w = EventFileWriter(str(folder), filename_suffix=suffix)
    seen = set()
    for step, tag, value in scalars:
        if style == "simple":
            v = summary_pb2.Summary.Value(tag=tag, simple_value=value)
        else:  # TF2 tf.summary.scalar: a float tensor with the scalars plugin's metadata
            if style == "tensor":
                t = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[value])
            else:  # "content": a double in tensor_content
                t = tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE,
                                           tensor_content=struct.pack("<d", value))
            v = summary_pb2.Summary.Value(tag=tag, tensor=t)
            if tag not in seen:
                v.metadata.plugin_data.plugin_name = "scalars"
                seen.add(tag)
        w.add_event(Event(step=step, wall_time=1.7e9 + step,
                          summary=summary_pb2.Summary(value=[v])))
    w.close()
    return sorted(folder.glob("events.out.tfevents.*"))[-1]


def curve(n=300, lr=1e-3):
    t = np.arange(n)
    return [(int(s), "train/loss", float(2.3 * np.exp(-s / 40) + 0.2)) for s in t] + \
           [(int(s), "lr", lr) for s in t] + \
           [(int(s), "val/loss", float(2.4 * np.exp(-s / 40) + 0.25)) for s in t[::50]]


@pytest.mark.parametrize("style", ["simple", "tensor", "content"])
def test_tensorboard_scalars_from_the_real_writer(tmp_path, style):
    pytest.importorskip("tensorboard")
    f = tb_write(tmp_path, curve(), style=style)
    assert sniff(f) == "tensorboard"
    [h] = read(f)
    assert h.metric == "train/loss" and len(h.loss) == 300
    assert h.loss.iloc[0] == pytest.approx(2.5, rel=1e-6)
    assert h.lr.dropna().eq(1e-3).all()
    assert h.val_loss.index.tolist() == list(range(0, 300, 50))
    assert "val/loss" in h.available
    [d] = analyze(f)
    assert d.verdict == "ok" and d.current_lr == pytest.approx(1e-3)


def test_tensorboard_folder_of_files_is_one_run_and_last_write_wins(tmp_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "exp1"
    run.mkdir()
    tb_write(run, [(s, "loss", 3.0) for s in range(0, 120)], suffix=".a")
    # resumed from step 100: the second file rewrites steps 100..199
    tb_write(run, [(s, "loss", 1.0) for s in range(100, 200)], suffix=".b")
    [h] = read(run)
    assert len(h.loss) == 200 and h.loss.loc[99] == 3.0 and h.loss.loc[100] == 1.0
    assert h.run == "exp1" and any("2 event files" in n for n in h.notes)


def test_tensorboard_truncated_tail_is_read_up_to_the_damage(tmp_path):
    pytest.importorskip("tensorboard")
    f = tb_write(tmp_path, curve())
    data = f.read_bytes()
    f.write_bytes(data[:-7])
    [h] = read(f)
    assert len(h.loss) == 300 or len(h.val_loss) == 5  # the last record was cut
    assert any("incomplete record" in n for n in h.notes)


def test_tensorboard_corrupt_record_in_the_middle(tmp_path):
    pytest.importorskip("tensorboard")
    f = tb_write(tmp_path, curve(60))
    data = bytearray(f.read_bytes())
    data[len(data) // 2: len(data) // 2 + 8] = b"\xff" * 8  # garbage inside the records
    f.write_bytes(bytes(data))
    try:
        [h] = read(f)
    except LrDoctorError as exc:  # a clear error is acceptable; a traceback is not
        assert str(f) in str(exc)
    else:
        assert 0 < len(h.loss) <= 60 and h.notes


def test_tensorboard_without_scalars_or_records(tmp_path):
    f = tmp_path / "events.out.tfevents.1.host"
    f.write_bytes(b"\x00" * 5)
    with pytest.raises(LrDoctorError, match="too short"):
        read(f)


def test_tensorboard_real_log_decodes_as_tensorboard_does(shared):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    from lrdoctor.readers.tensorboard import scalars

    files = sorted((shared / "real_logs/tensorboard").glob("*tfevents*"))
    ours, _ = scalars(files[0])
    ref: dict = {}
    for e in EventFileLoader(str(files[0])).Load():
        for v in e.summary.value:
            ref.setdefault(v.tag, []).append((e.step, float(np.asarray(
                v.tensor.float_val or [v.simple_value])[0])))
    assert set(ours) == set(ref)
    for tag, (steps, values) in ours.items():
        want = np.array(ref[tag])
        np.testing.assert_array_equal(steps, want[:, 0])
        np.testing.assert_allclose(values, want[:, 1], rtol=1e-6)


# ------------------------------------------------------------------------------ MLflow

def mlflow_store(root: Path, runs: dict):
    mlflow = pytest.importorskip("mlflow")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(root / "mlruns").as_uri())
    exp = client.create_experiment("sweep")
    ids = {}
    for name, (lr, losses) in runs.items():
        run = client.create_run(exp, run_name=name)
        for s, v in enumerate(losses):
            client.log_metric(run.info.run_id, "train_loss", v, step=s)
            client.log_metric(run.info.run_id, "learning_rate", lr, step=s)
        client.set_terminated(run.info.run_id)
        ids[name] = run.info.run_id
    del mlflow
    return root / "mlruns", exp, ids


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


# ---------------------------------------------------------------------------------- W&B

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


# ----------------------------------------------------------------------------- text logs

TEXT = {
    "nanoGPT": ("".join(f"iter {i}: loss {4.2 - i / 100:.4f}, time 101.23ms, mfu 12.01%\n"
                        for i in range(0, 200, 10)) +
                "step 100: train loss 3.1011, val loss 3.2500\n", 20, "nanoGPT"),
    "megatron": ("".join(
        f" iteration {i:8d}/    5000 | consumed samples: {i * 512:12d} | elapsed time per "
        f"iteration (ms): 812.3 | learning rate: {3e-4 * min(1, i / 50):.3E} | global batch "
        f"size:   512 | lm loss: {9.0 - i / 40:.6E} | loss scale: 1.0 | grad norm: 0.812 | "
        "number of skipped iterations:   0 | number of nan iterations:   0 |\n"
        for i in range(1, 201)), 200, "Megatron/DeepSpeed"),
    "fairseq": ("".join(
        f"2023-03-01 10:00:00 | INFO | train_inner | epoch 001:    {i} / 2000 loss={9 - i / 300:.3f}, "
        f"nll_loss=8.1, ppl=274.4, wps=11000, ups=4.1, wpb=2500, bsz=100, num_updates={i}, "
        f"lr={1e-4 * i / 1000:.6g}, gnorm=1.9, clip=0, train_wall=25\n"
        for i in range(100, 2100, 100)) +
        "| epoch 001 | valid on 'valid' subset | valid_loss 6.43 | valid_nll_loss 5.2 | "
        "valid_ppl 37.61 | num_updates 2000 | best 6.43\n", 20, "fairseq"),
    "generic": ("".join(f"[2024-01-01 10:00:{i % 60:02d}] Step {i}/1000, Loss: {2 - i / 1000:.4f}, "
                        f"lr=1e-3\n" for i in range(0, 1000, 20)), 50, "generic"),
}


@pytest.mark.parametrize("name", sorted(TEXT))
def test_plain_text_dialects(tmp_path, name):
    text, n, dialect = TEXT[name]
    p = tmp_path / f"{name}.log"
    p.write_text("some banner line\nloading data...\n" + text)
    assert sniff(p) == "text"
    [h] = read(p)
    assert len(h.loss) == n and f"read as {dialect} output" in h.notes
    if name in ("megatron", "fairseq", "generic"):
        assert h.lr.notna().all()
    if name in ("nanoGPT", "fairseq"):
        assert h.val_loss.notna().sum() == 1


@pytest.mark.parametrize("verbose", [1, 2])
def test_keras_console_output_written_by_keras(verbose):
    [h] = read(FIXTURES / f"keras_fit_verbose{verbose}.txt")
    assert len(h.loss) == 12 and h.steps.tolist() == list(range(1, 13))
    assert h.loss.iloc[0] == 0.7496 and h.val_loss.iloc[0] == 0.6897  # the epoch's final line
    assert "read as Keras console output" in h.notes


def test_pattern_reads_anything_else(tmp_path, capsys):
    p = tmp_path / "custom.out"
    p.write_text("".join(f"{i} | objective={2 - i / 100:.3f} | eta=0.001\n"
                         for i in range(40)))
    with pytest.raises(LrDoctorError, match="no loss found"):
        read(p)
    [h] = read(p, pattern=r"^(?P<step>\d+) \| objective=(?P<loss>\S+) \| eta=(?P<lr>\S+)")
    assert len(h.loss) == 40 and h.lr.iloc[0] == 1e-3
    with pytest.raises(LrDoctorError, match="named group"):
        read(p, pattern=r"objective=(\S+)")
    code = main(["analyze", str(p), "--pattern", r"objective=(?P<loss>\S+)"])
    assert code == 0 and "40 points" in capsys.readouterr().out


# ------------------------------------------------------------------------------ folders

def test_folder_walk_names_runs_by_path_and_ends_with_a_table(tmp_path, capsys):
    for v in range(3):
        d = tmp_path / "lightning_logs" / f"version_{v}"
        d.mkdir(parents=True)
        rows = "".join(f"{s},{2.3 * np.exp(-s / (10 + 30 * v)) + 0.1},0.001\n"
                       for s in range(100))
        (d / "metrics.csv").write_text("step,train_loss,lr-Adam\n" + rows)
    (tmp_path / "notes.log").write_text("nothing to see here\n")
    code = main(["analyze", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0 and "notes.log: skipped, not a loss log" in err
    for v in range(3):
        assert f"lightning_logs/version_{v} " in out  # the summary table's run column
    assert out.index("run ") > out.index("LR LOOKS FINE")  # table after the reports


def test_empty_folder_says_what_it_looked_for(tmp_path, capsys):
    (tmp_path / "README.md").write_text("hi")
    assert main(["analyze", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "TensorBoard event files" in err and "MLflow" in err


# ------------------------------------------------------------------ W&B run files

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


def test_tensorboard_keras_layout_pairs_train_and_validation(tmp_path, capsys):
    # Keras' TensorBoard callback: <run>/train/ and <run>/validation/, both with epoch_loss
    pytest.importorskip("tensorboard")
    run = tmp_path / "logs" / "fit-1"
    (run / "train").mkdir(parents=True)
    (run / "validation").mkdir()
    tb_write(run / "train", [(e, "epoch_loss", float(2.3 * 0.8 ** e)) for e in range(30)] +
             [(e, "epoch_learning_rate", 1e-3) for e in range(30)], style="tensor")
    tb_write(run / "validation", [(e, "epoch_loss", float(2.4 * 0.8 ** e)) for e in range(30)],
             style="tensor")
    found, errors = expand([str(tmp_path)])
    assert found == [str(run)] and not errors
    [h] = read(run)
    assert h.metric == "epoch_loss" and len(h.loss) == 30 and h.lr.iloc[0] == 1e-3
    assert h.val_loss.notna().sum() == 30 and h.val_loss.iloc[0] == pytest.approx(2.4)
    assert main(["analyze", str(tmp_path)]) == 0
    assert "run 'logs/fit-1'" in capsys.readouterr().out
