"""The annotated diagnosis figure. Uses Figure objects only, never pyplot's global state.

Every string that comes from a log or a path (run names, column names) is drawn as literal
text: mathtext and TeX are off on each Text artist, so a ``$`` is a dollar sign.
"""
from __future__ import annotations

import contextlib
import re
import threading

import numpy as np

# Okabe-Ito: distinguishable in colour blindness and apart in grayscale by lightness.
COLORS = {"raw": "#999999", "trend": "#000000", "val": "#0072B2", "lr": "#009E73",
          "high": "#D55E00", "low": "#E69F00", "spike": "#CC79A7"}
#: A colour and a hatch per kind of span, so overlapping findings can be told apart (in
#: grayscale too, by the hatch's direction).
FINDING_STYLE = {"explosion": ("#D55E00", "///"), "divergence": ("#CC79A7", "\\\\\\"),
                 "oscillation": ("#E69F00", "xx"), "overfitting": ("#0072B2", "|||"),
                 "plateau": ("#56B4E9", "..."), "slow": ("#8A7A00", "--"),
                 "schedule_bound": ("#555555", "oo")}
NONFINITE_KINDS = ("nonfinite", "hidden_nonfinite")
MAX_DRAWN = 20_000
#: the longest run name drawn in a title (longer ones lose their middle)
MAX_NAME = 90
_LOCS = ("upper right", "upper left", "lower left", "lower right", "center right",
         "center left", "upper center", "lower center", "center")
#: a legend whose best place inside the axes still covers this much goes outside
OUTSIDE_COST = 1.0
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: the findings strip: inches per row, and between it and the axes
_ROW, _STRIP_GAP = 0.24, 0.05


def shown(text: str) -> str:
    """Text from a file name made drawable: bytes that were not UTF-8 (kept by Python as
    lone surrogates, which the font code refuses) are shown as \\xNN escapes."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def label_text(text: str, limit: int = MAX_NAME) -> str:
    """A name from a log or a path as one drawable line: undecodable bytes and control
    characters as escapes (a newline or a terminal escape is not drawn), the middle cut
    when it is longer than ``limit``."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", shown(str(text)))
    if len(text) > limit:
        half = (limit - 1) // 2
        text = text[:half] + "\u2026" + text[-half:]
    return text


def literal(*texts):
    """Draw these Text artists as written: no mathtext, no TeX (a ``$`` in a run name is a
    dollar sign, and ``$\\foo$`` is not parsed, so it cannot fail)."""
    for t in texts:
        if t is not None:
            t.set_parse_math(False)
            t.set_usetex(False)
    return texts[0] if len(texts) == 1 else texts


def _literal_axes(ax):
    """The axis labels, texts and legend of an Axes literal (tick labels keep their mathtext:
    they are numbers; titles are made literal where they are set)."""
    literal(ax.xaxis.label, ax.yaxis.label, *ax.texts)
    leg = ax.get_legend()
    if leg is not None:
        literal(leg.get_title(), *leg.get_texts())


def step_text(v) -> str:
    """A step as people read it: ``9,999,999``, not ``1e+07``."""
    v = float(v)
    return f"{int(v):,}" if v == int(v) and abs(v) < 2 ** 63 else f"{v:g}"


def _step_axis(ax) -> None:
    """Step ticks written out (``2,000,000``), never as an offset ``1e7``."""
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: step_text(v)))


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


def trend_line(curve) -> tuple[np.ndarray, np.ndarray]:
    """The trend to draw, from the first step to the last finite one.

    The running median is settled up to half a window before the end (``trend_settled``);
    past that its window is padded with the last bin, which drawn would hook toward one
    noisy bin. The tail is continued from the last settled point along the Theil-Sen slope
    (the median of pairwise slopes, robust to spikes) of the last window of bin medians, in
    trend space, and the line ends at the last finite step."""
    n, k = curve.n_bins, curve.trend_settled
    xs = curve.steps[curve.bin_start].astype(np.float64)
    level = np.asarray(curve.level, dtype=np.float64)
    last = float(curve.steps[curve.n_finite_prefix - 1]) if curve.n_finite_prefix else xs[-1]
    if k >= n:  # the whole trend is settled (a short curve); it still ends at the last step
        if last > xs[-1]:
            return np.append(xs, last), np.append(level, level[-1])
        return xs, level
    w = 2 * (n - k) + 1
    bx = xs[n - w:]
    bz = curve.to_z(curve.bin_median[n - w:])
    i, j = np.triu_indices(len(bx), 1)
    dx = bx[j] - bx[i]
    ok = (dx > 0) & np.isfinite(bz[i]) & np.isfinite(bz[j])
    slope = float(np.median((bz[j] - bz[i])[ok] / dx[ok])) if ok.any() else 0.0
    tail_x = np.append(xs[k:], last) if last > xs[-1] else xs[k:]
    z0 = curve.trend[k - 1]
    tail = curve.from_z(z0 + slope * (tail_x - xs[k - 1]))
    return np.concatenate((xs[:k], tail_x)), np.concatenate((level[:k], tail))


