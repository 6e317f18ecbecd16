"""Readers of JSON documents (trainer_state.json, W&B run files) say what is wrong with a
hostile document in one line: nesting too deep for the parser, entries that are not
objects."""
import json

import numpy as np
import pytest

from lrdoctor import LrDoctorError
from lrdoctor.cli import main
from lrdoctor.readers import read

from logs import wandb_write

DEEP = "[" * 10_000 + "]" * 10_000


def state(entries) -> str:
    return json.dumps({"global_step": 50, "log_history": entries}, indent=2)


def steps(n=50):
    return [{"step": i, "loss": 2.3 * np.exp(-i / 20) + 0.1, "learning_rate": 1e-3}
            for i in range(n)]


def test_trainer_state_nested_too_deep_is_one_line_naming_the_line(tmp_path):
    p = tmp_path / "trainer_state.json"
    p.write_text('{\n"global_step": 3,\n"log_history": ' + DEEP + "\n}\n")
    with pytest.raises(LrDoctorError, match=r"line 3: JSON nested too deep") as e:
        read(p)
    assert "RecursionError" not in str(e.value)


def test_large_trainer_state_nested_too_deep(tmp_path):
    # over a MiB: Arrow's reader is tried first, then json, which must still say why
    entries = steps(30_000)
    entries[7]["extra"] = "__DEEP__"
    p = tmp_path / "trainer_state.json"
    p.write_text(state(entries).replace('"__DEEP__"', DEEP))
    assert p.stat().st_size > 1 << 20
    with pytest.raises(LrDoctorError, match="nested too deep"):
        read(p)


def test_log_history_of_entries_that_are_not_objects(tmp_path, capsys):
    p = tmp_path / "trainer_state.json"
    p.write_text(state([1, 2, "x", None]))
    assert main(["analyze", str(p)]) == 2
    err = capsys.readouterr().err
    assert "4 entries that are not objects" in err
    assert 'entry 1: 1, entry 2: 2, entry 3: "x", entry 4: null' in err
    assert "logged no steps yet" not in err and err.count("\n") == 1


def test_entries_that_are_not_objects_among_steps_are_left_out_with_a_note(tmp_path):
    entries = steps()
    entries[10:10] = [7, None]
    p = tmp_path / "trainer_state.json"
    p.write_text(state(entries))
    [h] = read(p)
    assert len(h.loss) == 50
    assert any("2 entries that are not objects (entry 11: 7, entry 12: null): left out" in n
               for n in h.notes)


def test_an_empty_log_history_still_says_no_steps_yet(tmp_path):
    p = tmp_path / "trainer_state.json"
    p.write_text(state([]))
    with pytest.raises(LrDoctorError, match="logged no steps yet"):
        read(p)


def test_wandb_value_nested_too_deep_is_not_a_number(tmp_path):
    # a nested key sends every row through the record-by-record decoder, where each value
    # is parsed with json
    rows = [(s, {("train", "loss"): repr(2.0 / (s + 1)), "lr": "0.01"}) for s in range(40)]
    rows[5][1][("train", "loss")] = DEEP
    [h] = read(wandb_write(tmp_path / "run-a.wandb", rows))
    assert len(h.loss) == 40 and np.isnan(h.loss.iloc[5])
    assert h.loss.iloc[4] == pytest.approx(0.4)
