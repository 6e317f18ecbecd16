import json
import subprocess
import sys

import numpy as np
import pytest

from lrdoctor.cli import main

from conftest import SAMPLES


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_text_report_verdict_first_then_evidence_then_advice(capsys):
    code, out, err = run(["analyze", str(SAMPLES / "nan_lr5.csv")], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("LR TOO HIGH")
    assert any(l.strip().startswith("- nonfinite") for l in lines)
    assert any(l.strip().startswith("=> lower 5-10x: 5 -> ") for l in lines)
    assert "\033[" not in out  # plain when piped


def test_json_matches_the_contract(capsys):
    code, out, _ = run(["analyze", str(SAMPLES), "--format", "json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["lrdoctor"] == "0.1.0" and doc["errors"] == []
    assert len(doc["runs"]) == len(list(SAMPLES.glob("*.csv")))
    keys = {"source", "run", "metric", "n_points", "first_step", "last_step", "current_lr",
            "findings", "verdict", "recommendation"}
    for r in doc["runs"]:
        assert keys <= set(r)
        assert r["verdict"] in ("too_high", "too_low", "ok", "unknown")
        rec = r["recommendation"]
        assert set(rec) >= {"action", "factor", "suggested_lr", "rule", "notes"}
        assert rec["action"] in ("lower", "raise", "keep")
        for f in r["findings"]:
            assert set(f) == {"kind", "start", "end", "severity", "message"}
            assert 0 <= f["severity"] <= 1
    by = {r["run"]: r for r in doc["runs"]}
    assert by["too_low_lr1e-6"]["recommendation"]["action"] == "raise"
    assert by["healthy_lr1e-3"]["verdict"] == "ok"
    assert by["divergence_lr1"]["verdict"] == "too_high"


def test_bad_inputs_reported_others_still_analyzed(tmp_path, capsys):
    bad = tmp_path / "broken.csv"
    bad.write_text("step,loss\n0,1\n1,abc\n")
    code, out, err = run(["analyze", str(bad), str(SAMPLES / "healthy_lr1e-3.csv"),
                          str(tmp_path / "missing.csv"), "--format", "json"], capsys)
    assert code == 2
    doc = json.loads(out)
    assert [r["run"] for r in doc["runs"]] == ["healthy_lr1e-3"]
    assert {e["source"] for e in doc["errors"]} == {str(bad), str(tmp_path / "missing.csv")}
    assert err.count("\n") == 2 and "Traceback" not in err
    assert "line 3: column 'loss' holds 'abc'" in err


def test_bad_usage_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["analyze"])
    assert e.value.code == 2
    assert run(["analyze", str(SAMPLES), "--lr", "-1"], capsys)[0] == 2
    assert run(["analyze", str(SAMPLES), "--plot", "x.gif"], capsys)[0] == 2


@pytest.mark.parametrize("ext", ["png", "svg", "pdf"])
def test_plot_written_by_extension(tmp_path, capsys, ext):
    out = tmp_path / f"fig.{ext}"
    code, text, _ = run(["analyze", str(SAMPLES / "nan_lr5.csv"), "--plot", str(out)], capsys)
    assert code == 0 and out.stat().st_size > 1000
    head = out.read_bytes()[:8]
    assert {"png": b"\x89PNG", "svg": b"<?xml", "pdf": b"%PDF"}[ext] in head


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "lrdoctor", "analyze",
                        str(SAMPLES / "healthy_lr1e-3.csv")], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("LR LOOKS FINE")


def test_cli_does_not_import_heavy_modules_for_help():
    code = ("import sys, lrdoctor.cli as c\n"
            "try: c.main(['--help'])\nexcept SystemExit: pass\n"
            "print('matplotlib' in sys.modules, 'scipy.signal' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip().splitlines()[-1] == "False False"


def test_directory_walk_skips_csv_that_is_not_a_loss_log(tmp_path, capsys):
    (tmp_path / "MANIFEST.csv").write_text("file,bytes\na.csv,10\n")
    (tmp_path / "run.csv").write_text("step,loss\n" + "".join(f"{i},{2 - i / 20}\n"
                                                              for i in range(30)))
    code, out, err = run(["analyze", str(tmp_path), "--format", "json"], capsys)
    assert code == 0 and "skipped, not a loss log" in err
    assert [r["run"] for r in json.loads(out)["runs"]] == ["run"]
    # named explicitly, the same file is an error
    assert run(["analyze", str(tmp_path / "MANIFEST.csv")], capsys)[0] == 2


def test_formats_lists_each_reader_with_an_example(capsys):
    code, out, _ = run(["formats"], capsys)
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names == ["csv", "tsv", "jsonl", "hf_trainer", "text", "mlflow", "mlflow_db",
                     "mlflow_server", "wandb",
                     "tensorboard"]


def test_unwritable_figure_is_an_error_and_not_announced(tmp_path, capsys):
    target = tmp_path / "no_such_dir" / "fig.png"
    code, out, err = run(["analyze", str(SAMPLES / "nan_lr5.csv"), "--plot", str(target)],
                         capsys)
    assert code == 2 and "could not write the figure" in err
    assert "figure written" not in out


@pytest.mark.parametrize("bad", ["0", "-1e-3", "nan", "inf"])
def test_an_lr_that_is_not_a_positive_finite_number_is_refused(bad, capsys):
    code, out, err = run(["analyze", str(SAMPLES / "healthy_lr1e-3.csv"), f"--lr={bad}"],
                         capsys)
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "--lr must be a positive number" in err


def test_lr_is_used_only_when_the_log_has_none_and_says_so_otherwise(tmp_path, capsys):
    """As the README and --help say: the log's own LR wins, and a note names the --lr that
    was not used (before, --lr 1e-300 replaced the log's 0.001 without a word)."""
    code, out, _ = run(["analyze", str(SAMPLES / "healthy_lr1e-3.csv"), "--lr", "1e-300",
                        "--format", "json"], capsys)
    [r] = json.loads(out)["runs"]
    assert r["current_lr"] == 1e-3
    assert any("--lr 1e-300 not used" in n for n in r["notes"])
    p = tmp_path / "nolr.csv"
    p.write_text("step,loss\n" + "".join(f"{i},{2 * np.exp(-i / 300) + 0.1}\n"
                                         for i in range(1000)))
    code, out, _ = run(["analyze", str(p), "--lr", "3e-4", "--format", "json"], capsys)
    [r] = json.loads(out)["runs"]
    assert r["current_lr"] == 3e-4
    assert not any("not used" in n for n in r["notes"] + r["recommendation"]["notes"])
