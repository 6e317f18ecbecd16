"""Hugging Face ``transformers.Trainer``: ``Trainer(..., callbacks=[HFCallback(stop_on="nonfinite")])``."""
from __future__ import annotations

import math

from lrdoctor.callbacks._base import Adapter, Watch, need

_transformers = need("transformers", "hf")


class HFCallback(Adapter, _transformers.TrainerCallback):
    """Diagnose the LR while a ``transformers.Trainer`` trains.

    The Trainer hands callbacks the loss only in ``logs``, averaged over ``logging_steps``.
    To read it at every optimizer step, this callback puts a forward hook on the model that
    keeps the loss the model returns while training (``outputs.loss``: the model computes
    it when the batch has labels, the usual case), averaged over the micro-batches of
    gradient accumulation. The LR is the optimizer's at the start of the step. When the
    model returns no loss (a custom ``compute_loss``), it falls back on the logged loss at
    the logging granularity, ``logging_steps``.

    At each log it adds ``lrdoctor_verdict`` (``ok``, ``too_low``, ``too_high``,
    ``unknown``) to ``logs`` (seen by the callbacks after this one, e.g. one added later
    with ``trainer.add_callback``); it stops with ``control.should_training_stop``.

    Parameters
    ----------
    every, stop_on, report, context, detectors, run
        As :class:`lrdoctor.callbacks.Watch`; ``every`` counts optimizer steps.
    """

    def __init__(self, every: int = 250, *, stop_on=(), report=None,
                 context: str = "scratch", detectors: dict | None = None, run: str = "run"):
        self.watch = Watch(every, stop_on=stop_on, report=report, context=context,
                           detectors=detectors, run=run)
        self._hook = None
        self._sum = 0.0
        self._count = 0
        self._per_step = False
        self._lr = None

    def _keep_loss(self, module, args, output):
        if not module.training:
            return
        loss = getattr(output, "loss", None)
        if loss is None and isinstance(output, dict):
            loss = output.get("loss")
        if loss is not None:
            self._sum += float(loss.detach())
            self._count += 1

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        w = self.watch
        if not w.active or model is None:
            return
        try:
            self._hook = model.register_forward_hook(self._keep_loss)
        except Exception as e:  # noqa: BLE001
            w.fail(e)

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        if optimizer is not None and self.watch.active:
            try:
                self._lr = optimizer.param_groups[0]["lr"]
            except Exception as e:  # noqa: BLE001
                self.watch.fail(e)

    def on_step_end(self, args, state, control, **kwargs):
        w = self.watch
        if not w.active or self._count == 0:
            return
        self._per_step = True
        loss = self._sum / self._count if math.isfinite(self._sum) else self._sum
        self._sum, self._count = 0.0, 0
        if w.record(state.global_step, loss, self._lr):
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        w = self.watch
        if not w.active or logs is None:
            return
        try:
            if not self._per_step and "loss" in logs:
                if w.record(state.global_step, logs["loss"], logs.get("learning_rate")):
                    control.should_training_stop = True
            if w.diagnosis_ is not None:
                logs["lrdoctor_verdict"] = w.diagnosis_.verdict
        except Exception as e:  # noqa: BLE001
            w.fail(e)

    def on_train_end(self, args, state, control, **kwargs):
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self.watch.finish()
