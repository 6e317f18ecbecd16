"""Many runs on one machine: ``lrdoctor analyze FOLDER --format json`` over N small CSV logs
(copies of the benchmark sweeps in ../shared/benchmarks/lr_sweeps/runs, renamed so that
they stay separate sweeps), in this process (``--jobs 1``) and in a pool (``--jobs J``),
and ``--format jsonl`` with the pool.

Printed per setting: wall time, runs/s, and the peak RSS of the parent process (the one
that holds the results; each command runs in a fresh interpreter that reports its own
``resource.getrusage(RUSAGE_SELF).ru_maxrss``), and whether the JSON equals the serial one.

usage: python benchmarks/many_runs.py [--runs 2000] [--jobs 2] [--folder /tmp/lrdoctor_many]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "lr_sweeps" / "runs"

CHILD = r"""
import contextlib, io, resource, sys
from lrdoctor.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(sys.argv[1:])
sys.stderr.write(f"\nRSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\n")
sys.stdout.write(out.getvalue())
"""


def make_logs(folder: Path, n: int) -> int:
    """n CSV logs: the benchmark runs copied round after round into folders copy0, copy1,
    ... (one folder a round, so a round's runs form the sweeps they form in the source)."""
    if folder.exists():
        shutil.rmtree(folder)
    src = sorted(SOURCE.glob("*.csv"))
    for k in range(n):
        d = folder / f"copy{k // len(src)}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(src[k % len(src)], d / src[k % len(src)].name)
    return sum(f.stat().st_size for f in folder.rglob("*.csv"))


def measure(args: list[str]) -> tuple[float, int, str]:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t
    rss = int(r.stderr.rsplit("RSS ", 1)[1].split()[0])
    return wall, rss, r.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--folder", default="/tmp/lrdoctor_many")
    a = p.parse_args()
    size = make_logs(Path(a.folder), a.runs)
    print(f"{a.runs} logs, {size / 2**20:.1f} MiB, in {a.folder}")
    base = ["analyze", a.folder, "--format"]
    serial = None
    for label, args in [("--jobs 1", base + ["json", "--jobs", "1"]),
                        (f"--jobs {a.jobs}", base + ["json", "--jobs", str(a.jobs)]),
                        (f"--jobs {a.jobs} jsonl", base + ["jsonl", "--jobs", str(a.jobs)]),
                        ("--jobs 1 --plot (histories kept)",
                         base + ["json", "--jobs", "1", "--plot", "/tmp/lrdoctor_many.png"])]:
        wall, rss, out = measure(args)
        if args[3] == "json":
            doc = json.loads(out)
            n = len(doc["runs"])
            serial = serial or out
            same = "same JSON as --jobs 1" if out == serial else "JSON DIFFERS from --jobs 1"
        else:
            n = sum('"verdict"' in line for line in out.splitlines())
            same = f"{n} run lines"
        print(f"{label:<34} {wall:6.2f} s  {n / wall:7.0f} runs/s  peak RSS {rss / 1024:6.0f} "
              f"MiB  {same}")


if __name__ == "__main__":
    main()
