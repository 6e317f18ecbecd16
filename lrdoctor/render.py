"""Renderers: the terminal report, the JSON document and the notebook summary.

They only format what they are given (Diagnosis objects and errors).
"""
from __future__ import annotations

import html
import json
import math
import re

import numpy as np

from lrdoctor._version import __version__
from lrdoctor.detect._curve import fmt_step
from lrdoctor.errors import LrDoctorError

HEADLINE = {
    "too_high": "LR too high",
    "too_low": "LR too low",
    "ok": "LR looks fine",
    "unknown": "not enough data",
    "range_test": "LR range test",
}
_COLOR = {"too_high": "31", "too_low": "33", "ok": "32", "unknown": "90", "range_test": "36"}
#: every verdict, in the order the summary counts them
VERDICTS = ("too_high", "too_low", "ok", "unknown", "range_test")


#: Characters that are not printed as they are: C0 and C1 controls (terminal escape
#: sequences, carriage returns), line and paragraph separators, the marks that reorder text
#: (bidi controls), and lone surrogates (bytes of a file name that were not UTF-8).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e"
                          "\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_SURROGATES = re.compile("[\ud800-\udfff]")


def _escape(m: re.Match) -> str:
    c = m.group()
    o = ord(c)
    if 0xDC80 <= o <= 0xDCFF:  # a byte that was not UTF-8, as Python keeps it
        return f"\\x{o - 0xDC00:02x}"
    return _NAMED.get(c) or (f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}")


def printable(text) -> str:
    """A string from a log or a path made safe to print: control characters (an escape
    sequence, a carriage return) and marks that reorder text shown as ``\\x1b``, ``\\r``,
    ``\\u202e``; the bytes of a file name that were not UTF-8 as ``\\xff``. Everything else,
    accented letters and other scripts included, is left as it is."""
    text = str(text)
    return _UNPRINTABLE.sub(_escape, text) if _UNPRINTABLE.search(text) else text


def _quoted(text) -> str:
    """``'name'`` as repr() quotes it, with :func:`printable`'s escapes."""
    text = str(text)
    safe = printable(text)
    return repr(text) if safe == text else f"'{safe}'"


def json_text(text: str) -> str:
    """A string for JSON: lone surrogates (the bytes of a file name that were not UTF-8)
    written as ``\\xff`` text, so the document is valid UTF-8 (controls are escaped by
    ``json`` itself)."""
    return _SURROGATES.sub(_escape, text) if _SURROGATES.search(text) else text


def _lr(v) -> str:
    return "unknown" if v is None else f"{v:.3g}"


def _run_lr(d) -> str:
    """The run's LR; an LR range test's swept range."""
    rt = getattr(d, "range_test", None)
    return f"{rt.lr[0]:.2g}..{rt.lr[-1]:.2g}" if rt is not None else _lr(d.current_lr)


def short_advice(d, *, keep_lr: bool = False) -> str:
    """``lower 5-10x -> 0.00014``, ``raise 3-5x``, ``keep`` (``keep 0.001`` with keep_lr)."""
    r = d.recommendation
    if d.verdict == "range_test":
        return _range_advice(d)
    if r.action == "keep":
        return "keep" + (f" {_lr(d.current_lr)}" if keep_lr and d.current_lr is not None
                         else "")
    s = f"{r.action} {factor_text(r.factor)}"
    return s + (f" -> {r.suggested_lr:.2g}" if r.suggested_lr is not None else "")


def factor_text(factor) -> str:
    """``3-5x`` for the rules' range, ``330x`` for one factor (a move into the range)."""
    lo, hi = factor[0], factor[-1]
    return f"{lo:g}x" if lo == hi else f"{lo:g}-{hi:g}x"


def _range_advice(d) -> str:
    """``set 0.003 (range 0.001-0.01)`` for an LR range test."""
    rt = d.range_test
    if rt.suggested_lr is None:
        return "no LR picked"
    return f"set {rt.suggested_lr:.2g} (range {rt.low:.2g}-{rt.high:.2g})"


