"""lrdoctor/plot.py: the figures, tested through their artists (spans, markers, caption
text, axis scales), not pixels."""
import numpy as np

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
