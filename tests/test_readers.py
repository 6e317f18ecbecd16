import gzip
import json

import numpy as np
import pytest

from lrdoctor import LrDoctorError
from lrdoctor.readers import expand, read


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_nonfinite_spellings_are_values_and_empty_cells_missing(tmp_path):
    p = write(tmp_path, "r.csv", "step,loss,lr,val_loss\n0,2.0,0.1,\n1,nan,0.1,\n2,NaN,0.1,1.5\n"
              "3,inf,0.1,\n4,-inf,0.1,\n5,Infinity,0.1,\n6,,0.1,1.2\n7,1.0,0.1,\n")
    [h] = read(p)
    f = h.frame
    assert f.index.name == "step" and f.index.dtype == np.int64
    assert list(f.columns) == ["loss", "lr", "val_loss", "epoch", "grad_norm", "logged"]
    assert all(f[c].dtype == np.float64 for c in ["loss", "lr", "val_loss", "epoch"])
    loss = h.loss
    assert len(loss) == 7  # step 6 is a validation-only row
    assert np.isnan(loss[1]) and np.isnan(loss[2]) and loss[3] == np.inf
    assert loss[4] == -np.inf and loss[5] == np.inf
    assert h.val_loss.to_dict() == {2: 1.5, 6: 1.2}


def test_integer_steps_stay_integers_and_a_late_fractional_step_falls_back(tmp_path):
    n = 20_000  # the fractional step lies far past the head the reader samples
    rows = [f"{i},{2.0 - i / n},0.001,{'' if i % 100 else 1.5}" for i in range(n)]
    p = write(tmp_path, "int.csv", "step,loss,lr,val_loss\n" + "\n".join(rows) + "\n")
    [h] = read(p)
    assert h.steps.dtype == np.int64 and h.steps[-1] == n - 1
    assert h.val_loss.index[:2].tolist() == [0, 100] and (h.val_loss == 1.5).all()
    rows.append(f"{n - 0.5},1.0,0.001,")
    p = write(tmp_path, "frac.csv", "step,loss,lr,val_loss\n" + "\n".join(rows) + "\n")
    [h] = read(p)
    assert len(h.loss) == n + 1 and h.steps[-1] == n - 0.5 and h.loss.iloc[-1] == 1.0


def test_a_bad_validation_cell_is_reported_when_the_column_is_read(tmp_path):
    p = write(tmp_path, "v.csv", "step,loss,val_loss\n" +
              "".join(f"{i},{2 - i / 100},\n" for i in range(20)) + "20,1.7,oops\n")
    [h] = read(p)  # the training loss is read and can be diagnosed
    assert len(h.loss) == 21
    with pytest.raises(LrDoctorError, match="line 22: column 'val_loss' holds 'oops'"):
        h.val_loss


@pytest.mark.parametrize("header,metric,lr", [
    ("global_step,train_loss,learning_rate", "train_loss", "learning_rate"),
    ("iteration,train/loss,lr-Adam", "train/loss", "lr-Adam"),
    ("iter,training_loss,lr", "training_loss", "lr"),
])
def test_common_spellings_found(tmp_path, header, metric, lr):
    p = write(tmp_path, "r.csv", header + "\n" + "\n".join(f"{i},{3 - i / 10},0.01"
                                                           for i in range(12)))
    [h] = read(p)
    assert h.metric == metric and h.lr is not None and len(h.loss) == 12


def test_overrides(tmp_path):
    p = write(tmp_path, "r.csv", "a,b,c\n" + "\n".join(f"{i},{i * 2},{i * 3}" for i in range(5)))
    [h] = read(p, step="a", metric="c", lr_column="b")
    assert h.metric == "c" and list(h.loss) == [0, 3, 6, 9, 12]
    with pytest.raises(LrDoctorError, match="no column named 'zzz'"):
        read(p, metric="zzz")


def test_tsv_and_gzip_and_bom_and_crlf(tmp_path):
    p = tmp_path / "r.tsv.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("\ufeffstep\tloss\r\n0\t1.0\r\n1\t0.5\r\n")
    [h] = read(p)
    assert list(h.loss) == [1.0, 0.5]


