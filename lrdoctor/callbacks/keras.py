"""Keras 3: ``model.fit(..., callbacks=[KerasCallback(stop_on="nonfinite")])``."""
from __future__ import annotations

from lrdoctor.callbacks._base import Adapter, Watch, need

_keras = need("keras", "keras")


class KerasCallback(Adapter, _keras.callbacks.Callback):
    """Diagnose the LR while a Keras model trains (any backend).

    Keras 3 passes ``on_train_batch_end`` the mean loss of the epoch so far, not the
    batch's; the batch's loss is recovered from two successive means
    (``k * mean_k - (k - 1) * mean_(k-1)``), exact up to float32 rounding, and a non-finite
    loss shows at the batch it happened. The LR is ``model.optimizer.learning_rate`` (a
    schedule's current value), the step counts batches from the start of training (one per
    call: with ``steps_per_execution`` > 1 Keras calls once per execution).

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
                           detectors=detectors, run=run)
        self._step = 0
        self._prev_mean = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._prev_mean = 0.0

    def on_train_batch_end(self, batch, logs=None):
        w = self.watch
        if not w.active or not logs or "loss" not in logs:
            return
        try:
            mean = float(logs["loss"])
            k = batch + 1
            loss = k * mean - batch * self._prev_mean if batch else mean
            self._prev_mean = mean
            lr = float(self.model.optimizer.learning_rate)
            before = w.diagnosis_
            stop = w.record(self._step, loss, lr)
            self._step += 1
            if w.diagnosis_ is not before:
                logs["lrdoctor_verdict_code"] = w.verdict_code
            if stop:
                self.model.stop_training = True
        except Exception as e:  # noqa: BLE001 - never raise into the training loop
            w.fail(e)

    def on_epoch_end(self, epoch, logs=None):
        if self.watch.active and logs is not None and self.watch.diagnosis_ is not None:
            logs["lrdoctor_verdict_code"] = self.watch.verdict_code

    def on_train_end(self, logs=None):
        self.watch.finish()
