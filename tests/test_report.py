"""lrdoctor/report.py: HTML reports parsed with a real HTML parser, Markdown reports with
their figures beside them, and escaping of everything that comes from a log."""
import os
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from lrdoctor.cli import main

from conftest import SAMPLES


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
    assert page.rows[0] == ["run", "LR", "verdict", "confidence", "advice", "rule"]
    assert all(r[3] in ("high", "medium", "low") for r in page.rows[1:9])
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


def test_a_file_name_that_is_not_utf8_is_shown_escaped(tmp_path):
    # Python keeps such a name's bytes as lone surrogates: the figure's title, the page
    # and the Markdown must still be written, the byte shown as \\xff
    rows = "".join(f'{{"step": {i}, "loss": {2.3 * np.exp(-i / 20) + 0.1}}}\n'
                   for i in range(100))
    log = tmp_path / os.fsdecode(b"r\xffun.jsonl")
    log.write_text(rows)
    for name in ("report.html", "report.md"):
        out = tmp_path / name
        assert main(["report", str(log), "-o", str(out)]) == 0
        assert "r\\xffun" in out.read_text()


def test_report_usage_errors(tmp_path, capsys):
    assert main(["report", str(SAMPLES), "-o", str(tmp_path / "r.pdf")]) == 2
    assert "must end in .html or .md" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "r.html")]) == 2


def _png_header(png: bytes) -> tuple[int, int, int]:
    """(width, height, colour type) from a PNG's IHDR chunk (3: a palette)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big"), png[25]


def test_a_large_report_draws_in_a_pool_small_figures_for_quiet_runs(tmp_path, monkeypatch):
    import io
    import os

    from lrdoctor import analyze, report
    from lrdoctor.many import Progress

    monkeypatch.setattr(report, "LARGE", 3)  # a large report from 3 runs on
    monkeypatch.setattr(report, "FIGURES_PER_TASK", 2)
    runs = [d for f in sorted(SAMPLES.glob("*.csv")) for d in analyze(f)]
    assert len(runs) >= 3 and any(d.findings for d in runs) and \
        any(not d.findings for d in runs)
    shown = io.StringIO()
    bar = Progress(shown)
    serial, _ = report._figures(runs, None, jobs=1)
    pooled, sweep = report._figures(runs, None, jobs=2, progress=bar)
    assert pooled == serial  # the same pictures, byte for byte, wherever they are drawn
    for d, png in zip(runs, pooled):
        w, h, kind = _png_header(png)
        assert kind == 3  # stored with a palette
        assert (w < 500) == (not d.findings)  # a small figure exactly for a quiet run
    assert _png_header(sweep)[2] == 3
    line = shown.getvalue()
    assert f"{len(runs)}/{len(runs)} figures" in line
    assert f"the figure of all {len(runs)} runs ..." in line
    assert "writing the report ..." in line
    # a figure that cannot be drawn costs its picture, not the report
    broken = runs[0]
    monkeypatch.setattr(type(broken), "plot", lambda self, **kw: 1 / 0)
    out = tmp_path / "big.html"
    report.write_report(runs, out, jobs=1)
    page = Page()
    page.feed(out.read_text(encoding="utf-8"))
    text = " ".join(page.text)
    assert "figure not drawn: ZeroDivisionError" in text
    assert len(page.imgs) == 1 + sum(1 for d in runs if not d.findings)  # sweep + thumbs
    assert os.path.getsize(out) > 0


def test_a_small_report_keeps_full_figures_in_this_process(monkeypatch):
    from lrdoctor import analyze, many, report

    def no_pool(*a, **kw):
        raise AssertionError("a small report needs no pool")

    monkeypatch.setattr(many, "ProcessPoolExecutor", no_pool, raising=False)
    runs = [d for f in sorted(SAMPLES.glob("*.csv"))[:2] for d in analyze(f)]
    per_run, sweep = report._figures(runs, None)
    for png in per_run:
        w, _, kind = _png_header(png)
        assert w > 500 and kind != 3  # full size, full colour


def test_figures_drawn_on_shared_renderers_are_the_figures_drawn_alone():
    """A pool task draws its figures on one Agg renderer per size (text measured once for
    the task, or for all the tasks of a worker): each PNG is byte for byte the one drawn on
    a renderer of its own, figures of two sizes interleaved, the sweep figure among them,
    each read before the next."""
    from lrdoctor import analyze, report
    from lrdoctor.plot import new_figure, plot_sweep, shared_renderers

    runs = [d for f in sorted(SAMPLES.glob("*.csv")) for d in analyze(f)]
    assert any(d.findings for d in runs) and any(not d.findings for d in runs)
    items = [(d, small, palette) for d in runs for small in (False, True)
             for palette in (True, False)]
    alone = [report.run_figure(d, small=s, palette=p) for d, s, p in items]
    alone.append(report._png(plot_sweep(runs), palette=True))
    shared = report.draw_runs(items)
    with shared_renderers():
        shared.append(report._png(plot_sweep(runs), palette=True))
        a, b = new_figure(figsize=(2, 1), dpi=50), new_figure(figsize=(2, 1), dpi=50)
        assert a.canvas.get_renderer() is b.canvas.get_renderer()
    assert all(isinstance(p, bytes) for p in alone)
    assert shared == alone
    # a pool worker keeps its renderers from one task to the next: the same pictures
    for _ in range(2):
        with shared_renderers(keep=True):
            assert [report.run_figure(d, small=s, palette=p) for d, s, p in items] == \
                alone[:-1]
    # outside the sharing each figure has a renderer of its own, as before
    a, b = new_figure(figsize=(2, 1), dpi=50), new_figure(figsize=(2, 1), dpi=50)
    assert a.canvas.get_renderer() is not b.canvas.get_renderer()
