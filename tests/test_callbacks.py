"""The training callbacks on tiny real models, on CPU, a few seconds each: a run at a sane LR
stays ``ok``; a run at a huge LR is stopped at its first non-finite step, and the warning
carries the finding and the advice. Each framework is skipped, with its reason, when its
extra is not installed."""
import os
import warnings

import numpy as np
import pytest

from lrdoctor.callbacks import LrDoctorWarning

os.environ.setdefault("KERAS_BACKEND", "jax")


def _lrdoctor_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, LrDoctorWarning)]


def _regression_data(n=256, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n)).astype(np.float32)
    return x, y[:, None]


def _spy(cb):
    """Keep what the callback's Monitor hands its summary (the rows, with the LRs read) and
    the number of points at each diagnosis it makes, to hold them against the truth and
    against ``lrdoctor analyze`` on the same prefix."""
    mon = cb.watch.monitor
    rows, made = [], []
    extend, diagnosis = mon.stream.extend, mon.diagnosis

    def keep_rows(step, loss, lr=None, **kw):
        n = len(loss)
        rows.append((np.asarray(step, float), np.asarray(loss, float),
                     np.full(n, np.nan) if lr is None else np.asarray(lr, float)))
        return extend(step, loss, lr=lr, **kw)

    def keep_diagnosis():
        d = diagnosis()
        made.append((mon.n_points, d))
        return d

    mon.stream.extend, mon.diagnosis = keep_rows, keep_diagnosis
    cb.spy_ = (rows, made)
    return cb


def _recorded(cb):
    """(steps, losses, LRs) the callback recorded, and [(points, Diagnosis)] it made."""
    rows, made = cb.spy_
    return tuple(np.concatenate(c) for c in zip(*rows)), made


def _every_diagnosis_is_the_batch_one(cb, tmp_path) -> int:
    from test_monitor import _answer, _write_csv

    import lrdoctor

    (steps, loss, lr), made = _recorded(cb)
    for n, d in made:
        _write_csv(tmp_path / "prefix.csv", steps[:n], loss[:n], lr[:n])
        [batch] = lrdoctor.analyze(tmp_path / "prefix.csv")
        assert _answer(d) == _answer(batch), f"cut at {n} points"
    return len(made)


