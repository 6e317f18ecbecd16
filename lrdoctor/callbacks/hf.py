"""Hugging Face ``transformers.Trainer``: ``Trainer(..., callbacks=[HFCallback(stop_on="nonfinite")])``."""
from __future__ import annotations

import math

from lrdoctor.callbacks._base import Adapter, Watch, need

_transformers = need("transformers", "hf")
#: The event after the optimizer's step, before the scheduler's (transformers >= 4.42).
_STEP_EVENT = getattr(_transformers.TrainerCallback, "on_optimizer_step", None)


class HFCallback(Adapter, _transformers.TrainerCallback):
    """Diagnose the LR while a ``transformers.Trainer`` trains.

    The Trainer hands callbacks the loss only in ``logs``, averaged over ``logging_steps``.
    To read it at every optimizer step, this callback puts a forward hook on the model that
    keeps the loss the model returns while training (``outputs.loss``: the model computes
    it when the batch has labels, the usual case), averaged over the micro-batches of
    gradient accumulation, and records it at ``on_optimizer_step`` with the LR the
    optimizer has just used (the scheduler steps after it) and the step the Trainer is
    finishing (``state.global_step + 1``). When the model returns no loss (a custom
    ``compute_loss``), or the Trainer has no ``on_optimizer_step`` (transformers before
    4.42), it falls back on the logged loss at the logging granularity, ``logging_steps``.

    At each log it adds ``lrdoctor_verdict`` (``ok``, ``too_low``, ``too_high``,
    ``unknown``: the latest diagnosis) to ``logs`` (seen by the callbacks after this one,
    e.g. one added later with ``trainer.add_callback``); the Trainer's final summary (the
    log with ``train_loss``) gets the diagnosis of the whole run. It stops with
    ``control.should_training_stop``.

    Parameters
    ----------
    every, stop_on, report, context, detectors, run
        As :class:`lrdoctor.callbacks.Watch`; ``every`` counts optimizer steps.
    """

    def __init__(self, every: int | None = None, *, stop_on=(), report=None,
                 context: str = "scratch", detectors: dict | None = None, run: str = "run"):
        self.watch = Watch(every, stop_on=stop_on, report=report, context=context,
                           detectors=detectors, run=run)
        self._hook = None
        self._losses: list = []   # the step's micro-batch losses (floats, or tensors)
        self._per_step = False

    def _keep_loss(self, module, args, output):
        if not module.training:
            return
        loss = getattr(output, "loss", None)
        if loss is None and isinstance(output, dict):
            loss = output.get("loss")
        if loss is not None:
            # on the CPU the value is there: read now; on a device, read at the optimizer
            # step, once the Trainer has waited for the backward pass (no wait of our own)
            self._losses.append(loss.item() if loss.is_cpu else loss.detach())

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        w = self.watch
        if not w.active or model is None or _STEP_EVENT is None:
            return  # no per-step loss: the logged one, at each log
        try:
            self._hook = model.register_forward_hook(self._keep_loss)
        except Exception as e:  # noqa: BLE001
            w.fail(e)

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        w = self.watch
        losses = self._losses
        if not w.active or not losses:
            return
        self._losses = []
        self._per_step = True
        try:
            if len(losses) == 1:
                loss = losses[0] if type(losses[0]) is float else losses[0].item()
            else:
                loss = math.fsum(x if type(x) is float else x.item()
                                 for x in losses) / len(losses)
            lr = optimizer.param_groups[0]["lr"] if optimizer is not None else None
            if w.record(state.global_step + 1, loss, lr):
                control.should_training_stop = True
        except Exception as e:  # noqa: BLE001 - never raise into the training loop
            w.fail(e)

    def on_log(self, args, state, control, logs=None, **kwargs):
        w = self.watch
        if not w.active or logs is None:
            return
        try:
            if not self._per_step and "loss" in logs:
                if w.record(state.global_step, logs["loss"], logs.get("learning_rate")):
                    control.should_training_stop = True
            if "train_loss" in logs:  # the final summary: the whole run's diagnosis
                w.conclude()
            if w.diagnosis_ is not None:
                logs["lrdoctor_verdict"] = w.diagnosis_.verdict
        except Exception as e:  # noqa: BLE001
            w.fail(e)

    def on_train_end(self, args, state, control, **kwargs):
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self._losses = []
        self.watch.finish()
