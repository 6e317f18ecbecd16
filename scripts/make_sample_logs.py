"""Write sample_logs/: real training runs of a small MLP with Adam at several learning rates.

The model is a 2-layer tanh MLP classifier (numpy, written out in full: forward pass, softmax
cross-entropy, backward pass, and Adam exactly as in Kingma & Ba with bias correction) on a
synthetic 10-class problem of Gaussian clusters in 20 dimensions. No loss value is edited:
each file is what that run logged, one row per optimizer step, like a CSV logger.

usage: python scripts/make_sample_logs.py [OUT_DIR]      (default: sample_logs)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

RUNS = {
    # name: (peak LR, schedule, steps)
    "healthy_lr1e-3.csv": (1e-3, "constant", 1500),
    "healthy_warmup_cosine_lr3e-3.csv": (3e-3, "warmup_cosine", 1500),
    "too_low_lr1e-6.csv": (1e-6, "constant", 1500),
    "slow_lr3e-5.csv": (3e-5, "constant", 1500),
    "oscillation_lr1e-1.csv": (1e-1, "constant", 1500),
    "divergence_lr1.csv": (1.0, "constant", 1500),
    "nan_lr5.csv": (5.0, "constant", 1500),
}


def make_data(rng, n=4000, d=20, k=10):
    centers = rng.normal(0, 1.0, (k, d))
    y = rng.integers(0, k, n)
    x = centers[y] + rng.normal(0, 1.6, (n, d))
    return x, y


def init(rng, d, h, k):
    return {"w1": rng.normal(0, 1 / np.sqrt(d), (d, h)), "b1": np.zeros(h),
            "w2": rng.normal(0, 1 / np.sqrt(h), (h, k)), "b2": np.zeros(k)}


def loss_and_grad(p, x, y):
    with np.errstate(all="ignore"):  # a diverging run overflows; that is what it logs
        a = np.tanh(x @ p["w1"] + p["b1"])
        z = a @ p["w2"] + p["b2"]
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        prob = e / e.sum(axis=1, keepdims=True)
        n = len(y)
        loss = float(-np.mean(np.log(prob[np.arange(n), y])))
        g = prob
        g[np.arange(n), y] -= 1
        g /= n
        grads = {"w2": a.T @ g, "b2": g.sum(0)}
        da = (g @ p["w2"].T) * (1 - a * a)
        grads["w1"] = x.T @ da
        grads["b1"] = da.sum(0)
    return loss, grads


def lr_at(step, peak, schedule, total):
    if schedule == "constant":
        return peak
    warm = max(1, int(0.05 * total))
    if step < warm:
        return peak * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return peak * 0.5 * (1 + np.cos(np.pi * t))


def train(peak, schedule, steps, seed=0, batch=64):
    rng = np.random.default_rng(seed)
    x, y = make_data(rng)
    xv, yv = x[-500:], y[-500:]
    x, y = x[:-500], y[:-500]
    p = init(rng, x.shape[1], 64, 10)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(w) for k, w in p.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    rows = []
    for t in range(steps):
        idx = rng.integers(0, len(x), batch)
        loss, g = loss_and_grad(p, x[idx], y[idx])
        lr = lr_at(t, peak, schedule, steps)
        val = ""
        if t % 50 == 0 or t == steps - 1:
            val = f"{loss_and_grad(p, xv, yv)[0]:.6g}"
        rows.append(f"{t},{loss:.6g},{lr:.6g},{val}")
        with np.errstate(all="ignore"):
            for k in p:
                m[k] = b1 * m[k] + (1 - b1) * g[k]
                v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
                mh, vh = m[k] / (1 - b1 ** (t + 1)), v[k] / (1 - b2 ** (t + 1))
                p[k] = p[k] - lr * mh / (np.sqrt(vh) + eps)
        if not np.isfinite(loss) and len(rows) > 20 and not np.isfinite(
                float(rows[-20].split(",")[1])):
            break  # like a real script: stop 20 steps after the loss went non-finite
    return "step,loss,lr,val_loss\n" + "\n".join(rows) + "\n"


def main(out="sample_logs"):
    out = Path(out)
    out.mkdir(exist_ok=True)
    for name, (peak, schedule, steps) in RUNS.items():
        (out / name).write_text(train(peak, schedule, steps))
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main(*sys.argv[1:])
