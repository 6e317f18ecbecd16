"""lrdoctor/plot.py: the figures, tested through their artists (spans, markers, caption
text, axis scales, where the legend and the labels landed), not pixels."""
import html
import io
import shutil

import numpy as np
import pandas as pd
import pytest

import lrdoctor
from lrdoctor.cli import main
from lrdoctor.plot import (FINDING_STYLE, label_text, legend_cost, plot_sweep, step_text,
                           trend_line)
from lrdoctor.sweep import find_sweeps

import curves
from conftest import SAMPLES


def markers(ax, m):
    return [ln for ln in ax.lines if ln.get_marker() == m]


def drawn(ax):
    """Draw the figure (text extents are final only then), at its own dpi so that the
    extents read afterwards are in the same pixels."""
    ax.figure.draw_without_rendering()
    return ax


def strip_of(ax):
    [strip] = ax.child_axes
    return strip


def caption_of(ax):
    return [t for t in ax.texts if t.get_text().startswith("LR ")][0]


def texts_of(fig):
    """Every Text a name from a log can reach: titles, axis labels, texts, legends (not the
    tick labels, which are numbers)."""
    out = list(fig.texts)
    for a in fig.axes + [c for a in fig.axes for c in a.child_axes]:
        out += [a.title, a._left_title, a.xaxis.label, a.yaxis.label, *a.texts]
        if a.get_legend() is not None:
            out += [a.get_legend().get_title(), *a.get_legend().get_texts()]
    for leg in fig.legends:
        out += [leg.get_title(), *leg.get_texts()]
    return [t for t in out if t.get_text()]


def test_diagnosis_figure_shows_findings_caption_and_scales():
    [d] = lrdoctor.analyze(SAMPLES / "nan_lr5.csv")
    ax = d.plot()
    fig = ax.figure
    assert ax.get_yscale() == "log"  # the loss spans more than 1.5 decades
    assert caption_of(ax).get_text().startswith(
        "LR too high: lower 5-10x -> 0.5 (rule: non-finite loss")
    spans = [p for p in ax.patches if p.get_label() in ("_explosion", "_divergence")]
    assert len(spans) == 2
    rows = [t.get_text() for t in strip_of(ax).texts]
    assert "non-finite loss from step 215" in rows
    assert any(r.startswith("explosion (") for r in rows)
    assert any(abs(ln.get_xdata()[0] - 215) < 1e-9 for ln in ax.lines
               if ln.get_linestyle() == "--")  # the vertical line at the first NaN
    twin = [a for a in fig.axes if a is not ax][0]
    # a constant LR spans no decade: a linear axis with the LR in its middle
    assert twin.get_yscale() == "linear" and twin.get_ylabel() == "learning rate"
    lo, hi = twin.get_ylim()
    assert lo < 5 < hi and abs((5 - lo) - (hi - 5)) < 1e-9
    assert lrdoctor.analyze(SAMPLES / "nan_lr5.csv")[0].plot(logy=False).get_yscale() == \
        "linear"


def test_figure_keeps_spikes_and_marks_off_scale_points():
    x = curves.healthy(n=1_000_000, noise=0.05)
    x[[1000, 500_000]] *= 40  # two spikes the decimated drawing must keep
    x[900_000] = 1e30  # off the scale
    ax = lrdoctor.diagnose(x, lr=1e-3).plot()
    raw = [ln for ln in ax.lines if ln.get_label() == "loss (raw)"][0]
    drawn_y = raw.get_ydata()
    assert len(drawn_y) <= 25_000
    assert np.isclose(drawn_y, x[1000]).any() and np.isclose(drawn_y, x[500_000]).any()
    top = ax.get_ylim()[1]
    assert top < 1e3  # the healthy part decides the axes
    off = markers(ax, "^")
    assert off and 900_000 in off[0].get_xdata() and off[0].get_ydata()[0] == top


def test_spike_markers_and_healthy_caption():
    d = lrdoctor.diagnose(curves.spiky(), lr=1e-3)
    ax = d.plot()
    assert sum(len(ln.get_xdata()) for ln in markers(ax, "v")) >= 30
    ok = lrdoctor.diagnose(curves.healthy(), lr=1e-3).plot()
    assert caption_of(ok).get_text().startswith("LR looks fine: keep")


