"""Figures tested through their artists, and reports parsed with a real HTML parser."""
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import lrdoctor
from lrdoctor.cli import main
from lrdoctor.plot import plot_sweep

import curves
from conftest import SAMPLES


def markers(ax, m):
    return [ln for ln in ax.lines if ln.get_marker() == m]


def test_diagnosis_figure_shows_findings_caption_and_scales():
    [d] = lrdoctor.analyze(SAMPLES / "nan_lr5.csv")
    ax = d.plot()
    fig = ax.figure
    assert ax.get_yscale() == "log"  # the loss spans more than 1.5 decades
    caption = " ".join(t.get_text() for t in fig.texts)
    assert caption.startswith("LR too high: lower 5-10x -> 0.5 (rule: non-finite loss")
    spans = [p for p in ax.patches if p.get_label() in ("_explosion", "_divergence")]
    assert len(spans) == 2
    labels = [t.get_text() for t in ax.texts]
    assert "non-finite from 215" in labels and "explosion" in labels
    assert any(abs(ln.get_xdata()[0] - 215) < 1e-9 for ln in ax.lines
               if ln.get_linestyle() == "--")  # the vertical line at the first NaN
    twin = [a for a in fig.axes if a is not ax][0]
    assert twin.get_yscale() == "log" and twin.get_ylabel() == "learning rate"
    assert lrdoctor.analyze(SAMPLES / "nan_lr5.csv")[0].plot(logy=False).get_yscale() == \
        "linear"


def test_figure_keeps_spikes_and_marks_off_scale_points():
    x = curves.healthy(n=1_000_000, noise=0.05)
    x[[1000, 500_000]] *= 40  # two spikes the decimated drawing must keep
    x[900_000] = 1e30  # off the scale
    ax = lrdoctor.diagnose(x, lr=1e-3).plot()
    raw = [ln for ln in ax.lines if ln.get_label() == "loss (raw)"][0]
    drawn = raw.get_ydata()
    assert len(drawn) <= 25_000
    assert np.isclose(drawn, x[1000]).any() and np.isclose(drawn, x[500_000]).any()
    top = ax.get_ylim()[1]
    assert top < 1e3  # the healthy part decides the axes
    off = markers(ax, "^")
    assert off and 900_000 in off[0].get_xdata() and off[0].get_ydata()[0] == top


def test_spike_markers_and_healthy_caption():
    d = lrdoctor.diagnose(curves.spiky(), lr=1e-3)
    ax = d.plot()
    assert sum(len(ln.get_xdata()) for ln in markers(ax, "v")) >= 30
    ok = lrdoctor.diagnose(curves.healthy(), lr=1e-3).plot()
    assert " ".join(t.get_text() for t in ok.figure.texts).startswith("LR looks fine: keep")


def test_sweep_figure_colours_by_lr_and_plots_final_loss():
    ds = [d for f in sorted(SAMPLES.glob("*.csv")) for d in lrdoctor.analyze(f)]
    fig = plot_sweep(ds)
    main_ax, lr_ax, cbar = fig.axes
    assert cbar.get_ylabel() == "learning rate" and cbar.get_yscale() == "log"
    assert lr_ax.get_xscale() == "log" and "final loss" in lr_ax.get_ylabel()
    legend = [t.get_text() for t in main_ax.get_legend().get_texts()]
    assert any(t.startswith("too_high (") for t in legend)
    colours = {tuple(ln.get_color()) for ln in main_ax.lines if ln.get_marker() == "None"}
    assert len(colours) >= 5  # different LRs, different colours


def test_cli_plot_of_a_folder_writes_the_sweep_figure(tmp_path, capsys):
    out = tmp_path / "sweep.png"
    assert main(["analyze", str(SAMPLES), "--plot", str(out), "--no-logy"]) == 0
    assert out.stat().st_size > 10_000 and f"figure written to {out}" in capsys.readouterr().out


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.imgs, self.rows, self.text = [], [], [], []
        self._in_summary = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag == "table" and a.get("class") == "summary":
            self._in_summary = True
        if tag == "tr" and self._in_summary:
            self.rows.append([])

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_summary = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_summary and self.rows and data.strip():
            self.rows[-1].append(data.strip())


def evil_run(tmp_path):
    p = tmp_path / "evil.csv"
    p.write_text("step,loss,run\n" + "".join(
        f"{i},{2.3 * np.exp(-i / 20) + 0.1},<script>alert(1)</script>\n" for i in range(100)))
    return p


def test_html_report_is_self_contained_with_table_figures_and_escaping(tmp_path):
    out = tmp_path / "r" / "report.html"
    code = main(["report", str(SAMPLES), str(evil_run(tmp_path)), "-o", str(out)])
    assert code == 0
    text = out.read_text()
    page = Page()
    page.feed(text)
    assert "script" not in page.tags  # the run name is text, not a tag
    assert "<script>alert(1)</script>" in "".join(page.text)
    runs = [r[0] for r in page.rows[1:]]
    assert len(runs) == 8 and "<script>alert(1)</script>" in runs
    assert page.rows[0] == ["run", "LR", "verdict", "advice", "rule"]
    assert len(page.imgs) == 8 + 1  # one per run and the sweep
    assert all(src.startswith("data:image/png;base64,") for src in page.imgs)
    assert "http://" not in text and "https://" not in text  # no network needed


def test_markdown_report_writes_figures_beside_it(tmp_path):
    out = tmp_path / "report.md"
    assert main(["report", str(SAMPLES / "nan_lr5.csv"), str(evil_run(tmp_path)),
                 "-o", str(out)]) == 0
    md = out.read_text()
    links = [ln.split("](")[1].rstrip(")") for ln in md.splitlines() if ln.startswith("![")]
    assert len(links) == 3 and all((tmp_path / link).is_file() for link in links)
    assert all(not Path(link).is_absolute() for link in links)
    assert "<script>" not in md and "&lt;script&gt;alert\\(1\\)" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_report_usage_errors(tmp_path, capsys):
    assert main(["report", str(SAMPLES), "-o", str(tmp_path / "r.pdf")]) == 2
    assert "must end in .html or .md" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "r.html")]) == 2
