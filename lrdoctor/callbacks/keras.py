"""Keras 3: ``model.fit(..., callbacks=[KerasCallback(stop_on="nonfinite")])``."""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from lrdoctor.callbacks._base import Adapter, Watch, need

_keras = need("keras", "keras")


class KerasCallback(Adapter, _keras.callbacks.Callback):
    """Diagnose the LR while a Keras model trains (any backend).

    Keras 3 passes ``on_train_batch_end`` the mean loss of the epoch so far, not the
    batch's; the batch's loss is recovered from two successive means
    (``k * mean_k - (k - 1) * mean_(k-1)``, over the batches of a call when
    ``steps_per_execution`` > 1), exact up to float32 rounding, and a non-finite loss shows
    at the batch it happened. The LR is the one the batch was trained with: the
    optimizer's ``learning_rate``, or a ``LearningRateSchedule``'s value at the optimizer's
    step count before the batch; an LR set by another callback (an LR finder) is read as the
    optimizer used it. The step counts calls from the start of training (one per batch;
    with ``steps_per_execution`` > 1 Keras calls once per execution).

    On the JAX backend without ``stop_on``, the callback lets Keras run its
    ``on_train_batch_end`` on a worker thread (``async_safe``, Keras' asynchronous
    dispatch, which Keras uses when every callback allows it): training does not wait for
    each batch's loss, as it would for any callback run on the training thread, and the
    recording and re-diagnoses run beside it. The batches are then recorded in order as
    their losses and LRs are both known, and at every epoch's end all of them are. A stop
    must come at the batch a fault shows, before the next one runs, so with ``stop_on``
    (or on another backend) everything runs on the training thread.

    The LR on JAX: the model's state stays on the device during an epoch, and
    ``self.model`` in a callback copies all of it back into the model's variables (about
    60 us a batch for a small MLP). The LR of a batch changes only when something sets it,
    and setting it goes through such a copy (``Model.jax_state_sync``), which the callback
    counts (a wrapper on that model's method). So a batch's LR is the one before it, or,
    under a schedule, the schedule at the step count one batch on, unless a copy happened
    around it, an epoch began, or the optimizer scales the loss (a skipped step does not
    count): then it is read from the state the batch returned. A schedule's values are
    computed at each re-diagnosis, for all the batches since the last one at once.

    At each re-diagnosis it puts ``lrdoctor_verdict_code`` (-1 unknown, 0 ok, 1 too low,
    2 too high) in the batch ``logs``, and in every epoch's ``logs`` (so ``History`` and
    ``CSVLogger`` keep it); it stops with ``model.stop_training``.

    Parameters
    ----------
    every, stop_on, report, context, detectors, run
        As :class:`lrdoctor.callbacks.Watch`.
    """

    def __init__(self, every: int | None = None, *, stop_on=(), report=None,
                 context: str = "scratch", detectors: dict | None = None, run: str = "run"):
        super().__init__()
        self.watch = Watch(every, stop_on=stop_on, report=report, context=context,
                           detectors=detectors, run=run, lr_values=_lr_values)
        #: Keras may call on_train_batch_end on a worker thread (read when fit begins)
        self.async_safe = not self.watch.stop_on and _keras.backend.backend() == "jax"
        self._step = 0
        self._lr_obj = None      # the optimizer's learning rate (variable or schedule) ...
        self._slot = None        # ... and where its value (or the step count) is in the
        self._schedule = None    # device state of a JAX fit; the schedule, if one
        self._exact = False      # under a schedule, a LossScaleOptimizer: its step count
        #                          stands still at a skipped step, so it is always read
        self._thread = None      # the training thread
        self._mode = None        # "sync" or "async", as Keras calls on_train_batch_end
        self._syncs = None       # [the model's state copies so far] (JAX) ...
        self._seen = 0           # ... at the latest call's beginning
        self._epoch_reset()

    def _epoch_reset(self) -> None:
        # One epoch's calls, on the way to the Monitor (Keras waits for every worker
        # before on_epoch_end): the training thread appends each call's first batch and,
        # a call later, its LR; workers append each call's end, in any order; whoever
        # holds _drain takes them and records the calls whose mean and LR are both known.
        self._begins: list = []
        self._lrs: list = []
        self._ended = deque()   # (last batch, logs) of the calls ended, not taken yet
        self._means: dict = {}  # last batch -> running mean, of the calls taken
        self._last_end = -1     # the latest batch taken
        self._done = 0          # calls recorded
        self._prev = (-1, 0.0)  # the last recorded call's last batch and mean
        self._changed = True    # a state copy since the call before (or none yet)
        self._taken = 0.0       # when calls were last taken
        self._drain = threading.Lock()

    def on_train_begin(self, logs=None):
        self._thread = threading.get_ident()
        self._mode = None            # "sync" or "async", at the first batch's end
        if _keras.backend.backend() == "jax":
            self._syncs = _count_syncs(self._model)
        self._seen = self._syncs[0] if self._syncs else 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_reset()

    # ---------------------------------------------------------------- training thread
    def on_train_batch_begin(self, batch, logs=None):
        if self._mode == "sync" or not self.watch.active:
            return
        try:
            syncs, begins, lrs = self._syncs, self._begins, self._lrs
            changed = syncs is None or syncs[0] != self._seen
            if begins:
                # the previous call's LR, now that its step is dispatched: read from the
                # state it returned after a state copy around it, for an epoch's first call
                # and where a step count can stand still; else the LR of the call before
                # it carried on (under a schedule, the count one more for each batch)
                if changed or self._changed or self._exact or not lrs:
                    lrs.append(self._lr())
                else:
                    last = lrs[-1]
                    lrs.append(last if type(last) is not _Count else
                               _Count(last.count + batch - begins[-1], last.schedule))
            if syncs is not None:  # (a copy made by the read itself changes nothing)
                self._seen = syncs[0]
            self._changed = changed
            begins.append(batch)
        except Exception as e:  # noqa: BLE001 - never raise into the training loop
            self.watch.fail(e)

    def on_epoch_end(self, epoch, logs=None):
        w = self.watch
        if w.active and self._mode != "sync":
            try:
                if len(self._lrs) < len(self._begins):
                    self._lrs.append(self._lr())  # the epoch's last call (state synced)
                with self._drain:
                    self._take(logs)
            except Exception as e:  # noqa: BLE001
                w.fail(e)
        if w.active and logs is not None and w.diagnosis_ is not None:
            logs["lrdoctor_verdict_code"] = w.verdict_code

    def on_train_end(self, logs=None):
        self.watch.finish()

    # -------------------------------------------------------- either thread
    def on_train_batch_end(self, batch, logs=None):
        if threading.get_ident() != self._thread:
            # a worker: the call waits with the others ended, and the worker that finds
            # _BULK of them (or the first after _WAIT s) takes them all (the training
            # thread takes the rest at the epoch's end); one at it at a time, the others
            # go on
            ended = self._ended
            ended.append((batch, logs))
            if (len(ended) >= _BULK or time.perf_counter() - self._taken > _WAIT) \
                    and self._drain.acquire(blocking=False):
                try:
                    self._take(logs)
                except Exception as e:  # noqa: BLE001 - never raise into the training loop
                    self.watch.fail(e)
                finally:
                    self._drain.release()
            return
        w = self.watch
        if not w.active or not logs or "loss" not in logs:
            return
        try:
            if self._mode is None:  # Keras calls it on the training thread
                self._mode = "sync"
            self._record(self._last_batch(batch), float(logs["loss"]), self._lr(), logs)
        except Exception as e:  # noqa: BLE001 - never raise into the training loop
            w.fail(e)

    def _last_batch(self, batch: int) -> int:
        """Keras names a call's last batch as its first + steps_per_execution - 1, also for
        the epoch's last call, which may hold fewer: the epoch's length (where Keras knows
        it) tells."""
        steps = (self.params or {}).get("steps")
        return steps - 1 if steps and batch >= steps else batch

    def _take(self, logs) -> None:
        """Take the calls ended so far, and record, in order, those whose mean and LR are
        both known (holding ``_drain``)."""
        self._taken = time.perf_counter()
        ended, means = self._ended, self._means
        if not self.watch.active:
            ended.clear()
            return
        if ended:
            self._mode = "async"
        steps = (self.params or {}).get("steps") or 0
        last = self._last_end
        while ended:
            batch, got = ended.popleft()
            if not got or "loss" not in got:
                continue
            if steps and batch >= steps:  # as _last_batch
                batch = steps - 1
            means[batch] = float(got["loss"])
            if batch > last:
                last = batch
        self._last_end = last
        # record the calls ready, in order: their end (the next call's first batch, less
        # one; for the latest call, the latest batch taken: a later call ends only after it
        # began) taken, their LR known; their losses as _record computes each
        begins, lrs = self._begins, self._lrs
        n_begun, n_lr = len(begins), len(lrs)
        w = self.watch
        update, before, stop = w.monitor.update, w.diagnosis_, False
        j, step = self._done, self._step
        prev_end, prev_mean = self._prev
        while j < n_lr:
            end = begins[j + 1] - 1 if j + 1 < n_begun else last
            mean = means.pop(end, None)
            if mean is None:
                break
            loss = ((end + 1) * mean - (prev_end + 1) * prev_mean) / (end - prev_end)
            prev_end, prev_mean = end, mean
            d = update(step, loss, lrs[j])
            step += 1
            j += 1
            if d is not None and w.judge(d):
                stop = True
        self._done, self._step, self._prev = j, step, (prev_end, prev_mean)
        if w.diagnosis_ is not before and logs is not None:
            logs["lrdoctor_verdict_code"] = w.verdict_code
        if stop:
            self._model.stop_training = True

    def _record(self, end: int, mean: float, lr, logs) -> None:
        """Record the call that ended at batch ``end`` of the epoch, with the running mean
        ``mean`` of the epoch's losses up to there."""
        w = self.watch
        prev_end, prev_mean = self._prev
        self._prev = (end, mean)
        loss = ((end + 1) * mean - (prev_end + 1) * prev_mean) / (end - prev_end)
        before = w.diagnosis_
        stop = w.record(self._step, loss, lr)
        self._step += 1
        if w.diagnosis_ is not before and logs is not None:
            logs["lrdoctor_verdict_code"] = w.verdict_code
        if stop:
            self._model.stop_training = True

    # ------------------------------------------------------------------------ the LR
    def _lr(self):
        """The LR of the latest step: a float, or the optimizer's step count under a
        schedule, whose value :func:`_lr_values` computes at the next re-diagnosis. (Keras
        internals it reads, where they are: the optimizer's ``_learning_rate`` and
        ``_iterations``, the model's ``_jax_state``; where they are not, the public way,
        as slow as before.)"""
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
        # elsewhere: the variables themselves, read now (on JAX, copied back first when
        # the state is on the device: self.model does)
        opt = (self.model if state else model).optimizer
        if self._schedule is not None:
            return float(self._schedule(opt.iterations - 1))
        return float(opt.learning_rate)

    def _locate(self, opt, lr) -> None:
        self._lr_obj = lr
        schedule = isinstance(lr, _keras.optimizers.schedules.LearningRateSchedule)
        self._schedule = lr if schedule else None
        self._exact = schedule and isinstance(opt, _keras.optimizers.LossScaleOptimizer)
        target = getattr(opt, "_iterations", None) if schedule else lr
        self._slot = None
        if _keras.backend.backend() == "jax" and target is not None:
            self._slot = next((i for i, v in enumerate(opt.variables) if v is target), None)


def _count_syncs(model) -> list:
    """``[n]``: how many times the model's device state has been copied back into its
    variables (``Model.jax_state_sync``: by any callback's ``self.model``, and at each
    epoch's end), counted by a wrapper set once on that model."""
    counter = getattr(model, "_lrdoctor_syncs", None)
    if counter is None:
        counter = [0]
        sync = model.jax_state_sync

        def jax_state_sync(*a, **k):
            counter[0] += 1
            return sync(*a, **k)

        # past Keras' attribute tracking: a plain function and a list of one int
        object.__setattr__(model, "jax_state_sync", jax_state_sync)
        object.__setattr__(model, "_lrdoctor_syncs", counter)
    return counter


class _Count:
    """A JAX fit's optimizer step count after a batch: the batch's LR is the schedule's
    value at the count before it, computed at the next re-diagnosis."""

    __slots__ = ("count", "schedule")

    def __init__(self, count, schedule):
        self.count, self.schedule = count, schedule


#: A worker takes the calls ended when this many wait, or when _WAIT seconds have passed
#: since the last take: the recording of a batch is late by at most about that (Keras'
#: dispatch itself lets training run about 32 batches ahead of the workers).
_BULK = 64
_WAIT = 0.2

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
