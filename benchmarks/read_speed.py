"""Reading speed of lrdoctor's TensorBoard and trainer_state.json readers, side by side with
the best existing Python readers of those formats, in one run.

- TensorBoard: a 1e6-step event file (train/loss, lr every step; val/loss every 1000) written
  with TensorBoard's own event writer; read by lrdoctor, by tbparse (``SummaryReader``), and
  by TensorBoard's ``EventFileLoader`` collecting the scalars into arrays.
- Hugging Face: a ``trainer_state.json`` with 1e6 training entries (and eval entries every
  1000 steps); read by lrdoctor and by plain ``json`` + ``pandas.DataFrame(log_history)``.
- JSON lines: a 1e6-line Detectron2-style ``metrics.json`` (an eval line every 1000 steps);
  read by lrdoctor and by ``pandas.read_json(lines=True)``.
- W&B: a 1e6-row run file (``run-<id>.wandb``) in the layout wandb 0.31 writes (written by
  the test suite's ``tests/logs.py:wandb_write``: the run record, a summary and a history
  record per row, in 32 KiB blocks). wandb itself no longer ships a reader for these files,
  so the baseline is lrdoctor's own general record-by-record decoder (one run, it is slow).

- Console text: a 1e6-line mmengine-like log (``Epoch(train) [e][i/1000]  lr: ...  loss:
  ...``) and a 1e6-line Hugging Face console log (``{'loss': ..., 'grad_norm': ...}``), read
  by the generic text reader (lines per second are printed too); there is no baseline. These
  are timed as a user runs them, ``lrdoctor analyze LOG`` in a fresh process (Python start,
  imports, reading and the diagnosis), best and median of 5: the target is under 3 s.

Each reader runs in a fresh process (imports included, as a user would see them), best of 3.
tbparse and tensorboard are optional: missing ones are reported, not measured.

usage: python benchmarks/read_speed.py [STEPS]     (default 1e6)
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPEATS = 3


def write_tensorboard(folder: Path, n: int) -> Path:
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    rng = np.random.default_rng(0)
    loss = (0.2 + 2.1 * np.exp(-30 * np.arange(n) / n)) * np.exp(rng.normal(0, 0.1, n))
    w = EventFileWriter(str(folder), max_queue_size=10000, flush_secs=3600)
    Value, Summary = summary_pb2.Summary.Value, summary_pb2.Summary
    for s in range(n):
        vals = [Value(tag="train/loss", simple_value=float(loss[s])),
                Value(tag="lr", simple_value=1e-3)]
        for v in vals:  # one value per event, as PyTorch's SummaryWriter writes them
            w.add_event(Event(step=s, wall_time=1.7e9 + s, summary=Summary(value=[v])))
        if s % 1000 == 0:
            w.add_event(Event(step=s, wall_time=1.7e9 + s, summary=Summary(
                value=[Value(tag="val/loss", simple_value=float(loss[s]) * 1.1)])))
    w.close()
    return next(folder.glob("events.out.tfevents.*"))


def write_trainer_state(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    loss = (0.2 + 2.1 * np.exp(-30 * np.arange(n) / n)) * np.exp(rng.normal(0, 0.1, n))
    hist = []
    for s in range(1, n + 1):
        hist.append({"epoch": round(s / n * 3, 4), "grad_norm": 1.0,
                     "learning_rate": 1e-4, "loss": round(float(loss[s - 1]), 4), "step": s})
        if s % 1000 == 0:
            hist.append({"epoch": round(s / n * 3, 4), "eval_loss": float(loss[s - 1]),
                         "eval_runtime": 1.0, "step": s})
    path.write_text(json.dumps({"global_step": n, "log_history": hist}, indent=2))


READERS = {
    "lrdoctor": "from lrdoctor.readers import read; [h] = read(sys.argv[1]); "
                "assert len(h.loss) > 0",
    "tbparse": "from tbparse import SummaryReader; df = SummaryReader(sys.argv[1]).scalars; "
               "assert len(df) > 0",
    "tensorboard EventFileLoader":
        "import numpy as np\n"
        "from tensorboard.backend.event_processing.event_file_loader import EventFileLoader\n"
        "out = {}\n"
        "for e in EventFileLoader(sys.argv[1]).Load():\n"
        "    for v in e.summary.value:\n"
        "        out.setdefault(v.tag, []).append((e.step, v.tensor.float_val[0] if "
        "v.tensor.float_val else v.simple_value))\n"
        "arrays = {k: np.asarray(v) for k, v in out.items()}\n"
        "assert arrays",
    "json + pandas": "import json, pandas as pd; doc = json.load(open(sys.argv[1])); "
                     "df = pd.DataFrame(doc['log_history']); assert len(df) > 0",
    "pandas.read_json": "import pandas as pd; df = pd.read_json(sys.argv[1], lines=True); "
                        "assert len(df) > 0",
    "record by record": "from pathlib import Path\n"
                        "from lrdoctor.readers.wandb import _general_series\n"
                        "assert _general_series(Path(sys.argv[1]).read_bytes())[0]",
}


def write_jsonl(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    loss = (0.2 + 2.1 * np.exp(-30 * np.arange(n) / n)) * np.exp(rng.normal(0, 0.1, n))
    with open(path, "w") as f:
        for s in range(n):
            f.write(json.dumps({"iteration": s, "total_loss": round(float(loss[s]), 6),
                                "lr": 1e-3, "data_time": 0.01, "loss_cls": 0.1}) + "\n")
            if s % 1000 == 999:
                f.write(json.dumps({"iteration": s, "validation_loss": float(loss[s])}) + "\n")


def write_wandb(path: Path, n: int) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from logs import wandb_write

    rng = np.random.default_rng(0)
    loss = (0.2 + 2.1 * np.exp(-30 * np.arange(n) / n)) * np.exp(rng.normal(0, 0.1, n))
    rows = ((s, {"train/loss": repr(float(loss[s])), "lr": "0.0003",
                 "_timestamp": repr(1.7e9 + s / 100), "_runtime": repr(s / 100),
                 **({"val/loss": repr(float(loss[s]) * 1.1)} if s % 1000 == 0 else {})})
            for s in range(n))
    return wandb_write(path, rows, name="bench")


def write_mmengine(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    loss = (0.2 + 2.1 * np.exp(-30 * np.arange(n) / n)) * np.exp(rng.normal(0, 0.1, n))
    with open(path, "w") as f:
        for s in range(n):
            e, i = divmod(s, 1000)
            f.write(f"10/30 22:18:02 - mmengine - INFO - Epoch(train) [{e + 1}][{i + 1:4d}/1000]"
                    f"  lr: 1.9870e-04  eta: 2:46:39  time: 2.8906  data_time: 0.0042  memory: "
                    f"10762  loss: {loss[s]:.4f}  grad_norm: 3.0608\n")


def write_hf_console(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    loss = (0.2 + 2.1 * np.exp(-30 * np.arange(n) / n)) * np.exp(rng.normal(0, 0.1, n))
    with open(path, "w") as f:
        for s in range(n):
            f.write(f"{{'loss': {loss[s]:.4f}, 'grad_norm': {loss[s] * 3:.6f}, "
                    f"'learning_rate': 0.0001, 'epoch': {s / n * 3:.2f}}}\n")


def timed(name: str, path: Path, repeats: int = REPEATS) -> float | None:
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", "import sys\n" + READERS[name], str(path)],
                           capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["failed"])[-1]
            print(f"  {name:<28} not measured: {last[:90]}")
            return None
        best = dt if best is None else min(best, dt)
    return best


def timed_cli(path: Path, repeats: int = 5) -> list[float] | None:
    """Seconds of ``lrdoctor analyze path`` in a fresh process, each run."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "lrdoctor.cli", "analyze", str(path)],
                           capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if r.returncode not in (0, 1):
            last = (r.stderr.strip().splitlines() or ["failed"])[-1]
            print(f"  {'lrdoctor analyze':<28} not measured: {last[:90]}")
            return None
    return times