# ---------------------------------------------------------------------- names are data
@pytest.mark.parametrize("name", ["lr$\\nosuchcmd$x", "price $5 and $6", "a_b^c {x}"])
def test_names_from_paths_are_drawn_as_written(tmp_path, name):
    """A $ in a run name was mathtext: '$\\nosuchcmd$' killed the figure (and `lrdoctor
    report`) with a ParseFatalException, 'price $5 and $6' was drawn in italics."""
    src = tmp_path / f"{name}.csv"
    shutil.copy(SAMPLES / "nan_lr5.csv", src)
    [d] = lrdoctor.analyze(src)
    ax = drawn(d.plot())
    texts = texts_of(ax.figure)
    assert any(t.get_text() == f"{name}: LR too high" for t in texts)
    assert all(not t.get_parse_math() and not t.get_usetex() for t in texts)
    out = tmp_path / "report.html"
    assert main(["report", str(src), "-o", str(out)]) == 0
    assert html.escape(name) in out.read_text(encoding="utf-8")


def test_sweep_and_range_figures_are_literal_too(tmp_path):
    ds = [lrdoctor.diagnose(curves.healthy(seed=s), lr=lr, run=f"m$x$__lr{lr:g}")
          for s, lr in enumerate([1e-3, 1e-2])]
    fig = plot_sweep(ds)
    fig.savefig(io.BytesIO(), format="png")
    texts = texts_of(fig)
    assert texts and all(not t.get_parse_math() for t in texts)
    cbar = fig.axes[-1]
    assert cbar.get_ylabel() == "learning rate" and not cbar.yaxis.label.get_parse_math()


def test_label_text_escapes_control_characters_and_cuts_long_names():
    assert label_text("run\n\x1b[31mred\x07") == "run\\x0a\\x1b[31mred\\x07"
    long = "a" * 50 + "MIDDLE" + "z" * 50
    cut = label_text(long)
    assert len(cut) == 89 and cut.startswith("a" * 44) and cut.endswith("z" * 44)
    assert label_text("caf\udce9") == "caf\\xe9"  # a byte that was not UTF-8


def test_steps_are_written_out():
    assert step_text(9_999_999) == "9,999,999" and step_text(0) == "0"
    assert step_text(2.5) == "2.5"
    steps = np.append(np.arange(0, 10_000_000, 5000), 9_999_999)
    d = lrdoctor.diagnose(pd.DataFrame({"step": steps, "loss": curves.healthy(len(steps))}),
                          lr=1e-3)
    ax = drawn(d.plot())
    ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert "2,000,000" in ticks and not ax.xaxis.get_offset_text().get_text()


# ---------------------------------------------------------------------- layout
def peak_before_nan():
    """A run that climbs to its peak in the upper right corner and goes NaN there, with
    validation points all the way: exactly where a legend at 'upper right' used to sit."""
    rng = np.random.default_rng(1)
    s = np.arange(800)
    loss = 3 * np.exp(-s / 100) + 0.5 + rng.normal(0, 0.03, 800)
    loss[600:] += np.linspace(0, 4, 200) ** 2
    loss[760:] = np.nan
    val = np.full(800, np.nan)
    val[::50] = loss[::50] + 0.2
    val[750] = loss[750] + 0.2
    return pd.DataFrame({"step": s, "loss": loss, "val_loss": val})


def test_legend_hides_no_validation_point_nor_the_peak_before_the_nan():
    d = lrdoctor.diagnose(peak_before_nan(), lr=0.3)
    ax = drawn(d.plot())
    leg = ax.get_legend()
    box = leg.get_window_extent()
    val = [ln for ln in ax.lines if ln.get_label() == "validation loss"][0]
    trend = [ln for ln in ax.lines if ln.get_label() == "trend"][0]
    pts = np.vstack([val.get_xydata(), trend.get_xydata()[-20:]])
    pts = ax.transData.transform(pts[np.isfinite(pts).all(axis=1)])
    inside = ((pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0)
              & (pts[:, 1] <= box.y1))
    assert not inside.any()
    assert leg._loc != 1  # not upper right, where the peak is


def test_legend_cost_counts_markers_and_lines():
    ink = [(np.array([[0.9, 0.9], [0.1, 0.1]]), 1.0, True),
           (np.column_stack([np.linspace(0, 1, 101), np.full(101, 0.95)]), 4.0, False)]
    assert legend_cost((0.8, 0.8, 1.0, 1.0), ink, margin=0) == pytest.approx(1 + 4 * 21 / 101)
    assert legend_cost((0.3, 0.3, 0.5, 0.5), ink) == 0
    assert legend_cost((0.3, 0.3, 0.5, 0.5), ink, avoid=[(0.4, 0.4, 0.6, 0.6)]) == 2
    assert legend_cost((0.3, 0.3, 0.5, 0.5), ink, avoid=[(0.51, 0.51, 0.6, 0.6)]) == 2
    assert legend_cost((0.3, 0.3, 0.5, 0.5), ink, avoid=[(0.51, 0.51, 0.6, 0.6)],
                       margin=0) == 0  # touching is hiding; a gap is not