# ------------------------------------------------------------------------------- Lightning
def _lightning_run(lr, steps, optimizer="Adam", **kw):
    torch = pytest.importorskip("torch", reason="torch is installed by lrdoctor[lightning]")
    L = pytest.importorskip("lightning.pytorch", reason="needs lrdoctor[lightning]")
    from lrdoctor.callbacks import LightningCallback

    torch.manual_seed(0)

    class Net(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(),
                                           torch.nn.Linear(32, 1))

        def training_step(self, batch, i):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self):
            return getattr(torch.optim, optimizer)(self.parameters(), lr=lr)

    x, y = _regression_data()
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        batch_size=16, shuffle=True)
    cb = LightningCallback(every=50, **kw)
    trainer = L.Trainer(max_steps=steps, callbacks=[cb], accelerator="cpu",
                        logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        trainer.fit(Net(), data)
    return cb, trainer, _lrdoctor_warnings(rec)


def _stopped_at_first_nonfinite(cb) -> int:
    """The points recorded, checking that only the last is non-finite (the run is kept as
    its summary: what it says of non-finite values)."""
    d = cb.watch.monitor.diagnosis()
    n = d.outline()[0]
    s = d.history.summary
    assert s.bad_count == 1 and s.last_is_bad and s.nf == n - 1
    return n


def test_lightning_sane_lr_stays_ok(tmp_path):
    cb, trainer, warned = _lightning_run(3e-2, 300, report=tmp_path / "run.html")
    assert cb.diagnosis_.verdict == "ok" and not warned
    assert trainer.global_step == 300 and cb.stopped_by_ is None
    assert (tmp_path / "run.html").stat().st_size > 1000


def test_lightning_huge_lr_stops_at_first_nonfinite_step():
    cb, trainer, warned = _lightning_run(1e3, 300, optimizer="SGD",
                                         stop_on=("nonfinite",))
    assert cb.stopped_by_.kind == "nonfinite"
    n = _stopped_at_first_nonfinite(cb)
    assert trainer.global_step == n < 300
    # warned once, at the blow-up before the overflow (a jump re-diagnoses at once)
    assert any("LR too high" in w and "lower 5-10x" in w for w in warned)


def test_lightning_huge_lr_stopped_at_the_blow_up_before_any_nonfinite_step():
    # the loss jumps far above its start before it overflows: the jump re-diagnoses at
    # once (not at the next ``every``), and an explosion in ``stop_on`` stops it there
    cb, trainer, warned = _lightning_run(1e3, 300, optimizer="SGD",
                                         stop_on=("nonfinite", "explosion"))
    assert cb.stopped_by_.kind == "explosion"
    d = cb.watch.monitor.diagnosis()
    n = d.outline()[0]
    assert d.history.summary.bad_count == 0 and trainer.global_step == n < 50
    assert any("LR too high" in w and "explosion" in w and "lower 5-10x" in w
               for w in warned)


# ------------------------------------------------------------------------------- HF
def _hf_train(tmp_path, lr, steps, optim="adamw_torch", every=100, schedule="constant",
              warmup=0, more=(), **kw):
    pytest.importorskip("torch", reason="torch is installed by lrdoctor[hf]")
    transformers = pytest.importorskip("transformers", reason="needs lrdoctor[hf]")
    pytest.importorskip("accelerate", reason="needs lrdoctor[hf]")
    import torch
    from lrdoctor.callbacks import HFCallback

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=1,
                                     n_head=2)
    model = transformers.GPT2LMHeadModel(config)  # built from a config: no download
    rng = np.random.default_rng(0)
    seqs = [np.arange(s, s + 16) % 32 for s in rng.integers(0, 32, 128)]
    data = [{"input_ids": torch.tensor(s), "labels": torch.tensor(s)} for s in seqs]
    cb = _spy(HFCallback(every=every, **kw))
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"), max_steps=steps, per_device_train_batch_size=8,
        learning_rate=lr, lr_scheduler_type=schedule, warmup_steps=warmup,
        logging_steps=10, report_to=[],
        save_strategy="no", use_cpu=True, disable_tqdm=True, max_grad_norm=0.0,
        optim=optim)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data,
                                   callbacks=[cb, *more])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        trainer.train()
    return cb, trainer, _lrdoctor_warnings(rec)


def test_hf_sane_lr_stays_ok_and_reads_every_step(tmp_path):
    cb, trainer, warned = _hf_train(tmp_path, 3e-2, 200)
    assert cb.diagnosis_.verdict == "ok" and not warned
    assert cb.watch.monitor.n_points == 200  # every optimizer step, not every 10th (logs)


def test_hf_huge_lr_stops_at_first_nonfinite_step(tmp_path):
    cb, trainer, warned = _hf_train(tmp_path, 1e3, 150, optim="sgd",
                                   stop_on=("nonfinite",))
    assert cb.stopped_by_ is not None and cb.stopped_by_.kind == "nonfinite"
    n = _stopped_at_first_nonfinite(cb)
    assert trainer.state.global_step == cb.watch.monitor.n_points == n < 150
    assert any("LR too high" in w and "lower 5-10x" in w for w in warned)


def test_hf_final_summary_carries_the_diagnosis_of_the_whole_run(tmp_path):
    # at LR 1e-2 the run reads as slow at step 100 and fine at its end, 192: the Trainer's
    # final summary (train_loss, train_runtime...) logged the step-100 verdict
    transformers = pytest.importorskip("transformers", reason="needs lrdoctor[hf]")

    class Seen(transformers.TrainerCallback):  # a callback after lrdoctor's sees its key
        logs: list = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.logs.append(dict(logs))

    cb, trainer, warned = _hf_train(tmp_path, 1e-2, 192, more=[Seen()])
    *periodic, summary = Seen.logs
    assert "train_loss" in summary
    final = cb.watch.monitor.diagnosis()
    assert final.outline()[2] == 192
    assert summary["lrdoctor_verdict"] == cb.diagnosis_.verdict == final.verdict == "ok"
    assert [x.get("lrdoctor_verdict") for x in periodic][9:] == ["too_low"] * 10
    assert any("at step 192" in w and "LR looks fine" in w for w in warned)


