"""Failures found by benchmarks/fuzz.py (mutated real logs), each as the smallest input that
showed it. Every case must end in diagnoses or one LrDoctorError line, never another
exception."""
import warnings

import numpy as np
import pandas as pd
import pytest

import lrdoctor


def _olmo_block(i: int, extra: str = "") -> str:
    return (f"2025-12-11 00:27:01.586\thost:0\tolmo.train:979\tINFO\t[step={i}/2500,epoch=0]\n"
            f"    optim/total_grad_norm=11.55\n    train/CrossEntropyLoss={11 - i * 0.01:.3f}\n"
            f"{extra}    train/Perplexity=83,461\n")


def test_a_stray_loss_name_in_one_block_does_not_replace_the_loss(tmp_path):
    # an OLMo console log with 'loss=5' inside one of its 39 blocks: the first pass left the
    # rare name out, the second took it as the loss and the redraw check then looked up the
    # first pass's loss among the second's columns (KeyError: 'train/CrossEntropyLoss')
    p = tmp_path / "train.log"
    p.write_text("".join(_olmo_block(i, "    loss=5\n" if i == 7 else "")
                         for i in range(1, 40)))
    [d] = lrdoctor.analyze(p)
    assert d.metric == "train/CrossEntropyLoss"
    assert d.outline()[0] == 39


def test_a_keras_epoch_number_too_large_for_a_float(tmp_path):
    # 'Epoch 999...9/3' (400 digits): int -> float64 was an OverflowError
    p = tmp_path / "fit.log"
    p.write_text("Epoch 1/3\n10/10 - 1s - loss: 2.5\n"
                 f"Epoch {'9' * 400}/3\n10/10 - 1s - loss: 2.0\n"
                 "Epoch 3/3\n10/10 - 1s - loss: 1.5\n")
    [d] = lrdoctor.analyze(p)
    assert d.metric == "loss" and d.verdict == "unknown"  # 2 points with a finite step


def test_an_lr_that_peaks_after_the_loss_went_non_finite():
    # the LR's peak (over the whole log) came after the loss went inf: the bins before it
    # never reach it, and the schedule check indexed an empty array (IndexError)
    step = np.arange(400)
    loss = 2.5 * np.exp(-step / 150) + 0.3 + 0.01 * np.sin(step)
    loss[300:] = np.inf
    lr = np.full(400, 1e-3)
    lr[350:] = 1.0
    d = lrdoctor.diagnose(pd.DataFrame({"step": step, "loss": loss, "lr": lr}),
                          step="step", loss="loss", lr="lr")
    assert d.verdict == "too_high"
    assert any(f.kind == "nonfinite" for f in d.findings)


@pytest.mark.parametrize("where", ["start", "tail", "alternating", "everywhere"])
def test_losses_near_the_float_maximum_warn_nothing(where):
    # 1e308 losses (a corrupt log, or huge numbers written as text) overflowed the
    # detectors' arithmetic: RuntimeWarnings on the command line's stderr
    x = 2.5 * np.exp(-np.arange(100) / 30) + 0.3
    if where == "start":
        x[0] = 1e308
    elif where == "tail":
        x[90:] = 1e308
    elif where == "alternating":
        x = np.where(np.arange(100) % 2, 1e308, 1.0)
    else:
        x = 1e307 * np.linspace(1, 10, 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = lrdoctor.diagnose(pd.Series(x))
    assert d.verdict in ("too_high", "too_low", "ok")


def test_an_epoch_number_near_the_float_maximum_warns_nothing(tmp_path):
    # mmengine's '[epoch][iter/total]' with an epoch of 1e308: the step (epoch - 1) * total
    # + iter overflowed with a RuntimeWarning on stderr
    p = tmp_path / "train.log"
    p.write_text("2024/01/01 00:00:00 - mmengine - INFO - Epoch(train) [1e308][200/735]  "
                 "lr: 1.9870e-04  eta: 2:46:39  time: 0.4  data_time: 0.0042  loss: 1.5\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            lrdoctor.analyze(p)
        except lrdoctor.LrDoctorError:
            pass  # one clear line is an answer too


def test_a_json_line_holding_two_values(tmp_path):
    # the lines are parsed as one array ('[' + ','.join(lines) + ']'): a line '{...}, 1'
    # gave one record more than lines, and the check for a non-object then named the
    # wrong line, or none (IndexError when it was the last)
    rows = [f'{{"step": {i}, "loss": {2.5 - 0.01 * i}}}' for i in range(30)]
    p = tmp_path / "metrics.json"
    p.write_text("\n".join(rows[:10] + [rows[10] + ", 1"] + rows[11:]) + "\n")
    with pytest.raises(lrdoctor.LrDoctorError, match="line 11: not valid JSON"):
        lrdoctor.analyze(p)
    p.write_text("\n".join(rows[:-1] + [rows[-1] + ", 1"]) + "\n")
    [d] = lrdoctor.analyze(p)  # the last line cut or garbled: skipped, said in a note
    assert d.outline()[0] == 29 and any("last line (30)" in n for n in d.notes)


def test_a_number_of_more_than_4300_digits_in_json_lines_is_one_line(tmp_path):
    # json refuses to convert such an integer with a bare ValueError
    p = tmp_path / "metrics.json"
    rows = [f'{{"iteration": {i}, "total_loss": {2 - i * 0.01}}}' for i in range(30)]
    rows[20] = '{"iteration": 20, "total_loss": ' + "9" * 5000 + "}"
    p.write_text("\n".join(rows) + "\n")
    with pytest.raises(lrdoctor.LrDoctorError, match="line 21: a number of more than 4,300"):
        lrdoctor.analyze(p)


def test_a_gzip_mlflow_metric_file_with_a_bad_crc_is_one_line(tmp_path):
    # pyarrow inflated the file itself and raised a bare OSError (zlib: incorrect data check)
    import gzip

    run = tmp_path / "metrics"
    run.mkdir()
    data = bytearray(gzip.compress("".join(
        f"{1700000000000 + i} {2 - i * 1e-4} {i}\n" for i in range(3000)).encode()))
    data[-8] ^= 0xFF  # the CRC32 of the content
    (run / "loss.gz").write_bytes(bytes(data))
    with pytest.raises(lrdoctor.LrDoctorError, match="gzip stream is truncated or corrupt"):
        lrdoctor.analyze(run / "loss.gz")


def test_a_csv_header_field_past_the_csv_modules_limit_is_one_line(tmp_path):
    # csv.reader raised _csv.Error: field larger than field limit (131072)
    p = tmp_path / "run.csv"
    p.write_text("step,loss," + '"' + "x" * 200_000 + "\n0,2.3,1\n1,2.2,1\n")
    with pytest.raises(lrdoctor.LrDoctorError, match="line 1: the header cannot be read"):
        lrdoctor.analyze(p)
