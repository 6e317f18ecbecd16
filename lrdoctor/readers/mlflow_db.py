"""MLflow tracking database: ``mlflow.db`` (the default store since MLflow 3.7), or
``sqlite:///path/to/mlflow.db``.

Every active run of every active experiment is one History (``--experiment NAME`` and
``--run ID`` narrow it), named ``<experiment>/<run name>`` (the ``mlflow.runName`` tag,
else ``runs.name``, else the run id; a name used twice in one experiment gets ``run_1``,
``run_2``... in start order) with the source ``mlflow.db::<experiment>/<run name>``.

The database is opened read-only (a ``mode=ro`` URI) with a busy timeout, so a training
process writing to it is never blocked for longer than one query and nothing is ever
written. The tables read, as MLflow's SQL store lays them out:

- ``experiments(experiment_id, name, lifecycle_stage)``, ``runs(run_uuid, experiment_id,
  name, lifecycle_stage, start_time)``: deleted experiments and runs are left out;
- ``latest_metrics(key, run_uuid)``: which metric keys each run has (the loss is found
  among them by meaning, as for every tabular log: ``lrdoctor.readers._table.Selection``);
- ``metrics(key, value, timestamp, run_uuid, step, is_nan)``: one query per metric key for
  all the runs read, in the order written (timestamp, then step), so a resumed run's
  rewritten steps are recognised by ``history.from_columns`` as everywhere. MLflow stores
  NaN as 0.0 with ``is_nan = 1`` and +-inf as +-1.7976931348623157e308 (the largest
  double); both come back as they were logged;
- ``params(key, value, run_uuid)``: a logged ``lr``/``learning_rate`` parameter is the LR
  when the run logged no LR metric;
- ``tags(key, value, run_uuid)``: ``mlflow.runName``.
"""
from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from urllib.parse import quote

import numpy as np

from lrdoctor.errors import LrDoctorError
from lrdoctor.history import History
from lrdoctor.readers import _columns as C
from lrdoctor.readers._table import Selection, from_series

#: The tables that make a SQLite file an MLflow tracking database.
TABLES = {"experiments", "runs", "metrics", "params", "tags"}
#: The first 16 bytes of every SQLite database file.
MAGIC = b"SQLite format 3\x00"
#: How long a query waits for a writer's lock before giving up (seconds).
BUSY_TIMEOUT = 10.0
#: MLflow's stand-in for +-inf: the largest double.
INF = sys.float_info.max
#: Runs bound into one query (SQLite's oldest limit on parameters is 999).
CHUNK = 900


def db_path(target: str | Path) -> Path | None:
    """The file named by ``sqlite:///relative.db`` or ``sqlite:////abs.db`` (else None)."""
    s = str(target)
    if s.startswith("sqlite:///"):
        return Path(s[len("sqlite:///"):].split("?", 1)[0])
    return None


def is_tracking_db(path: Path) -> bool:
    """Whether the file is a SQLite database holding MLflow's tracking tables."""
    try:
        with open(path, "rb") as f:
            if f.read(16) != MAGIC:
                return False
        with _connect(path) as con:
            return TABLES <= _tables(con)
    except (OSError, sqlite3.Error, LrDoctorError):
        return False


def _connect(path: Path, timeout: float = BUSY_TIMEOUT) -> sqlite3.Connection:
    uri = "file:" + quote(str(Path(path).resolve())) + "?mode=ro"
    try:
        return sqlite3.connect(uri, uri=True, timeout=timeout)
    except sqlite3.Error as exc:
        raise LrDoctorError(f"cannot open the database read-only ({exc})", str(path)) from None


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in con.execute(f"PRAGMA table_info({table})")}