def test_hf_records_the_lr_each_step_used_and_every_diagnosis_is_the_batch_one(tmp_path):
    # a linear schedule with warmup: the LR changes at every step
    cb, trainer, _ = _hf_train(tmp_path, 3e-2, 120, every=40, schedule="linear", warmup=20)
    (steps, loss, lr), made = _recorded(cb)
    assert list(steps) == list(range(1, 121))
    used = {x["step"]: x["learning_rate"] for x in trainer.state.log_history
            if "learning_rate" in x}  # what the Trainer logs: the LR of that step
    assert len(used) == 12
    assert np.allclose([lr[s - 1] for s in used], list(used.values()), rtol=1e-12)
    assert lr[0] < lr[19] and lr[19] > lr[-1] > 0   # warmup, then decay
    assert _every_diagnosis_is_the_batch_one(cb, tmp_path) >= 3


# ------------------------------------------------------------------------------- Keras
def _keras_model(lr, optimizer="Adam", steps_per_execution=1):
    keras = pytest.importorskip("keras", reason="needs lrdoctor[keras]")
    if keras.backend.backend() != "jax":
        pytest.skip(f"Keras runs on the {keras.backend.backend()!r} backend; the test "
                    "uses JAX (KERAS_BACKEND=jax)")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="tanh"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=getattr(keras.optimizers, optimizer)(lr), loss="mse",
                  steps_per_execution=steps_per_execution)
    return keras, model


def _keras_batch_losses(lr, x, y, batch_size):
    """Each batch's own loss, in order: the same seeded model trained one batch per fit
    (the loss of a one-batch epoch is that batch's)."""
    _, model = _keras_model(lr)
    return np.array([model.fit(x[k:k + batch_size], y[k:k + batch_size], epochs=1,
                               batch_size=batch_size, shuffle=False,
                               verbose=0).history["loss"][0]
                     for k in range(0, len(x), batch_size)])


def _keras_fit(lr, epochs, optimizer="Adam", callbacks=(), steps_per_execution=1,
               validation_data=None, before=(), **kw):
    from lrdoctor.callbacks import KerasCallback

    keras, model = _keras_model(lr, optimizer, steps_per_execution)
    x, y = _regression_data()
    cb = _spy(KerasCallback(every=50, **kw))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        hist = model.fit(x, y, batch_size=16, epochs=epochs, verbose=0,
                         callbacks=[*before, cb, *callbacks],
                         validation_data=validation_data)
    return cb, hist, _lrdoctor_warnings(rec)


def test_keras_sane_lr_stays_ok():
    cb, hist, warned = _keras_fit(3e-2, 20)
    assert cb._mode == "async"  # Keras ran on_train_batch_end on its worker threads
    assert cb.diagnosis_.verdict == "ok" and not warned
    assert cb.watch.monitor.n_points == 20 * 16
    assert hist.history["lrdoctor_verdict_code"][-1] == 0.0


def test_keras_recovers_the_batch_loss_from_the_running_mean():
    cb, hist, _ = _keras_fit(3e-3, 2)
    loss = cb.watch.monitor.diagnosis().history.logged_loss
    # the epoch's mean of the recovered batch losses is the loss Keras reports for it
    assert np.allclose([loss[:16].mean(), loss[16:].mean()], hist.history["loss"],
                       rtol=1e-4)


def test_keras_huge_lr_stops_at_first_nonfinite_step():
    cb, hist, warned = _keras_fit(1e3, 20, optimizer="SGD", stop_on=("nonfinite",))
    assert cb._mode == "sync"  # to stop before the next batch, it runs on the training thread
    assert cb.stopped_by_ is not None and cb.stopped_by_.kind == "nonfinite"
    assert _stopped_at_first_nonfinite(cb) < 20 * 16
    assert any("LR too high" in w and "lower 5-10x" in w for w in warned)


