"""lrdoctor/sweep.py: several runs of one model at different LRs, judged against each other."""
import json

import numpy as np
import pytest

import lrdoctor
from lrdoctor.cli import main
from lrdoctor.sweep import find_sweeps, group_key


def sweep_curve(lr, best=1e-3, n=400, seed=0, diverge_above=None):
    """A run whose final loss is U-shaped in log10(LR) around ``best``: below it the loss
    falls slowly (rate grows with the LR), above it the floor rises (noise of a large step)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / n
    d = np.log10(lr / best)
    rate = 40 * min(1.0, 10 ** d)            # slower below the best
    floor = 0.2 + 0.3 * max(0.0, d) ** 2     # higher floor above it
    x = (floor + 2.1 * np.exp(-rate * t)) * np.exp(rng.normal(0, 0.02, n))
    if diverge_above is not None and lr > diverge_above:
        x[n // 2:] = np.nan
    return x


def write_sweep(folder, lrs, *, model="mlp", seeds=(0,), val=None, **kw):
    folder.mkdir(parents=True, exist_ok=True)
    for lr in lrs:
        for s in seeds:
            x = sweep_curve(lr, seed=s, **kw)
            cols = ["step,loss,lr" + (",val_loss" if val else "")]
            for i, v in enumerate(x):
                row = f"{i},{v},{lr}"
                if val:
                    row += f",{val(lr) if i == len(x) - 1 else ''}"
                cols.append(row)
            (folder / f"{model}__lr{lr:g}__s{s}.csv").write_text("\n".join(cols) + "\n")
    return folder


def analyze_json(capsys, *args):
    code = main(["analyze", *map(str, args), "--format", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


GRID = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]


def test_the_best_lr_is_estimated_and_each_run_judged_against_it(tmp_path, capsys):
    write_sweep(tmp_path, GRID, seeds=(0, 1))
    code, doc = analyze_json(capsys, tmp_path)
    assert code == 0
    [sw] = doc["sweeps"]
    assert len(sw["runs"]) == 10 and sw["edge"] is None
    assert abs(np.log10(sw["best_lr"] / 1e-3)) < 0.5
    lo, hi = sw["best_lr_range"]
    assert lo <= 1e-3 <= hi and "final training loss" in sw["basis"]
    by_lr = {r["current_lr"]: r for r in doc["runs"]}
    assert by_lr[1e-5]["recommendation"]["action"] == "raise"
    assert by_lr[1e-1]["recommendation"]["action"] == "lower"
    assert by_lr[1e-3]["recommendation"]["action"] == "keep"
    assert by_lr[1e-5]["recommendation"]["suggested_lr"] == pytest.approx(sw["best_lr"],
                                                                         rel=0.05)
    assert by_lr[1e-1]["basis"] == "sweep" and by_lr[1e-1]["findings"] is not None
    assert any("own curve says" in n for n in by_lr[1e-5]["recommendation"]["notes"])


@pytest.mark.parametrize("x0", [-3.3, -3.0, -2.7, -2.5])
def test_the_estimate_between_grid_points_follows_a_lopsided_curve(x0):
    # final loss against log10 LR: a gentle slope below the best, a wall above it (5x
    # steeper), on a grid of decades; a symmetric 3-point parabola lands 0.37-0.47 decades
    # off for x0 = -3.0 and -2.7 (it leans to the gentle side), the spline within 0.3
    from lrdoctor.sweep import _between_grid_points

    grid = np.arange(-6.0, 0.5, 1.0)
    med = 0.5 * np.exp(np.where(grid < x0, 0.3, 2.0) * (grid - x0) ** 2)
    b = int(np.argmin(med))
    est = np.log10(_between_grid_points(grid, med, b))
    assert grid[b - 1] < est < grid[b + 1]
    assert abs(est - x0) < 0.3
    if x0 == -3.0:  # the best on a grid point stays there
        assert est == pytest.approx(-3.0)
    med[b + 1] = np.inf  # a diverged neighbour: nothing to interpolate towards
    assert _between_grid_points(grid, med, b) is None


def test_the_best_at_an_edge_says_so_and_leans_on_the_run_curves(tmp_path, capsys):
    write_sweep(tmp_path, [1e-6, 1e-5, 1e-4])  # the best (1e-3) lies above the grid
    _, doc = analyze_json(capsys, tmp_path)
    [sw] = doc["sweeps"]
    assert sw["edge"] == "high" and sw["best_lr"] == pytest.approx(1e-4)
    assert any("try 3x and 10x more" in n for n in sw["notes"])
    top = next(r for r in doc["runs"] if r["current_lr"] == 1e-4)
    # the run at the edge: its own (slow) curve decides, not "keep the best"
    assert top["recommendation"]["action"] == "raise"


def test_a_diverged_run_counts_as_worst(tmp_path, capsys):
    write_sweep(tmp_path, GRID, diverge_above=1e-2)
    _, doc = analyze_json(capsys, tmp_path)
    [sw] = doc["sweeps"]
    assert sw["final_loss"][-1] is None  # inf in the JSON: null
    top = next(r for r in doc["runs"] if r["current_lr"] == 1e-1)
    assert top["verdict"] == "too_high" and sw["best_lr"] < 1e-2


def test_a_diverged_seed_at_the_best_lr_does_not_widen_the_good_range(tmp_path, capsys):
    write_sweep(tmp_path, GRID, seeds=(0, 1, 2))
    f = tmp_path / "mlp__lr0.001__s2.csv"  # one seed at the best LR goes NaN
    rows = f.read_text().splitlines()
    rows[300:] = [f"{r.split(',')[0]},nan,0.001" for r in rows[300:]]
    f.write_text("\n".join(rows) + "\n")
    _, doc = analyze_json(capsys, tmp_path)
    [sw] = doc["sweeps"]
    lo, hi = sw["best_lr_range"]
    assert 1e-4 < lo and hi < 1e-2  # not the whole grid
    assert {r["verdict"] for r in doc["runs"] if r["current_lr"] == 1e-1} == {"too_high"}


def test_the_validation_pick_is_given_when_it_disagrees(tmp_path, capsys):
    write_sweep(tmp_path, GRID, val=lambda lr: 1 + abs(np.log10(lr / 1e-4)))
    _, doc = analyze_json(capsys, tmp_path)
    [sw] = doc["sweeps"]
    assert sw["val_best_lr"] == pytest.approx(1e-4)
    assert any("validation loss picks LR 0.0001" in n for n in sw["notes"])


def test_different_models_are_never_mixed(tmp_path, capsys):
    write_sweep(tmp_path, GRID, model="mlp")
    write_sweep(tmp_path, GRID, model="cnn", best=1e-2)
    _, doc = analyze_json(capsys, tmp_path)
    assert len(doc["sweeps"]) == 2
    for sw in doc["sweeps"]:
        models = {r.split("/")[-1].split("__")[0] for r in sw["runs"]}
        assert len(models) == 1
    cnn = next(s for s in doc["sweeps"] if "cnn" in s["runs"][0])
    assert abs(np.log10(cnn["best_lr"] / 1e-2)) < 0.5


def test_grouping_by_name_tokens():
    class D:  # the two attributes grouping reads
        def __init__(self, run, source, metric="loss"):
            self.run, self.source, self.metric = run, source, metric

    a = group_key(D("net_lr0.001_seed1", "runs/net_lr0.001_seed1.csv"))
    b = group_key(D("net_lr3e-4_seed2", "runs/net_lr3e-4_seed2.csv"))
    c = group_key(D("net_wd0.1_lr3e-4", "runs/net_wd0.1_lr3e-4.csv"))
    v0 = group_key(D("version_0", "lightning_logs/version_0/metrics.csv"))
    v7 = group_key(D("version_7", "lightning_logs/version_7/metrics.csv"))
    assert a == b and a != c and v0 == v7
    assert group_key(D("net_lr0.001", "a/net_lr0.001.csv", metric="val_acc")) != \
        group_key(D("net_lr0.01", "a/net_lr0.01.csv"))


@pytest.mark.parametrize("name, lr", [("net_learning_rate_0.01", 0.01), ("net-lr3e-4", 3e-4),
                                      ("net_LR=1e-3", 1e-3), ("net_learning-rate 0.1", 0.1),
                                      ("net_lr1e+2", 100.0), ("net_clr0.1", None)])
def test_an_lr_in_a_run_name_reads_as_in_a_column_name(name, lr):
    """One pattern serves the sweep view (run and file names) and the wide-sweep reader
    (column names): the forms each accepts are the same."""
    from lrdoctor.readers.delimited import lr_in_name
    from lrdoctor.sweep import run_lr

    class D:
        current_lr, run, source = None, name, f"runs/{name}.csv"

    col = lr_in_name(name, 1)
    assert run_lr(D()) == lr
    assert (col is None) if lr is None else col[0] == lr


def test_one_lr_is_no_sweep_and_the_flags_decide(tmp_path, capsys):
    write_sweep(tmp_path / "one", [1e-3], seeds=(0, 1, 2))
    _, doc = analyze_json(capsys, tmp_path / "one")
    assert doc["sweeps"] == []
    # names that share nothing are grouped only when the user says so
    for k, lr in enumerate(GRID):
        (tmp_path / "mixed").mkdir(exist_ok=True)
        x = sweep_curve(lr)
        (tmp_path / "mixed" / f"exp{chr(97 + k)}.csv").write_text(
            "step,loss,lr\n" + "".join(f"{i},{v},{lr}\n" for i, v in enumerate(x)))
    _, doc = analyze_json(capsys, tmp_path / "mixed")
    assert doc["sweeps"] == []
    _, doc = analyze_json(capsys, tmp_path / "mixed", "--sweep")
    assert len(doc["sweeps"]) == 1 and doc["sweeps"][0]["grouped_by"].startswith("--sweep")
    _, doc = analyze_json(capsys, tmp_path / "mixed", "--no-sweep")
    assert doc["sweeps"] == [] and all(r["basis"] == "curve" for r in doc["runs"])


def test_text_report_and_reports_show_the_sweep(tmp_path, capsys):
    write_sweep(tmp_path / "s", GRID)
    main(["analyze", str(tmp_path / "s")])
    out = capsys.readouterr().out
    assert "SWEEP  best LR ~" in out and "final loss by LR:" in out
    main(["report", str(tmp_path / "s"), "-o", str(tmp_path / "r.html")])
    html = (tmp_path / "r.html").read_text()
    assert "<h2>Sweeps</h2>" in html and "good range" in html
    assert "high, from the sweep" in html  # each run's confidence and where it came from
    main(["report", str(tmp_path / "s"), "-o", str(tmp_path / "r.md")])
    assert "## Sweeps" in (tmp_path / "r.md").read_text()


def test_the_sweep_figure_marks_the_estimate(tmp_path):
    from lrdoctor.plot import plot_sweep

    write_sweep(tmp_path, GRID)
    ds = [d for f in sorted(tmp_path.glob("*.csv")) for d in lrdoctor.analyze(f)]
    [sw] = find_sweeps(ds)
    fig = plot_sweep(ds)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(t.startswith("best LR ~") for t in texts)


def test_real_wide_sweep_is_judged_as_one(shared):
    ds = lrdoctor.analyze(shared / "real_logs/wide/charrnn_lr_sweep.csv")
    [sw] = find_sweeps(ds)
    assert sw.best_lr == pytest.approx(0.005) and sw.edge == "low"
    assert [d.recommendation.action for d in ds] == ["keep", "keep", "lower", "lower"]


def test_grouped_medians_are_numpys_medians():
    from lrdoctor.sweep import _medians

    rng = np.random.default_rng(5)
    for t in range(500):
        n, m = int(rng.integers(1, 9)), int(rng.integers(1, 30))
        g = rng.integers(0, n, m)
        v = rng.choice([1.0, 2.5, np.inf, -np.inf, np.nan, 3e-7, 1.7e308], m) if t % 2 \
            else rng.standard_normal(m)
        with np.errstate(all="ignore"):
            want = [np.median(v[g == k]) if (g == k).any() else np.nan for k in range(n)]
        assert np.array_equal(_medians(v, g, n), want, equal_nan=True), (v, g)
