"""lrdoctor/render.py: names are data. A run, file or column name from a log or a path is
printed with its control characters escaped (a terminal escape sequence cannot change the
colours or the window title, a carriage return cannot hide text), and written to JSON as
valid UTF-8 (the bytes of a file name that are not UTF-8 shown as \\xNN)."""
import json
import os

import numpy as np
import pytest

from lrdoctor.cli import main
from lrdoctor.render import json_text, printable


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def rows(n=100, extra=""):
    return "".join(f'{{"step": {i}, "loss": {2.3 * np.exp(-i / 20) + 0.1}{extra}}}\n'
                   for i in range(n))


@pytest.mark.parametrize("raw, shown", [
    ("plain name-1.csv", "plain name-1.csv"),
    ("run\x1b]0;owned\x07x", "run\\x1b]0;owned\\x07x"),
    ("a\x1b[31mred\x1b[0m", "a\\x1b[31mred\\x1b[0m"),
    ("hidden\rshown", "hidden\\rshown"),
    ("tab\there\nline", "tab\\there\\nline"),
    ("c1\x9bcontrol\x7f", "c1\\x9bcontrol\\x7f"),
    ("evil\u202etxt.exe", "evil\\u202etxt.exe"),
    ("r\udcffun", "r\\xffun"),  # the byte 0xff of a file name, as Python keeps it
    ("lone\ud800", "lone\\ud800"),
    ("naïve 学习率 ✓", "naïve 学习率 ✓"),  # other scripts are text, not controls
])
def test_printable(raw, shown):
    import unicodedata

    assert printable(raw) == shown
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in printable(raw))


def test_json_text_leaves_controls_to_json_and_turns_surrogates_into_text():
    assert json_text("a\x1bb") == "a\x1bb"  # json.dumps escapes it as \u001b
    assert json_text("r\udcffun") == "r\\xffun"
    assert json_text("ok") == "ok"


def hostile_folder(tmp_path):
    names = ["run\x1b]0;pwned\x07\x1b[31mred\r", os.fsdecode(b"bad\xffname"),
             "rtl\u202eexe"]
    for name in names:
        (tmp_path / f"{name}.jsonl").write_text(rows(extra=', "val\\u001b[2J_loss": 1.0'))
    return names


def test_text_output_escapes_control_characters_in_every_name(tmp_path, capsys):
    hostile_folder(tmp_path)
    code, out, err = run(["analyze", str(tmp_path), "--color", "never"], capsys)
    assert code == 0 and err == ""
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out
    assert "\u202e" not in out
    out.encode("utf-8")  # no lone surrogate left
    assert "run\\x1b]0;pwned\\x07\\x1b[31mred\\r" in out  # header, run line, table
    assert out.count("bad\\xffname") >= 3
    table = out.split("run  ")[-1]
    assert "rtl\\u202eexe" in table


def test_colour_is_still_ours_alone(tmp_path, capsys):
    hostile_folder(tmp_path)
    code, out, _ = run(["analyze", str(tmp_path), "--color", "always"], capsys)
    assert code == 0
    # every escape sequence left is one of the verdict colours
    import re

    assert set(re.findall(r"\x1b\[[0-9;]*m", out)) <= {"\x1b[0m", "\x1b[1;33m",
                                                       "\x1b[1;32m", "\x1b[1;31m",
                                                       "\x1b[1;90m"}
    assert "\x1b]" not in out and "\x07" not in out


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_output_is_valid_utf8_with_undecodable_bytes_as_text(tmp_path, capsys, fmt):
    hostile_folder(tmp_path)
    missing = tmp_path / os.fsdecode(b"gone\xfe.csv")
    code = main(["analyze", str(tmp_path), str(missing), "--format", fmt])
    out, err = capsys.readouterr()
    assert code == 2  # the missing file
    raw = out.encode("utf-8")  # would raise on a lone surrogate
    if fmt == "json":
        doc = json.loads(raw.decode("utf-8"))
        objs, errors = doc["runs"], doc["errors"]
    else:
        lines = [json.loads(ln) for ln in raw.decode("utf-8").splitlines()]
        objs = [o for o in lines if "run" in o]
        errors = [o["error"] for o in lines if "error" in o]
    assert "\\u" + "dcff" not in out  # no escaped lone surrogate either
    runs = sorted(o["run"] for o in objs)
    assert runs == sorted(["bad\\xffname", "rtl\u202eexe",
                           "run\x1b]0;pwned\x07\x1b[31mred\r"])  # controls kept, as data
    assert errors[0]["source"].endswith("gone\\xfe.csv")
    assert "gone\\xfe.csv" in err and "please report" not in err


def test_error_lines_on_stderr_are_escaped(tmp_path, capsys):
    bad = tmp_path / "x\x1b[2J\rbroken.csv"
    bad.write_text("step,loss\n0,1\n1,abc\n")
    code, out, err = run(["analyze", str(bad)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "\x1b" not in err and "\r" not in err
    assert "x\\x1b[2J\\rbroken.csv: line 3" in err


def test_steps_are_written_out_not_in_exponent_form():
    import numpy as np
    import pandas as pd

    import lrdoctor

    x = 2.3 * np.exp(-3 * np.arange(1000) / 1000) + 0.1
    steps = np.linspace(0, 9_999_999, 1000).astype(np.int64)
    text = lrdoctor.diagnose(pd.Series(x, index=steps), lr=1e-3).summary()
    assert "steps 0..9999999" in text and "1e+07" not in text


def test_a_watch_line_says_since_for_a_fault_and_at_for_a_verdict_that_is_not_one():
    """Started on a finished healthy log, 'LR looks fine since step 1499' read as if the
    run had just turned fine at its last step."""
    import lrdoctor
    from lrdoctor.render import watch_line
    from lrdoctor.watch import _event, alert_text, since_step
    from conftest import SAMPLES

    for log, word in (("healthy_lr1e-3.csv", " at step "), ("nan_lr5.csv", " since step ")):
        [d] = lrdoctor.analyze(SAMPLES / log)
        ev = {**_event("start", d), "since_step": since_step(d)}
        assert word in watch_line(ev) and word in alert_text(ev)


def test_one_point_is_singular_and_formats_line_up(tmp_path, capsys):
    p = tmp_path / "one.csv"
    p.write_text("step,loss\n0,2.5\n")
    code, out, _ = run(["analyze", str(p)], capsys)
    assert "1 point of 'loss'" in out
    code, out, _ = run(["formats"], capsys)
    starts = {len(line) - len(line.split(None, 1)[1]) for line in out.splitlines()}
    assert code == 0 and len(starts) == 1  # mlflow_server was one column off
