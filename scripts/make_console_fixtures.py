"""Capture real training-console output of popular tools as test fixtures.

Each fixture is what a user finds in a log file after running a training script with its
stdout and stderr redirected (``python train.py > run.log 2>&1``): the script below runs each
training in a child process whose stdout and stderr go to one file, so progress-bar ``\\r``
redraws, warnings and ANSI colours are kept as the tool really wrote them. Everything is
CPU-only, tiny models built from config in code, synthetic data, nothing downloaded.

Groups (each writes files to ``tests/fixtures/console/``):

* ``hf``: Hugging Face ``transformers.Trainer`` on a 1-layer GPT-2 (n_embd=32, vocab 100):
  ``hf_trainer_tqdm.log`` (healthy run, tqdm bars, eval every 50 steps, final
  ``train_runtime`` dict), ``hf_trainer_explode.log`` (learning_rate=100: loss jumps to ~1e5,
  finite) and ``hf_trainer_nan.log`` / ``hf_trainer_nan_nofilter.log`` (learning_rate=1e5,
  fp32: NaN; with the default ``logging_nan_inf_filter`` and without it).
* ``mmengine``: a real mmengine ``Runner`` (``Runner.from_cfg``) training a small
  ``BaseModel`` classifier; the log file mmengine writes in ``work_dir/<timestamp>/``
  (environment and config dumps included): ``mmengine_epoch.log`` (EpochBasedTrainLoop,
  ``Epoch(train) [1][ 10/100] ...``, with validation) and ``mmengine_iter.log``
  (IterBasedTrainLoop, ``Iter(train) [ 10/500] ...``).
* ``keras``: Keras 3 on the JAX backend: ``keras_jax_nan_verbose1.log`` /
  ``keras_jax_nan_verbose2.log`` (SGD with a huge learning rate: loss goes to inf, then nan)
  and ``keras_jax_reduce_lr_verbose1.log`` / ``keras_jax_reduce_lr_verbose2.log``
  (``ReduceLROnPlateau``: ``learning_rate: ...`` appears in each epoch line).
* ``lightning``: Lightning's progress bar with ``self.log(..., prog_bar=True)``, 3 epochs with
  validation: ``lightning_progress.log`` (TQDM bar) and ``lightning_rich_progress.log`` (the
  Rich bar Lightning picks by default when ``rich`` is installed).

usage: python scripts/make_console_fixtures.py hf|mmengine|keras|lightning|all

Needs (in a venv of its own, not the project's; install torch first so nothing replaces it):
``pip install torch==2.13.0`` then
``pip install transformers accelerate mmengine keras jax lightning``.
Written with transformers 5.24.0, accelerate 1.15.0, mmengine 0.10.7, keras 3.15.1,
jax 0.10.2, lightning 2.6.6, torch 2.13.0+cpu, Python 3.11. The fixtures are committed; the
tests do not need any of these packages.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "console"

# group -> fixture names; each name is one child run (see RUNS)
GROUPS = {
    "hf": ["hf_trainer_tqdm", "hf_trainer_explode", "hf_trainer_nan", "hf_trainer_nan_nofilter"],
    "mmengine": ["mmengine_epoch", "mmengine_iter"],
    "keras": ["keras_jax_nan_verbose1", "keras_jax_nan_verbose2",
              "keras_jax_reduce_lr_verbose1", "keras_jax_reduce_lr_verbose2"],
    "lightning": ["lightning_progress", "lightning_rich_progress"],
}


# --------------------------------------------------------------------------- transformers

def _token_data(n: int, seq_len: int = 32, vocab: int = 100, seed: int = 0):
    """Synthetic token sequences with learnable structure (a noisy ``next = 3*prev+1 mod V``
    chain), so a tiny model's loss falls from ~ln(100)=4.6."""
    import torch

    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        x = [int(torch.randint(vocab, (1,), generator=g))]
        for _ in range(seq_len - 1):
            if float(torch.rand(1, generator=g)) < 0.8:
                x.append((3 * x[-1] + 1) % vocab)
            else:
                x.append(int(torch.randint(vocab, (1,), generator=g)))
        ids = torch.tensor(x)
        rows.append({"input_ids": ids, "labels": ids.clone()})
    return rows


