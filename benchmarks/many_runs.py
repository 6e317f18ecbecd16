"""Many runs on one machine: ``lrdoctor analyze FOLDER --format json`` over N CSV logs, in
this process (``--jobs 1``) and in a pool (``--jobs J``), ``--format jsonl`` with the pool,
against a loop that only reads the same files with pyarrow (``pyarrow.csv.read_csv`` of
each file, nothing else: the floor for any CSV tool).

The logs (``--data synthetic``, the default) are N runs of ``--steps`` steps each, one
folder, written once and kept (``step,loss,lr`` with a warmup-cosine LR): sweeps of 8 LRs x
2 seeds named ``exp0012_lr0.003_s1.csv``, so the parent also groups and judges N/16 sweeps;
the large LRs blow up part way, the small ones crawl. ``--data sweeps`` copies the
benchmark sweeps of ../shared/benchmarks/lr_sweeps/runs (801 steps) round after round.

Each setting runs ``--repeat`` times in a fresh interpreter; printed: the median wall time
(the machine is shared: single runs are noisy), runs/s, the CPU time of the process and
its workers (less sensitive to the load of others), the peak RSS of the parent (the
process that holds the results: flat in N, the runs wait on disk for their sweeps) and of
the largest worker (``RUSAGE_CHILDREN``), and whether the JSON equals the serial one.

usage: python benchmarks/many_runs.py [--runs 10000] [--steps 2000] [--jobs 2] [--repeat 3]
                                      [--folder /tmp/lrdoctor_many] [--plot]
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "lr_sweeps" / "runs"

# the output goes straight to the pipe, as from a shell: held in this process (a StringIO)
# it would be counted in the peak RSS of the process measured
CHILD = r"""
import resource, sys
from lrdoctor.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
sys.stderr.write(f"\nRSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} "
                 f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\n")
"""

READ_ONLY = r"""
import resource, sys
from pathlib import Path
import pyarrow.csv as pacsv
n = 0
for f in sorted(Path(sys.argv[1]).rglob("*.csv")):
    n += pacsv.read_csv(f).num_rows
sys.stderr.write(f"\nRSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} 0\n")
print(n)
"""

LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)


def synthetic_logs(folder: Path, n: int, steps: int) -> None:
    """n runs of ``steps`` steps: run k is experiment k // 16 at LR ``LRS[k % 8]``, seed
    (k // 8) % 2; a noisy exponential decay whose pace grows with the LR, the two largest
    LRs blowing up from a random step on. Written with pyarrow (seeded: the same files
    every time)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(steps)
    opts = pacsv.WriteOptions(include_header=False, quoting_style="none")
    for k in range(n):
        rng = np.random.default_rng(k)
        exp, m = divmod(k, 16)
        lr, seed = LRS[m % 8], m // 8
        sched = lr * np.minimum(1, (t + 1) / 100) * 0.5 * (1 + np.cos(np.pi * t / steps))
        loss = 0.3 + 2.0 * np.exp(-min(3 * lr, 0.05) * t) + \
            0.05 * (1 + 10 * lr) * rng.standard_normal(steps)
        if lr >= 0.1:
            start = int(rng.integers(steps // 10, 3 * steps // 4))
            loss[start:] += np.expm1(np.minimum((t[start:] - start) * lr * 0.1, 50))
        with open(folder / f"exp{exp:04d}_lr{lr:g}_s{seed}.csv", "wb") as fh:
            fh.write(b"step,loss,lr\n")
            pacsv.write_csv(pa.table({"step": t, "loss": np.round(loss, 6), "lr": sched}),
                            fh, write_options=opts)


def sweep_copies(folder: Path, n: int) -> None:
    """n CSV logs: the benchmark runs copied round after round into folders copy0, copy1,
    ... (one folder a round, so a round's runs form the sweeps they form in the source)."""
    src = sorted(SOURCE.glob("*.csv"))
    for k in range(n):
        d = folder / f"copy{k // len(src)}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(src[k % len(src)], d / src[k % len(src)].name)


def make_logs(folder: Path, n: int, steps: int, data: str) -> int:
    """The logs, written unless the folder already holds this very set (its stamp)."""
    stamp = folder / ".made"
    want = f"{data} {n} {steps}"
    if not (stamp.exists() and stamp.read_text() == want):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        if data == "synthetic":
            synthetic_logs(folder, n, steps)
        else:
            sweep_copies(folder, n)
        stamp.write_text(want)
    return sum(f.stat().st_size for f in folder.rglob("*.csv"))


def measure(code: str, args: list[str]) -> tuple[float, float, int, int, str]:
    """Wall time, CPU time (user + system, the process and its workers), peak RSS of the
    process and of its largest worker (KiB), stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if "RSS " not in r.stderr:
        raise SystemExit(f"failed: {' '.join(args)}\n{r.stderr[-2000:]}")
    own, children = (int(v) for v in r.stderr.rsplit("RSS ", 1)[1].split()[:2])
    return wall, cpu, own, children, r.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10000)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--data", choices=["synthetic", "sweeps"], default="synthetic")
    p.add_argument("--folder", default="/tmp/lrdoctor_many")
    p.add_argument("--plot", action="store_true", help="also --jobs 1 --plot (histories kept)")
    a = p.parse_args()
    folder = Path(a.folder)
    size = make_logs(folder, a.runs, a.steps, a.data)
    print(f"{a.runs} logs ({a.data}), {size / 2**20:.1f} MiB, in {folder}; median of "
          f"{a.repeat} fresh processes each")
    base = ["analyze", str(folder), "--format"]
    settings = [("pyarrow read_csv only", READ_ONLY, [str(folder)]),
                ("--jobs 1", CHILD, base + ["json", "--jobs", "1"]),
                (f"--jobs {a.jobs}", CHILD, base + ["json", "--jobs", str(a.jobs)]),
                (f"--jobs {a.jobs} jsonl", CHILD, base + ["jsonl", "--jobs", str(a.jobs)]),
                (f"--jobs {a.jobs} text", CHILD, base + ["text", "--jobs", str(a.jobs)])]
    if a.plot:
        settings.append(("--jobs 1 --plot (histories kept)", CHILD,
                         base + ["json", "--jobs", "1", "--plot", "/tmp/lrdoctor_many.png"]))
    serial, walls = None, {}
    for label, code, args in settings:
        got = [measure(code, args) for _ in range(a.repeat)]
        wall = statistics.median(g[0] for g in got)
        cpu = statistics.median(g[1] for g in got)
        own = max(g[2] for g in got)
        children = max(g[3] for g in got)
        out = got[-1][4]
        walls[label] = wall
        if code is READ_ONLY:
            same = f"{int(out)} rows read"
            n = a.runs
        elif args[3] == "json":
            doc = json.loads(out)
            n = len(doc["runs"])
            serial = serial or out
            same = "same JSON as --jobs 1" if out == serial else "JSON DIFFERS from --jobs 1"
        elif args[3] == "jsonl":
            n = sum("verdict" in json.loads(line) for line in out.splitlines())
            same = f"{n} run lines"
        else:  # the text report ends with "N runs: ..."
            n = int(out.rstrip().rsplit("\n", 1)[-1].split()[0])
            same = f"{n} runs in the summary"
        worker = f"  largest worker {children / 1024:5.0f} MiB" if children else ""
        print(f"{label:<34} {wall:6.2f} s  {n / wall:7.0f} runs/s  "
              f"({1e3 * wall / n:5.2f} ms/run, CPU {cpu:6.2f} s)  "
              f"peak RSS {own / 1024:5.0f} MiB{worker}  "
              f"{same}", flush=True)
    print(f"--jobs {a.jobs} speed-up over --jobs 1: "
          f"{walls['--jobs 1'] / walls[f'--jobs {a.jobs}']:.2f}x")


if __name__ == "__main__":
    main()