def caption(d) -> str:
    """``LR too high: lower 5-10x -> 0.0001 (rule: explosion: lower 5-10x)``."""
    return f"{HEADLINE[d.verdict]}: {short_advice(d, keep_lr=True)} (rule: {d.recommendation.rule})"


def advice_line(d) -> str:
    r = d.recommendation
    if d.verdict == "range_test":
        what = _range_advice(d)
    elif r.action == "keep":
        what = "keep" + (f" {_lr(d.current_lr)}" if d.current_lr is not None else "")
    else:
        what = f"{r.action} {factor_text(r.factor)}"
        if r.suggested_lr is not None:
            what += f": {_lr(d.current_lr)} -> {_lr(r.suggested_lr)}"
    return f"{what}   (rule: {r.rule})"


def text_report(diagnoses: list, *, color: bool = False, sweeps: list = ()) -> str:
    """Verdict first, then the evidence, then the advice; plain text when piped. Each sweep
    (``lrdoctor.sweep``) gets a block before the summary table."""
    parts: list[str] = []
    write_text_report(parts.append, diagnoses, color=color, sweeps=sweeps)
    return "".join(parts)


def write_text_report(write, runs, *, color: bool = False, sweeps: list = ()) -> None:
    """:func:`text_report` handed to ``write`` a run at a time: ``runs`` (a sized
    collection read twice, such as a :class:`lrdoctor.many.Spool`) is never held as a list
    nor the report as one string; the summary table's widths and the counts are gathered
    on the first pass."""
    paint = _painter(color)
    if len(runs) <= 1:  # no summary table
        out = [line for d in runs for line in _run_block(d, paint)]
        out += [line for sw in sweeps for line in sweep_block(sw)]
        write("\n".join(out).rstrip() + "\n" if out else "")
        return
    w = [len(h) for h in _TABLE_HEAD]
    counts: dict = {}
    for d in runs:
        for line in _run_block(d, paint):
            write(line + "\n")
        w = [max(a, len(b)) for a, b in zip(w, _table_row(d))]
        counts[d.verdict] = counts.get(d.verdict, 0) + 1
    for sw in sweeps:
        for line in sweep_block(sw):
            write(line + "\n")
    w[0] = min(w[0], 48)
    for line in _table_lines((_table_row(d) for d in runs), w, paint):
        write(line + "\n")
    write(f"\n{len(runs)} runs: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS
                                               if counts.get(v)) + "\n")


def _painter(color: bool):
    def paint(s, verdict):
        return f"\033[1;{_COLOR[verdict]}m{s}\033[0m" if color else s
    return paint


def _run_block(d, paint) -> list[str]:
    """The lines of one run in the text report (the last one empty)."""
    out = []
    n, first, last, other = d.outline()
    head = paint(HEADLINE[d.verdict].upper(), d.verdict)
    out.append(f"{head}  {printable(d.source)}")
    span = ""
    if n:
        span = f", steps {fmt_step(first)}..{fmt_step(last)}"
    out.append(f"  run {_quoted(d.run)}: {n} point{'' if n == 1 else 's'} of "
               f"{_quoted(d.metric)}{span}; "
               f"LR {_run_lr(d)}")
    for f in d.findings:
        where = fmt_step(f.start) if f.start is not None else "?"
        if f.end is None:
            where += "..end"
        elif f.end != f.start:
            where += f"..{fmt_step(f.end)}"
        out.append(f"  - {f.kind:<16} steps {where:<16} severity {f.severity:.2f}  "
                   f"{printable(f.message)}")
    if not d.findings and d.verdict == "ok":
        out.append("  - no instability, plateau or slow progress found")
    out.append(f"  => {printable(advice_line(d))}   [confidence: {d.confidence}]")
    for n in d.recommendation.notes + d.notes:
        out.append(f"     note: {printable(n)}")
    if other:
        shown = ", ".join(map(printable, other[:6]))
        more = "" if len(other) <= 6 else ", ..."
        out.append(f"     other loss columns: {shown}{more} (choose with --metric)")
    out.append("")
    return out


