"""lrdoctor/readers/text.py: console output of nanoGPT, Megatron/DeepSpeed, fairseq, Keras
(written by Keras itself, tests/fixtures/), generic lines and --pattern."""
import numpy as np
import pytest

from lrdoctor import LrDoctorError
from lrdoctor.cli import main
from lrdoctor.readers import read, sniff

from logs import FIXTURES

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
    assert len(h.loss) == n and any(note.startswith(f"read as {dialect}") for note in h.notes)
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
    with pytest.raises(LrDoctorError, match="names seen: objective, eta; none is a loss"):
        read(p)
    [h] = read(p, pattern=r"^(?P<step>\d+) \| objective=(?P<loss>\S+) \| eta=(?P<lr>\S+)")
    assert len(h.loss) == 40 and h.lr.iloc[0] == 1e-3
    with pytest.raises(LrDoctorError, match="named group"):
        read(p, pattern=r"objective=(\S+)")
    code = main(["analyze", str(p), "--pattern", r"objective=(?P<loss>\S+)"])
    assert code == 0 and "40 points" in capsys.readouterr().out


# ------------------------------------------------------------------ generic 'name: value'
def _read_text(tmp_path, text, name="run.log", **kw):
    p = tmp_path / name
    p.write_text(text)
    [h] = read(p, **kw)
    return h


def _generic(h):
    return any(n.startswith("read as generic 'name: value' lines") for n in h.notes)


#: file -> (points, metric, first step, last step, first loss, first LR or None)
REAL_TEXT = {
    "hf_console/timemoe_issue71_intermittent_gradnan.log": (9, "loss", 0, 8, 0.1474, 1e-4),
    "mmengine/xtuner_issue187_gradnorm_nan.log": (6, "loss", 200, 250, 2.7522, 1.987e-4),
    "plain_custom/llm_pretrain_barber0_train.log": (13, "loss", 20, 260, 10.984375, None),
    "olmo_console/b_olmo1b_scratch_train.log": (2003, "train/CrossEntropyLoss", 1, 2003, 11.33,
                                                None),
    "mlx/mlx_lora_issue620_blowup.log": (8, "Train loss", 25, 200, 1.593, 7e-5),
    "yolov5_txt/mushrooms_yolov5_results.txt": (30, "loss", 0, 29, 0.1917, None),
}


@pytest.mark.parametrize("name", sorted(REAL_TEXT))
def test_real_console_logs(shared, name):
    n, metric, first, last, loss0, lr0 = REAL_TEXT[name]
    p = shared / "real_logs" / name
    assert sniff(p) == "text"
    [h] = read(p)
    assert (len(h.loss), h.metric) == (n, metric)
    assert (h.loss.index[0], h.loss.index[-1], h.loss.iloc[0]) == (first, last, loss0)
    assert (h.lr is None) if lr0 is None else h.lr.iloc[0] == pytest.approx(lr0)


def test_real_console_details(shared):
    logs = shared / "real_logs"
    [h] = read(logs / "mlx/mlx_lora_issue620_blowup.log")  # 'Iter 1: Val loss 2.086'
    assert h.val_loss.to_dict() == {1: 2.086} and _generic(h)
    [h] = read(logs / "hf_console/timemoe_issue71_intermittent_gradnan.log")
    assert "no step in the lines: the line order is the step" in h.notes  # epoch 0.04 is not
    [h] = read(logs / "olmo_console/b_olmo1b_scratch_train.log")  # after a config dump
    assert h.loss.iloc[1] == 10.64 and any("lines without a loss skipped" in n or
                                           "line(s) without a loss skipped" in n
                                           for n in h.notes)
    [h] = read(logs / "yolov5_txt/mushrooms_yolov5_results.txt")  # val box + obj + cls
    assert h.val_loss.iloc[0] == pytest.approx(0.09176 + 0.05526 + 0)
    assert "read as YOLOv5 results.txt output" in h.notes
    [h] = read(logs / "nanogpt/nanogpt_issue215_fp16_nan.log")  # the precise dialect keeps it
    assert "read as nanoGPT output" in h.notes and len(h.loss) == 15
    [h] = read(logs / "keras_console/handsonml2_issue398_nan_from_start.log")
    assert "read as Keras console output" in h.notes


#: tests/fixtures/console (real output of each tool, described in its README.md):
#: file -> (training-loss points, first step, last step, first loss)
CONSOLE = {
    "hf_trainer_tqdm.log": (30, 0, 32, 4.468),
    "hf_trainer_explode.log": (12, 0, 11, 2.833e5),
    "hf_trainer_nan.log": (12, 0, 11, 2.347e11),
    "hf_trainer_nan_nofilter.log": (12, 0, 11, 2.347e11),
    "mmengine_epoch.log": (30, 10, 300, 0.7127),
    "mmengine_iter.log": (50, 10, 500, 0.7127),
    "lightning_progress.log": (150, 1, 150, None),
    "keras_jax_nan_verbose1.log": (8, 1, 8, 20.2906),
    "keras_jax_nan_verbose2.log": (8, 1, 8, 20.2906),
    "keras_jax_reduce_lr_verbose1.log": (20, 1, 20, 0.6219),
    "keras_jax_reduce_lr_verbose2.log": (20, 1, 20, 0.6219),
    "lightning_rich_progress.log": (1, None, None, 0.417),
}


