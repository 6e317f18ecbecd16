"""The annotated diagnosis figure. Uses Figure objects only, never pyplot's global state."""
from __future__ import annotations

import numpy as np

# Okabe-Ito: distinguishable in colour blindness and apart in grayscale by lightness.
COLORS = {"raw": "#999999", "trend": "#000000", "val": "#0072B2", "lr": "#009E73",
          "high": "#D55E00", "low": "#E69F00", "spike": "#CC79A7"}
MAX_DRAWN = 20_000


def shown(text: str) -> str:
    """Text from a file name made drawable: bytes that were not UTF-8 (kept by Python as
    lone surrogates, which the font code refuses) are shown as \\xNN escapes."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _minmax_decimate(steps: np.ndarray, y: np.ndarray, n_bins: int = MAX_DRAWN // 2):
    """Keep the min and max of each bin so spikes and extremes survive decimation."""
    n = len(y)
    if n <= 2 * n_bins:
        return steps, y
    b = n // n_bins
    m = n_bins * b
    yb = y[:m].reshape(n_bins, b)
    lo, hi = np.nanargmin(yb, axis=1), np.nanargmax(yb, axis=1)
    base = np.arange(n_bins) * b
    idx = np.sort(np.concatenate((base + lo, base + hi, np.arange(m, n))))
    return steps[idx], y[idx]


def plot_diagnosis(d, ax=None, *, logy: bool | None = None):
    """Draw the loss (raw faint, trend bold), validation loss, LR and every finding.

    Parameters
    ----------
    d : Diagnosis
    ax : matplotlib Axes, optional
        Drawn on a new Figure (8 x 4.5 in) when None.
    logy : bool, optional
        Log-scale y; default: when the finite loss spans more than 1.5 decades.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from matplotlib.figure import Figure

    from lrdoctor import detect
    from lrdoctor.render import HEADLINE, caption, short_advice

    if getattr(d, "range_test", None) is not None:  # an LR range test: loss against LR
        ax = plot_range_test(d.range_test, ax=ax,
                             title=shown(f"{d.run}: {HEADLINE[d.verdict]}"))
        ax.set_xlabel(f"LR (log)\n{HEADLINE[d.verdict]}: {short_advice(d)}", fontsize=8)
        return ax
    if ax is None:
        fig = Figure(figsize=(8, 4.5), dpi=150)
        ax = fig.add_subplot()
    h = d.history
    steps = h.logged_steps.astype(np.float64)
    y = h.logged_loss
    fin = np.isfinite(y)
    curve = d.curve or detect.Curve(steps=h.logged_steps, values=y)
    pos = y[fin & (y > 0)]
    # the healthy part decides the axes: clip at a generous multiple of the starting level
    if fin.any():
        cap = max(float(np.nanmax(y[fin][: max(1, fin.sum() // 10)])),
                  curve.start_level if np.isfinite(curve.start_level) else 0) * 20
        healthy = y[fin & (y <= cap)] if np.isfinite(cap) else y[fin]
    else:
        healthy = np.array([1.0])
    if logy is None:
        hp = healthy[healthy > 0]
        logy = bool(len(hp) and len(pos) == fin.sum()
                    and np.log10(hp.max() / hp.min()) > 1.5)
    s_draw, y_draw = _minmax_decimate(steps[fin], y[fin])
    ax.plot(s_draw, y_draw, color=COLORS["raw"], lw=0.6, alpha=0.6, label="loss (raw)")
    if curve.n_bins >= 3:
        k = curve.trend_settled
        ax.plot(curve.steps[curve.bin_start[:k]].astype(float), curve.level[:k],
                color=COLORS["trend"], lw=1.8, label="trend")
    val = h.present("val_loss")
    if val is not None:
        ax.plot(val[0].astype(float), val[1], "o-", ms=2.5, lw=1,
                color=COLORS["val"], label="validation loss")
    if logy:
        ax.set_yscale("log")
    lo, hi = float(np.min(healthy)), float(np.max(healthy))
    if val is not None and fin.any():  # the validation loss is in view too, unless it blew up
        v = val[1]
        v = v[np.isfinite(v) & (v <= cap) & ((v > 0) if logy else True)]
        if len(v):
            lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
    if logy and lo > 0:
        ax.set_ylim(lo / 1.5, hi * 1.5)
    elif hi > lo:
        pad = 0.05 * (hi - lo)
        ax.set_ylim(lo - pad, hi + pad)
    top = ax.get_ylim()[1]
    off = fin & (y > top)
    if off.any():  # points beyond the top edge: marked on the edge
        ax.plot(steps[off], np.full(off.sum(), top), "^", color=COLORS["high"], ms=4,
                clip_on=False, label="off scale")
    n_labels = 0
    for f in d.findings:
        start = f.start if f.start is not None else steps[0]
        end = f.end if f.end is not None else steps[-1]
        color = COLORS["low"] if f.kind in ("plateau", "slow") else \
            COLORS["val"] if f.kind == "overfitting" else COLORS["high"]
        if f.kind in ("nonfinite", "hidden_nonfinite"):
            ax.axvline(start, color=COLORS["high"], ls="--", lw=1.2)
            ax.plot([start], [top], "X", color=COLORS["high"], ms=8, clip_on=False)
            what = "non-finite" if f.kind == "nonfinite" else "hidden NaN (grad norm)"
            ax.annotate(f"{what} from {start:g}", (start, top), xytext=(3, -12),
                        textcoords="offset points", fontsize=7, color=COLORS["high"])
        elif f.kind == "grad_nonfinite":
            continue  # loss-scale skips: a note, not evidence to draw
        elif f.kind in ("spike", "grad_spike"):
            sp = np.asarray(f.evidence.get("steps", []), dtype=float)
            at = np.searchsorted(steps, sp).clip(0, len(y) - 1)
            ax.plot(sp, np.minimum(y[at], top), "v" if f.kind == "spike" else "^",
                    color=COLORS["spike"], ms=4,
                    label="spike" if f.kind == "spike" else "grad-norm spike")
        else:
            ax.axvspan(start, end, color=color, alpha=0.12, lw=0, label=f"_{f.kind}")
            # labels of spans that start together are stacked, not printed over each other
            ax.annotate(f.kind, (start, top), xytext=(3, -10 - 9 * n_labels),
                        textcoords="offset points", fontsize=7, color=color)
            n_labels += 1
    lr = h.present("lr")
    if lr is not None:
        ax2 = ax.twinx()
        ax2.plot(*_minmax_decimate(lr[0].astype(float), lr[1]), color=COLORS["lr"], lw=1,
                 ls=":", label="LR")
        ax2.set_yscale("log")
        ax2.set_ylabel("learning rate", color=COLORS["lr"], fontsize=8)
        ax2.tick_params(labelsize=7, colors=COLORS["lr"])
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel(d.metric, fontsize=8)
    ax.tick_params(labelsize=7)
    handles, labels = ax.get_legend_handles_labels()
    if lr is not None:  # the LR lives on the twin axis: one legend for both
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    seen = dict(zip(labels, handles))  # one entry per label (spikes are drawn once anyway)
    leg = ax.legend(seen.values(), seen.keys(), fontsize=7, loc="upper right",
                    framealpha=0.8)
    if lr is not None:
        leg.remove()
        ax2.add_artist(leg)  # drawn above the LR line
    ax.set_title(shown(f"{d.run}: {HEADLINE[d.verdict]}"), fontsize=9, loc="left")
    ax.figure.text(0.01, 0.01, shown(caption(d)), fontsize=7.5, ha="left", va="bottom")
    ax.figure.subplots_adjust(bottom=0.17)
    return ax


VERDICT_MARKERS = {"too_high": ("v", COLORS["high"]), "too_low": ("^", COLORS["low"]),
                   "ok": ("o", COLORS["trend"]), "unknown": ("x", COLORS["raw"]),
                   "range_test": ("D", COLORS["lr"])}


def plot_range_test(rt, ax=None, *, title: str | None = None):
    """An LR range test: the loss (faint) and the curve read (bold) against the LR on a log
    x axis, the suggestion (solid line), the range (shaded), the minimum and the blow-up
    (dotted). Returns the Axes (a new 8 x 4.5 in Figure when ``ax`` is None)."""
    from matplotlib.figure import Figure

    if ax is None:
        ax = Figure(figsize=(8, 4.5), dpi=150).add_subplot()
    lr, loss = rt.lr, rt.loss
    fin = np.isfinite(loss)
    ax.plot(lr[fin], loss[fin], color=COLORS["raw"], lw=0.8, alpha=0.7, label="loss")
    sm = np.isfinite(rt.curve)
    if rt.smoothed and sm.any():
        ax.plot(lr[sm], rt.curve[sm], color=COLORS["trend"], lw=1.6, label="smoothed")
    ax.set_xscale("log")
    # the axes stay on the informative part: up to a few times the starting level
    if fin.any():
        ref = rt.curve[sm] if sm.any() else loss[fin]
        top = float(np.nanmax(ref[: max(1, len(ref) // 5)]))
        lo = float(np.nanmin(ref))
        if top > 0 and lo > 0 and top / lo > 30:
            ax.set_yscale("log")
        ax.set_ylim(top=top * 2 if top > 0 else None)
    if rt.low is not None and rt.high is not None:
        ax.axvspan(rt.low, rt.high, color=COLORS["lr"], alpha=0.15, lw=0, label="range")
    if rt.suggested_lr is not None:
        ax.axvline(rt.suggested_lr, color=COLORS["lr"], lw=1.6,
                   label=f"suggested {rt.suggested_lr:.2g}")
    if rt.min_loss_lr is not None:
        ax.axvline(rt.min_loss_lr, color=COLORS["trend"], lw=0.8, ls=":",
                   label=f"minimum {rt.min_loss_lr:.2g}")
    if rt.divergence_lr is not None:
        ax.axvline(rt.divergence_lr, color=COLORS["high"], lw=0.8, ls=":",
                   label=f"blow-up {rt.divergence_lr:.2g}")
    ax.set_xlabel("LR (log)", fontsize=8)
    ax.set_ylabel("loss", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    ax.set_title(title or f"LR range test (confidence {rt.confidence})", fontsize=9, loc="left")
    ax.figure.tight_layout()
    return ax


def plot_sweep(diagnoses: list, fig=None, *, logy: bool | None = None):
    """All runs on one figure, coloured by LR (log colour bar), each run's verdict marked at
    its last point; a final-loss-vs-LR panel when the runs differ in LR.

    Returns the Figure.
    """
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    lrs = np.array([np.nan if d.current_lr is None else d.current_lr for d in diagnoses])
    known = lrs[np.isfinite(lrs)]
    by_lr = len(np.unique(known)) > 1
    if fig is None:
        fig = Figure(figsize=(11, 4.5) if by_lr else (8, 4.5), dpi=150)
    if by_lr:
        ax, ax_lr = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    else:
        ax, ax_lr = fig.add_subplot(), None
    cmap = colormaps["viridis"]
    norm = LogNorm(known.min(), known.max()) if by_lr else None
    finals, all_pos, spans = [], [], []
    for d, lr in zip(diagnoses, lrs):
        curve = d.curve
        if curve is None or curve.n_bins < 1:
            finals.append(np.nan)
            continue
        color = cmap(norm(lr)) if by_lr and np.isfinite(lr) else COLORS["raw"]
        k = curve.trend_settled
        xs = curve.steps[curve.bin_start[:k]].astype(float)
        ys = curve.level[:k]
        ax.plot(xs, ys, color=color, lw=1.2, alpha=0.9)
        marker, mcolor = VERDICT_MARKERS[d.verdict]
        ax.plot([xs[-1]], [ys[-1]], marker, color=mcolor, ms=6, mec="white", mew=0.5)
        if d.sweep is not None:  # the sweep's own result, so the panel shows its basis
            from lrdoctor.sweep import result

            finals.append(result(d))
        else:
            finals.append(curve.final_level if curve.n_finite_prefix == curve.n else np.inf)
        fin = ys[np.isfinite(ys)]
        all_pos.extend(fin[fin > 0][:1].tolist() + fin[fin > 0][-1:].tolist())
        spans.append(fin)
    ys_all = np.concatenate(spans) if spans else np.array([1.0])
    if logy is None:
        pos = ys_all[ys_all > 0]
        logy = bool(len(pos) == len(ys_all) and len(pos)
                    and np.log10(pos.max() / pos.min()) > 1.5)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step", fontsize=8)
    metrics = {d.metric for d in diagnoses}
    ax.set_ylabel(f"{metrics.pop() if len(metrics) == 1 else 'loss'} (trend)", fontsize=8)
    ax.tick_params(labelsize=7)
    counts = {v: sum(d.verdict == v for d in diagnoses) for v in VERDICT_MARKERS}
    handles = [Line2D([], [], ls="", marker=m, color=c, label=f"{v} ({counts[v]})")
               for v, (m, c) in VERDICT_MARKERS.items() if counts[v]]
    ax.legend(handles=handles, fontsize=7, loc="upper right", framealpha=0.8,
              title="verdict", title_fontsize=7)
    ax.set_title(f"{len(diagnoses)} runs", fontsize=9, loc="left")
    if by_lr:
        from matplotlib.cm import ScalarMappable

        cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.01)
        cb.set_label("learning rate", fontsize=8)
        cb.ax.tick_params(labelsize=7)
        f = np.array(finals)
        diverged = np.isfinite(lrs) & np.isinf(f)
        ok = np.isfinite(lrs) & np.isfinite(f)
        for d, lr, fl in zip(diagnoses, lrs, f):
            if np.isfinite(lr) and np.isfinite(fl):
                m, c = VERDICT_MARKERS[d.verdict]
                ax_lr.plot([lr], [fl], m, color=c, ms=6)
        if ok.sum() > 1:
            order = np.argsort(lrs[ok])
            ax_lr.plot(lrs[ok][order], f[ok][order], color=COLORS["raw"], lw=0.8, zorder=0)
            est = next((d.sweep for d in diagnoses if d.sweep is not None
                        and d.sweep.best_lr is not None), None)
            if est is not None:  # the sweep's estimate and its good range
                ax_lr.axvspan(*est.best_lr_range, color=COLORS["lr"], alpha=0.12, lw=0)
                ax_lr.axvline(est.best_lr, color=COLORS["lr"], lw=1, ls="--")
                ax_lr.annotate(f"best LR ~ {est.best_lr:.2g}", (est.best_lr, 1),
                               xycoords=("data", "axes fraction"), xytext=(0, -10),
                               textcoords="offset points", fontsize=7, ha="center")
            else:
                best = np.flatnonzero(ok)[np.argmin(f[ok])]
                ax_lr.annotate(f"lowest: LR {lrs[best]:.2g}", (lrs[best], f[best]),
                               xytext=(0, 8), textcoords="offset points", fontsize=7,
                               ha="center")
        if diverged.any():  # runs that went non-finite: marked at the top edge
            top = np.nanmax(f[ok]) * (3 if logy else 1.2) if ok.any() else 1.0
            ax_lr.plot(lrs[diverged], np.full(diverged.sum(), top), "X",
                       color=COLORS["high"], ms=7, clip_on=False, label="non-finite")
            ax_lr.legend(fontsize=7, loc="upper left")
        ax_lr.set_xscale("log")
        if logy:
            ax_lr.set_yscale("log")
        ax_lr.set_xlabel("learning rate", fontsize=8)
        swept = any(d.sweep is not None for d in diagnoses)
        ax_lr.set_ylabel("final loss (mean of last 10%)" if swept
                         else "final loss (median of last 5%)", fontsize=8)
        ax_lr.tick_params(labelsize=7)
        ax_lr.set_title("final loss vs LR", fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def save(d, path: str, **kwargs) -> None:
    """Write the figure of one Diagnosis, or the sweep figure of a list of them; the format
    follows the extension (png, svg, pdf)."""
    if isinstance(d, (list, tuple)):
        fig = d[0].plot(**kwargs).figure if len(d) == 1 else plot_sweep(list(d), **kwargs)
    else:
        fig = plot_diagnosis(d, **kwargs).figure
    fig.savefig(path, dpi=150)
