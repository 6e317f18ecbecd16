"""lrdoctor/readers/wandb.py (run files written by wandb) and W&B's CSV/JSON-lines exports."""
import json

import numpy as np
import pytest

from lrdoctor import LrDoctorError
from lrdoctor.readers import read, sniff

from logs import FIXTURES, read_damaged_copies, wandb_write


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


def _same(a, b):
    """The two decoders' (series, first records, notes) are the same."""
    (sa, fa, na), (sb, fb, nb) = a, b
    assert list(sa) == list(sb) and fa == fb and na == nb
    for k in sa:
        np.testing.assert_array_equal(sa[k][0], sb[k][0])
        np.testing.assert_array_equal(sa[k][1], sb[k][1])  # NaN == NaN here


def test_vectorized_and_general_decoders_agree_on_the_real_file_and_every_cut_of_it():
    from lrdoctor.readers.wandb import _fast_series, _general_series

    data = (FIXTURES / "wandb_offline.wandb").read_bytes()
    fast = _fast_series(data)
    assert fast is not None and len(fast[0]["train/loss"][0]) == 250
    _same(fast, _general_series(data))
    for cut in range(7, len(data), 997):  # a run still writing, cut anywhere
        got = _fast_series(data[:cut])
        assert got is not None, cut
        _same(got, _general_series(data[:cut]))


def test_vectorized_decoder_on_every_value_and_key_shape(tmp_path):
    from lrdoctor.readers.wandb import _fast_series, _general_series

    rng = np.random.default_rng(0)
    rows = []
    for s in range(3000):
        row = {"train/loss": repr(float(rng.lognormal())), "lr": "0.001"}
        if s % 97 == 0:
            row["train/loss"] = '"NaN"' if s % 2 else "Infinity"
        if s % 250 == 0:
            row["val/loss"] = "-1.5e-3"
            row["hist"] = '{"_type": "histogram", "values": [1, 2]}'
            row["k" * 130] = "7"  # a key longer than 127 bytes: a two-byte length
            row["note"] = '"' + "x" * 200 + '"'  # a value longer than 127 bytes
        rows.append((s, row))
    for key_field in (1, 2):
        data = wandb_write(tmp_path / "run-a.wandb", rows, key_field=key_field).read_bytes()
        fast = _fast_series(data)
        assert fast is not None
        _same(fast, _general_series(data))
        series = fast[0]
        loss = series["train/loss"][1]
        assert np.isnan(loss[97]) and np.isinf(loss[194]) and len(loss) == 3000
        assert np.isnan(series["hist"][1]).all() and series["k" * 130][1][0] == 7
        np.testing.assert_array_equal(series["val/loss"][0], np.arange(0, 3000, 250))


def test_a_layout_the_vectorized_decoder_does_not_take_is_read_record_by_record(tmp_path):
    from lrdoctor.readers.wandb import _fast_series

    rows = [(s, {("train", "loss"): repr(2.0 / (s + 1)), "lr": "0.01"}) for s in range(40)]
    p = wandb_write(tmp_path / "run-b.wandb", rows, name="nested")
    assert _fast_series(p.read_bytes()) is None  # a nested key of two parts
    [h] = read(p)
    assert h.run == "nested" and h.metric == "train/loss" and len(h.loss) == 40
    assert h.loss.iloc[3] == pytest.approx(0.5) and h.lr.iloc[0] == 0.01


def test_damaged_bytes_anywhere_give_a_history_or_one_clear_error(tmp_path):
    data = (FIXTURES / "wandb_offline.wandb").read_bytes()
    read_damaged_copies(data, tmp_path / "run-d.wandb", first=7)
