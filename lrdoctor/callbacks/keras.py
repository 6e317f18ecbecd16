"""Keras 3: ``model.fit(..., callbacks=[KerasCallback(stop_on="nonfinite")])``."""
from __future__ import annotations

import numpy as np

from lrdoctor.callbacks._base import Adapter, Watch, need

_keras = need("keras", "keras")


class KerasCallback(Adapter, _keras.callbacks.Callback):
    """Diagnose the LR while a Keras model trains (any backend).

    Keras 3 passes ``on_train_batch_end`` the mean loss of the epoch so far, not the
    batch's; the batch's loss is recovered from two successive means
    (``k * mean_k - (k - 1) * mean_(k-1)``), exact up to float32 rounding, and a non-finite
    loss shows at the batch it happened. The LR is the one the batch was trained with: the
    optimizer's ``learning_rate``, or a ``LearningRateSchedule``'s value at the optimizer's
    step count before the batch; an LR set by another callback (an LR finder) is read as the
    optimizer used it. The step counts batches from the start of training (one per call:
    with ``steps_per_execution`` > 1 Keras calls once per execution).

    On the JAX backend the model's state stays on the device during an epoch, and
    ``self.model`` in a callback copies all of it back into the model's variables (and the
    next step reads them in again): about 60 us a batch for a small MLP. The callback reads
    instead the one number it needs, the LR variable (or, under a schedule, the step count)
    from the state the step returned, already computed when Keras hands over the loss; a
    schedule's values are computed at each re-diagnosis, for all the batches since the
    last one at once.

    At each re-diagnosis it puts ``lrdoctor_verdict_code`` (-1 unknown, 0 ok, 1 too low,
    2 too high) in the batch ``logs``, and in every epoch's ``logs`` (so ``History`` and
    ``CSVLogger`` keep it); it stops with ``model.stop_training``.

    Parameters
    ----------
    every, stop_on, report, context, detectors, run
        As :class:`lrdoctor.callbacks.Watch`.
    """

    def __init__(self, every: int = 250, *, stop_on=(), report=None,
                 context: str = "scratch", detectors: dict | None = None, run: str = "run"):
        super().__init__()
        self.watch = Watch(every, stop_on=stop_on, report=report, context=context,
                           detectors=detectors, run=run, lr_values=_lr_values)
        self._step = 0
        self._prev_mean = 0.0
        self._lr_obj = None      # the optimizer's learning rate (variable or schedule) ...
        self._slot = None        # ... and where its value (or the step count) is in the
        self._schedule = None    # device state of a JAX fit; the schedule, if one

    def on_epoch_begin(self, epoch, logs=None):
        self._prev_mean = 0.0

    def on_train_batch_end(self, batch, logs=None):
        w = self.watch
        if not w.active or not logs or "loss" not in logs:
            return
        try:
            mean = float(logs["loss"])
            loss = (batch + 1) * mean - batch * self._prev_mean if batch else mean
            self._prev_mean = mean
            before = w.diagnosis_
            stop = w.record(self._step, loss, self._lr())
            self._step += 1
            if w.diagnosis_ is not before:
                logs["lrdoctor_verdict_code"] = w.verdict_code
            if stop:
                self.model.stop_training = True
        except Exception as e:  # noqa: BLE001 - never raise into the training loop
            w.fail(e)

    def _lr(self):
        """The batch's LR: a float, or the optimizer's step count under a schedule, whose
        value :func:`_lr_values` computes at the next re-diagnosis. (Keras internals it
        reads, where they are: the optimizer's ``_learning_rate`` and ``_iterations``, the
        model's ``_jax_state``; where they are not, the public way, as slow as before.)"""
        model = self._model  # not self.model: on JAX that copies the state back
        opt = model.optimizer
        lr = getattr(opt, "_learning_rate", None)
        if lr is not self._lr_obj or lr is None:
            self._locate(opt, lr)
        state = getattr(model, "_jax_state", None)
        if self._slot is not None and state:
            # the step's output (its input buffers are donated to the next step: read now)
            value = np.asarray(state["optimizer_variables"][self._slot]).item()
            return value if self._schedule is None else _Count(value, self._schedule)
        opt = self.model.optimizer  # elsewhere: the variables themselves, read now
        if self._schedule is not None:
            return float(self._schedule(opt.iterations - 1))
        return float(opt.learning_rate)

    def _locate(self, opt, lr) -> None:
        self._lr_obj = lr
        schedule = isinstance(lr, _keras.optimizers.schedules.LearningRateSchedule)
        self._schedule = lr if schedule else None
        target = getattr(opt, "_iterations", None) if schedule else lr
        self._slot = None
        if _keras.backend.backend() == "jax" and target is not None:
            self._slot = next((i for i, v in enumerate(opt.variables) if v is target), None)

    def on_epoch_end(self, epoch, logs=None):
        if self.watch.active and logs is not None and self.watch.diagnosis_ is not None:
            logs["lrdoctor_verdict_code"] = self.watch.verdict_code

    def on_train_end(self, logs=None):
        self.watch.finish()


class _Count:
    """A JAX fit's optimizer step count after a batch: the batch's LR is the schedule's
    value at the count before it, computed at the next re-diagnosis."""

    __slots__ = ("count", "schedule")

    def __init__(self, count, schedule):
        self.count, self.schedule = count, schedule


#: Step counts are evaluated through a schedule in blocks of this many (padded), so JAX
#: compiles the schedule's operations for one shape, not for each number of points.
_BLOCK = 256


def _lr_values(pending: list) -> np.ndarray:
    """The float values of the LRs recorded since the last re-diagnosis: numbers as they
    are, step counts through their schedule (one call for all of them)."""
    out = np.empty(len(pending))
    counts: dict = {}
    for i, v in enumerate(pending):
        if type(v) is _Count:
            where, at = counts.setdefault(id(v.schedule), (v.schedule, [], []))[1:]
            where.append(i)
            at.append(v.count)
        else:
            out[i] = v
    for schedule, where, at in counts.values():
        out[where] = _scheduled(schedule, np.asarray(at, dtype=np.int64) - 1)
    return out


def _scheduled(schedule, steps: np.ndarray) -> np.ndarray:
    """``schedule`` at each step, in padded blocks of ``_BLOCK`` (one call per block; a
    schedule that takes only one step at a time is called per step)."""
    n = len(steps)
    size = -(-n // _BLOCK) * _BLOCK
    padded = np.concatenate((steps, np.full(size - n, steps[-1], dtype=steps.dtype)))
    try:
        values = np.asarray(schedule(padded), dtype=np.float64)
        if values.shape == padded.shape:
            return values[:n]
    except Exception:  # noqa: BLE001 - a schedule written for one step at a time
        pass
    return np.array([float(schedule(int(s))) for s in steps])
