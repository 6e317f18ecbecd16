"""MLflow tracking server: ``http://host:5000`` (``--experiment NAME``, ``--run ID``).

Read through MLflow's REST API with the standard library's HTTP client, in pages:

- ``GET /api/2.0/mlflow/experiments/get-by-name`` (``--experiment``), else
  ``POST /api/2.0/mlflow/experiments/search`` for every active experiment;
- ``POST /api/2.0/mlflow/runs/search`` (active runs; each run's metric keys, parameters and
  tags come with it; paged by ``page_token``);
- ``GET /api/2.0/mlflow/metrics/get-history`` for each metric a run's loss, LR, validation
  loss and gradient norm are read from (paged by ``max_results`` and ``page_token``).

Runs are named and their losses found as in the tracking database
(``lrdoctor.readers.mlflow_db``): ``<experiment>/<run name>``, sources
``<url>::<experiment>/<run name>``, the loss found among the metric keys by meaning, the LR
from an ``lr``/``learning_rate`` parameter when no LR metric was logged. The server sends NaN
as ``"NaN"`` and keeps MLflow's +-1.797e308 for +-inf; both come back as NaN and inf.
"""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

from lrdoctor.errors import LrDoctorError
from lrdoctor.history import History
from lrdoctor.readers._table import from_series
from lrdoctor.readers.mlflow_db import INF, left_out, lr_from_params, lr_params, select, \
    unique_names

#: Seconds to wait for the server to answer one request.
TIMEOUT = 30.0
#: Runs per page of ``runs/search`` and metric points per page of ``metrics/get-history``.
RUNS_PAGE = 1000
HISTORY_PAGE = 25000
API = "/api/2.0/mlflow/"


def is_server_url(target: str) -> bool:
    return str(target).startswith(("http://", "https://"))