def test_keras_schedule_recorded_as_used_and_every_diagnosis_is_the_batch_one(tmp_path):
    keras = pytest.importorskip("keras", reason="needs lrdoctor[keras]")
    schedule = keras.optimizers.schedules.ExponentialDecay(3e-2, decay_steps=30,
                                                           decay_rate=0.5)
    cb, hist, _ = _keras_fit(schedule, 10)
    (steps, loss, lr), made = _recorded(cb)
    assert list(steps) == list(range(160))
    # batch k is trained at the schedule's value at the optimizer's step count k
    truth = [float(schedule(k)) for k in range(160)]
    assert np.allclose(lr, truth, rtol=1e-6) and lr[0] > 10 * lr[-1]
    assert _every_diagnosis_is_the_batch_one(cb, tmp_path) >= 3


def test_keras_lr_set_every_batch_by_another_callback_is_the_range_test_analyze_reads(
        tmp_path):
    keras = pytest.importorskip("keras", reason="needs lrdoctor[keras]")
    lrs = np.geomspace(1e-4, 3.0, 160)

    class RangeTest(keras.callbacks.Callback):  # an LR finder: a new LR at every batch
        k = 0

        def on_train_batch_begin(self, batch, logs=None):
            self.model.optimizer.learning_rate = float(lrs[self.k])
            self.k += 1

    cb, hist, _ = _keras_fit(1e-4, 10, optimizer="SGD", callbacks=[RangeTest()])
    (steps, loss, lr), made = _recorded(cb)
    assert np.array_equal(lr, lrs.astype(np.float32).astype(np.float64))
    assert _every_diagnosis_is_the_batch_one(cb, tmp_path) >= 3
    assert cb.diagnosis_.verdict == made[-1][1].verdict == "range_test"


def test_keras_lr_changed_between_epochs_and_validation_are_read_as_used(tmp_path):
    keras = pytest.importorskip("keras", reason="needs lrdoctor[keras]")
    x, y = _regression_data(64)
    per_epoch = [1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5]
    halve = keras.callbacks.LearningRateScheduler(lambda epoch, lr: per_epoch[epoch])
    cb, hist, _ = _keras_fit(1e-1, 6, callbacks=[halve], validation_data=(x, y))
    assert cb._mode == "async" and "val_loss" in hist.history
    (steps, loss, lr), made = _recorded(cb)
    assert list(steps) == list(range(96))
    truth = np.repeat(np.float32(per_epoch).astype(np.float64), 16)
    assert np.array_equal(lr, truth)
    assert _every_diagnosis_is_the_batch_one(cb, tmp_path) >= 1


def test_keras_several_batches_a_call_recover_each_calls_mean_loss():
    keras = pytest.importorskip("keras", reason="needs lrdoctor[keras]")
    schedule = keras.optimizers.schedules.ExponentialDecay(3e-2, decay_steps=30,
                                                           decay_rate=0.5)
    cb, hist, _ = _keras_fit(schedule, 3, steps_per_execution=5)
    (steps, loss, lr), made = _recorded(cb)
    # 16 batches an epoch in calls of 5, 5, 5 and 1: a point per call, its mean loss
    assert list(steps) == list(range(12))
    per_epoch = [np.average(loss[i:i + 4], weights=[5, 5, 5, 1]) for i in (0, 4, 8)]
    assert np.allclose(per_epoch, hist.history["loss"], rtol=1e-4)
    # a call's LR is the one its last batch was trained with
    last = np.array([4, 9, 14, 15])
    truth = [float(schedule(k)) for k in np.concatenate([last, last + 16, last + 32])]
    assert np.allclose(lr, truth, rtol=1e-6)