@pytest.mark.parametrize("name", sorted(CONSOLE))
def test_console_output_written_by_the_tools(name):
    n, first, last, loss0 = CONSOLE[name]
    p = FIXTURES / "console" / name
    if not p.exists():
        pytest.skip(f"{p} is not there yet")
    [h] = read(p)
    assert len(h.loss) == n
    if first is not None:
        assert h.loss.index[0] == first
    if last is not None:
        assert h.loss.index[-1] <= last
    if loss0 is not None:
        assert h.loss.iloc[0] == pytest.approx(loss0, rel=1e-3)


def test_console_fixture_values():
    d = FIXTURES / "console"
    if not (d / "hf_trainer_nan_nofilter.log").exists():
        pytest.skip("console fixtures are not there yet")
    [h] = read(d / "hf_trainer_nan_nofilter.log")  # 'loss': 'nan' quoted by transformers 5
    assert np.isnan(h.loss.iloc[1:]).all() and h.lr.iloc[0] == 1e5
    [h] = read(d / "hf_trainer_tqdm.log")  # eval dicts are the validation loss
    assert h.val_loss.dropna().round(3).tolist() == [3.691, 3.255, 3.11]
    assert h.loss.iloc[-1] == pytest.approx(3.19, rel=1e-3)
    [h] = read(d / "mmengine_epoch.log")  # Epoch(train) [e][ i/100]: (e-1)*100 + i
    assert h.loss.index.tolist()[:3] == [10, 20, 30] and h.lr.notna().all()
    [h] = read(d / "lightning_progress.log")  # the last redraw of each step holds its loss
    assert h.loss.iloc[-1] == pytest.approx(0.417, abs=1e-3)
    assert h.val_loss.dropna().round(3).tolist()[-1] == 0.360


GENERIC = {
    # other key orders, missing LR, extra fields
    "colon pairs": ("".join(f"loss: {3 - i / 100:.3f}, step: {i * 10}, tok/s: 1234.5, "
                            f"grad_norm: 0.5\n" for i in range(30)),
                    30, (0, 290), 3.0, None),
    "pipes": ("".join(f"| epoch 1 | iter {i:5d} | lr {1e-3:.2e} | train loss {2 - i / 50:.4f} "
                      f"| 12.3 ms/it |\n" for i in range(1, 41)), 40, (1, 40), 1.98, 1e-3),
    "equals with commas": ("".join(f"global_step={i}, loss={1.5 - i / 1000:.4f}, "
                                   f"learning_rate={2e-4}, samples=1,024\n"
                                   for i in range(0, 500, 25)), 20, (0, 475), 1.5, 2e-4),
    "json after a prefix": ("".join(f'2024-01-01 12:00:{i % 60:02d},123 INFO train: '
                                    f'{{"step": {i}, "loss": {2.3 - i / 100:.3f}, "lr": 0.001}}\n'
                                    for i in range(25)), 25, (0, 24), 2.3, 1e-3),
    "home-made epochs and batches": (
        "".join(f"Epoch {e} Batch {b} loss {5 - e - b / 1000:.3f}\n"
                for e in range(1, 4) for b in range(100, 400, 100)), 9, (100, 900), 3.9, None),
    "space-separated names": ("".join(f"Iter {i}: Train loss {1 + i / 100:.3f}, Learning Rate "
                                      f"{1e-5:.3e}, It/sec 0.9\n" for i in range(5, 55, 5)),
                              10, (5, 50), 1.05, 1e-5),
}


@pytest.mark.parametrize("name", sorted(GENERIC))
def test_generic_lines(tmp_path, name):
    text, n, (first, last), loss0, lr0 = GENERIC[name]
    h = _read_text(tmp_path, "starting run\n" + text)
    assert _generic(h) and len(h.loss) == n
    assert (h.loss.index[0], h.loss.index[-1]) == (first, last)
    assert h.loss.iloc[0] == pytest.approx(loss0)
    assert (h.lr is None) if lr0 is None else h.lr.iloc[0] == pytest.approx(lr0)


def test_generic_python_dicts_with_nan_inf_and_eval(tmp_path):
    lines = [f"{{'loss': {v}, 'grad_norm': nan, 'learning_rate': 5e-05, 'epoch': {i / 10}}}   "
             for i, v in enumerate(["1.5", "1.25", "nan", "inf", "-inf", "0.75"])]
    lines.insert(3, "{'eval_loss': 1.1, 'eval_runtime': 2.5, 'epoch': 0.3}")
    lines.append("{'train_runtime': 12.0, 'train_loss': 0.9, 'epoch': 0.6}")
    p = tmp_path / "hf.log"
    p.write_text("\n".join(lines) + "\n")
    assert sniff(p) == "text"  # a Python dict repr, not JSON lines
    [h] = read(p)
    v = h.loss.tolist()
    assert v[:2] == [1.5, 1.25] and np.isnan(v[2]) and v[3:] == [np.inf, -np.inf, 0.75]
    assert h.val_loss.dropna().tolist() == [1.1] and h.lr.iloc[0] == 5e-5
    assert h.loss.index.tolist() == [0, 1, 2, 4, 5, 6]  # the line order, eval at 3


