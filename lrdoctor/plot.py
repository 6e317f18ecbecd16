"""The annotated diagnosis figure. Uses Figure objects only, never pyplot's global state."""
from __future__ import annotations

import numpy as np

# Okabe-Ito: distinguishable in colour blindness and apart in grayscale by lightness.
COLORS = {"raw": "#999999", "trend": "#000000", "val": "#0072B2", "lr": "#009E73",
          "high": "#D55E00", "low": "#E69F00", "spike": "#CC79A7"}
MAX_DRAWN = 20_000


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
    from lrdoctor.render import HEADLINE, advice_line

    if ax is None:
        fig = Figure(figsize=(8, 4.5), dpi=150)
        ax = fig.add_subplot()
    loss = d.history.loss
    steps = loss.index.to_numpy().astype(np.float64)
    y = loss.to_numpy(np.float64)
    fin = np.isfinite(y)
    curve = d.curve or detect.Curve(steps=loss.index.to_numpy(), values=y)
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
        ax.plot(curve.steps[curve.bin_start].astype(float), curve.from_z(curve.trend),
                color=COLORS["trend"], lw=1.8, label="trend")
    val = d.history.val_loss
    if val is not None:
        ax.plot(val.index.to_numpy(float), val.to_numpy(float), "o-", ms=2.5, lw=1,
                color=COLORS["val"], label="validation loss")
    if logy:
        ax.set_yscale("log")
    lo, hi = float(np.min(healthy)), float(np.max(healthy))
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
    for f in d.findings:
        start = f.start if f.start is not None else steps[0]
        end = f.end if f.end is not None else steps[-1]
        color = COLORS["low"] if f.kind in ("plateau", "slow") else COLORS["high"]
        if f.kind == "nonfinite":
            ax.axvline(start, color=COLORS["high"], ls="--", lw=1.2)
            ax.plot([start], [top], "X", color=COLORS["high"], ms=8, clip_on=False)
            ax.annotate(f"non-finite from {start:g}", (start, top), xytext=(3, -12),
                        textcoords="offset points", fontsize=7, color=COLORS["high"])
        elif f.kind == "spike":
            sp = np.asarray(f.evidence.get("steps", []), dtype=float)
            at = np.searchsorted(steps, sp).clip(0, len(y) - 1)
            ax.plot(sp, np.minimum(y[at], top), "v", color=COLORS["spike"], ms=4,
                    label="spike")
        else:
            ax.axvspan(start, end, color=color, alpha=0.12, lw=0)
            ax.annotate(f.kind, (start, top), xytext=(3, -10), textcoords="offset points",
                        fontsize=7, color=color)
    if d.history.lr is not None:
        lr = d.history.lr
        ax2 = ax.twinx()
        ax2.plot(lr.index.to_numpy(float), lr.to_numpy(float), color=COLORS["lr"], lw=1,
                 ls=":", label="LR")
        ax2.set_yscale("log")
        ax2.set_ylabel("learning rate", color=COLORS["lr"], fontsize=8)
        ax2.tick_params(labelsize=7, colors=COLORS["lr"])
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel(d.metric, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper right", framealpha=0.8)
    ax.set_title(f"{d.run}: {HEADLINE[d.verdict]}", fontsize=9, loc="left")
    ax.figure.text(0.01, 0.01, advice_line(d), fontsize=7.5, ha="left", va="bottom")
    ax.figure.subplots_adjust(bottom=0.17)
    return ax


def save(d, path: str, **kwargs) -> None:
    """Write the figure; the format follows the extension (png, svg, pdf)."""
    ax = plot_diagnosis(d, **kwargs)
    ax.figure.savefig(path, dpi=150)
