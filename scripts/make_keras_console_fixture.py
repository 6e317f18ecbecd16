"""Capture real Keras ``model.fit`` console output as a test fixture.

Trains a small MLP on synthetic data with Adam (Keras 3, PyTorch backend, CPU) for a few
epochs, once with ``verbose=1`` (progress bars, as printed to a terminal and captured with
``| tee``) and once with ``verbose=2`` (one line per epoch, as in a batch job's log), and
writes what Keras printed to ``tests/fixtures/``.

usage: KERAS_BACKEND=torch python scripts/make_keras_console_fixture.py
(needs ``pip install keras torch``; the fixtures are committed, the tests do not need Keras)
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 20)).astype("float32")
    y = (x[:, :5].sum(axis=1) > 0).astype("float32")
    for verbose in (1, 2):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                      metrics=["accuracy"])
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            model.fit(x, y, epochs=12, batch_size=100, validation_split=0.2, verbose=verbose)
        path = OUT / f"keras_fit_verbose{verbose}.txt"
        path.write_text(buf.getvalue())
        print(f"wrote {path} ({len(buf.getvalue())} characters)")


if __name__ == "__main__":
    main()