def test_generic_olmo_like_block(tmp_path):
    text = "Config(lr=0.1, d_model=2,048, seed=7)\n" + "".join(
        f"2024-05-01 10:00:00\tnode0\ttrainer.py:88\tINFO\t[step={s}/100,epoch=0]\n"
        f"    lr=1.0E-4\n    train/lm_loss={4 - s / 10:.2f}\n    tokens=1,{s:03d},000\n"
        for s in range(1, 11))
    h = _read_text(tmp_path, text)
    assert len(h.loss) == 10 and h.metric == "train/lm_loss"
    assert h.loss.index.tolist() == list(range(1, 11)) and h.loss.iloc[0] == 3.9
    assert h.lr.iloc[0] == 1e-4  # the block's lr, not the config's lr=0.1
    assert any("1 line(s) without a loss skipped" in n for n in h.notes)


def test_generic_thousands_commas_and_pairs(tmp_path):
    h = _read_text(tmp_path, "".join(f"step {i}, loss 1,234.5, tokens 8,388,608, lr 3e-4\n"
                                     for i in range(5)))
    assert h.loss.tolist() == [1234.5] * 5 and h.loss.index.tolist() == list(range(5))


def test_generic_progress_bar_redraws(tmp_path):
    # a bar rewritten with \r; only the final redraw of each line holds the loss
    text = "".join(f"epoch {e}: 10%|#  | 1/10\r epoch {e}: 100%|####| 10/10 loss={1 / (e + 1):.3f}\n"
                   for e in range(1, 6))
    h = _read_text(tmp_path, text)
    assert h.loss.round(3).tolist() == [0.5, 0.333, 0.25, 0.2, 0.167]


def test_generic_skips_noise_and_tracebacks(tmp_path):
    text = ("config: hidden=512 layers=12 dropout=0.1 warmup=1000\n" +
            "".join(f"step={i} loss={2 - i / 100:.2f}\n" for i in range(10)) +
            "Traceback (most recent call last):\n"
            '  File "train.py", line 42, in <module>\n    main()\n'
            "RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB\n" +
            "".join(f"step={i} loss={2 - i / 100:.2f}\n" for i in range(10, 20)) +
            "| task | acc 0.81 | f1 0.77 |\n")
    h = _read_text(tmp_path, text)
    assert len(h.loss) == 20 and h.loss.index[-1] == 19
    assert any("6 line(s) without a loss skipped" in n for n in h.notes)


def test_generic_refuses_numbers_without_a_loss(tmp_path, capsys):
    p = tmp_path / "metrics.log"
    p.write_text("".join(f"lr: 0.001, grad_norm: 1.5, tokens: {i * 100}\n" for i in range(20)))
    with pytest.raises(LrDoctorError, match="names seen: .*lr.*grad_norm.*tokens.*; none is a "
                                            "loss; pass --metric"):
        read(p)
    assert main(["analyze", str(p)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    [h] = read(p, metric="grad_norm")
    assert len(h.loss) == 20 and h.metric == "grad_norm"


def test_generic_overrides(tmp_path):
    text = "".join(f"it {i} | loss {2 - i / 100:.2f} | aux_loss 0.1 | my_lr 0.01 | tok {i * 7}\n"
                   for i in range(10))
    p = tmp_path / "run.log"
    p.write_text(text)
    [h] = read(p, metric="aux_loss", step="tok", lr_column="my_lr")
    assert h.metric == "aux_loss" and h.loss.index[-1] == 63 and h.lr.iloc[0] == 0.01
    with pytest.raises(LrDoctorError, match="no name 'nope' in this text"):
        read(p, metric="nope")


def test_a_line_of_the_same_shape_that_its_template_cannot_read_keeps_every_name(tmp_path):
    # one Lightning bar line whose batch counter is not a number: the shape's regex misses
    # it and the lines are read again one by one, for every wanted name
    bar = ("Epoch 2:  60%|######    | {i}/50 [00:01<00:00, 35.88it/s, v_num=0, "
           "train_loss={loss:.3f}, val_loss=0.490]")
    lines = [bar.format(i=i, loss=0.9 - i / 100) for i in range(1, 21)]
    lines.insert(10, bar.format(i=7, loss=0.435).replace("60%", "1e-320%").replace(
        "| 7/50", "| nan/50"))
    p = tmp_path / "train.log"
    p.write_text("\n".join(lines) + "\n")
    [h] = read(p)
    assert h.metric == "train_loss"
    np.testing.assert_allclose(h.logged_loss[:10], [0.9 - i / 100 for i in range(1, 11)])