def _lr_axis(ax2, steps: np.ndarray, lr: np.ndarray) -> None:
    """Scale and limits of the LR axis: the range the LR held over most of the run (its
    10th percentile by steps up to its peak); a log axis only when that spans two decades
    or more, else linear from zero (a cosine tail to 1e-9 is then a curve near the floor,
    not a cliff across six decades)."""
    from matplotlib.ticker import FuncFormatter

    fin = np.isfinite(lr)
    s, v = steps[fin], lr[fin]
    pos = v > 0
    if not pos.any():
        return
    hi = float(v[pos].max())
    # step-weighted 10th percentile: each value holds until the next logged one
    w = np.diff(s, append=s[-1] + (np.median(np.diff(s)) if len(s) > 1 else 1.0))
    order = np.argsort(v)
    cum = np.cumsum(np.clip(w[order], 0, None))
    lo = float(v[order][min(int(np.searchsorted(cum, 0.1 * cum[-1])), len(v) - 1)])
    if lo > 0 and hi / lo >= 100:
        ax2.set_yscale("log")
        ax2.set_ylim(lo / 2, hi * 1.5)
        return
    vmin = float(v.min())
    if vmin < 0.5 * hi:
        ax2.set_ylim(min(0.0, vmin), hi * 1.08)
    else:  # a nearly constant LR: in the middle of the axis
        pad = max(hi - vmin, 0.5 * hi)
        ax2.set_ylim(vmin - pad, hi + pad)
    ax2.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:.3g}"))


def _layout(fig) -> None:
    """Run the figure's layout engine now (the legend and the row labels are placed on its
    result); without one, the positions are already final."""
    engine = fig.get_layout_engine()
    if engine is not None:
        engine.execute(fig)


def _fit_axes(ax, top: float, caption=None, legend=None, pad: float = 0.06) -> None:
    """Place ``ax`` (and its LR twin) so that all that is drawn around it fits in the
    figure, ``pad`` inches from its edges: the y tick labels and label on the left (the
    twin's and an outside ``legend`` on the right), the x axis and the ``caption`` below,
    ``top`` inches above (the title and the findings strip, whose heights are known).
    Only the axes' own extents are measured, once each: a layout engine measures
    everything twice, at several times the cost, and a report draws one figure per run."""
    fig = ax.figure
    p, w, h, px = ax.get_window_extent(), fig.bbox.width, fig.bbox.height, pad * fig.dpi
    twins = [a for a in fig.axes if a is not ax and a.bbox.bounds == ax.bbox.bounds]
    right_edges = [a.yaxis.get_tightbbox().x1 for a in twins]
    if legend is not None:
        right_edges.append(legend.get_window_extent().x1)
    xb = ax.xaxis.get_tightbbox()
    lows = [xb.y0] + ([caption.get_window_extent().y0] if caption is not None else [])
    left = p.x0 - ax.yaxis.get_tightbbox().x0 + px
    right = max([p.x1] + right_edges) - p.x1 + px
    bottom = p.y0 - min(lows) + px
    top = top * fig.dpi + px
    if w - left - right > 0.2 * w and h - bottom - top > 0.2 * h:
        ax.set_position([left / w, bottom / h, (w - left - right) / w, (h - bottom - top) / h])


_SHARED = threading.local()  # this thread's Agg renderers by size, while sharing is on


@contextlib.contextmanager
def shared_renderers(*, keep: bool = False):
    """Within it, this thread's new figures of one size and resolution share one Agg
    renderer: matplotlib caches the size of each text per renderer, so a tick label, the
    axis labels and the legend's entries are measured once for a report's hundreds of
    figures instead of once per figure. A figure drawn in it must be read (its pixels or
    its PNG) before the next one of its size is drawn: they share one pixel buffer.
    ``keep``: the renderers (and what they measured) stay for this thread's next
    ``shared_renderers(keep=True)`` (a pool worker's next task) instead of being dropped."""
    before = getattr(_SHARED, "renderers", None)
    if before is None:
        _SHARED.renderers = (getattr(_SHARED, "kept", None) if keep else None) or {}
    try:
        yield
    finally:
        if keep:
            _SHARED.kept = _SHARED.renderers
        _SHARED.renderers = before


def new_figure(**kwargs):
    """A Figure (``kwargs`` as ``matplotlib.figure.Figure``'s) on an Agg canvas of its own,
    so the text measured to lay it out is measured by the renderer it is drawn with (a
    Figure without one makes a throwaway renderer each time a size is asked); inside
    :func:`shared_renderers`, on one shared by the figures of its size."""
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    if getattr(_SHARED, "renderers", None) is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    else:
        _shared_canvas_class()(fig)
    return fig