def test_keras_calls_finished_out_of_order_by_workers_are_recorded_in_order():
    keras = pytest.importorskip("keras", reason="needs lrdoctor[keras]")
    import threading

    from lrdoctor.callbacks import KerasCallback

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    rng = np.random.default_rng(7)
    loss = np.exp(-np.arange(400) / 100) + 0.05 * rng.random(400)
    means = np.cumsum(loss) / np.arange(1, 401)
    cb = _spy(KerasCallback(every=50))
    cb.set_model(model)
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    ends = []
    warnings.simplefilter("ignore", LrDoctorWarning)  # (pytest restores the filters)
    for k in range(400):  # the training thread begins each call; workers end them late,
        cb.on_train_batch_begin(k)  # up to 30 at a time, in any order
        ends.append(k)
        if len(ends) == 30 or k == 399:
            order = rng.permutation(ends)
            threads = [threading.Thread(target=cb.on_train_batch_end,
                                        args=(int(e), {"loss": float(means[e])}))
                       for e in order]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            ends = []
    cb.on_epoch_end(0, {})
    (steps, got, lr), made = _recorded(cb)
    assert cb._mode == "async" and cb.watch.active
    assert list(steps) == list(range(400))
    assert np.allclose(got, loss, rtol=1e-9, atol=1e-12)
    assert np.all(lr == np.float32(1e-3))
    assert [n for n, _ in made] == list(range(50, 401, 50))


@pytest.mark.parametrize("on_workers", [True, False])
@pytest.mark.filterwarnings("ignore::UserWarning")  # verdicts, Keras' notes
def test_keras_a_smaller_last_batch_gets_its_own_loss(on_workers):
    from lrdoctor.callbacks import KerasCallback

    x, y = _regression_data(200)  # batches of 64, 64, 64 and 8 samples
    truth = _keras_batch_losses(3e-2, x, y, 64)
    keras, model = _keras_model(3e-2)
    cb = _spy(KerasCallback(every=50))
    cb.async_safe = on_workers  # False: Keras calls every callback on the training thread
    model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
    (steps, loss, lr), made = _recorded(cb)
    assert cb._mode == ("async" if on_workers else "sync")
    assert np.allclose(loss, truth, rtol=1e-4) and abs(truth[-1] - truth[-2]) > 0.1


@pytest.mark.filterwarnings("ignore::UserWarning")  # verdicts, Keras' notes
def test_keras_generator_of_unknown_length_in_calls_of_three_batches():
    from lrdoctor.callbacks import KerasCallback

    x, y = _regression_data(256)
    truth = _keras_batch_losses(3e-2, x, y, 16)

    def batches():  # 16 batches, Keras not told: the last call holds one
        for k in range(16):
            yield x[16 * k:16 * (k + 1)], y[16 * k:16 * (k + 1)]

    keras, model = _keras_model(3e-2, steps_per_execution=3)
    cb = _spy(KerasCallback(every=50))
    model.fit(batches(), epochs=1, verbose=0, callbacks=[cb])
    (steps, loss, lr), made = _recorded(cb)
    calls = [truth[a:a + 3].mean() for a in range(0, 16, 3)]
    assert cb._mode == "async" and np.allclose(loss, calls, rtol=1e-4)


@pytest.mark.filterwarnings("ignore::UserWarning")  # verdicts, Keras' notes
def test_keras_lr_lowered_by_an_earlier_callback_after_validation_is_read_as_used():
    keras = pytest.importorskip("keras", reason="needs lrdoctor[keras]")
    x, y = _regression_data(64, seed=1)
    halve = keras.callbacks.ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=10.0)
    cb, hist, _ = _keras_fit(1e-2, 3, before=[halve], validation_data=(x, y))
    (steps, loss, lr), made = _recorded(cb)
    # ReduceLROnPlateau, listed first, halves the LR at each epoch's end (from the second)
    truth = np.float32([1e-2] * 32 + [5e-3] * 16).astype(np.float64)
    assert cb._mode == "async" and np.array_equal(lr, truth)


@pytest.mark.filterwarnings("ignore::UserWarning")  # verdicts, Keras' notes
def test_keras_mixed_precision_reads_the_inner_optimizers_lr():
    keras = pytest.importorskip("keras", reason="needs lrdoctor[keras]")
    schedule = keras.optimizers.schedules.ExponentialDecay(3e-2, decay_steps=7,
                                                           decay_rate=0.7)
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        for lr, truth in ((3e-3, [np.float32(3e-3)] * 32),
                          (schedule, [float(schedule(k)) for k in range(32)])):
            cb, hist, _ = _keras_fit(lr, 2)
            (steps, loss, got), made = _recorded(cb)
            assert type(cb.model.optimizer).__name__ == "LossScaleOptimizer"
            assert np.allclose(got, truth, rtol=1e-6)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


