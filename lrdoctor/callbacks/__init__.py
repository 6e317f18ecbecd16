"""Training callbacks that diagnose the LR while the model trains: thin adapters on
:class:`lrdoctor.Monitor`, one per framework, each imported only when asked for.

=====================  ==========================================  ======================
class                  framework                                   install
=====================  ==========================================  ======================
``LightningCallback``  PyTorch Lightning (``lightning.pytorch``)   ``lrdoctor[lightning]``
``HFCallback``         Hugging Face ``transformers.Trainer``       ``lrdoctor[hf]``
``KerasCallback``      Keras 3 (any backend)                       ``lrdoctor[keras]``
=====================  ==========================================  ======================

Each takes the loss (and the LR) at every step, re-diagnoses every ``every`` steps (left out:
250, or further apart where that would take over 0.25% of the training's time; at once on a
non-finite loss or a jump far above the run's level), reports the verdict through the
framework's own channel, warns (:class:`LrDoctorWarning`) once per change of verdict with
the finding and the advice, optionally stops training on a finding of a kind in
``stop_on``, and writes ``report`` at the end. An internal error never reaches the training
loop: it becomes one warning and the callback turns itself off.
"""
from lrdoctor.callbacks._base import STOP_KINDS, VERDICT_CODE, LrDoctorWarning, Watch

__all__ = ["HFCallback", "KerasCallback", "LightningCallback", "LrDoctorWarning",
           "STOP_KINDS", "VERDICT_CODE", "Watch"]

_LAZY = {"LightningCallback": "lrdoctor.callbacks.lightning",
         "HFCallback": "lrdoctor.callbacks.hf",
         "KerasCallback": "lrdoctor.callbacks.keras"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lrdoctor.callbacks' has no attribute {name!r}")
