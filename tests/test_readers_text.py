"""lrdoctor/readers/text.py: console output of nanoGPT, Megatron/DeepSpeed, fairseq, Keras
(written by Keras itself, tests/fixtures/), generic lines and --pattern."""
import pytest

from lrdoctor import LrDoctorError
from lrdoctor.cli import main
from lrdoctor.readers import read, sniff

from logs import FIXTURES

TEXT = {
    "nanoGPT": ("".join(f"iter {i}: loss {4.2 - i / 100:.4f}, time 101.23ms, mfu 12.01%\n"
                        for i in range(0, 200, 10)) +
                "step 100: train loss 3.1011, val loss 3.2500\n", 20, "nanoGPT"),
    "megatron": ("".join(
        f" iteration {i:8d}/    5000 | consumed samples: {i * 512:12d} | elapsed time per "
        f"iteration (ms): 812.3 | learning rate: {3e-4 * min(1, i / 50):.3E} | global batch "
        f"size:   512 | lm loss: {9.0 - i / 40:.6E} | loss scale: 1.0 | grad norm: 0.812 | "
        "number of skipped iterations:   0 | number of nan iterations:   0 |\n"
        for i in range(1, 201)), 200, "Megatron/DeepSpeed"),
    "fairseq": ("".join(
        f"2023-03-01 10:00:00 | INFO | train_inner | epoch 001:    {i} / 2000 loss={9 - i / 300:.3f}, "
        f"nll_loss=8.1, ppl=274.4, wps=11000, ups=4.1, wpb=2500, bsz=100, num_updates={i}, "
        f"lr={1e-4 * i / 1000:.6g}, gnorm=1.9, clip=0, train_wall=25\n"
        for i in range(100, 2100, 100)) +
        "| epoch 001 | valid on 'valid' subset | valid_loss 6.43 | valid_nll_loss 5.2 | "
        "valid_ppl 37.61 | num_updates 2000 | best 6.43\n", 20, "fairseq"),
    "generic": ("".join(f"[2024-01-01 10:00:{i % 60:02d}] Step {i}/1000, Loss: {2 - i / 1000:.4f}, "
                        f"lr=1e-3\n" for i in range(0, 1000, 20)), 50, "generic"),
}


@pytest.mark.parametrize("name", sorted(TEXT))
def test_plain_text_dialects(tmp_path, name):
    text, n, dialect = TEXT[name]
    p = tmp_path / f"{name}.log"
    p.write_text("some banner line\nloading data...\n" + text)
    assert sniff(p) == "text"
    [h] = read(p)
    assert len(h.loss) == n and any(note.startswith(f"read as {dialect}") for note in h.notes)
    if name in ("megatron", "fairseq", "generic"):
        assert h.lr.notna().all()
    if name in ("nanoGPT", "fairseq"):
        assert h.val_loss.notna().sum() == 1


@pytest.mark.parametrize("verbose", [1, 2])
def test_keras_console_output_written_by_keras(verbose):
    [h] = read(FIXTURES / f"keras_fit_verbose{verbose}.txt")
    assert len(h.loss) == 12 and h.steps.tolist() == list(range(1, 13))
    assert h.loss.iloc[0] == 0.7496 and h.val_loss.iloc[0] == 0.6897  # the epoch's final line
    assert "read as Keras console output" in h.notes


def test_pattern_reads_anything_else(tmp_path, capsys):
    p = tmp_path / "custom.out"
    p.write_text("".join(f"{i} | objective={2 - i / 100:.3f} | eta=0.001\n"
                         for i in range(40)))
    with pytest.raises(LrDoctorError, match="names seen: objective, eta; none is a loss"):
        read(p)
    [h] = read(p, pattern=r"^(?P<step>\d+) \| objective=(?P<loss>\S+) \| eta=(?P<lr>\S+)")
    assert len(h.loss) == 40 and h.lr.iloc[0] == 1e-3
    with pytest.raises(LrDoctorError, match="named group"):
        read(p, pattern=r"objective=(\S+)")
    code = main(["analyze", str(p), "--pattern", r"objective=(?P<loss>\S+)"])
    assert code == 0 and "40 points" in capsys.readouterr().out