@pytest.mark.filterwarnings("ignore::UserWarning")  # verdicts, Keras' notes
def test_keras_fit_that_raised_keeps_every_batch_trained():
    keras = pytest.importorskip("keras", reason="needs lrdoctor[keras]")

    class Interrupt(keras.callbacks.Callback):  # as Ctrl-C at the 24th batch
        k = 0

        def on_train_batch_begin(self, batch, logs=None):
            self.k += 1
            if self.k == 24:
                raise KeyboardInterrupt

    from lrdoctor.callbacks import KerasCallback

    keras, model = _keras_model(3e-3)
    x, y = _regression_data()
    cb = _spy(KerasCallback(every=50))
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[cb, Interrupt()])
    assert cb._mode == "async"
    cb.on_train_end()  # what a fit that raised left queued is recorded
    assert cb.watch.monitor.n_points == int(cb.model.optimizer.iterations) == 23


def _reset_metrics_every_10th(keras):
    class Reset(keras.callbacks.Callback):  # a sync and a new running mean every 10 calls
        k = 0

        def on_train_batch_begin(self, batch, logs=None):
            self.k += 1
            if self.k % 10 == 0:
                self.model.reset_metrics()
    return [Reset()], {}


def _evaluate_in_an_earlier_callbacks_epoch_end(keras):
    x, y = _regression_data(40, seed=3)

    class Evaluate(keras.callbacks.Callback):  # drops the state before lrdoctor's turn
        def on_epoch_end(self, epoch, logs=None):
            self.model.evaluate(x, y, verbose=0)
    return [], {"before": [Evaluate()]}


@pytest.mark.filterwarnings("ignore::UserWarning")  # verdicts
@pytest.mark.parametrize("scenario", [_reset_metrics_every_10th,
                                      _evaluate_in_an_earlier_callbacks_epoch_end])
def test_keras_on_workers_records_what_on_the_training_thread_does(scenario):
    from lrdoctor.callbacks import KerasCallback

    got = {}
    for on_workers in (True, False):
        keras, model = _keras_model(3e-2)
        after, kw = scenario(keras)
        cb = _spy(KerasCallback(every=50))
        cb.async_safe = on_workers
        x, y = _regression_data(200)  # batches of 16, the last of 8
        model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                  callbacks=[*kw.get("before", []), cb, *after])
        assert cb._mode == ("async" if on_workers else "sync")
        got[on_workers] = _recorded(cb)[0]
    for a, b in zip(got[True], got[False]):
        assert len(a) == 39 and np.allclose(a, b, rtol=1e-5)


@pytest.mark.filterwarnings("ignore::UserWarning")  # verdicts, Keras' notes
def test_keras_generator_of_unknown_length_when_each_worker_records_its_own_call(
        monkeypatch):
    import lrdoctor.callbacks.keras as K

    monkeypatch.setattr(K, "_BULK", 1)  # as with slow steps: each call taken at once
    x, y = _regression_data(200)
    truth = _keras_batch_losses(3e-2, x, y, 16)

    def batches():  # 13 batches, the last of 8, Keras not told
        for k in range(0, 200, 16):
            yield x[k:k + 16], y[k:k + 16]

    keras, model = _keras_model(3e-2)
    cb = _spy(K.KerasCallback(every=50))
    model.fit(batches(), epochs=1, verbose=0, callbacks=[cb])
    (steps, loss, lr), made = _recorded(cb)
    assert cb._mode == "async" and np.allclose(loss, truth, rtol=1e-4)


# ------------------------------------------------------------------------------- faults
def test_missing_framework_names_the_extra(monkeypatch):
    import builtins
    import importlib
    import sys

    real = builtins.__import__

    def no_keras(name, *a, **k):
        if name == "keras" or name.startswith("keras."):
            raise ImportError("No module named 'keras'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_keras)
    monkeypatch.delitem(sys.modules, "lrdoctor.callbacks.keras", raising=False)
    monkeypatch.delitem(sys.modules, "keras", raising=False)
    with pytest.raises(ImportError, match=r"pip install lrdoctor\[keras\]"):
        importlib.import_module("lrdoctor.callbacks.keras")