def _shared_canvas_class():
    cls = globals().get("_SharedCanvas")
    if cls is not None:
        return cls
    from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg

    class _SharedCanvas(FigureCanvasAgg):
        def get_renderer(self):
            w, h = self.get_width_height(physical=True)
            key = w, h, self.figure.dpi
            pool = getattr(_SHARED, "renderers", None)
            if pool is None:  # drawn again after the sharing ended: a renderer of its own
                return super().get_renderer()
            if key not in pool:
                while len(pool) >= 4:  # a few sizes (run figures, thumbnails, the sweep)
                    pool.pop(next(iter(pool)))
                pool[key] = RendererAgg(w, h, self.figure.dpi)
            self.renderer, self._lastKey = pool[key], key
            return self.renderer

    globals()["_SharedCanvas"] = _SharedCanvas
    return _SharedCanvas


def _freeze(fig) -> None:
    """Keep the layout just computed: saving does not run the engine again (it would
    find the same positions, at the cost of a second pass)."""
    fig.set_layout_engine("none")


# ---------------------------------------------------------------------- legend placement
def _path_samples(pts: np.ndarray, spacing: float = 0.004, cap: int = 200_000,
                  view: tuple[float, float] = (-0.02, 1.02)):
    """Points along a polyline (axes fractions) every ``spacing``, its vertices included,
    of the part of it inside the square ``view`` (the axes, a little more): a line that
    leaves the axes (a loss that blew up to 1e30 on axes clipped at its start) counts by
    the length that is seen, and its length off the axes never overflows."""
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) < 2:
        return pts[((pts >= view[0]) & (pts <= view[1])).all(axis=1)]
    p0, seg = pts[:-1], np.diff(pts, axis=0)
    with np.errstate(all="ignore"):  # Liang-Barsky: each segment cut to the view
        ta, tb = (view[0] - p0) / seg, (view[1] - p0) / seg
        inside = (p0 >= view[0]) & (p0 <= view[1])  # for a segment along an axis
        t_in = np.where(seg == 0, np.where(inside, -np.inf, np.inf), np.minimum(ta, tb))
        t_out = np.where(seg == 0, np.where(inside, np.inf, -np.inf), np.maximum(ta, tb))
        t0 = np.maximum(0.0, t_in.max(axis=1))
        t1 = np.minimum(1.0, t_out.min(axis=1))
        # (clipped again: far outside, p0 + t * seg rounds off by more than the view)
        a = np.clip(p0 + t0[:, None] * seg, *view)
        b = np.clip(p0 + t1[:, None] * seg, *view)
        keep = (t0 <= t1) & np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
        length = np.hypot(*(b - a).T)
    if not keep.any():
        return pts[:0]
    a, b, t1, length = a[keep], b[keep], t1[keep], length[keep]
    k = np.ceil(length / spacing).astype(np.int64).clip(1, None)
    if k.sum() > cap:
        k = np.maximum(1, (k * cap // k.sum()))
    rep = np.repeat(np.arange(len(a)), k)
    t = (np.arange(len(rep)) - np.repeat(np.cumsum(k) - k, k)) / np.repeat(k, k)
    ends = t1 < 1  # a segment cut short ends there; a whole one where the next begins
    ends[-1] = True
    return np.vstack((a[rep] + (b - a)[rep] * t[:, None], b[ends]))


def _ink(host, axes) -> list[tuple[np.ndarray, float, bool]]:
    """What a legend on ``host`` must not hide, in host axes fractions: for every visible
    line of ``axes``, (points, weight, each_point_counts). A marker is counted one by one
    (one validation point or the peak before a NaN is one unit); a line by the share of its
    length covered, weighted by how heavy it is drawn."""
    inv = host.transAxes.inverted()
    out = []
    for a in axes:
        for ln in a.lines:
            if not ln.get_visible():
                continue
            xy = np.asarray(ln.get_xydata(), dtype=np.float64)
            if not len(xy):
                continue
            with np.errstate(all="ignore"):
                frac = inv.transform(ln.get_transform().transform(xy))
            keep = np.isfinite(frac).all(axis=1) & (np.abs(frac - 0.5) <= 0.52).all(axis=1)
            if str(ln.get_marker()) not in ("None", "", " ", "none"):
                out.append((frac[keep], 1.0, True))
            if str(ln.get_linestyle()) not in ("None", "", " ", "none") and \
                    ln.get_linewidth() > 0 and len(frac) > 1:
                alpha = ln.get_alpha() if ln.get_alpha() is not None else 1.0
                out.append((_path_samples(frac), 4.0 * ln.get_linewidth() * alpha, False))
    return out


def _boxes(w: float, h: float, px: float, py: float) -> dict:
    """The box (x0, y0, x1, y1) a legend of size w x h takes at each ``loc``, in axes
    fractions, ``px``/``py`` from the edges."""
    xs = {"left": px, "right": 1 - px - w, "center": 0.5 - w / 2}
    ys = {"upper": 1 - py - h, "lower": py, "center": 0.5 - h / 2}
    out = {}
    for loc in _LOCS:
        v, _, hz = loc.partition(" ")
        if not hz:  # "center right" is "center" vertically; "center" alone is both
            hz = v if v in ("left", "right") else "center"
            v = "center"
        elif v in ("left", "right"):
            v, hz = hz, v
        x0, y0 = xs[hz], ys[v]
        out[loc] = (x0, y0, x0 + w, y0 + h)
    return out


def legend_cost(box, ink, avoid=(), margin: float = 0.025) -> float:
    """How much a legend box hides: markers inside (one each), the weighted share of each
    line inside, and other boxes (texts, in axes fractions) it overlaps (two each); the box
    is taken ``margin`` larger on each side (a marker has a size, and touching is hiding)."""
    x0, y0, x1, y1 = box
    x0, y0, x1, y1 = x0 - margin, y0 - margin, x1 + margin, y1 + margin
    cost = 0.0
    for pts, weight, each in ink:
        if not len(pts):
            continue
        inside = ((pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0)
                  & (pts[:, 1] <= y1))
        cost += weight * (inside.sum() if each else inside.mean())
    for a0, b0, a1, b1 in avoid:
        if a0 < x1 and a1 > x0 and b0 < y1 and b1 > y0:
            cost += 2.0
    return float(cost)


def place_legend(host, handles, labels, axes=None, *, outside: bool = False, **kwargs):
    """A legend on ``host`` where it hides least of what ``axes`` (default: host) draw,
    among the nine standard places; when every place inside still hides a marker or much of
    a line (cost >= OUTSIDE_COST) and ``outside`` is allowed (the figure is laid out again
    afterwards), it goes outside the axes on the right, beyond the tick labels and the axis
    label there. The figure's layout must be done. Returns the Legend, its texts literal."""
    kwargs.setdefault("fontsize", 7)
    fig = host.figure
    leg = host.legend(handles, labels, loc="upper right", **kwargs)
    literal(leg.get_title(), *leg.get_texts())
    box = host.get_window_extent()
    ext = leg.get_window_extent()
    if box.width <= 0 or box.height <= 0:
        return leg
    pad = leg.borderaxespad * leg.prop.get_size_in_points() * fig.dpi / 72
    boxes = _boxes(ext.width / box.width, ext.height / box.height,
                   pad / box.width, pad / box.height)
    ink = _ink(host, axes or [host])
    avoid = []
    for a in axes or [host]:
        for t in a.texts:
            if t.get_visible() and t.get_text():
                e = t.get_window_extent()
                avoid.append(((e.x0 - box.x0) / box.width, (e.y0 - box.y0) / box.height,
                              (e.x1 - box.x0) / box.width, (e.y1 - box.y0) / box.height))
    costs = {loc: legend_cost(b, ink, avoid) for loc, b in boxes.items()}
    best = min(_LOCS, key=lambda loc: costs[loc])  # ties: the order of _LOCS
    if outside and costs[best] >= OUTSIDE_COST:
        from matplotlib.transforms import ScaledTranslation

        # anchored a fixed distance right of the axes: clear of what sticks out there
        # whatever width the axes get in the next layout
        beyond = max(a.get_tightbbox().x1 for a in axes or [host]) - box.x1
        shift = ScaledTranslation(beyond / fig.dpi + 0.05, 0, fig.dpi_scale_trans)
        leg.set_bbox_to_anchor((1, 1), transform=host.transAxes + shift)
        leg.set_loc("upper left")
        leg.borderaxespad = 0
        return leg
    leg.set_loc(best)
    return leg


# ---------------------------------------------------------------------- findings
def _finding_rows(ax, findings, steps: np.ndarray, top: float):
    """Spans shaded on ``ax`` (a colour and a hatch per kind) and, in a strip above the
    axes, one row per finding: its bar from start to end and its label. Returns the strip
    and the row labels with the step each wants to start at (placed inside the strip once
    the layout is known: ``_fit_rows``)."""
    from matplotlib.transforms import blended_transform_factory

    rows = [f for f in findings if f.kind in NONFINITE_KINDS or f.kind not in
            ("grad_nonfinite", "spike", "grad_spike")]
    if not rows:
        return None, []
    first, last = float(steps[0]), float(steps[-1])
    strip = ax.inset_axes([0, 1, 1, 0.1], sharex=ax)
    strip.set_axes_locator(_StripLocator(ax, _ROW * len(rows)))
    strip.set_axis_off()
    strip.set_ylim(len(rows) - 0.5, -0.55)
    trans = blended_transform_factory(strip.transAxes, strip.transData)
    labels = []
    for i, f in enumerate(rows):
        start = float(f.start) if f.start is not None else first
        end = float(f.end) if f.end is not None else last
        if f.kind in NONFINITE_KINDS:
            color, hatch = COLORS["high"], None
            ax.axvline(start, color=color, ls="--", lw=1.2)
            strip.plot([start], [i + 0.2], "X", color=color, ms=5)
            what = "non-finite loss" if f.kind == "nonfinite" else "hidden NaN (grad norm)"
            text = f"{what} from step {step_text(start)}"
        else:
            color, hatch = FINDING_STYLE.get(f.kind, (COLORS["raw"], "++"))
            ax.axvspan(start, end, facecolor=color, alpha=0.08, lw=0, label=f"_{f.kind}")
            shade = ax.axvspan(start, end, facecolor="none", edgecolor=color, hatch=hatch,
                               lw=0, alpha=0.22, label=f"_{f.kind} hatch")
            shade.set_hatch_linewidth(0.5)
            for p in (strip.barh(i + 0.2, max(end - start, 0.0), left=start, height=0.45,
                                 facecolor=color, alpha=0.35, lw=0)[0],
                      strip.barh(i + 0.2, max(end - start, 0.0), left=start, height=0.45,
                                 facecolor="none", edgecolor=color, hatch=hatch, lw=0.6)[0]):
                p.sticky_edges.x.clear()  # the loss axes keep their margins
            span = f"{step_text(start)}..{'end' if f.end is None else step_text(end)}"
            text = f"{f.kind} ({span})"
        t = strip.text(0, i - 0.22, label_text(text), transform=trans, fontsize=7,
                       va="center", ha="left", color="#222222")
        literal(t)
        labels.append((t, start))
    return strip, labels


class _StripLocator:
    """Where the findings strip goes: right above its axes, as wide, ``height`` inches tall
    whatever the axes' height (so the layout knows its height before it is drawn)."""

    def __init__(self, parent, height: float, gap: float = _STRIP_GAP):
        self.parent, self.height, self.gap = parent, height, gap

    def __call__(self, ax, renderer):
        from matplotlib.transforms import Bbox

        p = self.parent.get_position()
        fh = self.parent.figure.get_figheight()
        return Bbox.from_bounds(p.x0, p.y1 + self.gap / fh, p.width, self.height / fh)


def _fit_rows(strip, labels) -> None:
    """Each row's label starts at its finding's start, moved left as far as it must to end
    inside the strip (never off the figure's edge)."""
    if strip is None:
        return
    box = strip.get_window_extent()
    if box.width <= 0:
        return
    to_frac = strip.transAxes.inverted()
    for t, at in labels:
        x = float(to_frac.transform(strip.transData.transform((at, 0)))[0])
        w = t.get_window_extent().width / box.width
        t.set_x(float(np.clip(x, 0.0, max(0.0, 1.0 - w))))


# ---------------------------------------------------------------------- figures
def plot_diagnosis(d, ax=None, *, logy: bool | None = None, dpi: float = 150):
    """Draw the loss (raw faint, trend bold), validation loss, LR and every finding.

    The findings get one row each in a strip above the axes (label and span), the legend
    goes where it hides least (outside on the right when every place inside hides data),
    the caption (verdict, advice, rule) sits under the x axis.

    Parameters
    ----------
    d : Diagnosis
    ax : matplotlib Axes, optional
        Drawn on a new Figure (8 x 4.5 in, at ``dpi``) when None.
    logy : bool, optional
        Log-scale y; default: when the finite loss spans more than 1.5 decades.
    dpi : float
        The new Figure's resolution: lay it out at the one it will be saved at (a report
        saves at 110), so the text is measured once, not again when saved.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from matplotlib import rcParams

    from lrdoctor import detect
    from lrdoctor.render import HEADLINE, caption, short_advice

    title = f"{label_text(d.run)}: {HEADLINE[d.verdict]}"
    if getattr(d, "range_test", None) is not None:  # an LR range test: loss against LR
        return plot_range_test(d.range_test, ax=ax, title=title, dpi=dpi,
                               xlabel=f"LR (log)\n{HEADLINE[d.verdict]}: {short_advice(d)}")
    own = ax is None
    if own:
        ax = new_figure(figsize=(8, 4.5), dpi=dpi).add_subplot()
    fig = ax.figure
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
        ax.plot(*trend_line(curve), color=COLORS["trend"], lw=1.8, label="trend")
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
    for f in d.findings:
        if f.kind in ("spike", "grad_spike"):
            sp = np.asarray(f.evidence.get("steps", []), dtype=float)
            at = np.searchsorted(steps, sp).clip(0, len(y) - 1)
            ax.plot(sp, np.minimum(y[at], top), "v" if f.kind == "spike" else "^",
                    color=COLORS["spike"], ms=4,
                    label="spike" if f.kind == "spike" else "grad-norm spike")
    strip, row_labels = _finding_rows(ax, d.findings, steps if len(steps) else
                                      np.array([0.0, 1.0]), top)
    lr = h.present("lr")
    ax2 = None
    if lr is not None:
        ax2 = ax.twinx()
        ls, lv = lr[0].astype(float), lr[1].astype(float)
        ax2.plot(*_minmax_decimate(ls, lv), color=COLORS["lr"], lw=1, ls=":", label="LR")
        _lr_axis(ax2, ls, lv)
        literal(ax2.set_ylabel("learning rate", color=COLORS["lr"], fontsize=8))
        ax2.tick_params(which="both", labelsize=7, colors=COLORS["lr"])
    ax.set_xlabel("step", fontsize=8)
    _step_axis(ax)
    ax.set_ylabel(label_text(d.metric, 60), fontsize=8)
    ax.tick_params(which="both", labelsize=7)
    ax.set_title(title, fontsize=9, loc="left", parse_math=False, usetex=False)
    # the caption right under the x axis label, left-aligned with the axes
    cap_text = ax.annotate(label_text(caption(d), 200), xy=(0, 0),
                           xycoords=("axes fraction", ax.xaxis.label), xytext=(0, -2),
                           textcoords="offset points", ha="left", va="top", fontsize=7.5,
                           annotation_clip=False)
    _literal_axes(ax)
    literal(cap_text)
    handles, labels = ax.get_legend_handles_labels()
    if ax2 is not None:  # the LR lives on the twin axis: one legend for both
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    seen = dict(zip(labels, handles))  # one entry per label (spikes are drawn once anyway)
    # above the axes: the strip (one row per finding) and the title line
    above = (_STRIP_GAP + _ROW * len(row_labels) if strip is not None else 0) + \
        (9 * 1.25 + rcParams["axes.titlepad"]) / 72
    if own:  # the legend and the row labels are placed on the layout
        _fit_axes(ax, above, cap_text)
    host = ax2 if ax2 is not None else ax  # drawn above the LR line
    leg = place_legend(host, list(seen.values()), list(seen.keys()),
                       [ax] + ([ax2] if ax2 is not None else []), outside=own,
                       framealpha=0.85)
    if own and leg.get_bbox_to_anchor() is not host.bbox:  # outside: the axes get narrower
        _fit_axes(ax, above, cap_text, leg)
    _fit_rows(strip, row_labels)
    return ax


VERDICT_MARKERS = {"too_high": ("v", COLORS["high"]), "too_low": ("^", COLORS["low"]),
                   "ok": ("o", COLORS["trend"]), "unknown": ("x", COLORS["raw"]),
                   "range_test": ("D", COLORS["lr"])}


def plot_range_test(rt, ax=None, *, title: str | None = None, xlabel: str = "LR (log)",
                    dpi: float = 150):
    """An LR range test: the loss (faint) and the curve read (bold) against the LR on a log
    x axis, the suggestion (solid line), the range (shaded), the minimum and the blow-up
    (dotted). Returns the Axes (a new 8 x 4.5 in Figure when ``ax`` is None)."""

    own = ax is None
    if own:
        ax = new_figure(figsize=(8, 4.5), dpi=dpi, layout="constrained").add_subplot()
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
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("loss", fontsize=8)
    ax.tick_params(which="both", labelsize=7)
    ax.set_title(title or f"LR range test (confidence {rt.confidence})", fontsize=9,
                 loc="left", parse_math=False, usetex=False)
    _literal_axes(ax)
    _layout(ax.figure)
    place_legend(ax, *ax.get_legend_handles_labels(), frameon=False)
    if own:
        _freeze(ax.figure)
    return ax


def _sweep_name(runs: list, i: int) -> str:
    """A sweep's runs' common name (LR and seed tokens are where they differ), else
    ``sweep i``."""
    import os

    common = os.path.commonprefix([str(d.run) for d in runs]).rstrip("_-=. /")
    common = re.sub(r"(?i)[_\-.]*(lr|learning[_-]?rate)[_=\-]?$", "", common)
    return label_text(common, 40) if len(common) >= 3 else f"sweep {i + 1}"


def plot_sweep(diagnoses: list, fig=None, *, logy: bool | None = None):
    """All runs on one figure, coloured by LR (log colour bar), each run's verdict marked at
    its last point; when the runs differ in LR, a panel of the final loss per LR: every run
    (seed) a point marked by its verdict, and for each sweep the median over its seeds
    joined across LRs (runs of no sweep are points only: nothing joins unrelated runs).

    Returns the Figure.
    """
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D

    lrs = np.array([np.nan if d.current_lr is None else d.current_lr for d in diagnoses])
    known = lrs[np.isfinite(lrs) & (lrs > 0)]
    by_lr = len(np.unique(known)) > 1
    own = fig is None
    if own:
        fig = new_figure(figsize=(11, 4.5) if by_lr else (8, 4.5), dpi=150,
                         layout="constrained")
    if by_lr:
        ax, ax_lr = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    else:
        ax, ax_lr = fig.add_subplot(), None
    cmap = colormaps["viridis"]
    norm = LogNorm(known.min(), known.max()) if by_lr else None
    n = len(diagnoses)
    alpha = 0.9 if n <= 20 else max(0.35, 0.9 - 0.1 * np.log2(n / 20))
    finals, drawn = [], []
    for d, lr in zip(diagnoses, lrs):
        curve = d.curve
        if curve is None or curve.n_bins < 1:
            finals.append(np.nan)
            continue
        color = cmap(norm(lr)) if by_lr and np.isfinite(lr) and lr > 0 else COLORS["raw"]
        xs, ys = trend_line(curve) if curve.n_bins >= 3 else \
            (curve.steps[curve.bin_start].astype(float), curve.level)
        ax.plot(xs, ys, color=color, lw=1.0 if n > 20 else 1.2, alpha=alpha)
        drawn.append((d.verdict, xs[-1], ys[-1], curve))
        if d.sweep is not None:  # the sweep's own result, so the panel shows its basis
            from lrdoctor.sweep import result

            finals.append(result(d))
        else:
            finals.append(curve.final_level if curve.n_finite_prefix == curve.n else np.inf)
    # the axes: from the lowest trend to a generous multiple of where the runs started
    # (the median run's early level: a run that blew up to 1e30 does not decide the axes)
    fins = [c.level[np.isfinite(c.level)] for _, _, _, c in drawn]
    ys_all = np.concatenate(fins) if fins else np.array([1.0])
    early = np.array([np.max(v[: max(1, len(v) // 10)]) for v in fins if len(v)])
    if logy is None:
        pos = ys_all[ys_all > 0]
        logy = bool(len(pos) == len(ys_all) and len(pos)
                    and np.log10(pos.max() / pos.min()) > 1.5)
    if logy:
        ax.set_yscale("log")
    if len(ys_all):
        top = float(np.max(ys_all))
        if len(early):
            top = min(top, 30 * float(np.median(early)))
        low = float(np.min(ys_all[ys_all > 0])) if logy and (ys_all > 0).any() else \
            float(np.min(ys_all))
        if logy and low > 0 and top > low:
            ax.set_ylim(low / 1.3, top * 1.3)
        elif top > low:
            ax.set_ylim(low - 0.05 * (top - low), top + 0.05 * (top - low))
    ytop = ax.get_ylim()[1]
    for verdict, x, yv, _ in drawn:  # each run's verdict at its last point (on the edge
        marker, mcolor = VERDICT_MARKERS[verdict]  # when it ended above the axes)
        ax.plot([x], [min(yv, ytop) if np.isfinite(yv) else ytop], marker, color=mcolor,
                ms=5 if n > 20 else 6, mec="white", mew=0.5, clip_on=False)
    ax.set_xlabel("step", fontsize=8)
    _step_axis(ax)
    metrics = {d.metric for d in diagnoses}
    ax.set_ylabel(label_text(f"{metrics.pop() if len(metrics) == 1 else 'loss'} (trend)", 60),
                  fontsize=8)
    ax.tick_params(which="both", labelsize=7)
    counts = {v: sum(d.verdict == v for d in diagnoses) for v in VERDICT_MARKERS}
    handles = [Line2D([], [], ls="", marker=m, color=c, label=f"{v} ({counts[v]})")
               for v, (m, c) in VERDICT_MARKERS.items() if counts[v]]
    ax.set_title(f"{n} runs", fontsize=9, loc="left", parse_math=False, usetex=False)
    _literal_axes(ax)
    if by_lr:
        from matplotlib.cm import ScalarMappable

        cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.01)
        literal(cb.set_label("learning rate", fontsize=8), cb.ax.yaxis.label)
        cb.ax.tick_params(which="both", labelsize=7)
        _final_loss_panel(ax_lr, diagnoses, lrs, np.array(finals, dtype=float), logy)
    _layout(fig)
    place_legend(ax, handles, [h.get_label() for h in handles], framealpha=0.85,
                 title="verdict", title_fontsize=7)
    if ax_lr is not None and ax_lr.get_legend_handles_labels()[0]:
        place_legend(ax_lr, *ax_lr.get_legend_handles_labels(), framealpha=0.85)
    if own:
        _freeze(fig)
    elif fig.get_layout_engine() is None:
        fig.tight_layout()
    return fig


def _final_loss_panel(ax_lr, diagnoses, lrs, f, logy) -> None:
    """Final loss against LR: each run a point (its verdict's marker), each sweep's median
    over seeds per LR joined by a line, the sweep's best LR and good range marked; runs that
    diverged as crosses on the top edge."""
    ok = np.isfinite(lrs) & (lrs > 0) & np.isfinite(f)
    diverged = np.isfinite(lrs) & (lrs > 0) & np.isinf(f)
    for v, (m, c) in VERDICT_MARKERS.items():  # one artist per verdict, seeds as points
        sel = ok & np.array([d.verdict == v for d in diagnoses])
        if sel.any():
            ax_lr.plot(lrs[sel], f[sel], m, color=c, ms=5, alpha=0.75 if len(f) > 20 else 1,
                       mec="white", mew=0.4, ls="", label="_runs")
    top = np.nanmax(f[ok]) * (3 if logy else 1.2) if ok.any() else 1.0
    sweeps = []
    for d in diagnoses:
        if d.sweep is not None and all(s is not d.sweep for s in sweeps):
            sweeps.append(d.sweep)
    line_colors = ("#000000", "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00")
    if len(sweeps) > len(line_colors):  # one colour and one legend entry for them all
        _many_sweeps(ax_lr, sweeps)
    for i, sw in enumerate(sweeps if len(sweeps) <= len(line_colors) else ()):
        grid = sw.grid
        g_lr = np.asarray(grid.get("lrs", []), dtype=float)
        g_res = np.asarray(grid.get("result", []), dtype=float)
        if len(g_lr) < 2:
            continue
        color = line_colors[i % len(line_colors)]
        name = "median over seeds" if len(sweeps) == 1 else \
            f"median: {_sweep_name(sw.runs, i)}"
        y_line = np.where(np.isfinite(g_res), g_res, np.nan)  # a diverged LR breaks the line
        ax_lr.plot(g_lr, y_line, "-", color=color, lw=1.3, zorder=3, label=label_text(name, 60))
        ax_lr.plot(g_lr, y_line, "_", color=color, ms=9, mew=1.6, zorder=3, label="_median")
        if sw.best_lr is not None:
            ax_lr.axvspan(*sw.best_lr_range, color=COLORS["lr"], alpha=0.12, lw=0)
            ax_lr.axvline(sw.best_lr, color=COLORS["lr"], lw=1, ls="--")
            ax_lr.annotate(f"best LR ~ {sw.best_lr:.2g}", (sw.best_lr, 1),
                           xycoords=("data", "axes fraction"), xytext=(0, -10 - 9 * i),
                           textcoords="offset points", fontsize=7, ha="center",
                           bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none",
                                 "alpha": 0.8})
    if not sweeps and ok.sum() > 1:
        best = np.flatnonzero(ok)[np.argmin(f[ok])]
        ax_lr.annotate(f"lowest: LR {lrs[best]:.2g}", (lrs[best], f[best]), xytext=(0, 8),
                       textcoords="offset points", fontsize=7, ha="center")
    if diverged.any():  # runs that went non-finite: marked at the top edge
        ax_lr.plot(lrs[diverged], np.full(diverged.sum(), top), "X",
                   color=COLORS["high"], ms=7, clip_on=False, ls="", label="diverged")
    ax_lr.set_xscale("log")
    if logy:
        ax_lr.set_yscale("log")
    ax_lr.set_xlabel("learning rate", fontsize=8)
    swept = bool(sweeps)
    ax_lr.set_ylabel("final loss (mean of last 10%)" if swept
                     else "final loss (median of last 5%)", fontsize=8)
    ax_lr.tick_params(which="both", labelsize=7)
    ax_lr.set_title("final loss vs LR", fontsize=9, loc="left", parse_math=False,
                    usetex=False)
    _literal_axes(ax_lr)
    # labels near the panel's sides are turned inward (they would run off the figure)
    lo, hi = np.log10(np.nanmin(lrs[np.isfinite(lrs) & (lrs > 0)])), \
        np.log10(np.nanmax(lrs[np.isfinite(lrs) & (lrs > 0)]))
    for t in ax_lr.texts if hi > lo else ():
        x = (np.log10(t.xy[0]) - lo) / (hi - lo)
        t.set_ha("left" if x < 0.2 else "right" if x > 0.8 else "center")


def _many_sweeps(ax_lr, sweeps) -> None:
    """More sweeps than there are line colours (a folder of 60 experiments): each sweep's
    median over seeds a thin line, its best LR a dashed tick at the top, in one colour and
    under one legend entry each (a legend or a label per sweep would not fit the panel)."""
    first_line = first_best = True
    for sw in sweeps:
        g_lr = np.asarray(sw.grid.get("lrs", []), dtype=float)
        g_res = np.asarray(sw.grid.get("result", []), dtype=float)
        if len(g_lr) < 2:
            continue
        y_line = np.where(np.isfinite(g_res), g_res, np.nan)  # a diverged LR breaks the line
        ax_lr.plot(g_lr, y_line, "-", color=COLORS["trend"], lw=0.8, alpha=0.45, zorder=3,
                   label=f"median over seeds ({len(sweeps)} sweeps)" if first_line else
                   "_median")
        first_line = False
        if sw.best_lr is not None:
            ax_lr.axvline(sw.best_lr, ymin=0.92, color=COLORS["lr"], lw=1, ls="--",
                          alpha=0.6, label="best LR of a sweep" if first_best else "_best")
            first_best = False


def save(d, path: str, **kwargs) -> None:
    """Write the figure of one Diagnosis, or the sweep figure of a list of them; the format
    follows the extension (png, svg, pdf)."""
    if isinstance(d, (list, tuple)):
        fig = d[0].plot(**kwargs).figure if len(d) == 1 else plot_sweep(list(d), **kwargs)
    else:
        fig = plot_diagnosis(d, **kwargs).figure
    fig.savefig(path, dpi=150)
