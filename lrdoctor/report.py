"""Reports: one HTML file (figures embedded, no network, no JavaScript) or Markdown with its
figures written beside it. Every string that comes from a log (run names, column names,
paths, messages) is escaped."""
from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

from lrdoctor._version import __version__
from lrdoctor.detect._curve import fmt_step
from lrdoctor.plot import shown
from lrdoctor.render import _run_lr, short_advice

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:64rem;
margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2.2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;
text-align:left}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.too_high{color:#b04000;font-weight:600}.too_low{color:#8a5a00;font-weight:600}
.ok{color:#1d6b2f;font-weight:600}.unknown{color:#666}.range_test{color:#006d5b;font-weight:600}
img{max-width:100%;height:auto;border:1px solid #eee}code{font-size:.85em}
.note{color:#555;font-size:.9rem}.err{color:#b00020}
"""


#: From this many runs on, a report is large: runs without findings get a small figure
#: (6 x 3.2 in at 72 dpi, no layout solver) and every figure is stored with a palette of
#: ``COLORS`` colours, which keeps 1,000 runs readable and the HTML file in tens of MB.
LARGE = 50
COLORS = 64
#: zlib's level for the palette PNGs: 7 costs a sixth of 9 (``optimize``) for 8% more bytes
PNG_LEVEL = 7
#: The resolution a run's full figure is laid out and saved at.
DPI = 110
#: Figures one task of the pool draws.
FIGURES_PER_TASK = 8


def _png(fig, *, dpi: int = DPI, palette: bool = False) -> bytes:
    """The figure as PNG bytes; ``palette``: drawn once by Agg at the figure's own dpi and
    its pixels quantized to ``COLORS`` colours straight from the canvas (no full-colour
    PNG written and read back)."""
    if not palette:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image  # matplotlib's own dependency

    if fig.dpi != dpi:
        fig.set_dpi(dpi)
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    img = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba())
    img = img.convert("RGB").quantize(COLORS, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=PNG_LEVEL)
    return out.getvalue()


def run_figure(d, *, logy=None, small: bool = False, palette: bool = False) -> bytes:
    """One run's figure as PNG bytes: the full annotated figure (laid out at the dpi it is
    saved at), or (``small``) the same drawing on a small canvas with fixed margins (no
    layout solver: half the time)."""
    if not small or d.curve is None or getattr(d, "range_test", None) is not None:
        return _png(d.plot(logy=logy, dpi=DPI).figure, palette=palette)
    return _png(thumbnail(d, logy=logy), dpi=72, palette=palette)


def thumbnail(d, *, logy=None):
    """A small figure of a run without findings: the loss (raw, faint) and its trend, the
    title and the caption of the full figure; no layout solver, no legend (the colours are
    the full figure's), so it costs a fraction of :func:`lrdoctor.plot.plot_diagnosis`."""
    import numpy as np

    from lrdoctor.plot import COLORS, _minmax_decimate, new_figure
    from lrdoctor.render import HEADLINE, caption

    def text(t, limit=120):  # as written: no mathtext; undecodable bytes as \xNN
        t = shown(str(t))
        return t if len(t) <= limit else t[:limit // 2] + "\u2026" + t[-(limit // 2):]

    fig = new_figure(figsize=(6, 2.8), dpi=72)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.2, top=0.88)
    ax = fig.add_subplot()
    steps = d.history.logged_steps.astype(np.float64)
    y = d.history.logged_loss
    fin = np.isfinite(y)
    ax.plot(*_minmax_decimate(steps[fin], y[fin]), color=COLORS["raw"], lw=0.6, alpha=0.6)
    c = d.curve
    if c.n_bins >= 3:  # the settled trend (the running median's window fits)
        k = c.trend_settled
        ax.plot(c.steps[c.bin_start[:k]].astype(np.float64), c.level[:k],
                color=COLORS["trend"], lw=1.5)
    pos = y[fin]
    if logy or (logy is None and len(pos) and (pos > 0).all()
                and np.log10(pos.max() / pos.min()) > 1.5):
        ax.set_yscale("log")
    ax.tick_params(labelsize=7)
    ax.set_title(text(f"{d.run}: {HEADLINE[d.verdict]}", 80), fontsize=8, loc="left",
                 parse_math=False)
    fig.text(0.01, 0.02, text(caption(d)), fontsize=7, parse_math=False)
    return fig


def draw_runs(items: list, logy=None) -> list:
    """A pool task: ``run_figure`` of each ``(diagnosis, small, palette)``; a figure that
    could not be drawn is its error message (str) instead of bytes."""
    import multiprocessing

    from lrdoctor.plot import shared_renderers

    out = []
    # each text measured once for the task, not once a figure; in a worker process, once
    # for all its tasks (its renderers are kept from one task to the next)
    with shared_renderers(keep=multiprocessing.parent_process() is not None):
        for d, small, palette in items:
            try:
                out.append(run_figure(d, logy=logy, small=small, palette=palette))
            except (MemoryError, KeyboardInterrupt):
                raise
            except Exception as exc:  # one bad figure costs its picture, not the report
                out.append(f"{type(exc).__name__}: {exc}")
    return out


def _figures(diagnoses: list, logy, *, jobs=None, executor=None,
             progress=None) -> tuple[list, bytes | None]:
    """Each run's figure (PNG bytes, or why it could not be drawn) and the sweep figure.
    A large report (``LARGE`` runs) draws them in a pool of ``jobs`` workers (default: one
    per CPU) or on ``executor``; runs without findings get small figures there."""
    import copy

    from lrdoctor.many import cpu_count, map_chunks
    from lrdoctor.plot import plot_sweep

    large = len(diagnoses) >= LARGE
    items = []
    for d in diagnoses:
        light = copy.copy(d)
        light.sweep = None  # the figure does not show it; pickled, it would drag every run
        items.append((light, large and not d.findings, large))
    if jobs is None:
        jobs = cpu_count() if large else 1
    per_run: list = [None] * len(items)
    if progress is not None:
        progress.start("figures", len(items))
    done = 0
    for start, got in map_chunks(draw_runs, items, executor=executor, jobs=jobs,
                                 size=FIGURES_PER_TASK, args=(logy,)):
        n = len(items[start:start + FIGURES_PER_TASK])
        if isinstance(got, Exception):  # the worker died: those figures are missing
            got = [f"its worker failed ({type(got).__name__}: {got})"] * n
        per_run[start:start + n] = got
        done += n
        if progress is not None:
            progress.update(done)
    sweep = None
    if len(diagnoses) > 1:
        if progress is not None:
            progress.start(f"the figure of all {len(diagnoses)} runs")
        sweep = _png(plot_sweep(diagnoses, logy=logy), palette=large)
    if progress is not None:
        progress.start("writing the report")
    return per_run, sweep


def _span(f) -> str:
    start = "?" if f.start is None else fmt_step(f.start)
    return f"{start}..{'end' if f.end is None else fmt_step(f.end)}"


def write_report(diagnoses: list, path, *, errors=(), logy=None, sweeps=(),
                 skipped=(), jobs=None, executor=None, progress=None) -> list[Path]:
    """Write the report; the format follows the extension (.html/.htm or .md). Returns the
    files written (the report first). ``sweeps`` (``lrdoctor.sweep.find_sweeps``) get a
    table of their estimates; ``errors`` (inputs that could not be read) and ``skipped``
    ((path, why) of files in a folder that hold no loss) a section of their own.

    From ``LARGE`` (50) runs on, the figures are drawn in a process pool (``jobs``
    workers, default one per CPU, or ``executor``: see :func:`lrdoctor.many.map_chunks`),
    small ones for runs without findings; ``progress`` (:class:`lrdoctor.many.Progress`)
    shows each phase."""
    errors = _left_out(errors, skipped)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    per_run, sweep = _figures(diagnoses, logy, jobs=jobs, executor=executor,
                              progress=progress)
    if path.suffix.lower() == ".md":
        return _markdown(diagnoses, path, per_run, sweep, errors, sweeps)
    # shown: the bytes of a file name that is not UTF-8 as \xNN, as in the figures
    path.write_text(shown(html_report(diagnoses, per_run, sweep, errors, sweeps)),
                    encoding="utf-8")
    return [path]


def _left_out(errors, skipped) -> list[str]:
    """The lines of the 'Skipped and unreadable inputs' section, as on standard error."""
    from lrdoctor.render import printable

    return [printable(e) for e in errors] + [
        printable(f"{p}: skipped, {why}") for p, why in skipped]


def _confidence(d) -> str:
    """The verdict's confidence, and where it came from (a sweep or the run's own curve)."""
    conf = getattr(d, "confidence", "")
    return f"{conf}, from the sweep" if getattr(d, "sweep", None) is not None else conf


def _sweep_rows(sweeps) -> list[tuple[str, ...]]:
    """One row per sweep: runs, LRs, best LR, its range, edge, validation's pick."""
    def lr(v):
        return "-" if v is None else f"{v:.2g}"

    return [(str(len(s.runs)), str(len(s.grid.get("lrs", ()))), lr(s.best_lr),
             "-" if s.best_lr_range is None else f"{lr(s.best_lr_range[0])}-"
             f"{lr(s.best_lr_range[1])}", s.edge or "-", lr(s.val_best_lr),
             "; ".join(s.notes) or "-") for s in sweeps]


_SWEEP_HEAD = ("runs", "LRs", "best LR", "good range", "edge", "validation's pick", "notes")


def html_report(diagnoses: list, per_run: list[bytes], sweep: bytes | None, errors=(),
                sweeps=()) -> str:
    e = html.escape

    def img(png: bytes, alt: str) -> str:
        return (f'<img alt="{e(alt)}" src="data:image/png;base64,'
                f'{base64.b64encode(png).decode("ascii")}">')

    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>lrdoctor report: {len(diagnoses)} run(s)</title>",
           f"<style>{_CSS}</style></head><body>",
           f"<h1>lrdoctor report: {len(diagnoses)} run(s)</h1>",
           '<table class="summary"><thead><tr><th>run</th><th>LR</th><th>verdict</th>'
           "<th>confidence</th><th>advice</th><th>rule</th></tr></thead><tbody>"]
    for k, d in enumerate(diagnoses):
        out.append(f'<tr><td><a href="#run-{k}">{e(d.run)}</a></td>'
                   f'<td class="num">{e(_run_lr(d))}</td>'
                   f'<td class="{e(d.verdict)}">{e(d.verdict)}</td>'
                   f"<td>{e(_confidence(d))}</td>"
                   f"<td>{e(short_advice(d))}</td><td>{e(d.recommendation.rule)}</td></tr>")
    out.append("</tbody></table>")
    if sweeps:
        out.append("<h2>Sweeps</h2><table><thead><tr>" +
                   "".join(f"<th>{h}</th>" for h in _SWEEP_HEAD) + "</tr></thead><tbody>")
        out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                for row in _sweep_rows(sweeps)]
        out.append("</tbody></table>")
    if errors:
        out.append("<h2>Skipped and unreadable inputs</h2><ul>")
        out += [f'<li class="err">{e(str(x))}</li>' for x in errors]
        out.append("</ul>")
    if sweep is not None:
        out.append("<h2>All runs</h2>" + img(sweep, "all runs coloured by learning rate"))
    for k, (d, png) in enumerate(zip(diagnoses, per_run)):
        out.append(f'<h2 id="run-{k}">{e(d.run)}: <span class="{e(d.verdict)}">'
                   f"{e(d.verdict)}</span></h2>")
        out.append(f"<p><code>{e(d.source)}</code>: {len(d.history.logged_steps)} points of "
                   f"<code>{e(d.metric)}</code>; LR {e(_run_lr(d))}</p>")
        out.append(img(png, f"loss curve of {d.run}") if isinstance(png, bytes) else
                   f'<p class="err">figure not drawn: {e(png)}</p>')
        if d.findings:
            out.append("<table><thead><tr><th>finding</th><th>steps</th><th>severity</th>"
                       "<th>evidence</th></tr></thead><tbody>")
            out += [f"<tr><td>{e(f.kind)}</td><td>{e(_span(f))}</td>"
                    f'<td class="num">{f.severity:.2f}</td><td>{e(f.message)}</td></tr>'
                    for f in d.findings]
            out.append("</tbody></table>")
        else:
            out.append("<p>No instability, plateau or slow progress found.</p>")
        out.append(f"<p><strong>{e(short_advice(d))}</strong> (rule: {e(d.recommendation.rule)}; "
                   f"confidence: {e(_confidence(d))})</p>")
        notes = d.recommendation.notes + d.notes
        if notes:
            out.append('<ul class="note">' + "".join(f"<li>{e(n)}</li>" for n in notes)
                       + "</ul>")
    out.append(f'<p class="note">Written by lrdoctor {e(__version__)}.</p></body></html>')
    return "\n".join(out) + "\n"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#!~])")


def md_escape(s: str) -> str:
    """Text from a log made inert in Markdown: HTML escaped, Markdown's marks backslashed."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(s), quote=False)).replace("\n", " ")


def _safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._") or "run"


def _markdown(diagnoses, path: Path, per_run, sweep, errors, sweeps=()) -> list[Path]:
    folder = path.with_name(path.stem + "_files")
    folder.mkdir(exist_ok=True)
    written = [path]
    used: dict[str, int] = {}

    def save(png: bytes, name: str) -> str:
        base = _safe_name(name)
        used[base] = used.get(base, 0) + 1
        if used[base] > 1:
            base += f"_{used[base]}"
        f = folder / f"{base}.png"
        f.write_bytes(png)
        written.append(f)
        return f"{folder.name}/{f.name}"

    m = md_escape
    out = [f"# lrdoctor report: {len(diagnoses)} run(s)", "",
           "| run | LR | verdict | confidence | advice | rule |", "|---|---:|---|---|---|---|"]
    for d in diagnoses:
        out.append(f"| {m(d.run)} | {_run_lr(d)} | **{d.verdict}** | {_confidence(d)} | "
                   f"{short_advice(d)} | {m(d.recommendation.rule)} |")
    out.append("")
    if sweeps:
        out += ["## Sweeps", "", "| " + " | ".join(_SWEEP_HEAD) + " |",
                "|" + "---|" * len(_SWEEP_HEAD)]
        out += ["| " + " | ".join(m(c) for c in row) + " |" for row in _sweep_rows(sweeps)]
        out.append("")
    if errors:
        out += ["## Skipped and unreadable inputs", ""] + [f"- {m(str(x))}" for x in errors]
        out.append("")
    if sweep is not None:
        out += ["## All runs", "", f"![all runs coloured by learning rate]({save(sweep, 'sweep')})",
                ""]
    for d, png in zip(diagnoses, per_run):
        out += [f"## {m(d.run)}: {d.verdict}", "",
                f"{m(d.source)}: {len(d.history.logged_steps)} points of {m(d.metric)}; "
                f"LR {_run_lr(d)}", "",
                f"![loss curve of {m(d.run)}]({save(png, 'run-' + d.run)})"
                if isinstance(png, bytes) else f"*figure not drawn: {m(png)}*", ""]
        if d.findings:
            out += ["| finding | steps | severity | evidence |", "|---|---|---:|---|"]
            out += [f"| {f.kind} | {_span(f)} | {f.severity:.2f} | {m(f.message)} |"
                    for f in d.findings]
            out.append("")
        else:
            out += ["No instability, plateau or slow progress found.", ""]
        out += [f"**{short_advice(d)}** (rule: {m(d.recommendation.rule)}; confidence: "
                f"{_confidence(d)})", ""]
        out += [f"- {m(n)}" for n in d.recommendation.notes + d.notes]
        out.append("")
    out.append(f"Written by lrdoctor {__version__}.")
    path.write_text(shown("\n".join(out) + "\n"), encoding="utf-8")
    return written
