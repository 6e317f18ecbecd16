"""The MLflow tracking database (mlflow.db), written by the real mlflow package."""
from __future__ import annotations

import json
import math
import sqlite3

import numpy as np
import pytest

from lrdoctor.cli import main
from lrdoctor.readers import read
from lrdoctor.readers import mlflow_db

mlflow = pytest.importorskip("mlflow", reason="the mlflow package (test extra) writes the "
                                              "database")
pytest.importorskip("sqlalchemy", reason="mlflow's SQL store needs the full mlflow package")


def curve(n=300, lr=1e-3, start=0.0):
    """A loss that falls well: faster at a larger LR (a sweep's best is in the middle)."""
    t = np.arange(n)
    rate = min(lr, 3e-3) / 1e-3 * 0.02 - max(0.0, lr - 3e-3) * 4
    return 2.5 * np.exp(-rate * (t + start)) + 0.3 + 0.01 * np.sin(t)


@pytest.fixture()
def tracking(tmp_path, monkeypatch):
    """A client writing ``tmp_path/mlflow.db``, as ``mlflow.set_tracking_uri`` would."""
    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    return db, client


def log_run(client, exp_id, name, losses, *, key="loss", lr=None, lr_param=None, start=0):
    from mlflow.entities import Metric, Param

    run = client.create_run(exp_id, run_name=name)
    rid = run.info.run_id
    t0 = 1_700_000_000_000
    metrics = [Metric(key, float(v), t0 + start + i, start + i) for i, v in enumerate(losses)]
    if lr is not None:
        metrics += [Metric("lr", lr, t0 + start + i, start + i) for i in range(len(losses))]
    for i in range(0, len(metrics), 1000):
        client.log_batch(rid, metrics=metrics[i:i + 1000])
    if lr_param is not None:
        client.log_batch(rid, params=[Param("lr", str(lr_param))])
    client.set_terminated(rid)
    return rid


def test_nan_and_inf_come_back_as_logged(tracking):
    db, client = tracking
    exp = client.create_experiment("nan")
    run = client.create_run(exp, run_name="blowup")
    for s, v in enumerate([2.0, 1.5, math.nan, math.inf, -math.inf, 1.0]):
        client.log_metric(run.info.run_id, "loss", v, step=s)
    # how MLflow stores them: NaN as 0.0 with is_nan = 1, +-inf as +-max double
    rows = sqlite3.connect(db).execute(
        "SELECT value, is_nan FROM metrics ORDER BY step").fetchall()
    assert rows[2] == (0.0, 1) and rows[3] == (1.7976931348623157e308, 0)
    assert rows[4] == (-1.7976931348623157e308, 0)
    [h] = read(db)
    loss = h.columns["loss"]
    assert np.isnan(loss[2]) and loss[3] == np.inf and loss[4] == -np.inf
    assert list(loss[[0, 1, 5]]) == [2.0, 1.5, 1.0]
    assert h.run == "nan/blowup" and h.source == f"{db}::nan/blowup"