def read(path, *, step=None, metric=None, lr_column=None, experiment=None, run=None
         ) -> list[History]:
    """One History per run of the database (see the module notes).

    Raises
    ------
    LrDoctorError
        When the file is no MLflow database, ``experiment`` or ``run`` names nothing, or
        no run logged a loss.
    """
    target = str(path)
    file = db_path(target) or Path(target)
    if not file.is_file():
        raise LrDoctorError("no such file; check the path", target)
    try:
        with _connect(file) as con:
            return _read(con, target, file, step=step, metric=metric, lr_column=lr_column,
                         experiment=experiment, run=run)
    except sqlite3.DatabaseError as exc:
        msg = str(exc)
        if "locked" in msg or "busy" in msg:
            raise LrDoctorError(f"the database stayed locked for {BUSY_TIMEOUT:g} s (a "
                                "writer holds it); try again", target) from None
        raise LrDoctorError(f"cannot read the database ({msg})", target) from None


def _read(con, target, file, *, step, metric, lr_column, experiment, run) -> list[History]:
    missing = TABLES - _tables(con)
    if missing:
        raise LrDoctorError("a SQLite database, but not an MLflow tracking database (no "
                            f"{', '.join(sorted(missing))} table)", target)
    exps = _experiments(con, target, experiment)
    runs = _runs(con, target, exps, run)
    if not runs:
        where = f"experiment {experiment!r}" if experiment else "the database"
        raise LrDoctorError(f"{where} has no active runs", target)
    uuids = [r[0] for r in runs]
    keys = _metric_keys(con, uuids)
    names = _run_names(con, runs)
    raw = _params(con, uuids)
    params = {u: lr_params(p) for u, p in raw.items()}
    picked, skipped, notes = {}, [], {}
    for uuid, _, _ in runs:
        src = f"{target}::{names[uuid]}"
        try:
            sel = select(keys.get(uuid, []), params.get(uuid, {}), metric=metric,
                         lr_column=lr_column, source=src)
        except LrDoctorError as exc:
            if run is not None or metric is not None or lr_column is not None:
                raise LrDoctorError(exc.message, f"{target}::{names[uuid]}") from None
            skipped.append(names[uuid])
            continue
        picked[uuid] = sel
        notes[uuid] = (["--step is ignored for MLflow runs: every metric has its step"]
                       if step is not None else [])
    if not picked:
        raise LrDoctorError("no loss found: none of the runs logged a loss metric; name "
                            "the one to diagnose with --metric", target)
    wanted: dict[str, list[str]] = {}
    for uuid, sel in picked.items():
        for key in dict.fromkeys([*(sel.parts or [sel.loss]), sel.lr, sel.val,
                                  sel.grad_norm]):
            if key is not None:
                wanted.setdefault(key, []).append(uuid)
    series: dict[str, dict] = {u: {} for u in picked}
    for key, who in wanted.items():
        for uuid, s in _history(con, key, who).items():
            series[uuid][key] = s
    out = []
    for uuid, sel in picked.items():
        got = series[uuid]
        notes[uuid] += lr_from_params(sel, got, params.get(uuid, {}), lr_column)
        loss_keys = sel.parts or [sel.loss]
        if any(k not in got for k in loss_keys):
            continue  # logged no value after all (latest_metrics out of step)
        if skipped and not out:
            notes[uuid].append(left_out(skipped))
        h = from_series(got, sel, f"{target}::{names[uuid]}", names[uuid], notes[uuid])
        h.available = sel.available  # every loss-like key of the run, not only those read
        h.params = {str(k): str(v) for k, v in raw.get(uuid, [])}
        out.append(h)
    if not out:
        raise LrDoctorError("the runs' loss metrics hold no values", target)
    return out


def _experiments(con, target, experiment) -> dict[str, str]:
    """experiment_id -> name of the active experiments (only ``experiment``, by name or id,
    when given)."""
    live = "lifecycle_stage = 'active'" if "lifecycle_stage" in _columns(con, "experiments") \
        else "1"
    rows = con.execute(f"SELECT experiment_id, name FROM experiments WHERE {live} "
                       "ORDER BY experiment_id").fetchall()
    exps = {str(i): n for i, n in rows}
    if experiment is None:
        return exps
    hit = {i: n for i, n in exps.items() if n == experiment} or \
        {i: n for i, n in exps.items() if i == str(experiment)}
    if not hit:
        shown = ", ".join(repr(n) for n in list(exps.values())[:20])
        raise LrDoctorError(f"no experiment named {experiment!r} (--experiment); "
                            f"experiments: {shown or 'none'}", target)
    return hit


