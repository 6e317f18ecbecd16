"""Speed of lrdoctor on long logs, against pyarrow reading the same file in the same run.

For each size it writes a CSV (step,loss,lr,val_loss) of a realistic noisy curve, then prints:
- end-to-end wall time of ``lrdoctor analyze FILE --format json`` (a fresh process),
- the time pyarrow alone takes to read the same file (same columns, same process kind),
- their ratio (target <= 1.5 at 1e7 steps),
- detector throughput in points/s (target >= 5e7), detection only, data already in memory,
- peak memory of the analyze process against the size of the loaded columns (target <= 4x).
Also the start-to-exit time of a 1e4-step log (target < 1 s), and for the 1e6-step log the
time of ``analyze --plot out.png`` (figure target < 2 s).

usage: python benchmarks/speed.py [SIZES...]     (default: 1e4 1e5 1e6 1e7)
"""
from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPEATS = 6


def write_log(path: Path, n: int, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    t = np.arange(n) / n
    loss = (0.2 + 2.1 * np.exp(-30 * t)) * np.exp(rng.normal(0, 0.1, n))
    loss[rng.integers(0, n, max(1, n // 100_000))] *= 30  # a few real spikes
    val = np.full(n, np.nan)
    val[::1000] = loss[::1000] * 1.1
    tbl = pa.table({"step": np.arange(n), "loss": loss.round(6),
                    "lr": np.full(n, 1e-3), "val_loss": pa.array(val, from_pandas=True)})
    pacsv.write_csv(tbl, path)


def timed_child(code_or_cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(code_or_cmd, check=False, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(after, before) / 1024


def main(sizes: list[int]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lrdoctor-speed-"))
    arrow_code = ("import sys, pyarrow as pa, pyarrow.csv as c; c.read_csv(sys.argv[1], "
                  "convert_options=c.ConvertOptions(include_columns=['step','loss','lr',"
                  "'val_loss'], column_types={k: pa.float64() for k in "
                  "['step','loss','lr','val_loss']}, null_values=['']))")
    print(f"{'steps':>10} {'analyze s':>10} {'pyarrow s':>10} {'ratio':>6} {'median':>7} "
          f"{'detect pts/s':>13} {'peak MiB':>9} {'cols MiB':>9} {'mem x':>6}")
    for n in sizes:
        path = tmp / f"run_{n}.csv"
        write_log(path, n)
        # each measured in its own fresh process; pyarrow and lrdoctor alternate, best of
        # REPEATS (this machine is a VM whose first touch of fresh memory costs a varying
        # amount of system time, so single runs scatter by +-50%: the medians are printed too)
        walls, arrows, peaks = [], [], []
        analyze_cmd = [sys.executable, "-m", "lrdoctor", "analyze", str(path), "--format",
                       "json"]
        arrow_cmd = [sys.executable, "-c", arrow_code, str(path)]
        for k in range(REPEATS):
            # alternate which goes first: a process here runs faster on memory the previous
            # one just freed, which would otherwise always favour the second of the pair
            order = (0, 1) if k % 2 == 0 else (1, 0)
            for which in order:
                if which == 0:
                    w, peak = timed_child(analyze_cmd)
                    walls.append(w)
                    peaks.append(peak)
                else:
                    arrows.append(timed_child(arrow_cmd)[0])
        from lrdoctor.readers import read
        from lrdoctor.diagnosis import diagnose_history

        [h] = read(path)
        diagnose_history(h)  # warm-up: lazy imports
        t0 = time.perf_counter()
        diagnose_history(h)
        det = time.perf_counter() - t0
        cols_mib = 4 * 8 * n / 2**20
        # peak RSS of a child is cumulative across children: report the analyze runs' max
        print(f"{n:>10.0e} {min(walls):>10.3f} {min(arrows):>10.3f} "
              f"{min(walls) / min(arrows):>6.2f} "
              f"{np.median(walls) / np.median(arrows):>7.2f} {n / det:>13.3g} {max(peaks):>9.0f} "
              f"{cols_mib:>9.0f} {max(peaks) / max(cols_mib, 1):>6.1f}")
        if n == 10**6:  # the figure target of issue 4: a 1e6-step log plots in < 2 s
            png = tmp / "plot.png"
            plot_walls = [timed_child(analyze_cmd[:-2] + ["--plot", str(png)])[0]
                          for _ in range(3)]
            print(f"{'':>10} analyze --plot (1e6 steps, PNG): {min(plot_walls):.2f} s "
                  "(target < 2 s)")
        path.unlink()


if __name__ == "__main__":
    args = [int(float(a)) for a in sys.argv[1:]] or [10**4, 10**5, 10**6, 10**7]
    main(args)