def test_every_run_of_an_experiment_is_read_deleted_ones_left_out(tracking, capsys):
    db, client = tracking
    exp = client.create_experiment("mlp")
    for lr in (1e-4, 1e-3, 1e-2):
        log_run(client, exp, f"mlp_lr{lr:g}", curve(lr=lr), lr=lr)
    gone = log_run(client, exp, "mlp_lr0.1", [2.0] * 50, lr=0.1)
    client.delete_run(gone)
    other = client.create_experiment("old")
    log_run(client, other, "x", curve())
    client.delete_experiment(other)
    hists = read(db)
    assert sorted(h.run for h in hists) == ["mlp/mlp_lr0.0001", "mlp/mlp_lr0.001",
                                            "mlp/mlp_lr0.01"]
    assert all(len(h.steps) == 300 for h in hists)
    # the command line groups the experiment's runs into a sweep by their LR
    assert main(["analyze", str(db), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["runs"]) == 3 and len(doc["sweeps"]) == 1
    assert sorted(doc["sweeps"][0]["lrs"]) == [1e-4, 1e-3, 1e-2]


def test_experiment_and_run_narrow_it(tracking, capsys):
    db, client = tracking
    a = client.create_experiment("a")
    b = client.create_experiment("b")
    ra = log_run(client, a, "first", curve())
    log_run(client, a, "second", curve())
    log_run(client, b, "third", curve())
    assert [h.run for h in read(db, experiment="b")] == ["b/third"]
    assert [h.run for h in read(db, run=ra)] == ["a/first"]
    assert [h.run for h in read(f"sqlite:///{db}", experiment="a", run="second")] == \
        ["a/second"]
    assert main(["analyze", f"sqlite:///{db}", "--experiment", "a", "--format", "json"]) == 0
    assert {r["run"] for r in json.loads(capsys.readouterr().out)["runs"]} == \
        {"a/first", "a/second"}


def test_a_resumed_run_keeps_the_last_write_of_each_step(tracking):
    db, client = tracking
    exp = client.create_experiment("resume")
    from mlflow.entities import Metric

    run = client.create_run(exp, run_name="resumed").info.run_id
    t0 = 1_700_000_000_000
    first = [Metric("loss", 9.0, t0 + s, s) for s in range(200)]       # crashed at 199
    again = [Metric("loss", 1.0, t0 + 1000 + s, s) for s in range(150, 300)]  # from 150
    client.log_batch(run, metrics=first)
    client.log_batch(run, metrics=again)
    [h] = read(db)
    assert len(h.steps) == 300 and h.steps[-1] == 299
    assert (h.columns["loss"][150:] == 1.0).all() and (h.columns["loss"][:150] == 9.0).all()
    assert any("logged more than once" in n for n in h.notes)


def test_the_lr_param_is_the_lr_without_an_lr_metric(tracking):
    db, client = tracking
    exp = client.create_experiment("params")
    log_run(client, exp, "with-param", curve(), lr_param=3e-4)
    log_run(client, exp, "with-metric", curve(), lr=1e-3, lr_param=3e-4)
    runs = {h.run: h for h in read(db)}
    assert np.allclose(runs["params/with-param"].columns["lr"], 3e-4)
    assert any("parameter 'lr'" in n for n in runs["params/with-param"].notes)
    assert np.allclose(runs["params/with-metric"].columns["lr"], 1e-3)


def test_the_loss_is_found_by_meaning_with_its_companions(tracking):
    db, client = tracking
    exp = client.create_experiment("meaning")
    log_run(client, exp, "ce", curve(), key="train/CrossEntropyLoss", lr=1e-3)
    run = client.search_runs([exp])[0].info.run_id
    from mlflow.entities import Metric

    client.log_batch(run, metrics=[Metric("val/CrossEntropyLoss", 1.0, 1, s)
                                   for s in range(0, 300, 50)]
                     + [Metric("accuracy", 0.5, 1, s) for s in range(300)]
                     + [Metric("grad_norm", 2.0, 1, s) for s in range(300)])
    [h] = read(db)
    assert h.metric == "train/CrossEntropyLoss"
    assert np.allclose(h.columns["lr"], 1e-3) and np.allclose(h.columns["grad_norm"], 2.0)
    assert "val/CrossEntropyLoss" in h.available


def test_many_runs_and_long_histories_are_read_in_chunks(tracking, monkeypatch):
    db, client = tracking
    monkeypatch.setattr(mlflow_db, "CHUNK", 4)
    exp = client.create_experiment("many")
    for k in range(10):
        log_run(client, exp, f"r{k}", curve(n=2500) + k)
    hists = {h.run: h for h in read(db)}
    assert len(hists) == 10
    assert all(len(h.steps) == 2500 for h in hists.values())
    assert np.allclose(hists["many/r7"].columns["loss"], curve(n=2500) + 7)


def test_a_run_name_used_twice_is_numbered(tracking):
    db, client = tracking
    exp = client.create_experiment("dup")
    log_run(client, exp, "seed", curve())
    log_run(client, exp, "seed", curve())
    assert sorted(h.run for h in read(db)) == ["dup/seed run_1", "dup/seed run_2"]


def test_a_database_that_is_not_mlflows_is_one_clear_line(tmp_path, capsys):
    other = tmp_path / "app.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE users (id INTEGER)")
    con.commit()
    con.close()
    assert main(["analyze", str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not an MLflow tracking database" in err[0]


def test_an_unknown_experiment_or_run_is_one_clear_line(tracking, capsys):
    db, client = tracking
    log_run(client, client.create_experiment("real"), "r", curve())
    assert main(["analyze", str(db), "--experiment", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no experiment named 'nope'" in err[0] and "'real'" in err[0]
    assert main(["analyze", str(db), "--run", "0123456789abcdef"]) == 2
    assert "no active run" in capsys.readouterr().err


def test_the_database_is_never_written(tracking):
    db, client = tracking
    log_run(client, client.create_experiment("ro"), "r", curve())
    before = db.read_bytes()
    mtime = db.stat().st_mtime_ns
    read(db)
    assert db.read_bytes() == before and db.stat().st_mtime_ns == mtime
    assert not (db.parent / "mlflow.db-journal").exists()


def test_a_folder_walk_finds_the_database(tracking, capsys):
    db, client = tracking
    log_run(client, client.create_experiment("walk"), "r", curve())
    assert main(["analyze", str(db.parent), "--format", "json"]) == 0
    [run] = json.loads(capsys.readouterr().out)["runs"]
    assert run["source"] == f"{db}::walk/r"


def test_runs_with_generated_names_are_a_sweep_by_their_parameters(tracking, capsys):
    """MLflow names runs 'bold-owl-42': the sweep is found from the logged parameters,
    runs that differ only by the LR (and seed); another model is never mixed in."""
    from mlflow.entities import Param

    db, client = tracking
    exp = client.create_experiment("mnist")
    for k, lr in enumerate([1e-4, 1e-3, 1e-2]):
        rid = log_run(client, exp, f"bold-owl-{k}", curve(lr=lr), lr_param=lr)
        client.log_batch(rid, params=[Param("model", "mlp"), Param("seed", str(k))])
    rid = log_run(client, exp, "calm-cat-9", curve(lr=3e-3), lr_param=3e-3)
    client.log_batch(rid, params=[Param("model", "cnn"), Param("seed", "0")])
    assert main(["analyze", str(db), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [sw] = doc["sweeps"]
    assert len(sw["runs"]) == 3 and not any("calm-cat" in r for r in sw["runs"])
    assert "logged parameters differ only by the LR" in sw["grouped_by"]
    cnn = next(r for r in doc["runs"] if "calm-cat" in r["run"])
    assert cnn["basis"] == "curve"