def _runs(con, target, exps, run) -> list[tuple[str, str, str]]:
    """(run_uuid, experiment name, runs.name) of the active runs, oldest first."""
    cols = _columns(con, "runs")
    live = "lifecycle_stage = 'active'" if "lifecycle_stage" in cols else "1"
    name = "name" if "name" in cols else "NULL"
    order = "start_time, run_uuid" if "start_time" in cols else "run_uuid"
    rows = con.execute(f"SELECT run_uuid, experiment_id, {name} FROM runs WHERE {live} "
                       f"ORDER BY {order}").fetchall()
    out = [(u, exps[str(e)], n) for u, e, n in rows if str(e) in exps]
    if run is None:
        return out
    hit = [r for r in out if r[0] == run] or [r for r in out if r[0].startswith(run)
                                              and len(run) >= 6]
    if not hit:
        tags = dict(con.execute("SELECT run_uuid, value FROM tags WHERE key = "
                                "'mlflow.runName' AND value = ?", (run,)).fetchall())
        hit = [r for r in out if r[0] in tags or r[2] == run]
    if not hit:
        raise LrDoctorError(f"no active run with the id or name {run!r} (--run)", target)
    return hit


def _run_names(con, runs) -> dict[str, str]:
    """run_uuid -> ``<experiment>/<run name>``, unique within the database."""
    tags = dict(con.execute("SELECT run_uuid, value FROM tags WHERE key = 'mlflow.runName'"
                            ).fetchall())
    return unique_names({u: f"{e}/{tags.get(u) or n or u}" for u, e, n in runs})


def unique_names(base: dict[str, str]) -> dict[str, str]:
    """run id -> name, a name used by several runs (seeds, reruns) numbered ``run_1``,
    ``run_2``... in the given order (a run-number token, so a sweep still groups them)."""
    count: dict[str, int] = {}
    for b in base.values():
        count[b] = count.get(b, 0) + 1
    seen: dict[str, int] = {}
    out = {}
    for u, b in base.items():
        if count[b] > 1:
            seen[b] = seen.get(b, 0) + 1
            b = f"{b} run_{seen[b]}"
        out[u] = b
    return out


def select(keys: list[str], params: dict[str, float], *, metric, lr_column, source
           ) -> Selection:
    """The roles of a run's metric keys (``--lr-column`` may name an LR parameter)."""
    if lr_column is not None and lr_column not in keys and lr_column in params:
        lr_column = None
    return Selection(keys, metric=metric, lr_column=lr_column, source=source)


def lr_from_params(sel: Selection, series: dict, params: dict[str, float], lr_column
                   ) -> list[str]:
    """Without an LR metric, a logged LR parameter is the run's (constant) LR: added to
    ``series`` under the parameter's name; returns the note saying so."""
    if sel.lr is not None and sel.lr in series:
        return []
    param = lr_column if lr_column in params else C.find(list(params), C.LR)
    if param is None:
        return []
    sel.lr = param
    series[param] = (np.array([-np.inf]), np.array([params[param]]))
    return [f"LR {params[param]:g} from the run's parameter {param!r} (no LR metric was "
            "logged)"]


def left_out(skipped: list[str]) -> str:
    """The note on the first run read about the runs that logged no loss."""
    return (f"{len(skipped)} run(s) logged no loss and were left out: "
            f"{', '.join(skipped[:5])}" + (" ..." if len(skipped) > 5 else ""))


def lr_params(pairs) -> dict[str, float]:
    """{parameter: value} of the positive numeric LR-named parameters among (key, value)."""
    out = {}
    for k, v in pairs:
        if C.find([k], C.LR) is None:
            continue
        try:
            value = float(v)
        except (TypeError, ValueError):
            continue
        if np.isfinite(value) and value > 0:
            out[k] = value
    return out


