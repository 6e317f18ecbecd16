"""An MLflow tracking database of many runs: ``lrdoctor.analyze(mlflow.db)`` (read every
run's history and diagnose it) against fetching the same histories the way users do it now,
``mlflow.tracking.MlflowClient().get_metric_history(run_id, "loss")`` run after run (fetch
only, no analysis), side by side on the same file.

The database (``--runs`` x ``--steps``, default 1,000 x 5,000) is made by the real mlflow
package: the experiment, the runs, their names and their ``lr`` parameters through
``MlflowClient``; the metric rows, 5 million of them, are inserted with sqlite3 into
MLflow's own ``metrics`` and ``latest_metrics`` tables (``log_batch`` would take an hour
for that many; the rows are laid out as it lays them out, which the client's read-back
checks: its histories are compared with lrdoctor's). It is kept between runs of the script.

Printed: wall and CPU time of each side (median of ``--repeat``; the machine is shared),
points/s, peak RSS (each side in a fresh interpreter), and the ratio.

usage: python benchmarks/mlflow_db.py [--runs 1000] [--steps 5000] [--repeat 3]
                                      [--folder /tmp/lrdoctor_mlflow] [--client-runs N]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)

LRDOCTOR = r"""
import json, resource, sys, time
import lrdoctor
from lrdoctor.readers import read
t = time.perf_counter()
hists = read(sys.argv[1])
t_read = time.perf_counter() - t
from lrdoctor.diagnosis import diagnose_history
ds = [diagnose_history(h) for h in hists]
wall = time.perf_counter() - t
check = {d.run.rpartition("/")[2]: [len(d.history.logged_loss),
                                     float(d.history.logged_loss.sum())] for d in ds}
print(json.dumps({"wall": wall, "read": t_read, "runs": len(ds),
                  "points": sum(c[0] for c in check.values()), "check": check,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

CLIENT = r"""
import json, resource, sys, time
from mlflow.tracking import MlflowClient
t = time.perf_counter()
client = MlflowClient(tracking_uri="sqlite:///" + sys.argv[1])
exp = client.get_experiment_by_name("bench")
runs = client.search_runs([exp.experiment_id], max_results=50000)
limit = int(sys.argv[2])
runs = runs[:limit] if limit else runs
check = {}
for r in runs:
    hist = client.get_metric_history(r.info.run_id, "loss")
    hist.sort(key=lambda m: (m.timestamp, m.step))
    check[r.info.run_name] = [len(hist), float(sum(m.value for m in hist))]
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "read": wall, "runs": len(check),
                  "points": sum(c[0] for c in check.values()), "check": check,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def make_db(db: Path, runs: int, steps: int) -> None:
    """The database: runs ``exp-lr<LR>-s<seed>`` of one experiment ``bench``, a noisy
    decay of ``steps`` points each (the largest LRs blow up part way), ``lr`` a param."""
    import sqlite3

    import numpy as np
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    db.parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.create_experiment("bench")
    t = np.arange(steps)
    t0 = 1_700_000_000_000
    ids = []
    for k in range(runs):
        lr, seed = LRS[k % 8], (k // 8) % 2
        run = client.create_run(exp, run_name=f"m{k // 16:03d}-lr{lr:g}-s{seed}")
        client.log_batch(run.info.run_id, params=[Param("lr", f"{lr:g}")])
        ids.append((run.info.run_id, lr, k))
    con = sqlite3.connect(db)
    with con:
        for rid, lr, k in ids:
            rng = np.random.default_rng(k)
            loss = 0.3 + 2.0 * np.exp(-min(3 * lr, 0.05) * t) + \
                0.05 * (1 + 10 * lr) * rng.standard_normal(steps)
            if lr >= 0.1:
                start = int(rng.integers(steps // 10, 3 * steps // 4))
                loss[start:] += np.expm1(np.minimum((t[start:] - start) * lr * 0.1, 50))
            con.executemany(
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                "VALUES ('loss', ?, ?, ?, ?, 0)",
                zip(loss.tolist(), (t0 + t).tolist(), [rid] * steps, t.tolist()))
            con.execute("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, "
                        "run_uuid) VALUES ('loss', ?, ?, ?, 0, ?)",
                        (float(loss[-1]), t0 + steps - 1, steps - 1, rid))
    con.close()
    for rid, _, _ in ids:
        client.set_terminated(rid)


def measure(code: str, db: Path, *extra: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([sys.executable, "-c", code, str(db), *extra], capture_output=True,
                       text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["cpu"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--folder", default="/tmp/lrdoctor_mlflow")
    p.add_argument("--client-runs", type=int, default=0, metavar="N",
                   help="fetch only N runs with the client (it takes ~0.3 s a run) and "
                        "scale its time to all runs, saying so (default: all)")
    p.add_argument("--make", metavar="DB", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.make:  # in a process of its own: its memory is no side's peak RSS
        make_db(Path(a.make), a.runs, a.steps)
        return
    folder = Path(a.folder)
    db = folder / f"mlflow_{a.runs}x{a.steps}.db"
    if not db.exists():
        t = time.perf_counter()
        partial = db.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        subprocess.run([sys.executable, __file__, "--runs", str(a.runs), "--steps",
                        str(a.steps), "--make", str(partial)], check=True)
        partial.rename(db)
        print(f"made {db} in {time.perf_counter() - t:.0f} s")
    print(f"{db}: {a.runs} runs x {a.steps} steps, {db.stat().st_size / 2**20:.0f} MiB; "
          f"median of {a.repeat} fresh processes each")
    got = {}
    part = a.client_runs if 0 < a.client_runs < a.runs else 0
    for label, code, extra in [("lrdoctor: read + diagnose", LRDOCTOR, ()),
                               ("MlflowClient.get_metric_history", CLIENT, (str(part),))]:
        runs = [measure(code, db, *extra) for _ in range(a.repeat)]
        scale = a.runs / runs[-1]["runs"]  # the client on part of the runs: per run, x all
        wall = statistics.median(r["wall"] for r in runs) * scale
        got[label] = runs[-1] | {"wall": wall}
        read = statistics.median(r["read"] for r in runs) * scale
        cpu = statistics.median(r["cpu"] for r in runs) * scale
        n = runs[-1]["points"] * scale
        how = f"{runs[-1]['runs']} runs" if scale == 1 else \
            f"{runs[-1]['runs']} runs measured, times x{scale:g} for all {a.runs}"
        print(f"{label:<34} {wall:7.2f} s (reading {read:6.2f} s)  {n / wall / 1e6:5.2f} "
              f"M points/s  {how}  CPU {cpu:6.2f} s  peak RSS "
              f"{max(r['rss'] for r in runs) / 1024:5.0f} MiB", flush=True)
    ours, theirs = got.values()
    ours["check"] = {k: v for k, v in ours["check"].items() if k in theirs["check"]}
    same = ours["check"].keys() == theirs["check"].keys() and all(
        ours["check"][k][0] == theirs["check"][k][0] and
        abs(ours["check"][k][1] - theirs["check"][k][1]) <= 1e-9 * abs(theirs["check"][k][1])
        for k in ours["check"])
    print(f"same histories (points and sum of the loss per run"
          f"{f', the {part} runs the client read' if part else ''}): {same}")
    print(f"lrdoctor read + analysis vs the client's fetch alone: "
          f"{theirs['wall'] / ours['wall']:.1f}x faster")


if __name__ == "__main__":
    main()
