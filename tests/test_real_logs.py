"""The real logs in ../shared/real_logs (skipped with a reason where ../shared is absent)."""
import pytest

import lrdoctor


@pytest.mark.parametrize("rel,metric,n", [
    ("keras/lung_cancer_training_log.csv", "loss", 10),
    ("lightning/lstm_v2_metrics.csv", "train_loss", 120),
    ("lightning/pinn_pendulum_v11_metrics.csv", "train_loss_step", 640),
])
def test_keras_and_lightning_csv_read_with_no_flags(shared, rel, metric, n):
    [d] = lrdoctor.analyze(shared / "real_logs" / rel)
    assert d.metric == metric and len(d.history.loss) == n
    assert d.verdict in ("ok", "too_low", "too_high")


def test_lightning_interleaved_rows_merge_without_a_resume_note(shared):
    [d] = lrdoctor.analyze(shared / "real_logs/lightning/pinn_pendulum_v11_metrics.csv")
    assert not any("more than once" in n for n in d.history.notes)
    assert "train_loss_epoch" in d.history.available


def test_benchmark_runs_read_and_diagnosed(shared):
    runs = sorted((shared / "benchmarks/lr_sweeps/runs").glob("digits_cnn__constant__lr1__*.csv"))
    assert runs
    for p in runs:
        [d] = lrdoctor.analyze(p)
        assert d.verdict == "too_high" and d.current_lr == 1.0
