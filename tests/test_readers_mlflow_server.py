"""An MLflow tracking server (``mlflow server`` on 127.0.0.1), read through its REST API."""
from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from lrdoctor.cli import main
from lrdoctor.readers import mlflow_server, read

mlflow = pytest.importorskip("mlflow", reason="the mlflow package (test extra) runs the server")
pytest.importorskip("flask", reason="'mlflow server' needs the full mlflow package")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``mlflow server`` on a free port with a temporary SQLite store; always stopped."""
    where = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    exe = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
    proc = subprocess.Popen(
        [exe, "server", "--backend-store-uri", f"sqlite:///{where / 'mlflow.db'}",
         "--default-artifact-root", str(where / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        cwd=where, stdout=open(where / "server.log", "wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mlflow server did not start:\n"
                            + (where / "server.log").read_text()[-3000:])
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def runs(server):
    """Experiment 'sweep': three runs at three LRs (LR as a parameter only), one deleted;
    'blowup': NaN and inf; 'long': a history of 1000 points."""
    from mlflow.entities import Metric, Param

    client = mlflow.MlflowClient(tracking_uri=server)
    t0 = 1_700_000_000_000
    ids = {}
    exp = client.create_experiment("sweep")
    for lr in (1e-4, 1e-3, 1e-2):
        rid = client.create_run(exp, run_name=f"mlp_lr{lr:g}").info.run_id
        rate = {1e-4: 0.002, 1e-3: 0.02, 1e-2: 0.01}[lr]
        loss = 2.5 * np.exp(-rate * np.arange(200)) + 0.3
        client.log_batch(rid, metrics=[Metric("train/CrossEntropyLoss", float(v), t0 + s, s)
                                       for s, v in enumerate(loss)],
                         params=[Param("lr", str(lr))])
        ids[lr] = rid
    gone = client.create_run(exp, run_name="mlp_lr0.1").info.run_id
    client.log_metric(gone, "train/CrossEntropyLoss", 1.0, step=0)
    client.delete_run(gone)
    blow = client.create_experiment("blowup")
    rid = client.create_run(blow, run_name="nan").info.run_id
    for s, v in enumerate([2.0, 1.5, math.nan, math.inf, -math.inf]):
        client.log_metric(rid, "loss", v, step=s)
    ids["nan"] = rid
    long = client.create_experiment("long")
    rid = client.create_run(long, run_name="long").info.run_id
    client.log_batch(rid, metrics=[Metric("loss", 3.0 - s / 1000, t0 + s, s)
                                   for s in range(1000)])
    return server, ids


def test_an_experiment_is_read_with_the_lr_from_params(runs, capsys):
    url, ids = runs
    hists = {h.run: h for h in read(url, experiment="sweep")}
    assert sorted(hists) == ["sweep/mlp_lr0.0001", "sweep/mlp_lr0.001", "sweep/mlp_lr0.01"]
    h = hists["sweep/mlp_lr0.001"]
    assert h.metric == "train/CrossEntropyLoss" and len(h.steps) == 200
    assert h.source == f"{url}::sweep/mlp_lr0.001" and np.allclose(h.columns["lr"], 1e-3)
    # a URL given with its trailing slash names the runs the same way
    assert {g.source for g in read(url + "/", experiment="sweep")} == \
        {g.source for g in hists.values()}
    assert main(["analyze", url, "--experiment", "sweep", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["runs"]) == 3 and len(doc["sweeps"]) == 1


def test_nan_and_inf_come_back_through_the_api(runs):
    url, ids = runs
    [h] = read(url, experiment="blowup")
    loss = h.columns["loss"]
    assert list(loss[:2]) == [2.0, 1.5] and np.isnan(loss[2])
    assert loss[3] == np.inf and loss[4] == -np.inf


def test_runs_and_histories_are_paged(runs, monkeypatch):
    url, ids = runs
    monkeypatch.setattr(mlflow_server, "RUNS_PAGE", 2)
    monkeypatch.setattr(mlflow_server, "HISTORY_PAGE", 300)
    assert len(read(url, experiment="sweep")) == 3  # two pages of runs
    [h] = read(url, experiment="long")  # four pages of points
    assert len(h.steps) == 1000 and np.allclose(h.columns["loss"], 3.0 - np.arange(1000) / 1000)


def test_all_experiments_without_experiment_and_one_run_by_id(runs):
    url, ids = runs
    assert len(read(url)) == 5
    [h] = read(url, run=ids[1e-2])
    assert h.run == "sweep/mlp_lr0.01"


def test_an_unknown_experiment_is_one_clear_line(runs, capsys):
    url, _ = runs
    assert main(["analyze", url, "--experiment", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no experiment named 'nope'" in err[0]


def test_a_server_that_does_not_answer_is_one_clear_line(capsys):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["analyze", url, "--experiment", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the MLflow server" in err[0] and url in err[0]