def test_legend_ink_of_a_line_far_off_the_axes_is_what_is_seen():
    """A loss that blew up to 1e16 axes heights (a linear axes clipped at its start) once
    overflowed the count of samples along the line ('negative dimensions', no figure);
    its samples are now those of the part inside the axes, the vertices in view kept."""
    from lrdoctor.plot import _path_samples

    far = np.array([[0, 0.5], [0.1, 1e16], [0.2, 0.5], [0.3, 1e16], [0.4, 0.5],
                    [0.5, 0.4], [0.6, 1.8e308], [0.7, 0.3]])
    got = _path_samples(far)
    assert len(got) and (got >= -0.02).all() and (got <= 1.02).all()
    for vertex in far[[0, 2, 4, 5, 7]]:
        assert np.isclose(got, vertex).all(axis=1).any()
    # the climb out of the axes at x 0..0.1 is seen as a vertical-ish line up to the edge
    rising = got[(got[:, 0] <= 0.1)]
    assert rising[:, 1].max() == pytest.approx(1.02) and len(rising) >= 0.5 / 0.004
    inside = np.column_stack([np.linspace(0, 1, 50), np.linspace(0.2, 0.6, 50) ** 2])
    assert len(_path_samples(inside)) > 50 and (_path_samples(inside)[-1] == inside[-1]).all()
    assert len(_path_samples(np.array([[2.0, 2.0], [3.0, 3.0]]))) == 0


def test_legend_goes_outside_when_every_place_inside_hides_data():
    n = 400
    s = np.arange(n)
    val = np.full(n, np.nan)
    val[::2] = np.tile(np.linspace(0.1, 2.3, 10), 20)  # validation points all over the axes
    d = lrdoctor.diagnose(pd.DataFrame({"step": s, "loss": curves.healthy(n),
                                        "val_loss": val}), lr=1e-3)
    ax = drawn(d.plot())
    fig = ax.figure
    box, axbox = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert box.x0 >= axbox.x1 and box.x1 <= fig.bbox.x1 + 1
    assert box.x0 >= ax.yaxis.label.get_window_extent().x1  # clear of what sticks out


def test_finding_labels_stay_inside_one_row_each_and_spans_differ():
    """Findings that start late (labels ran off the right edge) and together (labels
    stacked in a corner), overlapping spans in one beige."""
    [d] = lrdoctor.analyze(SAMPLES / "oscillation_lr1e-1.csv")
    ax = drawn(d.plot())
    fig, strip = ax.figure, strip_of(ax)
    rows = strip.texts
    assert len(rows) == sum(f.kind not in ("spike", "grad_spike", "grad_nonfinite")
                            for f in d.findings) >= 3
    assert len({round(t.get_position()[1], 6) for t in rows}) == len(rows)  # one row each
    sbox = strip.get_window_extent()
    for t in rows:
        e = t.get_window_extent()
        assert fig.bbox.x0 <= e.x0 and e.x1 <= fig.bbox.x1 and e.y1 <= fig.bbox.y1
        assert sbox.x0 - 1 <= e.x0 and e.x1 <= sbox.x1 + 1
    kinds = {p.get_label().lstrip("_").split()[0] for p in ax.patches}
    styles = {FINDING_STYLE[k] for k in kinds}
    assert len(styles) == len(kinds) and len({c for c, _ in styles}) == len(kinds)
    hatched = {p.get_hatch() for p in ax.patches if p.get_hatch()}
    assert len(hatched) == len(kinds)


def test_label_of_a_finding_at_the_last_step_ends_inside_the_figure():
    x = curves.healthy(2000)
    x[-1] = np.nan  # non-finite at the very last step: the label cannot start there
    ax = drawn(lrdoctor.diagnose(x, lr=1e-3).plot())
    [t] = [t for t in strip_of(ax).texts if t.get_text().startswith("non-finite")]
    e, sbox = t.get_window_extent(), strip_of(ax).get_window_extent()
    assert e.x1 <= sbox.x1 + 1 and e.x0 >= sbox.x0 - 1


def range_test_run():
    n = 300
    lr = np.geomspace(1e-7, 10, n)
    loss = 2.3 - 1.5 / (1 + np.exp(-(np.log10(lr) + 3) * 2)) + 50 * (lr > 1) * lr
    return lrdoctor.diagnose(pd.DataFrame({"step": np.arange(n), "loss": loss, "lr": lr}),
                             lr="lr")


