"""PyTorch Lightning: ``trainer = L.Trainer(callbacks=[LightningCallback(stop_on="nonfinite")])``."""
from __future__ import annotations

from lrdoctor.callbacks._base import Adapter, Watch, need

try:
    import lightning.pytorch as _pl
except ImportError:  # the standalone package works too
    _pl = need("pytorch_lightning", "lightning")


class LightningCallback(Adapter, _pl.Callback):
    """Diagnose the LR while a Lightning model trains.

    Reads the loss from the ``training_step``'s output (``outputs["loss"]``, or the tensor
    it returned) after every batch, the LR from the first optimizer's first parameter group,
    and the step from ``trainer.global_step``. At every re-diagnosis it logs
    ``lrdoctor/verdict_code`` (-1 unknown, 0 ok, 1 too low, 2 too high) to every logger of
    the trainer; it stops training with ``trainer.should_stop``.

    Parameters
    ----------
    every, stop_on, report, context, detectors, run
        As :class:`lrdoctor.callbacks.Watch`.
    """

    def __init__(self, every: int | None = None, *, stop_on=(), report=None,
                 context: str = "scratch", detectors: dict | None = None, run: str = "run"):
        self.watch = Watch(every, stop_on=stop_on, report=report, context=context,
                           detectors=detectors, run=run)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        w = self.watch
        if not w.active:
            return
        try:
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if loss is None:
                loss = trainer.callback_metrics.get("train_loss",
                                                    trainer.callback_metrics.get("loss"))
            if loss is None:
                return
            lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
            before = w.diagnosis_
            stop = w.record(trainer.global_step, loss.item() if hasattr(loss, "item")
                            else loss, lr)
            if w.diagnosis_ is not before:
                for logger in trainer.loggers:
                    logger.log_metrics({"lrdoctor/verdict_code": w.verdict_code},
                                       step=trainer.global_step)
            if stop:
                trainer.should_stop = True
        except Exception as e:  # noqa: BLE001 - never raise into the training loop
            w.fail(e)

    def on_train_end(self, trainer, pl_module):
        self.watch.finish()
