"""Write a real W&B offline run file as a test fixture: ``tests/fixtures/wandb_offline.wandb``.

An offline ``wandb`` run (no account, no network) logs a loss curve for 250 steps with a
constant LR, one NaN loss and the validation loss every 50 steps; the run file that wandb
writes is copied into ``tests/fixtures/``. The file is larger than one 32 KiB block of W&B's
data store, so records split across blocks are covered too.

usage: python scripts/make_wandb_fixture.py      (needs ``pip install wandb``; the fixture is
committed, the tests do not need wandb)
"""
from __future__ import annotations

import glob
import math
import os
import shutil
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "wandb_offline.wandb"


def main() -> None:
    import wandb

    tmp = tempfile.mkdtemp()
    os.environ["WANDB_SILENT"] = "true"
    run = wandb.init(mode="offline", project="lrdoctor-fixture", name="adam-lr3e-4", dir=tmp)
    for s in range(250):
        loss = 2.3 * math.exp(-s / 25) + 0.1 + 0.02 * math.sin(s)
        row = {"train/loss": float("nan") if s == 150 else loss, "lr": 3e-4}
        if s % 50 == 0:
            row["val/loss"] = loss * 1.1
        run.log(row, step=s)
    run.finish()
    [src] = glob.glob(f"{tmp}/wandb/offline-run-*/run-*.wandb")
    shutil.copy(src, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) with wandb {wandb.__version__}")


if __name__ == "__main__":
    main()