@pytest.mark.parametrize("name", [p.name for p in sorted(SAMPLES.glob("*.csv"))] +
                         ["range test"])
def test_every_text_is_inside_the_figure(name):
    d = range_test_run() if name == "range test" else lrdoctor.analyze(SAMPLES / name)[0]
    if name == "range test":
        assert d.verdict == "range_test"
    ax = drawn(d.plot())
    fig = ax.figure
    for t in texts_of(fig):
        e = t.get_window_extent()
        assert fig.bbox.x0 - 1 <= e.x0 and e.x1 <= fig.bbox.x1 + 1, t.get_text()
        assert fig.bbox.y0 - 1 <= e.y0 and e.y1 <= fig.bbox.y1 + 1, t.get_text()


def test_caption_sits_right_under_the_axis_label():
    ax = drawn(lrdoctor.analyze(SAMPLES / "nan_lr5.csv")[0].plot())
    cap = caption_of(ax).get_window_extent()
    xlabel = ax.xaxis.label.get_window_extent()
    assert 0 <= xlabel.y0 - cap.y1 <= 10  # pixels at 150 dpi
    assert abs(cap.x0 - ax.get_window_extent().x0) <= 1  # aligned with the axes


# ---------------------------------------------------------------------- lines and axes
def test_trend_is_drawn_to_the_last_step():
    for x in (curves.healthy(1500), curves.healthy(100_000), curves.with_nan(1000, at=600)):
        d = lrdoctor.diagnose(x, lr=1e-3)
        finite = x[: np.argmax(~np.isfinite(x))] if not np.isfinite(x).all() else x
        c = d.curve
        assert c.trend_settled < c.n_bins  # the settled trend alone stops short
        ax = d.plot()
        trend = [ln for ln in ax.lines if ln.get_label() == "trend"][0]
        xs, ys = trend.get_xdata(), trend.get_ydata()
        assert xs[-1] == c.steps[c.n_finite_prefix - 1]
        assert np.all(np.diff(xs) > 0) and np.isfinite(ys).all()
        # the continued tail stays with the data: within the last 5% of points' range
        tail = finite[-max(5, len(finite) // 20):]
        assert tail.min() <= ys[-1] <= tail.max()
    xs, ys = trend_line(lrdoctor.diagnose(curves.healthy(30), lr=1e-3).curve)
    assert xs[-1] == 29  # a short curve: its whole trend, to the end


def lr_of(schedule, n=2000):
    d = lrdoctor.diagnose(pd.DataFrame({"step": np.arange(n), "loss": curves.healthy(n),
                                        "lr": schedule}), lr="lr")
    ax = d.plot()
    return [a for a in ax.figure.axes if a is not ax][0]


def test_lr_axis_keeps_to_the_range_that_matters():
    t = np.arange(2000) / 1999
    cosine = 1e-10 + (3e-4 - 1e-10) * 0.5 * (1 + np.cos(np.pi * t))  # 6+ decades of tail
    ax2 = lr_of(cosine)
    assert ax2.get_yscale() == "linear" and ax2.get_ylim()[0] == 0
    assert 3e-4 < ax2.get_ylim()[1] < 3.5e-4
    decay = np.geomspace(1.0, 1e-7, 2000)  # an LR decayed over 7 decades: log
    ax2 = lr_of(decay)
    lo, hi = ax2.get_ylim()
    assert ax2.get_yscale() == "log" and 1e-7 < lo < 1e-5 and hi >= 1.0
    steps = np.repeat([1e-1, 1e-2, 1e-3, 1e-4], 500)  # step decay, 3 decades held long
    assert lr_of(steps).get_yscale() == "log"
    assert lr_of(np.repeat([5e-3, 1e-3, 2e-4], [700, 700, 600])).get_yscale() == "linear"


def sweep_runs():
    """3 seeds at each of 5 LRs: final loss lowest at 1e-3."""
    out = []
    for lr, floor in zip([1e-5, 1e-4, 1e-3, 1e-2, 1e-1], [1.5, 0.8, 0.2, 0.5, 1.8]):
        for seed in range(3):
            out.append(lrdoctor.diagnose(curves.healthy(floor=floor, seed=seed), lr=lr,
                                         run=f"m__lr{lr:g}__s{seed}"))
    return out


def test_sweep_panel_joins_the_median_over_seeds_not_the_seeds():
    ds = sweep_runs()
    [sw] = find_sweeps(ds)
    fig = plot_sweep(ds)
    main_ax, lr_ax, cbar = fig.axes
    assert cbar.get_ylabel() == "learning rate" and cbar.get_yscale() == "log"
    assert lr_ax.get_xscale() == "log" and "final loss" in lr_ax.get_ylabel()
    joined = [ln for ln in lr_ax.lines if ln.get_linestyle() not in ("None", "")
              and len(ln.get_xdata()) > 2]
    [median] = joined
    xs = np.asarray(median.get_xdata())
    assert np.all(np.diff(xs) > 0)  # one point per LR: no vertical zig-zag
    assert np.allclose(xs, sw.grid["lrs"]) and np.allclose(median.get_ydata(),
                                                           sw.grid["result"])
    seeds = sum(len(ln.get_xdata()) for ln in lr_ax.lines if ln.get_linestyle() == "None"
                and ln.get_marker() in ("v", "^", "o", "x"))
    assert seeds == 15  # every run a point
    legend = [t.get_text() for t in main_ax.get_legend().get_texts()]
    assert any(t.startswith("too_high (") for t in legend)


def test_a_sweep_figure_of_many_sweeps_keeps_its_layout_and_a_short_legend():
    """Eight sweeps (more than the panel's line colours): a line per sweep, one legend
    entry for them all and one for their best LRs, no label per sweep; the layout is
    applied (a legend of one entry per sweep once collapsed the axes: matplotlib warned
    and drew the legend over the figure)."""
    import warnings

    ds = []
    for exp in range(8):
        for lr, floor in zip([1e-4, 1e-3, 1e-2], [0.8, 0.2, 0.5]):
            for seed in range(2):
                ds.append(lrdoctor.diagnose(curves.healthy(floor=floor, seed=seed), lr=lr,
                                            run=f"exp{exp}__lr{lr:g}__s{seed}"))
    sweeps = find_sweeps(ds)
    assert len(sweeps) == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "constrained_layout not applied" fails the test
        fig = plot_sweep(ds)
        fig.canvas.draw()
    main_ax, lr_ax, cbar = fig.axes
    joined = [ln for ln in lr_ax.lines if ln.get_linestyle() == "-"]
    assert len(joined) == 8
    for ln, sw in zip(joined, sweeps):
        assert np.allclose(ln.get_xdata(), sw.grid["lrs"])
    labels = [t.get_text() for t in lr_ax.get_legend().get_texts()]
    assert labels == ["median over seeds (8 sweeps)", "best LR of a sweep"]
    assert not lr_ax.texts  # no "best LR ~" label per sweep
    w = lr_ax.get_window_extent()
    assert w.width > 0.15 * fig.bbox.width and w.height > 0.5 * fig.bbox.height


def test_sweep_figure_of_unrelated_runs_joins_nothing():
    ds = [d for f in sorted(SAMPLES.glob("*.csv")) for d in lrdoctor.analyze(f)]
    fig = plot_sweep(ds)
    main_ax, lr_ax, cbar = fig.axes
    assert not [ln for ln in lr_ax.lines if ln.get_linestyle() not in ("None", "")
                and len(ln.get_xdata()) > 2]
    colours = {tuple(ln.get_color()) for ln in main_ax.lines if ln.get_marker() == "None"}
    assert len(colours) >= 5  # different LRs, different colours
    for ln in main_ax.lines:  # every trend to its run's last finite step
        if ln.get_marker() == "None":
            assert any(ln.get_xdata()[-1] == d.curve.steps[d.curve.n_finite_prefix - 1]
                       for d in ds)


def test_cli_plot_of_a_folder_writes_the_sweep_figure(tmp_path, capsys):
    out = tmp_path / "sweep.png"
    assert main(["analyze", str(SAMPLES), "--plot", str(out), "--no-logy"]) == 0
    assert out.stat().st_size > 10_000 and f"figure written to {out}" in capsys.readouterr().out


def test_drawing_on_the_users_axes_leaves_their_figure_alone():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4))
    left, right = fig.subplots(1, 2)
    for ax, name in ((left, "nan_lr5.csv"), (right, "oscillation_lr1e-1.csv")):
        assert lrdoctor.analyze(SAMPLES / name)[0].plot(ax=ax) is ax
    assert fig.get_layout_engine() is None
    for ax in (left, right):  # the legends stay inside the axes (on the LR twins)
        [twin] = [a for a in fig.axes if a is not ax and a.bbox.bounds == ax.bbox.bounds]
        assert ax.get_legend() is None and twin.get_legend().get_bbox_to_anchor() is twin.bbox
    assert all(len(a.child_axes) == 1 for a in (left, right))
    fig.savefig(io.BytesIO(), format="png")