def main(n: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lrdoctor-read-"))
    print(f"{n:.0e} steps")
    try:
        t0 = time.perf_counter()
        tb = write_tensorboard(tmp, n)
        print(f"TensorBoard event file: {tb.stat().st_size / 2**20:.0f} MiB "
              f"(written in {time.perf_counter() - t0:.0f} s)")
        results = {k: timed(k, tb) for k in ("lrdoctor", "tbparse",
                                             "tensorboard EventFileLoader")}
        report(results)
    except ImportError:
        print("  tensorboard is not installed (pip install tensorboard): skipped")
    hf = tmp / "trainer_state.json"
    write_trainer_state(hf, n)
    print(f"trainer_state.json: {hf.stat().st_size / 2**20:.0f} MiB")
    report({k: timed(k, hf) for k in ("lrdoctor", "json + pandas")})
    jl = tmp / "metrics.json"
    write_jsonl(jl, n)
    print(f"JSON lines: {jl.stat().st_size / 2**20:.0f} MiB")
    report({k: timed(k, jl) for k in ("lrdoctor", "pandas.read_json")})
    wb = write_wandb(tmp / "run-bench.wandb", n)
    print(f"W&B run file: {wb.stat().st_size / 2**20:.0f} MiB")
    report({"lrdoctor": timed("lrdoctor", wb), "record by record": timed("record by record",
                                                                          wb, repeats=1)})
    for label, write, name in (("mmengine-like console log", write_mmengine, "mm.log"),
                               ("Hugging Face console log", write_hf_console, "hf.log")):
        path = tmp / name
        write(path, n)
        print(f"{label}: {path.stat().st_size / 2**20:.0f} MiB, {n:,} lines "
              "(generic text reader)")
        times = timed_cli(path)
        if times is not None:
            best, median = min(times), statistics.median(times)
            print(f"  {'lrdoctor analyze':<28} {best:7.2f} s best, {median:.2f} s median of "
                  f"{len(times)}  ({n / best:,.0f} lines/s)")


def report(results: dict) -> None:
    ours = results.get("lrdoctor")
    for name, t in results.items():
        if t is None:
            continue
        ratio = "" if name == "lrdoctor" or not ours else f"  lrdoctor is {t / ours:.1f}x faster"
        print(f"  {name:<28} {t:7.2f} s{ratio}")


if __name__ == "__main__":
    main(int(float(sys.argv[1])) if len(sys.argv) > 1 else 10**6)