def sweep_block(sw) -> list[str]:
    """The lines that report one sweep: its estimate, its grid, how it was grouped."""
    out = [f"SWEEP  {printable(sw.summary())}", f"  grouped: {printable(sw.grouped_by)}",
           f"  basis: {printable(sw.basis)}"]
    grid = sw.grid
    cells = [f"{lr:.2g}: {'diverged' if not math.isfinite(r) else f'{r:.4g}'}"
             for lr, r in zip(grid["lrs"], grid["result"])]
    out.append("  final loss by LR: " + ", ".join(cells))
    if sw.val_best_lr is not None:
        out.append(f"  validation loss's pick: LR {sw.val_best_lr:.2g}")
    out.extend(f"  note: {printable(n)}" for n in sw.notes)
    out.append("")
    return out


def summary_table(diagnoses: list, paint=lambda s, v: s) -> str:
    """One line per run: run, LR, verdict, advice (the table a sweep or a folder ends with)."""
    rows = [_table_row(d) for d in diagnoses]
    w = [max(len(h), *(len(x[i]) for x in rows)) for i, h in enumerate(_TABLE_HEAD)]
    w[0] = min(w[0], 48)
    return "\n".join(_table_lines(rows, w, paint)) + "\n"


_TABLE_HEAD = ("run", "LR", "verdict", "advice")


def _table_row(d) -> tuple[str, str, str, str]:
    return printable(d.run), _run_lr(d), d.verdict, short_advice(d)


def _table_lines(rows, w: list[int], paint):
    yield f"{'run':<{w[0]}}  {'LR':>{w[1]}}  {'verdict':<{w[2]}}  advice"
    yield f"{'-' * w[0]}  {'-' * w[1]}  {'-' * w[2]}  {'-' * w[3]}"
    for run, lr, verdict, adv in rows:
        run = run if len(run) <= w[0] else "..." + run[-(w[0] - 3):]
        yield f"{run:<{w[0]}}  {lr:>{w[1]}}  {paint(f'{verdict:<{w[2]}}', verdict)}  {adv}"