def test_repeated_steps_keep_last_write_and_say_so(tmp_path):
    p = write(tmp_path, "r.csv", "step,loss\n0,3\n1,2\n2,1\n1,9\n2,8\n3,7\n")
    [h] = read(p)
    assert list(h.loss) == [3, 9, 8, 7]
    assert any("2 step(s) were logged more than once" in n for n in h.notes)


def test_run_column_splits_runs(tmp_path):
    p = write(tmp_path, "r.csv", "run,step,loss\na,0,1\nb,0,5\na,1,0.5\nb,1,4\n")
    hs = read(p)
    assert [h.run for h in hs] == ["a", "b"]
    assert hs[1].source.endswith("::b") and list(hs[1].loss) == [5, 4]


def test_jsonl_with_bare_nan_and_eval_lines(tmp_path):
    lines = [json.dumps({"step": i, "loss": 1.0 / (i + 1), "lr": 1e-3}) for i in range(5)]
    lines.insert(3, json.dumps({"step": 2, "eval_loss": 0.7}))
    lines.append('{"step": 5, "loss": NaN, "lr": 0.001}')
    p = write(tmp_path, "r.jsonl", "\n".join(lines) + "\n")
    [h] = read(p)
    assert len(h.loss) == 6 and np.isnan(h.loss[5])
    assert h.val_loss.to_dict() == {2: 0.7}


def test_jsonl_truncated_last_line_is_dropped_with_a_note(tmp_path):
    p = write(tmp_path, "r.jsonl", '{"step": 0, "loss": 1}\n{"step": 1, "loss": 0.9}\n{"step": 2, "lo')
    [h] = read(p)
    assert len(h.loss) == 2 and any("incomplete" in n for n in h.notes)


def test_expand_directories_and_globs(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path, "sub/a.csv", "step,loss\n0,1\n")
    write(tmp_path, "b.jsonl", '{"loss": 1}\n')
    write(tmp_path, "notes.md", "hi")
    files, errors = expand([str(tmp_path), str(tmp_path / "*.jsonl"), str(tmp_path / "nope")])
    assert sorted(p.split("/")[-1] for p in files) == ["a.csv", "b.jsonl"]
    assert len(errors) == 1 and "no such file" in errors[0].message


# ---------------------------------------------------------------- bad input, one line each

