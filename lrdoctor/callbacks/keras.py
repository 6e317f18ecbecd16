"""Keras 3: ``model.fit(..., callbacks=[KerasCallback(stop_on="nonfinite")])``."""
from __future__ import annotations

import threading
import time
import warnings
import weakref
from collections import deque

import numpy as np

from lrdoctor.callbacks._base import Adapter, LrDoctorWarning, Watch, need

_keras = need("keras", "keras")


class KerasCallback(Adapter, _keras.callbacks.Callback):
    """Diagnose the LR while a Keras model trains (any backend).

    Keras 3 passes ``on_train_batch_end`` the mean loss of the epoch so far, not the
    batch's; the batch's loss is recovered from two successive means, each weighted by the
    samples it counts (``(n_k * mean_k - n_(k-1) * mean_(k-1)) / (n_k - n_(k-1))``; the
    mean of a call's batches when ``steps_per_execution`` > 1), exact up to float32
    rounding, and a non-finite loss shows at the batch it happened. The samples counted are
    Keras' own (its loss tracker's count), read with the LR below; between two reads every
    batch counts as many samples as the epoch's first (an epoch's last batch, often
    smaller, is read). The LR is the one the batch was trained with: the
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
    (or on another backend) everything runs on the training thread, where Keras' count of
    samples is read at every batch. On the workers, batches of different sizes within an
    epoch (a bucketing ``PyDataset``) count as many samples as the epoch's first until a
    read shows otherwise; from then on the count is read at every batch, with a warning.
    After a fit that raised (Ctrl-C), ``on_train_end()`` records the batches still queued
    and makes the final diagnosis (the next fit does it as it begins).

    The LR on JAX: the model's state stays on the device during an epoch, and
    ``self.model`` in a callback copies all of it back into the model's variables (about
    60 us a batch for a small MLP). The LR of a batch changes only when something sets it,
    and setting it goes through such a copy (``Model.jax_state_sync``), which the callback
    counts (a wrapper on that model's method). So a call's LR is the one before it (under a
    schedule, the schedule one step on for each batch), unless a copy came around it or it
    is an epoch's first: then it is read from the state the call returned, at the next
    call's beginning (or the epoch's end). Under a schedule with a ``LossScaleOptimizer``,
    whose step count stands still at a skipped step, it is read at every call. A schedule's
    values are computed at each re-diagnosis, for all the calls since the last one at once.

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
        self._exact = False      # the LR is read at every call (see _locate)
        self._thread = None      # the training thread
        self._mode = None        # "sync" or "async", as Keras calls on_train_batch_end
        self._syncs = None       # [the model's state copies so far] (JAX) ...
        self._seen = 0           # ... when the latest call began
        self._spe = 1            # batches a call (steps_per_execution) ...
        self._steps = None       # ... and an epoch (where Keras knows it)
        self._counter = None     # Keras' loss tracker's count: the variable and its
        self._count_slot = None  # place in the state of a JAX fit
        self._lr_now = None      # the LR of the latest call recorded
        self._in_epoch = False
        self._in_sync = False
        self._count_each = False  # batches of varying size: the count is read at every call
        self._fit_start = (0, None)  # the step and optimizer steps when the fit began
        self._drain = threading.Lock()  # held by whoever records calls taken
        self._epoch_reset()

    def _epoch_reset(self) -> None:
        # One epoch's calls on the way to the Monitor, when Keras runs on_train_batch_end
        # on its workers (it waits for them all before on_epoch_end): the training thread
        # counts the calls begun, and reads a call's LR (and samples counted) at the next
        # one's beginning where a state copy may have changed it; workers put each call's
        # end, in any order; whoever holds _drain takes them and records, in order, the
        # calls whose end is taken and whose LR is known.
        self._begun = 0          # calls begun
        self._limit = None       # at the epoch's end: the calls it held
        self._pending = True     # the latest call's LR is to be read (an epoch's first)
        self._lr_at: dict = {}   # call -> its LR, read from the state ...
        self._count_at: dict = {}  # ... and the samples counted up to its end
        self._last_read = None   # (LR, samples) of the epoch's last call, read at its end
        self._sync_read = None   # ... and at the latest state copy (an evaluate() in another
        #                          callback's on_epoch_end drops the state before ours)
        self._ended = deque()    # (last batch, logs) of the calls ended, not taken yet
        self._means: dict = {}   # call -> (its last batch, the running mean there)
        self._done = 0           # calls recorded
        self._per_batch = None   # samples a batch, from the epoch's first call
        self._prev = (-1, 0.0, 0.0)  # the last recorded call's last batch, mean, samples
        self._taken = 0.0        # when calls were last taken

    # ---------------------------------------------------------------- training thread
    def on_train_begin(self, logs=None):
        self._thread = threading.get_ident()
        try:
            self._leftovers()
            self._mode = None    # "sync" or "async", at the first batch's end
            self._fit_start = (self._step, self._iterations())
            model = self._model
            self._spe = max(1, int(getattr(model, "steps_per_execution", 1) or 1))
            self._steps = (self.params or {}).get("steps")
            self._counter = getattr(getattr(model, "_loss_tracker", None), "count", None)
            self._count_slot = None
            if _keras.backend.backend() == "jax":
                self._syncs = _count_syncs(model, self._on_sync)
                self._seen = self._syncs[0]
                if self._counter is not None:
                    self._count_slot = next((i for i, v in enumerate(model.metrics_variables)
                                             if v is self._counter), None)
        except Exception as e:  # noqa: BLE001 - never raise into the training loop
            self.watch.fail(e)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_reset()
        self._in_epoch = True

    def on_train_batch_begin(self, batch, logs=None):
        # (most calls are only counted; the rest only where a read may be due)
        k = self._begun
        if self._pending or self._syncs is None or self._syncs[0] != self._seen:
            if self._mode == "sync" or not self.watch.active:
                return
            try:
                self._resolve(k)
            except Exception as e:  # noqa: BLE001 - never raise into the training loop
                self.watch.fail(e)
        self._begun = k + 1

    def _resolve(self, k: int) -> None:
        """At call ``k``'s beginning: read call ``k - 1``'s LR (and samples counted) from the
        state it returned if a state copy came around it (or it is the epoch's first call,
        or a schedule's step count can stand still); ask for call ``k``'s to be read at the
        next one if a copy came since call ``k - 1`` began."""
        syncs = self._syncs
        changed = syncs is None or syncs[0] != self._seen
        exact = self._exact or self._count_each
        if k and (self._pending or changed or exact):
            self._lr_at[k - 1], self._count_at[k - 1] = self._read()
        self._pending = changed or exact or k == 0
        if syncs is not None:  # (a copy made by the read itself changes nothing)
            self._seen = syncs[0]

    def _on_sync(self) -> None:
        """Before the model's state is copied back (its wrapper calls this): keep the LR
        and samples counted of its latest step, for the epoch's end."""
        if not self._in_epoch or self._in_sync or self._mode == "sync" or \
                not self.watch.active:
            return
        if self._training_state():
            self._in_sync = True
            try:
                self._sync_read = self._read()
            except Exception as e:  # noqa: BLE001 - never raise into the training loop
                self.watch.fail(e)
            finally:
                self._in_sync = False

    def on_test_begin(self, logs=None):
        # validation within fit: the training state is still there (evaluate drops it, and
        # the callbacks' on_epoch_end may set a new LR): read the epoch's last call now
        if self._in_epoch and self._last_read is None and self._mode != "sync" \
                and self.watch.active:
            try:
                self._last_read = self._read()
            except Exception as e:  # noqa: BLE001
                self.watch.fail(e)

    def on_epoch_end(self, epoch, logs=None):
        self._in_epoch = False
        w = self.watch
        if w.active and self._mode != "sync":
            try:
                last_read = self._last_read or (
                    self._read() if self._training_state() or self._sync_read is None
                    else self._sync_read)
                self._take_all(logs, last_read)
            except Exception as e:  # noqa: BLE001
                w.fail(e)
        if w.active and logs is not None and w.diagnosis_ is not None:
            logs["lrdoctor_verdict_code"] = w.verdict_code

    def on_train_end(self, logs=None):
        try:
            self._leftovers()
        except Exception as e:  # noqa: BLE001
            self.watch.fail(e)
        self.watch.finish()

    def _leftovers(self) -> None:
        """Record the calls a fit that raised (Ctrl-C) left queued, with the LR of the call
        before them: Keras then calls neither on_epoch_end nor on_train_end. The next fit
        does it as it begins; call ``on_train_end()`` to have it done (and the final
        diagnosis made) at once. Workers still on their way (Keras does not wait for them
        then) are waited for, up to a second, as many as the optimizer's steps say."""
        if self._mode != "async" or not self.watch.active:
            return
        trained = self._iterations()
        if trained is not None and self._fit_start[1] is not None:
            calls = -(-(trained - self._fit_start[1]) // self._spe)
            wait_until = time.perf_counter() + 1.0
            while self._step - self._fit_start[0] + len(self._means) + len(self._ended) \
                    < calls and time.perf_counter() < wait_until:
                time.sleep(0.001)
        self._take_all(None)

    def _take_all(self, logs, last_read=None) -> None:
        """Take every call ended and record them all, the last that ended with
        ``last_read`` (its LR and samples counted, read from the state's latest step)."""
        with self._drain:
            self._move_ended()
            last = max(self._means, default=None)
            if last is not None and last_read is not None:
                self._lr_at[last], self._count_at[last] = last_read
            self._limit = self._done if last is None else last + 1
            self._take(logs)

    def _iterations(self):
        """The optimizer's steps so far (its variable: read when the state is copied back,
        before a fit and after), or None where it cannot be read."""
        count = getattr(_inner(getattr(self._model, "optimizer", None)), "_iterations", None)
        if count is None or getattr(count, "_value", 0) is None:
            return None
        return int(_keras.ops.convert_to_numpy(count.value))

    # -------------------------------------------------------- either thread
    def on_train_batch_end(self, batch, logs=None):
        if threading.get_ident() != self._thread:
            # a worker: the call waits with the others ended, and the worker that finds
            # _BULK of them (or the first after _WAIT s) takes them all (the training
            # thread takes the rest at the epoch's end); one at it at a time, the others
            # go on
            ended = self._ended
            ended.append((batch, logs))
            n = len(ended)
            if (n >= _BULK or n % 8 == 1 and time.perf_counter() - self._taken > _WAIT) \
                    and self._drain.acquire(blocking=False):
                try:
                    self._move_ended()
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
            lr, count = self._lr(), self._count()
            self._record(self._last_batch(batch), float(logs["loss"]), lr, count, logs)
        except Exception as e:  # noqa: BLE001 - never raise into the training loop
            w.fail(e)

    def _last_batch(self, batch: int) -> int:
        """Keras names a call's last batch as its first + steps_per_execution - 1, also for
        the epoch's last call, which may hold fewer: the epoch's length (where Keras knows
        it) tells. (The loss does not depend on it: the samples counted say how many.)"""
        steps = self._steps
        return steps - 1 if steps and batch >= steps else batch

    def _move_ended(self) -> None:
        """Take the calls ended so far into ``_means`` (holding ``_drain``)."""
        ended, means = self._ended, self._means
        if ended:
            self._mode = "async"
        spe = self._spe
        while ended:
            batch, got = ended.popleft()
            if got and "loss" in got:
                batch = self._last_batch(batch)
                means[batch // spe] = (batch, float(got["loss"]))

    def _take(self, logs) -> None:
        """Record, in order, the calls taken whose LR is known (holding ``_drain``): once
        the next call began (the read for it, if any, is done then), or, at the epoch's
        end, all; a call not read has the LR of the call before (under a schedule, the step
        count one more for each batch)."""
        self._taken = time.perf_counter()
        if not self.watch.active:
            self._ended.clear()
            return
        means, lr_at, count_at = self._means, self._lr_at, self._count_at
        # (an epoch of unknown length: Keras begins one more call before it finds the data
        # ended, so the latest two wait for the epoch's end)
        limit = self._begun - (1 if self._steps else 2) if self._limit is None else \
            self._limit
        lr_now = self._lr_now
        w = self.watch
        update, before, stop = w.monitor.update, w.diagnosis_, False
        j, step = self._done, self._step
        prev_end, prev_mean, prev_n = self._prev
        while j < limit:
            got = means.pop(j, None)
            if got is None:
                break
            end, mean = got
            lr = lr_at.pop(j, None)
            if lr is None:
                lr = lr_now if type(lr_now) is not _Count else \
                    _Count(lr_now.count + end - prev_end, lr_now.schedule)
            n = self._samples(end, count_at.pop(j, None), prev_end, prev_n)
            loss = _recovered(n, mean, prev_n, prev_mean)
            prev_end, prev_mean, prev_n, lr_now = end, mean, n, lr
            d = update(step, loss, lr)
            step += 1
            j += 1
            if d is not None and w.judge(d):
                stop = True
        self._done, self._step, self._lr_now = j, step, lr_now
        self._prev = (prev_end, prev_mean, prev_n)
        self._report(before, stop, logs)

    def _samples(self, end: int, counted, prev_end: int, prev_n: float) -> float:
        """The samples Keras' running mean counts up to batch ``end`` of the epoch: as read
        (``counted``), else those up to the call before (``prev_n``, up to ``prev_end``) and
        as many a batch as the epoch's first call held, else one a batch (where Keras' count
        cannot be read). A read above that estimate means batches of varying size: from
        then on the count is read at every call (training waits for each), with a warning."""
        per_batch = self._per_batch
        if counted is None:
            return prev_n + (end - prev_end) * (per_batch or 1.0)
        if per_batch is None:
            self._per_batch = counted / (end + 1)
        elif counted > prev_n + (end - prev_end) * per_batch + 0.5 and not self._count_each:
            self._count_each = True
            warnings.warn("lrdoctor: the batches hold different numbers of samples; the "
                          "losses of those before were recovered as if each held as many as "
                          "the epoch's first: from now on Keras' count of samples is read "
                          "at every batch (training waits for each batch's loss)",
                          LrDoctorWarning, stacklevel=2)
        return counted

    def _record(self, end: int, mean: float, lr, counted, logs) -> None:
        """Record the call that ended at batch ``end`` of the epoch, with the running mean
        ``mean`` of the epoch's losses up to there (on the training thread)."""
        w = self.watch
        prev_end, prev_mean, prev_n = self._prev
        n = self._samples(end, counted, prev_end, prev_n)
        self._prev = (end, mean, n)
        before = w.diagnosis_
        stop = w.record(self._step, _recovered(n, mean, prev_n, prev_mean), lr)
        self._step += 1
        self._report(before, stop, logs)

    def _report(self, before, stop: bool, logs) -> None:
        """After recording: the verdict code into the batch's ``logs`` if a re-diagnosis
        came (the latest diagnosis is not ``before``), and the stop if one was called."""
        w = self.watch
        if w.diagnosis_ is not before and logs is not None:
            logs["lrdoctor_verdict_code"] = w.verdict_code
        if stop:
            self._model.stop_training = True

    # ------------------------------------------------------------------------ the LR
    def _lr(self):
        """The LR of the latest step: a float, or the optimizer's step count under a
        schedule, whose value :func:`_lr_values` computes at the next re-diagnosis. (Keras
        internals it reads, where they are: the optimizer's ``_learning_rate`` and
        ``_iterations`` (the inner optimizer's, under a ``LossScaleOptimizer``), the model's
        ``_jax_state``; where they are not, the public way, as slow as before.)"""
        model = self._model  # not self.model: on JAX that copies the state back
        outer = model.optimizer
        opt = _inner(outer)
        lr = getattr(opt, "_learning_rate", None)
        if lr is not self._lr_obj or lr is None:
            self._locate(outer, opt, lr)
        state = getattr(model, "_jax_state", None)
        if self._slot is not None and state:
            # the step's output (its input buffers are donated to the next step: read now)
            value = np.asarray(state["optimizer_variables"][self._slot]).item()
            return value if self._schedule is None else _Count(value, self._schedule)
        # elsewhere: the variables themselves, read now (on JAX, with the state on the
        # device, copied back into them first, as self.model does)
        if state:
            model.jax_state_sync()
        if self._schedule is not None:  # the count the step used (not .iterations, which
            count = getattr(opt, "_iterations", None)  # gradient accumulation divides)
            return float(self._schedule(max((opt.iterations if count is None else count) - 1,
                                            0)))
        return float(opt.learning_rate)

    def _read(self) -> tuple:
        """(LR, samples counted) of the latest step."""
        return self._lr(), self._count()

    def _training_state(self):
        """The model's device state as a training step left it (an evaluate() leaves
        none, or its own, without the optimizer's), else None."""
        state = getattr(self._model, "_jax_state", None)
        return state if state and "optimizer_variables" in state else None

    def _count(self):
        """The samples Keras' loss tracker has counted in the epoch up to the latest step,
        or None where it cannot be read."""
        state = getattr(self._model, "_jax_state", None)
        if self._count_slot is not None and state:
            return float(np.asarray(state["metrics_variables"][self._count_slot]))
        if self._counter is None or _keras.backend.backend() == "jax":
            return None  # (on JAX the variable holds no value during an epoch)
        return float(_keras.ops.convert_to_numpy(self._counter.value))

    def _locate(self, outer, opt, lr) -> None:
        self._lr_obj = lr
        schedule = isinstance(lr, _keras.optimizers.schedules.LearningRateSchedule)
        self._schedule = lr if schedule else None
        target = getattr(opt, "_iterations", None) if schedule else lr
        self._slot = None
        if _keras.backend.backend() == "jax" and target is not None:
            self._slot = next((i for i, v in enumerate(outer.variables) if v is target),
                              None)
        # read at every call where a schedule's step count cannot be carried on: it stands
        # still at a step a LossScaleOptimizer skips, and is not found in the state
        self._exact = schedule and (self._slot is None or opt is not outer)


def _inner(optimizer):
    """The optimizer that steps: a ``LossScaleOptimizer``'s inner one, else itself."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def _recovered(n: float, mean: float, prev_n: float, prev_mean: float) -> float:
    """A call's own mean loss from Keras' running means of the epoch before it
    (``prev_mean`` over ``prev_n`` samples) and after it (``mean`` over ``n``)."""
    return (n * mean - prev_n * prev_mean) / (n - prev_n) if n > prev_n else mean


def _count_syncs(model, listener) -> list:
    """``[n]``: how many times the model's device state has been copied back into its
    variables (``Model.jax_state_sync``: by any callback's ``self.model``, and at each
    epoch's end), counted by a wrapper set once on that model, which also calls
    ``listener`` (held weakly, as long as its callback lives) before each copy."""
    counter = getattr(model, "_lrdoctor_syncs", None)
    if counter is None:
        counter, listeners = [0], []
        sync = model.jax_state_sync

        def jax_state_sync(*a, **k):
            counter[0] += 1
            for ref in list(listeners):
                call = ref()
                if call is None:
                    listeners.remove(ref)
                else:
                    call()
            return sync(*a, **k)

        # past Keras' attribute tracking: a plain function, a list of one int, a list
        object.__setattr__(model, "jax_state_sync", jax_state_sync)
        object.__setattr__(model, "_lrdoctor_syncs", counter)
        object.__setattr__(model, "_lrdoctor_listeners", listeners)
    listeners = model._lrdoctor_listeners
    if not any(ref() == listener for ref in listeners):
        listeners.append(weakref.WeakMethod(listener))
    return counter


class _Count:
    """A JAX fit's optimizer step count after a batch: the batch's LR is the schedule's
    value at the count before it, computed at the next re-diagnosis."""

    __slots__ = ("count", "schedule")

    def __init__(self, count, schedule):
        self.count, self.schedule = count, schedule


#: A worker takes the calls ended when this many wait, or (looking at the clock at every
#: 8th) when _WAIT seconds have passed since the last take: the recording of a batch is
#: late by at most about that (Keras' dispatch itself lets training run about 32 batches
#: ahead of the workers).
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
        # (a step a LossScaleOptimizer skipped first leaves the count at 0: the schedule's
        # first value, not one before it)
        out[where] = _scheduled(schedule, np.maximum(np.asarray(at, dtype=np.int64) - 1, 0))
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
