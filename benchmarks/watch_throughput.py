"""Throughput of ``lrdoctor watch``: a writer process appends a log at a fixed rate while a
:class:`lrdoctor.watch.Watcher` in this process follows it (reading only the new bytes and
re-diagnosing the whole history at every poll).

``--format csv`` (default) writes ``step,loss,lr`` rows; ``--format text`` writes console
lines (``step 123 | loss 2.31000 | lr 1.000e-03 | 12.3ms``, read by the generic text
reader), with an evaluation line every 5,000 steps.

Printed: lines/s written and read, the lag (rows written but not yet read) at every tenth of
the run, peak RSS (``resource.getrusage``) at the start and the end, the CPU time of this
process (the watcher) and how long a NaN appended at the end took to be reported (the
target: within 2 intervals).

usage: python benchmarks/watch_throughput.py [--seconds 60] [--rate 100000] [--interval 2]
       [--format csv|text]
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WRITER = r"""
import sys, time, math
path, rate, seconds, fmt = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
tick = 0.01
per_tick = max(1, int(rate * tick))
if fmt == "text":
    def line(k, loss):
        ev = f"eval at step {k}: val_loss {loss + 0.1:.4f}\n" if k % 5000 == 4999 else ""
        return f"step {k} | loss {loss:.5f} | lr 1.000e-03 | {10 + k % 7}.{k % 10}ms\n" + ev
else:
    def line(k, loss):
        return f"{k},{loss:.5f},0.001\n"
with open(path, "a", buffering=1 << 20) as fh:
    t0 = time.monotonic(); s = 0
    while time.monotonic() - t0 < seconds:
        fh.write("".join(line(k, 2.5 * math.exp(-k / 3e6) + 0.1)
                         for k in range(s, s + per_tick)))
        fh.flush()
        s += per_tick
        lag = t0 + s / rate - time.monotonic()
        if lag > 0:
            time.sleep(lag)
    fh.write(line(s, float("nan")))
    fh.flush()
    print(s, time.time(), flush=True)   # rows written, when the NaN was written
"""


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def watch_until_nan(w, *, seconds: float, interval: float, rate: float, t0: float,
                    polled, progress) -> float | None:
    """Run Watcher ``w`` until it reports the non-finite loss the writer ends with (or it
    times out): ``polled()`` after every poll (to take the follower's counts), and every
    tenth of the writing time a line of ``progress(written)`` with the peak RSS. Returns
    when the NaN was seen (``time.time()``), or None. Shared by watch_tensorboard.py."""
    report = seconds / 10
    for batch in w.run(timeout=seconds + 10 * interval + 30):
        polled()
        if any(e.get("finding", {}).get("kind") == "nonfinite" for e in batch):
            return time.time()
        elapsed = time.monotonic() - t0
        if report <= elapsed <= seconds:
            print(f"t={elapsed:5.1f}s  {progress(int(elapsed * rate))}  peak RSS "
                  f"{peak_rss_mib():.0f} MiB", flush=True)
            report += seconds / 10
    return None


def print_nan_delay(nan_seen: float | None, nan_written: float, interval: float) -> None:
    if nan_seen is not None:
        late = nan_seen - nan_written
        print(f"NaN reported {late:.2f} s after it was written ({late / interval:.2f} "
              f"intervals of {interval:g} s)")
    else:
        print("NaN NOT reported")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=int, default=100_000, help="lines per second written")
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--format", choices=("csv", "text"), default="csv")
    args = ap.parse_args()
    from lrdoctor.watch import Watcher

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / ("train.csv" if args.format == "csv" else "train.log")
        log.write_text("step,loss,lr\n" if args.format == "csv" else
                       "Loading model ... done\nconfig: lr=0.001 batch_size=64\n")
        print(f"peak RSS at start: {peak_rss_mib():.0f} MiB")
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(args.rate),
                                   str(args.seconds), args.format], stdout=subprocess.PIPE,
                                  text=True)
        t0 = time.monotonic()
        cpu0 = time.process_time()
        read_rows = 0

        def polled():
            nonlocal read_rows
            src = w._sources.get(str(log))
            if src is not None and src.follower is not None:
                read_rows = src.follower.rows

        with Watcher([str(log)], interval=args.interval) as w:
            nan_seen = watch_until_nan(
                w, seconds=args.seconds, interval=args.interval, rate=args.rate, t0=t0,
                polled=polled, progress=lambda written: (
                    f"read {read_rows:>10,} rows  lag ~{max(0, written - read_rows):>9,} rows"))
            rows_written, nan_time = writer.communicate(timeout=60)[0].split()
        elapsed = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        rows_written = int(rows_written)
        print(f"written: {rows_written:,} rows in {args.seconds:g} s "
              f"({rows_written / args.seconds:,.0f} lines/s)")
        print(f"read:    {read_rows:,} rows, {read_rows / min(elapsed, args.seconds):,.0f} "
              f"lines/s over the writing time")
        print_nan_delay(nan_seen, float(nan_time), args.interval)
        print(f"watcher CPU time: {cpu:.1f} s over {elapsed:.1f} s "
              f"({read_rows / max(cpu, 1e-9):,.0f} lines per CPU second)")
        print(f"peak RSS at end: {peak_rss_mib():.0f} MiB "
              f"(file {os.path.getsize(log) / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