class _Client:
    def __init__(self, url: str, timeout: float = TIMEOUT):
        self.base = url.rstrip("/")
        self.url = url
        self.timeout = timeout

    def call(self, endpoint: str, *, query: dict | None = None, body: dict | None = None
             ) -> dict:
        """One JSON request (GET with ``query``, POST with ``body``); errors in one line."""
        address = self.base + API + endpoint
        if query:
            address += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(address, data=data, method="GET" if body is None
                                     else "POST", headers={"Content-Type": "application/json",
                                                           "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise LrDoctorError(f"the MLflow server answered HTTP {exc.code} to {endpoint}"
                                f"{_server_message(exc)}", self.url) from None
        except urllib.error.URLError as exc:
            reason = exc.reason.strerror if isinstance(exc.reason, OSError) and \
                exc.reason.strerror else exc.reason
            raise LrDoctorError(f"cannot reach the MLflow server ({reason}); is it running "
                                "at this address?", self.url) from None
        except (TimeoutError, socket.timeout):
            raise LrDoctorError(f"the MLflow server did not answer within {self.timeout:g} s",
                                self.url) from None
        except (ValueError, UnicodeDecodeError):
            raise LrDoctorError(f"the answer to {endpoint} is not JSON; is this an MLflow "
                                "tracking server?", self.url) from None

    def pages(self, endpoint: str, field: str, *, query=None, body=None):
        """Every item of ``field`` over all pages."""
        token = None
        while True:
            if body is not None:
                answer = self.call(endpoint, body={**body, **({"page_token": token}
                                                              if token else {})})
            else:
                answer = self.call(endpoint, query={**query, **({"page_token": token}
                                                                if token else {})})
            yield from answer.get(field, [])
            token = answer.get("next_page_token")
            if not token:
                return


def _server_message(exc: urllib.error.HTTPError) -> str:
    try:
        doc = json.loads(exc.read().decode("utf-8", errors="replace"))
        return f": {doc.get('error_code', '')} {doc.get('message', '')}".rstrip()
    except Exception:
        return ""


def read(url: str, *, step=None, metric=None, lr_column=None, experiment=None, run=None,
         timeout: float = TIMEOUT) -> list[History]:
    """One History per active run of the experiment (of every experiment when
    ``experiment`` is None; only ``run``, an id or a run name, when given)."""
    client = _Client(str(url), timeout)
    exps = _experiments(client, experiment)
    runs = []
    for i in range(0, len(exps), 100):  # runs/search takes up to 100 experiment ids
        ids = list(exps)[i:i + 100]
        runs.extend(client.pages("runs/search", "runs", body={
            "experiment_ids": ids, "max_results": RUNS_PAGE, "run_view_type": "ACTIVE_ONLY",
            "order_by": ["attributes.start_time ASC"]}))
    if run is not None:
        runs = [r for r in runs if r["info"].get("run_id") == run
                or r["info"].get("run_name") == run] or \
            [r for r in runs if len(run) >= 6 and r["info"].get("run_id", "").startswith(run)]
        if not runs:
            raise LrDoctorError(f"no active run with the id or name {run!r} (--run)", url)
    if not runs:
        where = f"experiment {experiment!r}" if experiment else "the server"
        raise LrDoctorError(f"{where} has no active runs", url)
    names = _names(runs, exps)
    out, skipped = [], []
    for r in runs:
        info, data = r["info"], r.get("data", {})
        rid, name = info["run_id"], names[info["run_id"]]
        src = f"{str(url).rstrip('/')}::{name}"
        keys = [m["key"] for m in data.get("metrics", [])]
        params = lr_params((p["key"], p.get("value")) for p in data.get("params", []))
        try:
            sel = select(keys, params, metric=metric, lr_column=lr_column, source=src)
        except LrDoctorError:
            if run is not None or metric is not None or lr_column is not None:
                raise
            skipped.append(name)
            continue
        notes = (["--step is ignored for MLflow runs: every metric has its step"]
                 if step is not None else [])
        series = {k: _history(client, rid, k) for k in dict.fromkeys(
            [*(sel.parts or [sel.loss]), sel.lr, sel.val, sel.grad_norm]) if k is not None}
        notes += lr_from_params(sel, series, params, lr_column)
        if any(len(series[k][0]) == 0 for k in (sel.parts or [sel.loss])):
            continue
        if skipped and not out:
            notes.append(left_out(skipped))
        h = from_series(series, sel, src, name, notes)
        h.available = sel.available  # every loss-like key of the run, not only those read
        h.params = {str(p["key"]): str(p.get("value")) for p in data.get("params", [])}
        out.append(h)
    if not out:
        raise LrDoctorError("no loss found: none of the runs logged a loss metric; name the "
                            "one to diagnose with --metric", url)
    return out


def _experiments(client: _Client, experiment) -> dict[str, str]:
    """experiment_id -> name."""
    if experiment is None:
        found = client.pages("experiments/search", "experiments", body={
            "max_results": 1000, "view_type": "ACTIVE_ONLY"})
        return {e["experiment_id"]: e["name"] for e in found}
    try:
        e = client.call("experiments/get-by-name", query={"experiment_name": experiment})
    except LrDoctorError as exc:
        if "RESOURCE_DOES_NOT_EXIST" not in exc.message and "HTTP 404" not in exc.message:
            raise
        raise LrDoctorError(f"the server has no experiment named {experiment!r} "
                            "(--experiment)", client.url) from None
    e = e["experiment"]
    if e.get("lifecycle_stage") == "deleted":
        raise LrDoctorError(f"the experiment {experiment!r} is deleted (--experiment)",
                            client.url)
    return {e["experiment_id"]: e["name"]}


def _names(runs: list[dict], exps: dict[str, str]) -> dict[str, str]:
    """run_id -> ``<experiment>/<run name>`` (see ``mlflow_db.unique_names``)."""
    base = {}
    for r in runs:
        info = r["info"]
        tags = {t["key"]: t.get("value") for t in r.get("data", {}).get("tags", [])}
        name = tags.get("mlflow.runName") or info.get("run_name") or info["run_id"]
        base[info["run_id"]] = f"{exps.get(info.get('experiment_id'), '?')}/{name}"
    return unique_names(base)


def _history(client: _Client, run_id: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one metric of one run, in the order written."""
    points = list(client.pages("metrics/get-history", "metrics", query={
        "run_id": run_id, "metric_key": key, "max_results": HISTORY_PAGE}))
    steps = np.array([float(p.get("step", 0)) for p in points], dtype=np.float64)
    values = np.array([float(p.get("value", "nan")) for p in points], dtype=np.float64)
    values[values >= INF] = np.inf
    values[values <= -INF] = -np.inf
    return steps, values