def run_hf(variant: str) -> None:
    """``healthy``: AdamW 1e-3, warmup + linear decay, eval every 50 steps. ``explode``:
    AdamW at learning_rate=100 (loss jumps from 4.6 to ~1e5 and stays there, finite).
    ``nan`` / ``nan_nofilter``: AdamW at learning_rate=1e5 (constant), where fp32 overflows
    to NaN after a few steps; ``nan`` keeps the Trainer's default ``logging_nan_inf_filter``
    (NaN losses are left out of the logged mean, so the log shows ``'loss': '0'`` next to
    ``'grad_norm': 'nan'``), ``nan_nofilter`` turns it off (``'loss': 'nan'``)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    healthy = variant == "healthy"
    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=100, n_positions=32)
    model = GPT2LMHeadModel(config)
    train, evals = _token_data(1600, seed=0), _token_data(64, seed=1)
    args = TrainingArguments(
        output_dir="out", max_steps=150 if healthy else 60, per_device_train_batch_size=16,
        per_device_eval_batch_size=32,
        learning_rate={"healthy": 1e-3, "explode": 100.0}.get(variant, 1e5),
        optim="adamw_torch", lr_scheduler_type="linear" if healthy else "constant",
        warmup_steps=10 if healthy else 0, logging_steps=5,
        logging_nan_inf_filter=variant != "nan_nofilter",
        eval_strategy="steps" if healthy else "no", eval_steps=50,
        save_strategy="no", report_to="none", disable_tqdm=False, seed=0, use_cpu=True,
        dataloader_num_workers=0, fp16=False, bf16=False)
    trainer = Trainer(model=model, args=args, train_dataset=train,
                      eval_dataset=evals if healthy else None)
    trainer.train()


# --------------------------------------------------------------------------- mmengine

def run_mmengine(by_epoch: bool) -> None:
    import torch
    from mmengine.config import Config
    from mmengine.evaluator import BaseMetric
    from mmengine.model import BaseModel
    from mmengine.registry import DATASETS, METRICS, MODELS
    from mmengine.runner import Runner
    from torch import nn
    from torch.utils.data import Dataset

    @MODELS.register_module()
    class TinyClassifier(BaseModel):
        def __init__(self, in_dim: int = 20, hidden: int = 32, num_classes: int = 2):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(),
                                     nn.Linear(hidden, num_classes))

        def forward(self, inputs, labels=None, mode="tensor"):
            logits = self.net(inputs)
            if mode == "loss":
                loss_cls = nn.functional.cross_entropy(logits, labels)
                return {"loss_cls": loss_cls}
            if mode == "predict":
                return list(zip(logits.argmax(1), labels))
            return logits

    @DATASETS.register_module()
    class SyntheticBlobs(Dataset):
        def __init__(self, n: int = 1600, in_dim: int = 20, seed: int = 0):
            g = torch.Generator().manual_seed(seed)
            self.x = torch.randn(n, in_dim, generator=g)
            self.y = (self.x[:, :5].sum(1) > 0).long()

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return {"inputs": self.x[i], "labels": self.y[i]}

    @METRICS.register_module()
    class Accuracy(BaseMetric):
        def process(self, data_batch, data_samples):
            for pred, label in data_samples:
                self.results.append(int(pred == label))

        def compute_metrics(self, results):
            return {"accuracy": 100 * sum(results) / len(results)}

    loader = dict(batch_size=16, num_workers=0, collate_fn=dict(type="default_collate"))
    cfg = dict(
        model=dict(type="TinyClassifier", in_dim=20, hidden=32, num_classes=2),
        work_dir="work_dirs/tiny_" + ("epoch" if by_epoch else "iter"),
        train_dataloader=dict(dataset=dict(type="SyntheticBlobs", n=1600, seed=0),
                              sampler=dict(type="DefaultSampler", shuffle=True), **loader),
        optim_wrapper=dict(optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.01)),
        param_scheduler=[dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0,
                              end=20),
                         dict(type="CosineAnnealingLR", by_epoch=by_epoch, begin=0,
                              T_max=3 if by_epoch else 500, eta_min=1e-5)],
        default_hooks=dict(logger=dict(type="LoggerHook", interval=10),
                           checkpoint=dict(type="CheckpointHook", interval=-1)),
        log_processor=dict(window_size=10, by_epoch=by_epoch),
        randomness=dict(seed=0),
        default_scope="mmengine",
        launcher="none",
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo")),
    )
    if by_epoch:
        cfg.update(
            train_cfg=dict(by_epoch=True, max_epochs=3, val_interval=1),
            val_dataloader=dict(dataset=dict(type="SyntheticBlobs", n=320, seed=1),
                                sampler=dict(type="DefaultSampler", shuffle=False), **loader),
            val_cfg=dict(), val_evaluator=dict(type="Accuracy"))
    else:
        cfg.update(train_cfg=dict(by_epoch=False, max_iters=500))
    runner = Runner.from_cfg(Config(cfg))
    runner.train()


# --------------------------------------------------------------------------- keras (jax)

def run_keras(nan: bool, verbose: int) -> None:
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 20)).astype("float32")
    keras.utils.set_random_seed(0)
    if nan:
        # regression with plain SGD at a learning rate far above stable (0.05-0.1 trains
        # well here): the loss jumps from ~20 to ~7e3 in epoch 2 and is nan from epoch 3
        y = (x @ rng.normal(size=(20, 1)) + 0.1 * rng.normal(size=(2000, 1))).astype("float32")
        model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.35), loss="mse",
                      metrics=["mae"])
        model.fit(x, y, epochs=8, batch_size=400, validation_split=0.2, verbose=verbose)
    else:
        y = (x[:, :5].sum(axis=1) > 0).astype("float32")
        model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy",
                      metrics=["accuracy"])
        cb = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=1,
                                               min_delta=1e-2, min_lr=1e-5, verbose=1)
        model.fit(x, y, epochs=20, batch_size=100, validation_split=0.2, verbose=verbose,
                  callbacks=[cb])


# --------------------------------------------------------------------------- lightning

def run_lightning(rich: bool) -> None:
    """``rich=False``: the TQDM progress bar (Lightning's default when ``rich`` is not installed,
    set explicitly here). ``rich=True``: Lightning's default when ``rich`` is installed (keras
    and mmengine pull it in), the ``RichProgressBar``, which prints only its final state when
    the output is not a terminal."""
    import lightning as L
    from lightning.pytorch.callbacks import TQDMProgressBar
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    class TinyClassifier(L.LightningModule):
        def __init__(self, lr: float = 1e-3):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 2))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss, prog_bar=True)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", nn.functional.cross_entropy(self.net(x), y), prog_bar=True)

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)

    L.seed_everything(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 20, generator=g)
    y = (x[:, :5].sum(1) > 0).long()
    train = DataLoader(TensorDataset(x[:1600], y[:1600]), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(x[1600:], y[1600:]), batch_size=64)
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", devices=1, enable_checkpointing=False,
                        default_root_dir=".", log_every_n_steps=10,
                        callbacks=[] if rich else [TQDMProgressBar()])
    trainer.fit(TinyClassifier(), train, val)


# --------------------------------------------------------------------------- driver

RUNS = {
    "hf_trainer_tqdm": lambda: run_hf("healthy"),
    "hf_trainer_explode": lambda: run_hf("explode"),
    "hf_trainer_nan": lambda: run_hf("nan"),
    "hf_trainer_nan_nofilter": lambda: run_hf("nan_nofilter"),
    "mmengine_epoch": lambda: run_mmengine(by_epoch=True),
    "mmengine_iter": lambda: run_mmengine(by_epoch=False),
    "keras_jax_nan_verbose1": lambda: run_keras(nan=True, verbose=1),
    "keras_jax_nan_verbose2": lambda: run_keras(nan=True, verbose=2),
    "keras_jax_reduce_lr_verbose1": lambda: run_keras(nan=False, verbose=1),
    "keras_jax_reduce_lr_verbose2": lambda: run_keras(nan=False, verbose=2),
    "lightning_progress": lambda: run_lightning(rich=False),
    "lightning_rich_progress": lambda: run_lightning(rich=True),
}


def capture(name: str) -> Path:
    """Run one fixture's training in a child process, as ``python train.py > log 2>&1``, in a
    scratch folder; keep the console log (or, for mmengine, the log file it writes)."""
    OUT.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TOKENIZERS_PARALLELISM="false",
               PYTHONHASHSEED="0", CUDA_VISIBLE_DEVICES="")
    env.pop("PYTHONUNBUFFERED", None)
    dest = OUT / f"{name}.log"
    with tempfile.TemporaryDirectory(prefix=f"{name}_") as tmp:
        console = Path(tmp) / "console.log"
        with open(console, "wb") as fh:
            rc = subprocess.call([sys.executable, str(Path(__file__).resolve()), "--run", name],
                                 stdout=fh, stderr=subprocess.STDOUT, cwd=tmp, env=env)
        if rc != 0:
            sys.stderr.write(console.read_text(errors="replace")[-4000:])
            raise SystemExit(f"{name}: training exited with {rc}")
        if name.startswith("mmengine"):
            logs = glob.glob(os.path.join(tmp, "work_dirs", "*", "*", "*.log"))
            if len(logs) != 1:
                raise SystemExit(f"{name}: expected one mmengine log file, found {logs}")
            shutil.copyfile(logs[0], dest)
        else:
            shutil.copyfile(console, dest)
    print(f"wrote {dest} ({dest.stat().st_size} bytes)")
    return dest


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "--run":
        RUNS[argv[1]]()
        return
    if len(argv) != 1 or argv[0] not in [*GROUPS, "all"]:
        raise SystemExit("usage: python scripts/make_console_fixtures.py "
                         "hf|mmengine|keras|lightning|all")
    for group in GROUPS if argv[0] == "all" else [argv[0]]:
        for name in GROUPS[group]:
            capture(name)


if __name__ == "__main__":
    main(sys.argv[1:])