def _metric_keys(con, uuids) -> dict[str, list[str]]:
    """run_uuid -> its metric keys (from ``latest_metrics``: one row per run and key)."""
    table = "latest_metrics" if "latest_metrics" in _tables(con) else "metrics"
    out: dict[str, list[str]] = {}
    for chunk in _chunks(uuids):
        marks = ",".join("?" * len(chunk))
        for u, k in con.execute(f"SELECT DISTINCT run_uuid, key FROM {table} "
                                f"WHERE run_uuid IN ({marks}) ORDER BY key", chunk):
            out.setdefault(u, []).append(k)
    return out


def _params(con, uuids) -> dict[str, list]:
    """run_uuid -> its logged parameters as (key, value) pairs."""
    pairs: dict[str, list] = {}
    for chunk in _chunks(uuids):
        marks = ",".join("?" * len(chunk))
        for u, k, v in con.execute(f"SELECT run_uuid, key, value FROM params "
                                   f"WHERE run_uuid IN ({marks})", chunk):
            pairs.setdefault(u, []).append((k, v))
    return pairs


#: Runs whose rows of one metric are read by one query: the rows come as Python numbers,
#: so they are streamed into one array a query (5 numbers a row: 20 MB for 100 runs of
#: 5,000 steps) and split per run, memory bounded by this whatever the database's size.
HISTORY_RUNS = 100
#: MLflow's index on (run_uuid, key, step): a query for some runs' rows of one key seeks
#: them. Without it SQLite's planner takes the primary key (key, timestamp, ...) and scans
#: every row of the key once per run asked for: 1,000 runs of 5,000 steps took 282 s.
RUN_KEY_INDEX = "index_metrics_run_uuid_key_step"


def _history(con, key: str, uuids: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """run_uuid -> (steps, values) of one metric for many runs, one query per
    ``HISTORY_RUNS`` runs (rows sought by run through MLflow's index, streamed into a
    numpy array: no list of row tuples), in the order written (timestamp, then step); NaN
    and +-inf restored."""
    import itertools

    indexes = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = "
                                         "'index' AND tbl_name = 'metrics'")}
    # '+m.key' keeps the planner off the primary key when the (run, key) index is missing:
    # it then seeks each run by the run_uuid index and filters the key
    seek = f"INDEXED BY {RUN_KEY_INDEX} ON m.run_uuid = ids.run_uuid AND m.key = ?" \
        if RUN_KEY_INDEX in indexes else "ON m.run_uuid = ids.run_uuid AND +m.key = ?"
    out = {}
    for chunk in (uuids[i:i + HISTORY_RUNS] for i in range(0, len(uuids), HISTORY_RUNS)):
        ids = ",".join(f"(?, {k})" for k in range(len(chunk)))
        cur = con.execute(
            f"WITH ids(run_uuid, k) AS (VALUES {ids}) "
            "SELECT ids.k, m.timestamp, m.step, m.value, m.is_nan "
            f"FROM ids CROSS JOIN metrics AS m {seek}", [*chunk, key])
        a = np.fromiter(itertools.chain.from_iterable(cur), dtype=np.float64).reshape(-1, 5)
        if not len(a):
            continue
        k, stamp, steps, values, nan = a.T
        # the order written: by run, timestamp, step (ties as the primary key has them);
        # the rows come by run and step, so this is most often a check, not a sort
        d_k, d_t, d_s = np.diff(k), np.diff(stamp), np.diff(steps)
        if not ((d_k > 0) | ((d_k == 0) & ((d_t > 0) | ((d_t == 0) & (d_s > 0))))).all():
            a = a[np.lexsort((nan, values, steps, stamp, k))]
            k, stamp, steps, values, nan = a.T
        values = values.copy()
        values[nan != 0] = np.nan
        values[values >= INF] = np.inf
        values[values <= -INF] = -np.inf
        bounds = np.searchsorted(k, np.arange(len(chunk) + 1))
        for j, uuid in enumerate(chunk):
            lo, hi = bounds[j], bounds[j + 1]
            if hi > lo:
                out[uuid] = (steps[lo:hi].copy(), values[lo:hi])
    return out


def _chunks(items: list) -> list[list]:
    return [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)] or [[]]