BAD = {
    "empty": (b"", "empty"),
    "bom_only": (b"\xef\xbb\xbf\n", "empty"),
    "header_only": (b"step,loss\n", "header only"),
    "no_loss": (b"step,acc\n0,0.5\n", "no loss column found; columns seen: 'step', 'acc'"),
    "bad_cell": (b"step,loss\n0,1\n1,2\n2,abc\n", "line 4: column 'loss' holds 'abc'"),
    "binary": (bytes(range(256)) * 10, "binary content"),
    "long_line": (b"step,loss\n0," + b"1" * (5 << 20) + b"\n", "line 2 is"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gives_one_clear_line(tmp_path, case):
    data, expected = BAD[case]
    p = tmp_path / f"{case}.csv"
    p.write_bytes(data)
    with pytest.raises(LrDoctorError) as exc:
        read(p)
    msg = str(exc.value)
    assert expected in msg and "\n" not in msg and str(p) in msg


def test_empty_lines_before_the_header_are_skipped(tmp_path):
    p = tmp_path / "r.csv"
    p.write_bytes(b"\xef\xbb\xbf\n\nstep,loss\n0,1\n1,0.5\n")
    [h] = read(p)
    assert h.metric == "loss" and list(h.loss) == [1.0, 0.5]


def test_a_wandb_chart_column_name_not_utf8_is_one_line(tmp_path):
    p = tmp_path / "chart.csv"
    p.write_bytes(b"Step,run_\xf6 - train/loss,run_\xf6 - train/loss__MIN\n0,1,1\n1,0.5,0.5\n")
    with pytest.raises(LrDoctorError, match="holds bytes that are not UTF-8 text"):
        read(p)


def test_truncated_gzip(tmp_path):
    full = gzip.compress(b"step,loss\n" + b"".join(b"%d,%f\n" % (i, 1 / (i + 1))
                                                   for i in range(20000)))
    p = tmp_path / "r.csv.gz"
    p.write_bytes(full[: len(full) // 2])
    with pytest.raises(LrDoctorError, match="truncated or corrupt"):
        read(p)


def test_missing_file_and_directory_without_logs(tmp_path):
    with pytest.raises(LrDoctorError, match="no such file"):
        read(tmp_path / "nope.csv")
    files, errors = expand([str(tmp_path)])
    assert files == [] and "holds no loss logs" in errors[0].message


def test_csv_cut_off_mid_line_is_read_up_to_it_with_a_note(tmp_path):
    rows = "".join(f"{i},{2 - i / 100},0.001\n" for i in range(20))
    p = write(tmp_path, "live.csv", "step,loss,lr\n" + rows + "20,1.7")
    [h] = read(p)
    assert len(h.loss) == 20 and any("incomplete" in n for n in h.notes)
    # the same short row in the middle of the file is damage, named by its line
    p = write(tmp_path, "bad.csv", "step,loss,lr\n0,2.0,0.001\n1,1.9\n2,1.8,0.001\n")
    with pytest.raises(LrDoctorError, match="line 3 has 2 cells where the header has 3"):
        read(p)


def damaged_csv(tmp_path, n, bad: bytes, after: bytes = b""):
    """step,loss,lr: n good rows, the ``bad`` line (line n + 2), n good rows, ``after``."""
    rows = b"".join(b"%d,%g,0.001\n" % (i, 2 - i / 100) for i in range(n))
    p = tmp_path / "damaged.csv"
    p.write_bytes(b"step,loss,lr\n" + rows + bad + rows + after)
    return p


def test_a_row_with_extra_cells_or_bytes_that_are_not_utf8_is_named_by_its_line(
        tmp_path, capfd):
    p = damaged_csv(tmp_path, 6000, b"6000,1.2,0.001,7\n")
    with pytest.raises(LrDoctorError, match="line 6002 has 4 cells where the header has 3"):
        read(p)
    # damaged bytes (not UTF-8) past the sniffed head, in a row with an extra cell: pyarrow
    # cannot even show the row to its handler; still one line, and nothing printed besides
    p = damaged_csv(tmp_path, 6000, b"6000,1.2\xe0\x80,\xff,9\n")
    with pytest.raises(LrDoctorError, match=r"line 6002 has 4 cells .*'6000,1\.2"):
        read(p)
    assert capfd.readouterr().err == ""


def test_large_trainer_state_fast_path_matches_the_json_path(tmp_path):
    from lrdoctor.readers import hf_trainer

    hist = []
    for s in range(1, 12001):
        hist.append({"epoch": s / 4000, "grad_norm": 1.5, "learning_rate": 1e-4,
                     "loss": 2.0 - s / 10000, "step": s})
        if s % 500 == 0:
            hist.append({"epoch": s / 4000, "eval_loss": 1.9 - s / 10000, "step": s})
    hist.append({"epoch": 3.0, "step": 12000, "total_flos": 1e15, "train_loss": 1.4,
                 "train_runtime": 100.0})
    p = tmp_path / "trainer_state.json"
    p.write_text(json.dumps({"global_step": 12000, "log_history": hist,
                             "stateful_callbacks": {"a": {"args": [1, 2]}}}, indent=2,
                            sort_keys=True))
    assert p.stat().st_size > 1 << 20  # large enough for the Arrow path
    data = p.read_bytes()
    [fast] = hf_trainer._read_fast(data, str(p), step=None, metric=None, lr_column=None)
    [slow] = read(p, format="hf_trainer")
    p2 = tmp_path / "small_trainer_state.json"
    p2.write_text(json.dumps({"log_history": hist}))
    [plain] = read(p2)  # under 1 MiB: the json path
    for h in (fast, slow):
        assert len(h.loss) == 12000 and h.val_loss.notna().sum() == 24
        np.testing.assert_array_equal(h.loss.to_numpy(), plain.loss.to_numpy())
        np.testing.assert_array_equal(h.val_loss.dropna().to_numpy(),
                                      plain.val_loss.dropna().to_numpy())
    # a bare NaN (Python's json writes it) is a value on both paths
    hist[5]["loss"] = float("nan")
    p.write_text(json.dumps({"log_history": hist}, indent=2))
    [h] = read(p)
    assert np.isnan(h.loss.iloc[5]) and len(h.loss) == 12000
    # an entry with a nested value: Arrow's path declines, json reads it
    hist[7]["extra"] = [1, 2]
    p.write_text(json.dumps({"log_history": hist}, indent=2))
    assert hf_trainer._read_fast(p.read_bytes(), str(p), step=None, metric=None,
                                 lr_column=None) is None
    [h] = read(p)
    assert np.isnan(h.loss.iloc[5]) and len(h.loss) == 12000


def test_damage_past_the_sniffed_head_is_one_line_whatever_its_kind(tmp_path):
    # bytes that are not UTF-8 inside a number cell (the row has the right cell count)
    p = damaged_csv(tmp_path, 6000, b"6000,1.2\xe0\x80,0.001\n")
    with pytest.raises(LrDoctorError, match="line 6002 holds bytes that are not UTF-8"):
        read(p)
    # a word in a loss cell and, further down, a row with a cell missing: the first
    # damage is named (found from pyarrow's column and cell, not by reading the file
    # again as text), then, once it is fixed, the other
    p = damaged_csv(tmp_path, 6000, b"6000,oops,0.001\n", after=b"1,2\n")
    with pytest.raises(LrDoctorError, match="line 6002: column 'loss' holds 'oops'"):
        read(p)
    p = damaged_csv(tmp_path, 6000, b"6000,1.5,0.001\n", after=b"1,2\n")
    with pytest.raises(LrDoctorError, match="line 12003 has 2 cells where the header has 3"):
        read(p)


def test_a_few_bytes_that_are_not_utf8_are_a_damaged_line_not_a_binary_file(tmp_path):
    p = tmp_path / "notes.csv"  # a Latin-1 'é' in a column lrdoctor does not read
    p.write_bytes(b"step,loss,note\n" + b"".join(
        b"%d,%g,%s\n" % (i, 2 - i / 100, b"r\xe9sum\xe9" if i == 5 else b"ok")
        for i in range(50)))
    [h] = read(p)
    assert len(h.loss) == 50
    p.write_bytes(b"step,loss\n0,2.0\n1,1.\xe99\n2,1.8\n")  # ... and one in a loss cell
    with pytest.raises(LrDoctorError, match="line 3 holds bytes that are not UTF-8 text"):
        read(p)
    p.write_bytes(bytes(np.random.default_rng(0).integers(128, 256, 5000, dtype=np.uint8)))
    with pytest.raises(LrDoctorError, match="binary content"):  # no NUL, still binary
        read(p)


def test_a_console_log_in_latin1_is_text_not_binary(tmp_path):
    """A Windows console writes cp1252: every line holding 'µs', '±' or 'café' is more than
    2% undecodable UTF-8, yet the numbers are ASCII: read, not 'binary content'. Bytes
    drawn at random (no NUL among them) are still binary."""
    x = 2.5 * np.exp(-np.arange(120) / 40) + 0.2
    p = tmp_path / "train.log"
    p.write_bytes("".join(f"step {i}: loss {v:.4f} ({3 + i % 5} µs ± 0.2, café)\n"
                          for i, v in enumerate(x)).encode("cp1252"))
    [h] = read(p)
    assert np.allclose(h.loss, x, atol=1e-4)
    p.write_bytes(bytes(np.random.default_rng(1).integers(1, 256, 5000, dtype=np.uint8)))
    with pytest.raises(LrDoctorError, match="binary content"):
        read(p)


def test_a_stray_carriage_return_or_quote_inside_a_line_is_named_by_its_line(tmp_path):
    p = damaged_csv(tmp_path, 50, b"50,1.4\r5,0.001\n")
    with pytest.raises(LrDoctorError, match="line 52 is damaged .a carriage return"):
        read(p)
    p = damaged_csv(tmp_path, 50, b'50,"1.4,0.001\n')
    with pytest.raises(LrDoctorError, match="line 52 has 2 cells where the header has 3"):
        read(p)
    p.write_bytes(damaged_csv(tmp_path, 25, b"").read_bytes().replace(b"\n", b"\r\n"))
    assert len(read(p)[0].loss) == 25  # CRLF line ends are fine (steps 0..24, twice)


def _both_paths(monkeypatch, p):
    """read(p) through Arrow and through json: (arrow result or None, json result)."""
    import pyarrow as pa

    from lrdoctor.readers import jsonlines

    arrow = jsonlines.from_arrow(pa.BufferReader(p.read_bytes()), str(p))
    monkeypatch.setattr(jsonlines, "ARROW_MIN_BYTES", 1 << 40)
    slow = read(p)
    monkeypatch.setattr(jsonlines, "ARROW_MIN_BYTES", 0)
    return arrow, slow, read(p)


def test_json_lines_read_by_arrow_equal_the_json_path(tmp_path, monkeypatch):
    lines = []
    for s in range(300):  # Detectron2-like: training lines, eval lines, a nested value
        lines.append({"iteration": s, "total_loss": 2.0 / (s + 1), "lr": 1e-3 * min(1, s / 50),
                      "data_time": 0.01, "fast_rcnn/cls_accuracy": 0.5})
        if s % 100 == 99:
            lines.append({"iteration": s, "bbox/AP": 30.0, "validation_loss": 1.5,
                          "per_class": [1, 2, 3]})
    p = tmp_path / "metrics.json"
    p.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    arrow, slow, fast = _both_paths(monkeypatch, p)
    assert arrow is not None
    [a], [b] = slow, fast
    assert a.frame.equals(b.frame) and (a.metric, a.available) == (b.metric, b.available)
    assert a.frame["val_loss"].notna().sum() == 3 and a.columns["lr"][0] == 0


def test_json_lines_with_nan_cut_lines_or_numbers_as_strings_read_the_same(tmp_path,
                                                                           monkeypatch):
    p = tmp_path / "m.jsonl"
    # Arrow takes the bare NaN and Infinity Python's json writes; a cut last line and a loss
    # written as strings go through json
    for text, by_arrow, check in (
            ('{"step": 0, "loss": 2.0}\n{"step": 1, "loss": NaN}\n{"step": 2, "loss": '
             '-Infinity}\n', True, lambda h: np.isnan(h.loss.iloc[1]) and h.loss.iloc[2] < 0),
            ('{"step": 0, "loss": 2.0}\n{"step": 1, "loss": 1.5}\n{"step": 2, "lo', False,
             lambda h: len(h.loss) == 2 and "incomplete" in h.notes[0]),
            ('{"step": 0, "loss": "2.0"}\n{"step": 1, "loss": "Infinity"}\n', False,
             lambda h: np.isinf(h.loss.iloc[1]))):
        p.write_text(text)
        arrow, [slow], [fast] = _both_paths(monkeypatch, p)
        assert (arrow is not None) == by_arrow and check(fast)
        assert fast.frame.equals(slow.frame) and fast.notes == slow.notes


def test_a_chosen_column_whose_name_is_not_utf8_is_one_line(tmp_path):
    p = tmp_path / "h.csv"
    p.write_bytes(b"epoch,train/box_loss,train/cls\xe9_loss,lr\n" + b"".join(
        b"%d,%g,0.5,0.001\n" % (i, 2 - i / 100) for i in range(20)))  # YOLO's loss parts
    with pytest.raises(LrDoctorError, match="line 1: the column name 'train/cls\ufffd_loss'"):
        read(p)
    p.write_bytes(b"step,loss,r\xe9sum\xe9\n" + b"".join(
        b"%d,%g,x\n" % (i, 2 - i / 100) for i in range(20)))
    assert len(read(p)[0].loss) == 20  # a column it does not read may be damaged


def test_a_log_without_its_header_line_says_so(tmp_path):
    p = write(tmp_path, "noheader.csv", "".join(f"{i},{2 - i / 100},3e-05,3e-05\n"
                                                 for i in range(1, 30)))
    with pytest.raises(LrDoctorError, match="line 1 holds numbers, not column names"):
        read(p)
    # ... but a sweep saved as {lr: losses} is named by its LRs: one run per column
    p = write(tmp_path, "sweep.csv", "0.001,0.01,0.1\n" + "".join(
        f"{2 - i / 100},{2 - i / 50},{2 + i / 10}\n" for i in range(30)))
    runs = read(p)
    assert [h.run for h in runs] == ["0.001", "0.01", "0.1"]
    assert [h.columns["lr"][0] for h in runs] == [0.001, 0.01, 0.1]


def test_json_lines_with_a_key_that_is_not_utf8_read_the_same_by_both_paths(tmp_path,
                                                                           monkeypatch):
    p = tmp_path / "k.jsonl"
    p.write_bytes(b"".join(b'{"step": %d, "loss": %g%s}\n' % (
        s, 2 - s / 100, b', "n\xe9": 1' if s == 5 else b"") for s in range(30)))
    arrow, [slow], [fast] = _both_paths(monkeypatch, p)
    assert arrow is None and len(fast.loss) == 30 and fast.frame.equals(slow.frame)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_text_is_named_with_its_fix_not_called_binary(tmp_path, encoding):
    # Windows PowerShell's '>' writes UTF-16 (with a byte-order mark; -le/-be without one)
    for name, text in (("run.csv", "step,loss\n0,1.0\n1,0.9\n"),
                       ("train.log", "iter 1: loss 2.0\niter 2: loss 1.9\n")):
        p = tmp_path / name
        p.write_bytes(text.encode(encoding))
        with pytest.raises(LrDoctorError, match="UTF-16 text.*iconv -f UTF-16 -t UTF-8"):
            read(p)


def test_a_csv_with_a_validation_loss_is_parsed_once(tmp_path, monkeypatch):
    """The overfitting check reads the validation loss of every log that has one: parsed
    with the other columns, not by a second parse of the whole file; a small file is
    opened once."""
    import builtins

    import pyarrow.csv as pacsv

    from lrdoctor.diagnosis import analyze

    p = write(tmp_path, "v.csv", "step,loss,lr,val_loss\n" + "".join(
        f"{i},{2 - i / 100},0.001,{'' if i % 10 else 2.1 - i / 120}\n" for i in range(300)))
    parses, opens = [], []
    real_read, real_open = pacsv.read_csv, builtins.open
    monkeypatch.setattr(pacsv, "read_csv", lambda *a, **k: parses.append(1) or
                        real_read(*a, **k))
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: (
        opens.append(f) if str(f) == str(p) else None) or real_open(f, *a, **k))
    [d] = analyze(p)
    assert len(parses) == 1 and len(opens) == 1
    assert np.isfinite(d.history.val_loss).sum() == 30


def test_first_lines_of_a_sample_as_splitlines_gives_them():
    from lrdoctor.readers.delimited import _first_rows, _header_line

    texts = ["", "\n", "a", "a\n", "\n\n\ufeff\r\nh,l\r\n1,2\r\n3,4", "h\n1\n2\n3", "h\n1\n2\n3\n",
             "h\r1\r2\r3\r", "h\x0c1\n2\x1c3\n4\n5", "\ufeff\n\nstep,loss\n" + "1,2\n" * 500,
             "h\n" + "\n".join(str(i) for i in range(300)) + "\n9"]
    for text in texts:
        assert _header_line(text) == next(
            (ln for ln in text.lstrip("\ufeff").splitlines() if ln), "")
        for rows in (0, 1, 2, 3, 200):
            assert _first_rows(text, rows) == text.splitlines()[1:-1][:rows], (text, rows)


def test_decimal_commas_under_semicolons_are_read_with_a_note(tmp_path):
    """A spreadsheet saved in a European locale: ';' between cells, ',' in the numbers.
    Every line is like that, so 'fix or delete that line' was no help: it is read."""
    x = 2.5 * np.exp(-np.arange(300) / 60) + 0.2
    p = tmp_path / "euro.csv"
    p.write_text("step;loss;lr\n" + "".join(
        f"{i};{v:.5f};0,001\n".replace(".", ",") for i, v in enumerate(x)))
    [h] = read(p)
    assert np.allclose(h.loss, x, atol=1e-5) and np.allclose(h.lr, 1e-3)
    assert any("decimal commas" in n for n in h.notes)
    # a comma-separated file keeps its commas as separators: a word is still a bad cell
    q = tmp_path / "bad.csv"
    q.write_text("step,loss\n0,1.0\n1,2;5\n")
    with pytest.raises(LrDoctorError, match="line 3"):
        read(q)
