"""PATH '-' reads the log from standard input (``cat log | lrdoctor analyze -``): any format
the content tells, named <stdin> in the output."""
import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lrdoctor.cli import main

from conftest import SAMPLES


def piped(monkeypatch, data: bytes):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def analyze(args, capsys):
    code = main(["analyze", *args])
    out, err = capsys.readouterr()
    return code, out, err


def jsonl_log(n=200):
    return "".join(json.dumps({"step": i, "loss": 2.3 * np.exp(-i / 30) + 0.1, "lr": 1e-3})
                   + "\n" for i in range(n)).encode()


def console_log(n=200):
    return "".join(f"iter {i}: loss {2.3 * np.exp(-i / 30) + 0.1:.4f}, time 20.1ms\n"
                   for i in range(n)).encode()


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "jsonl", "console"])
def test_dash_reads_standard_input_as_the_same_file_would_be_read(tmp_path, capsys,
                                                                  monkeypatch, kind):
    data = {"csv": (SAMPLES / "nan_lr5.csv").read_bytes(),
            "csv.gz": gzip.compress((SAMPLES / "nan_lr5.csv").read_bytes()),
            "jsonl": jsonl_log(), "console": console_log()}[kind]
    f = tmp_path / f"log.{'txt' if kind == 'console' else kind}"
    f.write_bytes(data)
    code, out, err = analyze([str(f), "--format", "json"], capsys)
    [direct] = json.loads(out)["runs"]
    piped(monkeypatch, data)
    code2, out2, err2 = analyze(["-", "--format", "json"], capsys)
    assert code2 == code == 0 and err2 == ""
    [got] = json.loads(out2)["runs"]
    assert got["source"] == "<stdin>" and got["run"] == "<stdin>"
    for key in ("verdict", "n_points", "metric", "findings", "current_lr"):
        assert got[key] == direct[key]


def test_stdin_among_other_paths_and_in_the_text_report(capsys, monkeypatch):
    piped(monkeypatch, jsonl_log())
    code, out, err = analyze([str(SAMPLES / "nan_lr5.csv"), "-"], capsys)
    assert code == 0
    assert out.splitlines()[0].startswith("LR TOO HIGH")
    assert any(ln.endswith("  <stdin>") for ln in out.splitlines())
    assert "lrdoctor-stdin-" not in out + err  # the temporary copy is never named


def test_empty_or_unreadable_stdin_is_one_line_naming_it(capsys, monkeypatch):
    piped(monkeypatch, b"")
    code, out, err = analyze(["-", str(SAMPLES / "nan_lr5.csv"), "--format", "json"], capsys)
    assert code == 2
    doc = json.loads(out)
    assert len(doc["runs"]) == 1
    assert doc["errors"] == [{"source": "<stdin>", "message": doc["errors"][0]["message"]}]
    assert err == f"lrdoctor: <stdin>: {doc['errors'][0]['message']}\n"
    assert "empty" in err
    piped(monkeypatch, b"step,loss\n0,1\n1,abc\n")
    code, _, err = analyze(["-"], capsys)
    assert code == 2 and err.startswith("lrdoctor: <stdin>: line 3: ")
    assert "lrdoctor-stdin-" not in err


def test_stdin_that_is_a_terminal_is_refused(capsys, monkeypatch):
    class Terminal(io.TextIOWrapper):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Terminal(io.BytesIO(b"")))
    code, _, err = analyze(["-"], capsys)
    assert code == 2 and "standard input is a terminal" in err


def test_report_and_watch_with_dash(tmp_path, capsys, monkeypatch):
    piped(monkeypatch, jsonl_log())
    out = tmp_path / "r.md"
    assert main(["report", "-", "-o", str(out)]) == 0
    assert "&lt;stdin&gt;" in out.read_text()
    assert main(["watch", "-", "--once"]) == 2
    assert "cannot be followed" in capsys.readouterr().err


def test_a_real_pipe():
    r = subprocess.run([sys.executable, "-m", "lrdoctor", "analyze", "-"],
                       input=(SAMPLES / "healthy_lr1e-3.csv").read_bytes(),
                       capture_output=True)
    assert r.returncode == 0 and r.stdout.startswith(b"LR LOOKS FINE  <stdin>")


def _single_file_logs():
    import csv

    from conftest import SHARED

    manifest = SHARED / "real_logs" / "MANIFEST.csv"
    if not manifest.is_file():
        return ["absent"]
    return [r["file"] for r in csv.DictReader(manifest.open())
            if (SHARED / "real_logs" / r["file"]).is_file()]


@pytest.mark.parametrize("name", _single_file_logs())
def test_every_real_single_file_log_reads_the_same_from_a_pipe(shared, name, capsys,
                                                                monkeypatch):
    """A table is told from its content, not its ``.csv`` name: a YOLO ``results.csv`` whose
    header names only epochs and box losses, a wide sweep whose columns are LRs, a quoted W&B
    export. An MLflow metric file (lines of bare numbers) needs its path; it is the one kind
    that a pipe cannot carry."""
    from lrdoctor.readers import sniff

    f = shared / "real_logs" / name
    kind = sniff(f)
    if kind == "mlflow":
        pytest.skip("an MLflow metric file is told by its place in mlruns/, not its content")
    data = f.read_bytes()
    assert sniff(Path("<stdin>"), data[: 1 << 16]) == kind
    code, out, _ = analyze([str(f), "--format", "json"], capsys)
    direct = json.loads(out)["runs"]
    piped(monkeypatch, data)
    code2, out2, _ = analyze(["-", "--format", "json"], capsys)
    got = json.loads(out2)["runs"]
    assert code2 == code
    assert [(r["verdict"], r["n_points"], r["metric"]) for r in got] == \
        [(r["verdict"], r["n_points"], r["metric"]) for r in direct]


def test_a_text_log_with_commas_is_not_taken_for_a_table():
    from lrdoctor.readers import _table_header

    assert not _table_header("epoch 1, loss 0.51, acc 0.80\nepoch 2, loss 0.42, acc 0.84\n"
                             "epoch 3, loss 0.40, acc 0.85\n")
    assert not _table_header("{'loss': 0.5, 'lr': 0.001}\n{'loss': 0.4, 'lr': 0.001}\n")
    assert _table_header("a,b,c\n1,2,3\n4,5,nan\n6,7,")  # the last line may be cut
    assert _table_header('"x","y"\n"1","2.5e-3"\n"2",""\n')
    assert not _table_header("a,b,c\n1,2\n4,5,6\n")  # ragged: not a table


def test_an_mlflow_metric_file_piped_in_needs_its_metric_named(tmp_path, capsys, monkeypatch):
    """Lines of 'timestamp value step' carry no metric name: the message says so and how;
    --metric names it (before, --metric loss failed with "no column named 'loss'")."""
    data = "".join(f"{1700000000000 + i} {2 * np.exp(-i / 60) + 0.1} {i}\n"
                   for i in range(300)).encode()
    piped(monkeypatch, data)
    code, out, err = analyze(["-", "--input-format", "mlflow"], capsys)
    assert code == 2 and "has no name to tell its metric" in err and "--metric" in err
    piped(monkeypatch, data)
    code, out, err = analyze(["-", "--input-format", "mlflow", "--metric", "loss",
                              "--format", "json"], capsys)
    [r] = json.loads(out)["runs"]
    assert code == 0 and r["metric"] == "loss" and r["n_points"] == 300
