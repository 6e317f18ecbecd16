"""What watching a run costs: lrdoctor.Monitor and the Lightning callback beside a small real
model's own step time on this CPU, and the cost of one re-diagnosis as the run grows.

    python benchmarks/callback_overhead.py [--steps 2000] [--every 100]

Prints the model's step time (a 784-256-256-10 MLP, batch 64, Adam, PyTorch on CPU), the
callback's time per step amortized (re-diagnoses included), its share of the step,
``Monitor.update`` per step amortized over the last 2000 steps of runs of 2k, 20k and 200k
steps (flat: a re-diagnosis reads the run's bounded summary, not its points), and the
milliseconds of one re-diagnosis at 1e3..1e6 points.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def model_and_data(torch):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 10))
    x = torch.randn(64, 784)
    y = torch.randint(0, 10, (64,))
    return net, x, y


def step_time(torch, steps: int, monitor=None) -> tuple[float, float]:
    """(seconds per training step, seconds per step inside monitor.update)."""
    net, x, y = model_and_data(torch)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    spent = 0.0
    t0 = time.perf_counter()
    for step in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        if monitor is not None:
            t = time.perf_counter()
            monitor.update(step, loss.item(), opt.param_groups[0]["lr"])
            spent += time.perf_counter() - t
    return (time.perf_counter() - t0) / steps, spent / steps


def lightning_overhead(torch, steps: int, every: int) -> tuple[float, float] | None:
    try:
        import lightning.pytorch as L
    except ImportError:
        return None
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

    cb = LightningCallback(every=every)
    inner = cb.on_train_batch_end
    spent = [0.0]

    def timed(*a, **k):
        t = time.perf_counter()
        inner(*a, **k)
        spent[0] += time.perf_counter() - t

    cb.on_train_batch_end = timed
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(
        x.repeat(steps, 1), y.repeat(steps)), batch_size=64)
    trainer = L.Trainer(max_steps=steps, callbacks=[cb], logger=False, accelerator="cpu",
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    t0 = time.perf_counter()
    trainer.fit(Module(), data)
    return (time.perf_counter() - t0) / steps, spent[0] / steps


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


def _timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--every", type=int, default=100)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    import warnings

    from lrdoctor.callbacks import LrDoctorWarning

    warnings.simplefilter("ignore", LrDoctorWarning)  # the verdicts are not measured here
    from lrdoctor import Monitor

    step_time(torch, 100)  # warm up
    bare, _ = step_time(torch, args.steps)
    watched, upd = step_time(torch, args.steps, Monitor(every=args.every))
    print(f"model step (MLP 784-256-256-10, batch 64, CPU): {bare * 1e6:.0f} us")
    print(f"Monitor.update, every={args.every}, {args.steps} steps: {upd * 1e6:.1f} us/step "
          f"amortized ({upd / bare:.2%} of the step); loop with it {watched * 1e6:.0f} us")
    lt = lightning_overhead(torch, args.steps, args.every)
    if lt is not None:
        print(f"LightningCallback, every={args.every}: {lt[1] * 1e6:.1f} us/step amortized "
              f"({lt[1] / lt[0]:.2%} of Lightning's {lt[0] * 1e6:.0f} us step)")
    mon = Monitor(every=10**9)
    t = time.perf_counter()
    for i in range(100_000):
        mon.update(i, 1.0, 1e-3)
    print(f"Monitor.update alone (no re-diagnosis): "
          f"{(time.perf_counter() - t) / 100_000 * 1e6:.2f} us")
    for n in (2_000, 20_000, 200_000):
        print(f"Monitor.update, every={args.every}, over the last 2000 of {n:>7,} steps: "
              f"{amortized_us(n, args.every):5.1f} us/step amortized", flush=True)
    for n in (1_000, 10_000, 100_000, 1_000_000):
        ms = rediagnosis_ms(n)
        print(f"one re-diagnosis at {n:>9,} points: {ms:7.1f} ms "
              f"(every={args.every}: {ms * 1e3 / args.every:7.1f} us/step amortized)")


if __name__ == "__main__":
    main()
