"""The same runs through a dask.distributed LocalCluster of 2 workers
(``lrdoctor analyze FOLDER --format json --scheduler local --jobs 2``) and in one process
(``--jobs 1``): the JSON documents must be equal byte for byte. The runs are those of
many_runs.py (``--runs`` CSV logs of ``--steps`` steps, written once and kept).

Printed: the wall time of each (one fresh process each; the cluster's start is included),
and whether the documents are equal; the exit status is 1 when they are not.

usage: python benchmarks/dask_equal.py [--runs 10000] [--steps 2000] [--folder /tmp/lrdoctor_many]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from many_runs import make_logs  # noqa: E402


def run(args: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "lrdoctor", *args], capture_output=True,
                       text=True)
    if r.returncode not in (0, 1):
        raise SystemExit(f"lrdoctor {' '.join(args)}: exit {r.returncode}\n{r.stderr[-2000:]}")
    return time.perf_counter() - t, r.stdout


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10000)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--folder", default="/tmp/lrdoctor_many")
    a = p.parse_args()
    folder = Path(a.folder)
    make_logs(folder, a.runs, a.steps, "synthetic")
    base = ["analyze", str(folder), "--format", "json"]
    t1, serial = run(base + ["--jobs", "1"])
    t2, cluster = run(base + ["--scheduler", "local", "--jobs", "2"])
    same = serial == cluster
    print(f"{a.runs} runs: --jobs 1 {t1:.1f} s; LocalCluster of 2 workers {t2:.1f} s; "
          f"JSON {'equal' if same else 'DIFFERENT'} ({len(serial):,} bytes)")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