def _clean(o):
    """Strict JSON: NaN and infinities as null, strings valid UTF-8 (:func:`json_text`)."""
    if isinstance(o, str):
        return json_text(o)
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {_clean(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def json_document(diagnoses: list, errors: list[LrDoctorError], sweeps: list = ()) -> str:
    """The document of docs/json_contract.md (strict JSON: no NaN/Infinity tokens), with
    the ``sweeps`` found among the runs: :func:`write_json_document`'s text as one string
    (byte for byte ``json.dumps(doc, indent=2, allow_nan=False)`` of the cleaned document)."""
    parts: list[str] = []
    write_json_document(parts.append, diagnoses, errors, sweeps)
    return "".join(parts)


def write_json_document(write, diagnoses: list, errors: list[LrDoctorError],
                        sweeps: list = ()) -> None:
    """The JSON document handed to ``write`` a run at a time: only one run object is held
    as a dict and as text at once, whatever the number of runs."""
    from lrdoctor.jsonout import dumps

    def nested(obj) -> str:  # obj's indented text as it reads two levels down
        return "    " + dumps(obj).replace("\n", "\n    ")

    def items(name: str, objs, last: bool = False) -> None:
        first = True
        for obj in objs:
            write(f'  "{name}": [\n' if first else ",\n")
            write(nested(obj))
            first = False
        write(f'  "{name}": []' if first else "\n  ]")
        write("\n" if last else ",\n")

    write("{\n" + dumps({"lrdoctor": __version__})[2:-2] + ",\n")
    items("runs", (d.to_dict() for d in diagnoses))
    items("errors", ({"source": e.source, "message": e.message} for e in errors))
    items("sweeps", (s.to_dict() for s in sweeps), last=True)
    write("}")


def html_summary(d) -> str:
    """A compact HTML block for Jupyter: verdict, advice, findings and the figure."""
    import base64
    import io

    def e(text):
        return html.escape(printable(text))

    rows = "".join(
        f"<tr><td>{e(f.kind)}</td><td>{e(str(f.start))}</td><td>{e(str(f.end))}</td>"
        f"<td>{f.severity:.2f}</td><td>{e(f.message)}</td></tr>" for f in d.findings)
    img = ""
    try:
        ax = d.plot()
        buf = io.BytesIO()
        ax.figure.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        img = ('<img style="max-width:640px" src="data:image/png;base64,'
               + base64.b64encode(buf.getvalue()).decode() + '"/>')
    except Exception:  # a figure is a nicety here; the text carries the diagnosis
        img = ""
    return (f"<div><b>{e(HEADLINE[d.verdict])}</b> &mdash; {e(d.source)}<br/>"
            f"{e(advice_line(d))}<br/>"
            + "".join(f"<i>note: {e(n)}</i><br/>" for n in d.recommendation.notes + d.notes)
            + (f"<table><tr><th>kind</th><th>start</th><th>end</th><th>severity</th>"
               f"<th>message</th></tr>{rows}</table>" if rows else "")
            + img + "</div>")


def _trend(d) -> str:
    """``2.31 (falling)``: the last finite loss and its direction over the last fifth."""
    v = d.history.logged_loss
    v = v[np.isfinite(v)]
    if not len(v):
        return "non-finite"
    last = f"{v[-1]:.4g}"
    if len(v) < 10:
        return last
    k = max(2, len(v) // 10)
    now, before = float(np.median(v[-k:])), float(np.median(v[-2 * k:-k]))
    if now < before * 0.98:
        return last + " (falling)"
    if now > before * 1.02:
        return last + " (rising)"
    return last + " (flat)"


def watch_status(d, *, width: int = 120, color: bool = False) -> str:
    """The status line of a run being watched: run, step, loss trend, verdict, advice."""
    steps = d.history.logged_steps
    step = fmt_step(steps[-1]) if len(steps) else "-"
    verdict = HEADLINE[d.verdict]
    line = f"{printable(d.run)[-40:]:<24}  step {step:>8}  loss {_trend(d):<18}  {{v}}  {short_advice(d)}"
    plain = line.format(v=verdict)[:width - 1]
    if not color or len(plain) < len(line.format(v=verdict)):
        return plain
    return line.format(v=f"\033[1;{_COLOR[d.verdict]}m{verdict}\033[0m")


def watch_line(ev: dict, *, color: bool = False) -> str:
    """The line that stays for one event of ``lrdoctor watch``."""
    import time

    stamp = time.strftime("%H:%M:%S", time.localtime(ev.get("time", time.time())))
    kind = ev["event"]
    if kind in ("note", "error"):
        return f"{stamp}  {printable(ev['source'])}: {kind}: {printable(ev['message'])}"
    verdict = HEADLINE.get(ev["verdict"], ev["verdict"])
    if color:
        verdict = f"\033[1;{_COLOR.get(ev['verdict'], '0')}m{verdict}\033[0m"
    r = ev["recommendation"]
    advice = r["action"] if r["action"] == "keep" else f"{r['action']} {r['factor'][0]:g}-" \
        f"{r['factor'][1]:g}x" + (f" -> {r['suggested_lr']:.2g}" if r["suggested_lr"] is not None
                                 else "")
    head = f"{stamp}  {printable(ev['run'])}"
    if kind == "finding":
        f = ev["finding"]
        return (f"{head}: new finding {f['kind']} from step {f['start']}: "
                f"{printable(f['message'])}")
    if kind == "end":
        return f"{head}: {verdict} at step {ev['last_step']}: {advice}"
    since = ""
    if ev.get("since_step") is not None:  # a fault since it began; any other verdict 'at'
        since = (f" since step {ev['since_step']}" if ev["verdict"] in ("too_high", "too_low")
                 else f" at step {ev['since_step']}")
    was = f" (was {HEADLINE.get(ev['previous'], ev['previous'])})" if kind == "verdict" else ""
    what = "watching: " if kind == "start" else ""
    return f"{head}: {what}{verdict}{since}{was}: {advice}   (rule: {printable(r['rule'])})"
