"""lrdoctor report: the inputs left out (a file in a folder that holds no loss, an input
that could not be read) are listed in the report, in a section of their own, as on stderr."""
import re

import pytest

from lrdoctor.cli import main

from conftest import SAMPLES


def folder(tmp_path):
    d = tmp_path / "runs"
    d.mkdir()
    (d / "run.csv").write_bytes((SAMPLES / "healthy_lr1e-3.csv").read_bytes())
    (d / "MANIFEST.csv").write_text("file,bytes\na.csv,10\n")
    (d / "broken\x1b[2J.csv").write_text("step,loss\n0,1\n1,abc\n")
    return d


@pytest.mark.parametrize("ext", ["html", "md"])
def test_skipped_and_unreadable_inputs_have_a_section(tmp_path, capsys, ext):
    d = folder(tmp_path)
    out = tmp_path / f"report.{ext}"
    assert main(["report", str(d), str(tmp_path / "missing.csv"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    text = out.read_text()
    head = "<h2>Skipped and unreadable inputs</h2>" if ext == "html" else \
        "## Skipped and unreadable inputs"
    assert text.count(head) == 1
    section = text.split(head)[1].split("<h2" if ext == "html" else "\n## ")[0]
    # every line stderr gave, in the report too
    lines = [ln.removeprefix("lrdoctor: ") for ln in err.splitlines()]
    assert len(lines) == 3
    for what in ("MANIFEST.csv: skipped, not a loss log", "missing.csv: no such file",
                 "broken\\x1b[2J.csv: line 3"):
        assert any(what in ln for ln in lines)
        assert what in re.sub(r"\\([\\`*_\[\]|#!~])", r"\1", section)  # Markdown's marks
    assert "\x1b" not in text


def test_no_section_when_nothing_was_left_out(tmp_path):
    out = tmp_path / "report.md"
    assert main(["report", str(SAMPLES / "healthy_lr1e-3.csv"), "-o", str(out)]) == 0
    assert "Skipped" not in out.read_text()
