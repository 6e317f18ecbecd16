"""What watching a run costs: lrdoctor.Monitor in a hand-written loop and the Lightning,
Hugging Face Trainer and Keras callbacks, each beside a small real model's own step time on
this CPU, and the cost of one re-diagnosis as the run grows.

    python benchmarks/callback_overhead.py [--steps 2000] [--every N] [--repeats 5]
                                           [--only plain,lightning,hf,keras,isolated]

For each way of training, runs without and with the callback alternate (``--repeats`` pairs,
so a busy machine slows both alike) and the medians are printed: the model's step time
without the callback, the callback's own time per step amortized (timed inside it,
re-diagnoses and the diagnosis at the end of training included, less the timer's own cost)
and its share of the step, the step time with it, and the median over the pairs of the
step time's difference with/without, with its quartiles (on a shared 2-core machine the
pairs spread by tens of us: read the quartiles before the median). Models: a
784-256-256-10 MLP (batch 64, Adam, PyTorch on CPU, one thread) in a plain loop and in
Lightning; a 2-layer GPT-2 built from a config (no download; 64 embeddings, sequences of
32, batch 8) in the Trainer; the same MLP in Keras (JAX backend, ``verbose=0``: JAX runs a
step asynchronously and Keras lets it run ahead while its worker threads wait for each
batch's loss; a callback that Keras must call on the training thread makes training wait
for each loss too, a cost outside the callback's own time that only the step difference
shows; the Keras callback is called on the worker threads, so its own time there is
counted as CPU time, ``time.thread_time``). Then, isolated:
``Monitor.update`` alone, amortized over the last 2000 steps of runs of 2k, 20k and 200k
steps (flat: a re-diagnosis reads the run's bounded summary, not its points), and the
milliseconds of one re-diagnosis at 1e3..1e6 points.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")


def _timed_method(obj, names, spent, clock=time.perf_counter):
    """Wrap ``obj``'s methods so the time spent in them (by ``clock``) adds to
    ``spent[0]``, less what the clock itself adds to a measurement, measured at each call
    in the same conditions (two readings in a row: 0.04 us for ``time.perf_counter``, about
    0.4 us for ``time.thread_time``, a system call here, and twice that while a model
    trains beside it)."""
    for name in names:
        inner = getattr(obj, name)

        def timed(*a, _inner=inner, **k):
            t0 = clock()
            t1 = clock()
            try:
                return _inner(*a, **k)
            finally:
                spent[0] += clock() - t1 - (t1 - t0)

        setattr(obj, name, timed)


def _callbacks(watch: bool, make, methods, clock=time.perf_counter) -> tuple[list, list]:
    """([the callback] or [], the seconds spent in its ``methods``, as a 1-list)."""
    spent = [0.0]
    if not watch:
        return [], spent
    cb = make()
    _timed_method(cb, methods, spent, clock)
    return [cb], spent


def _pairs(run, repeats: int) -> dict:
    """Alternate runs without and with the callback; medians of each figure."""
    bare, watched, cost = [], [], []
    for _ in range(repeats):
        b, _ = run(False)
        w, c = run(True)
        bare.append(b)
        watched.append(w)
        cost.append(c)
    diff = [w - b for w, b in zip(watched, bare)]
    return {"bare": statistics.median(bare), "watched": statistics.median(watched),
            "cost": statistics.median(cost), "cost_all": cost, "bare_all": bare,
            "diff": statistics.median(diff), "diff_q": np.percentile(diff, [25, 75])}


def _say(name: str, r: dict, every: int | None) -> None:
    spread = ", ".join(f"{c * 1e6:.1f}" for c in r["cost_all"])
    q1, q3 = r["diff_q"] * 1e6
    cadence = "default (250, paced)" if every is None else every
    print(f"{name}: model step {r['bare'] * 1e6:.0f} us (with the callback "
          f"{r['watched'] * 1e6:.0f} us); callback, every={cadence}: {r['cost'] * 1e6:.1f} "
          f"us/step amortized = {r['cost'] / r['bare']:.2%} of the step "
          f"(repeats: {spread} us); step difference with/without, median of pairs "
          f"{r['diff'] * 1e6:+.1f} us = {r['diff'] / r['bare']:+.2%} "
          f"(quartiles {q1:+.1f}..{q3:+.1f} us)", flush=True)


# ------------------------------------------------------------------------------ torch MLP
def model_and_data(torch):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 10))
    x = torch.randn(64, 784)
    y = torch.randint(0, 10, (64,))
    return net, x, y


def plain_run(torch, steps: int, every: int, watch: bool) -> tuple[float, float]:
    """(seconds per training step, seconds per step inside the monitor): the loop logs a
    float loss every step either way, as any loop that prints or logs it does."""
    from lrdoctor import Monitor

    net, x, y = model_and_data(torch)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    mon = Monitor(every=every) if watch else None
    spent = [0.0]
    t0 = time.perf_counter()
    for step in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        value = loss.item()
        if mon is not None:
            t = time.perf_counter()
            mon.update(step, value, opt.param_groups[0]["lr"])
            spent[0] += time.perf_counter() - t
    if mon is not None:  # the diagnosis at the end, as the callbacks make
        t = time.perf_counter()
        mon.diagnosis()
        spent[0] += time.perf_counter() - t
    return (time.perf_counter() - t0) / steps, spent[0] / steps


def lightning_run(torch, steps: int, every: int, watch: bool) -> tuple[float, float]:
    import lightning.pytorch as L

    from lrdoctor.callbacks import LightningCallback

    net, x, y = model_and_data(torch)

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = net

        def training_step(self, batch, i):
            return torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    cbs, spent = _callbacks(watch, lambda: LightningCallback(every=every),
                            ["on_train_batch_end", "on_train_end"])
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(
        x.repeat(steps, 1), y.repeat(steps)), batch_size=64)
    trainer = L.Trainer(max_steps=steps, callbacks=cbs, logger=False, accelerator="cpu",
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    t0 = time.perf_counter()
    trainer.fit(Module(), data)
    return (time.perf_counter() - t0) / steps, spent[0] / steps


def hf_run(torch, steps: int, every: int, watch: bool) -> tuple[float, float]:
    import tempfile

    import transformers

    from lrdoctor.callbacks import HFCallback

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=256, n_positions=32, n_embd=64, n_layer=2,
                                     n_head=4)
    model = transformers.GPT2LMHeadModel(config)
    rng = np.random.default_rng(0)
    seqs = [torch.tensor(rng.integers(0, 256, 32)) for _ in range(8 * steps)]
    data = [{"input_ids": s, "labels": s} for s in seqs]
    # the loss hook runs inside the model's forward; on_optimizer_step records the point
    cbs, spent = _callbacks(watch, lambda: HFCallback(every=every),
                            ["_keep_loss", "on_optimizer_step", "on_log", "on_train_end"])
    with tempfile.TemporaryDirectory() as out:
        args = transformers.TrainingArguments(
            output_dir=out, max_steps=steps, per_device_train_batch_size=8,
            learning_rate=1e-3, lr_scheduler_type="constant", logging_steps=50,
            report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True)
        trainer = transformers.Trainer(model=model, args=args, train_dataset=data,
                                       callbacks=cbs)
        trainer.remove_callback(transformers.PrinterCallback)  # no log lines on stdout
        t0 = time.perf_counter()
        trainer.train()
        took = time.perf_counter() - t0
    return took / steps, spent[0] / steps


def keras_run(steps: int, every: int, watch: bool) -> tuple[float, float]:
    import keras as K

    from lrdoctor.callbacks import KerasCallback

    K.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64 * steps, 784)).astype(np.float32)
    y = rng.integers(0, 10, 64 * steps)
    model = K.Sequential([K.Input((784,)), K.layers.Dense(256, activation="relu"),
                          K.layers.Dense(256, activation="relu"), K.layers.Dense(10)])
    model.compile(optimizer=K.optimizers.Adam(1e-3),
                  loss=K.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:640], y[:640], batch_size=64, epochs=1, verbose=0)  # compile outside
    # the batch's end runs on Keras' worker threads (its asynchronous dispatch): there the
    # wall time in a call holds waits for the interpreter lock, so CPU time is counted
    cbs, spent = _callbacks(watch, lambda: KerasCallback(every=every),
                            ["on_train_batch_begin", "on_train_batch_end", "on_epoch_end",
                             "on_train_end"], clock=time.thread_time)
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=cbs)
    return (time.perf_counter() - t0) / steps, spent[0] / steps


# ------------------------------------------------------------------------------ isolated
def _loss(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return 2.3 * np.exp(-3 * np.arange(n) / n) + 0.05 * rng.standard_normal(n) + 0.1


def rediagnosis_ms(n: int, repeat: int = 7) -> float:
    """One more point and a re-diagnosis at n points (median of ``repeat``)."""
    from lrdoctor import Monitor

    loss = _loss(n)
    mon = Monitor(every=10**9)
    for i in range(n):
        mon.update(i, loss[i], 1e-3)
    mon.diagnosis()
    times = []
    for r in range(repeat):
        t = time.perf_counter()
        mon.update(n + r, loss[-1], 1e-3)
        mon.diagnosis()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def amortized_us(n: int, every: int, last: int = 2000) -> float:
    """Monitor.update per step, re-diagnoses included, over the last ``last`` steps of a run
    of ``n`` steps."""
    from lrdoctor import Monitor

    loss = _loss(n)
    mon = Monitor(every=every)
    for i in range(n - last):
        mon.update(i, loss[i], 1e-3)
    t = time.perf_counter()
    for i in range(n - last, n):
        mon.update(i, loss[i], 1e-3)
    return (time.perf_counter() - t) / last * 1e6


def isolated(every: int, repeats: int) -> None:
    from lrdoctor import Monitor

    mon = Monitor(every=10**9)
    t = time.perf_counter()
    for i in range(100_000):
        mon.update(i, 1.0, 1e-3)
    print(f"Monitor.update alone (no re-diagnosis): "
          f"{(time.perf_counter() - t) / 100_000 * 1e6:.2f} us")
    for n in (2_000, 20_000, 200_000):
        us = statistics.median(amortized_us(n, every) for _ in range(repeats))
        print(f"Monitor.update, every={every}, over the last 2000 of {n:>7,} steps: "
              f"{us:5.1f} us/step amortized (median of {repeats})", flush=True)
    for n in (1_000, 10_000, 100_000, 1_000_000):
        ms = rediagnosis_ms(n)
        print(f"one re-diagnosis at {n:>9,} points: {ms:7.2f} ms "
              f"(every={every}: {ms * 1e3 / every:7.1f} us/step amortized)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--every", type=int, default=None,
                    help="re-diagnose every this many steps (default: the Monitor's own "
                         "cadence, 250 steps or paced)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", default="plain,lightning,hf,keras,isolated")
    args = ap.parse_args()
    only = set(args.only.split(","))
    import torch

    torch.set_num_threads(1)
    from lrdoctor.callbacks import LrDoctorWarning

    warnings.simplefilter("ignore")  # the verdicts (and the frameworks' chatter) are not
    warnings.simplefilter("ignore", LrDoctorWarning)  # measured here
    import logging

    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
          f"{args.repeats} alternating pairs of runs without/with the callback, medians")
    if "plain" in only:
        plain_run(torch, 100, args.every, True)  # warm up
        _say(f"plain loop, MLP 784-256-256-10, batch 64 ({args.steps} steps)",
             _pairs(lambda w: plain_run(torch, args.steps, args.every, w), args.repeats),
             args.every)
    if "lightning" in only:
        try:
            import lightning.pytorch  # noqa: F401
        except ImportError:
            print("Lightning: not installed (pip install lrdoctor[lightning])")
        else:
            _say(f"Lightning, same MLP ({args.steps} steps)",
                 _pairs(lambda w: lightning_run(torch, args.steps, args.every, w),
                        args.repeats), args.every)
    if "hf" in only:
        try:
            import transformers  # noqa: F401
        except ImportError:
            print("HF Trainer: not installed (pip install lrdoctor[hf])")
        else:
            n = max((args.every or 250) * 3, args.steps // 4)
            _say(f"HF Trainer, GPT-2 2x64 from a config, batch 8 x 32 tokens ({n} steps)",
                 _pairs(lambda w: hf_run(torch, n, args.every, w), max(1, args.repeats // 2)),
                 args.every)
    if "keras" in only:
        try:
            import keras  # noqa: F401
        except ImportError:
            print("Keras: not installed (pip install lrdoctor[keras])")
        else:
            _say(f"Keras ({keras.backend.backend()}), same MLP ({args.steps} steps)",
                 _pairs(lambda w: keras_run(args.steps, args.every, w),
                        args.repeats), args.every)
    if "isolated" in only:
        isolated(args.every or 250, 3)  # unpaced: the cost of every=250 itself


if __name__ == "__main__":
    main()
