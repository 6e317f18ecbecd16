"""Throughput of ``lrdoctor watch`` on a TensorBoard event file growing at a high rate: a
writer process appends TFRecords (one ``train/loss`` and one ``lr`` scalar event per step,
as PyTorch's SummaryWriter writes them, CRCs included) while a
:class:`lrdoctor.watch.Watcher` in this process follows the event file's run folder.

Printed: records/s written and read, the lag at every tenth of the run, peak RSS
(``resource.getrusage``) at the start and the end, the CPU time of this process (the
watcher), and how long a NaN loss appended at the end took to be reported, in intervals.

usage: python benchmarks/watch_tensorboard.py [--seconds 30] [--rate 100000] [--interval 2]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from watch_throughput import peak_rss_mib, print_nan_delay, watch_until_nan

WRITER = r"""
import math, struct, sys, time
import numpy as np
from lrdoctor.readers.tensorboard import _CRC, _masked

path, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
tick = 0.01
steps_per_tick = max(1, int(rate * tick) // 2)   # two records (loss, lr) per step


def crc(rows):
    # masked CRC-32C of equal-length byte rows, all rows at once
    c = np.full(len(rows), 0xFFFFFFFF, dtype=np.uint32)
    for k in range(rows.shape[1]):
        c = _CRC[(c ^ rows[:, k]) & np.uint32(0xFF)] ^ (c >> np.uint32(8))
    return _masked(c ^ np.uint32(0xFFFFFFFF))


def records(s0, n, loss_fn, lr):
    # events: wall_time (fixed64), step (a 4-byte varint: steps 2**21..2**28), summary
    steps = np.arange(s0, s0 + n) + (1 << 21)
    out = []
    for tag, vals in ((b"train/loss", np.array([loss_fn(s) for s in range(s0, s0 + n)])),
                      (b"lr", np.full(n, lr))):
        value = b"\x0a" + bytes([len(tag)]) + tag + b"\x15"
        summary = b"\x0a" + bytes([len(value) + 4])
        body_len = 9 + 5 + 2 + len(summary) + len(value) + 4
        ev = np.zeros((n, body_len), dtype=np.uint8)
        ev[:, 0] = 0x09
        ev[:, 1:9] = np.frombuffer(np.full(n, 1.7e9).astype("<f8").tobytes(),
                                   np.uint8).reshape(n, 8)
        ev[:, 9] = 0x10
        for k in range(4):
            ev[:, 10 + k] = ((steps >> (7 * k)) & 0x7F) | (0x80 if k < 3 else 0)
        p = 14
        head = b"\x2a" + bytes([len(summary) + len(value) + 4]) + summary + value
        ev[:, p:p + len(head)] = np.frombuffer(head, np.uint8)
        p += len(head)
        ev[:, p:p + 4] = np.frombuffer(vals.astype("<f4").tobytes(), np.uint8).reshape(n, 4)
        length = np.frombuffer(struct.pack("<Q", body_len), np.uint8)
        rec = np.zeros((n, 12 + body_len + 4), dtype=np.uint8)
        rec[:, :8] = length
        rec[:, 8:12] = np.frombuffer(crc(np.tile(length, (1, 1))).astype("<u4").tobytes(),
                                     np.uint8)
        rec[:, 12:12 + body_len] = ev
        rec[:, 12 + body_len:] = np.frombuffer(crc(ev).astype("<u4").tobytes(),
                                               np.uint8).reshape(n, 4)
        out.append(rec)
    # loss then lr at each step, as a training loop logs them
    return np.stack(out, axis=1).tobytes() if out[0].shape == out[1].shape else \
        b"".join(a.tobytes() + b.tobytes() for a, b in zip(*out))


def loss(k):
    return 2.5 * math.exp(-k / 3e6) + 0.1


with open(path, "ab") as fh:
    t0 = time.monotonic(); s = 0
    while time.monotonic() - t0 < seconds:
        fh.write(records(s, steps_per_tick, loss, 1e-3))
        fh.flush()
        s += steps_per_tick
        lag = t0 + 2 * s / rate - time.monotonic()
        if lag > 0:
            time.sleep(lag)
    fh.write(records(s, 1, lambda k: float("nan"), 1e-3))
    fh.flush()
    print(2 * s + 2, time.time(), flush=True)   # records written, when the NaN was written
"""


def records_read(w, run: Path) -> int | None:
    """Records the watcher's follower has taken (None when it re-reads whole)."""
    src = w._sources.get(str(run))
    follower = getattr(src, "follower", None) if src is not None else None
    return getattr(follower, "records", None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rate", type=int, default=100_000, help="records per second written")
    ap.add_argument("--interval", type=float, default=2.0)
    args = ap.parse_args()
    from lrdoctor.watch import Watcher

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run1"
        run.mkdir()
        log = run / "events.out.tfevents.1700000000.host.1.0"
        log.write_bytes(b"")
        print(f"peak RSS at start: {peak_rss_mib():.0f} MiB")
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(args.rate),
                                   str(args.seconds)], stdout=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        cpu0 = time.process_time()
        polls, points = 0, 0

        def polled():
            nonlocal polls, points
            polls += 1
            d = w.diagnoses_.get(str(run))
            points = d.outline()[0] if d is not None else 0

        with Watcher([str(run)], interval=args.interval) as w:
            nan_seen = watch_until_nan(
                w, seconds=args.seconds, interval=args.interval, rate=args.rate, t0=t0,
                polled=polled, progress=lambda written: (
                    f"{points:>10,} loss points diagnosed  (~{written:,} records written)"))
            written, nan_time = writer.communicate(timeout=120)[0].split()
            taken = records_read(w, run)
        elapsed = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        written = int(written)
        print(f"written: {written:,} records in {args.seconds:g} s "
              f"({written / args.seconds:,.0f} records/s, "
              f"{os.path.getsize(log) / 2**20:.0f} MiB)")
        read = written if nan_seen is not None else 2 * points
        print(f"read:    {read:,} records ({read / elapsed:,.0f} records/s over "
              f"{elapsed:.1f} s; the follower took {taken if taken is not None else 'n/a'}), "
              f"{polls} polls")
        print_nan_delay(nan_seen, float(nan_time), args.interval)
        print(f"watcher CPU time: {cpu:.1f} s over {elapsed:.1f} s "
              f"({cpu / elapsed:.0%} of one core; {read / max(cpu, 1e-9):,.0f} records per "
              "CPU second)")
        print(f"peak RSS at end: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
