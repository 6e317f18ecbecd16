"""lrdoctor.watch on the formats that are not lines of text: TensorBoard event files (record by
record), MLflow metric files (line by line), W&B history (JSON lines) and trainer_state.json
(only the new log_history entries fed). After every poll the watcher's answer equals
``lrdoctor analyze`` on what was written so far."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import lrdoctor
from lrdoctor.watch import WAIT_ROWS as WAIT
from lrdoctor.watch import Watcher

from logs import tb_write


def _answer(d):
    return (d.verdict, [(f.kind, f.start, f.end, round(f.severity, 3)) for f in d.findings],
            d.outline()[:3], d.recommendation.action, d.recommendation.suggested_lr)


def _grow(folder: Path, writes, ref: Path, *, given=None, lines=False, **how):
    """Write ``writes`` (a list of polls, each a list of (file name, bytes to append))
    into ``folder``; after each poll, the watcher's answer on ``given`` (default: the
    folder) equals lrdoctor.analyze on a copy of the folder (with ``lines``: of the
    complete lines of its files). Returns the number of polls compared, the watcher's
    source and every event."""
    folder.mkdir(parents=True, exist_ok=True)
    given = given or folder
    compared, events = 0, []
    with Watcher([str(given)], **how) as w:
        for poll in writes:
            for name, data in poll:
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                with open(folder / name, "ab") as fh:
                    fh.write(data)
            events += w.poll()
            shutil.rmtree(ref, ignore_errors=True)
            shutil.copytree(folder, ref)
            if lines:
                for f in ref.rglob("*"):
                    if f.is_file() and f.name != "meta.yaml":
                        data = f.read_bytes()
                        f.write_bytes(data[: data.rfind(b"\n") + 1])
            target = ref / Path(given).relative_to(folder) if given != folder else ref
            try:
                batch = lrdoctor.analyze(target, **how)
            except lrdoctor.LrDoctorError:
                assert str(given) not in w.diagnoses_ or not any(
                    e["event"] in ("start", "verdict") for e in events[-1:])
                continue
            got = [_answer(d) for d in w.diagnoses_.values()]
            assert got == [_answer(d) for d in batch], f"poll {compared}"
            compared += 1
        src = w._sources[str(given)]
    return compared, src, events


def _cut(data: bytes, cuts):
    out, done = [], 0
    for c in cuts:
        out.append(data[done:c])
        done = c
    return out


def _record_ends(data: bytes) -> list[int]:
    import struct

    ends, pos = [], 0
    while pos + 12 <= len(data):
        (n,) = struct.unpack_from("<Q", data, pos)
        pos += 16 + n
        ends.append(pos)
    return ends


def _events(n=600, nan_at=550, val_every=50, lr=1e-3, start=0):
    """Scalars as a training loop writes them: the loss and the LR at each step, the
    validation loss now and then; the loss NaN from ``nan_at`` on."""
    out = []
    for s in range(start, start + n):
        loss = float(2.3 * np.exp(-s / 100) + 0.2) if s < nan_at else float("nan")
        out += [(s, "train/loss", loss), (s, "lr", lr)]
        if val_every and s % val_every == val_every - 1:
            out.append((s, "val/loss", 1.0 + s / 1000))
    return out


# ------------------------------------------------------------------ TensorBoard
def _tb_bytes(tmp_path, scalars, **kw) -> tuple[str, bytes]:
    pytest.importorskip("tensorboard")
    d = tmp_path / f"w{len(list(tmp_path.iterdir()))}"
    d.mkdir()
    f = tb_write(d, scalars, **kw)
    return f.name, f.read_bytes()


@pytest.mark.parametrize("style", ["simple", "tensor"])
def test_event_file_at_record_ends_and_random_bytes_equals_batch(tmp_path, style):
    name, data = _tb_bytes(tmp_path, _events(), style=style)
    rng = np.random.default_rng(3)
    ends = _record_ends(data)
    cuts = sorted(set(rng.choice(ends, 12).tolist()) | set(rng.integers(1, len(data), 12)
                                                           .tolist()) | {len(data)})
    n, src, events = _grow(tmp_path / "run", [[(name, p)] for p in _cut(data, cuts)],
                           tmp_path / "ref")
    assert n >= 20 and src.mode == "tensorboard"  # never fell back to reading whole
    assert not [e for e in events if e["event"] in ("note", "error")]
    assert src.follower.records == len(ends)  # each record decoded once
    assert "nonfinite" in [e["finding"]["kind"] for e in events if e["event"] == "finding"]


def test_real_event_files_cut_anywhere_equal_batch(shared, tmp_path):
    rng = np.random.default_rng(4)
    for f in sorted((shared / "real_logs" / "tensorboard").iterdir()):
        data = f.read_bytes()
        ends = _record_ends(data)
        cuts = sorted(set(rng.choice(ends, 10).tolist()) |
                      set(rng.integers(1, len(data), 10).tolist()) | {len(data)})
        n, src, _ = _grow(tmp_path / f.name / "run", [[(f.name, p)] for p in _cut(data, cuts)],
                          tmp_path / f.name / "ref")
        assert n >= 15, f.name
        # Ultralytics writes its loss in parts, many writes at one step (the epoch): the
        # batch reader pairs the parts' writes in order only where every part has as many,
        # else it takes each part's last write per step, so a cut between two parts of a
        # step changes the whole curve: that run is read whole at each change
        assert src.mode == ("reread" if f.name.startswith("yolodog") else "tensorboard")


def test_a_partial_record_waits_and_a_single_event_file_is_followed(tmp_path):
    name, data = _tb_bytes(tmp_path, _events(300, nan_at=10**9))
    ends = _record_ends(data)
    log = tmp_path / "run" / name
    log.parent.mkdir()
    log.write_bytes(data[: ends[100] + 7])  # seven bytes into a record
    with Watcher([str(log)]) as w:
        ev = w.poll()
        assert [e["event"] for e in ev] == ["start"]
        src = w._sources[str(log)]
        assert src.mode == "tensorboard" and src.follower.files[name]["offset"] == ends[100]
        with open(log, "ab") as fh:
            fh.write(data[ends[100] + 7:])
        assert all(e["event"] in ("verdict", "finding") for e in w.poll())
        [batch] = lrdoctor.analyze(log)
        assert _answer(w.diagnoses_[str(log)]) == _answer(batch)
        assert src.follower.records == len(ends)


def test_a_new_event_file_in_the_folder_is_followed_too(tmp_path):
    # the run goes on in a second file (a restart that resumes where it stopped)
    n1, d1 = _tb_bytes(tmp_path, _events(300, nan_at=10**9))
    n2, d2 = _tb_bytes(tmp_path, _events(300, nan_at=520, start=300))
    n2 = n1.replace("tfevents.", "tfevents.9")  # sorts after the first by its timestamp
    polls = [[(n1, p)] for p in _cut(d1, [len(d1) // 2, len(d1)])] + \
        [[(n2, p)] for p in _cut(d2, [len(d2) // 3, 2 * len(d2) // 3, len(d2)])]
    n, src, events = _grow(tmp_path / "run", polls, tmp_path / "ref")
    assert n == 5 and src.mode == "tensorboard"
    assert len(src.follower.files) == 2 and "too_high" in [e.get("verdict") for e in events]


def test_a_resumed_run_in_a_new_file_is_read_whole_with_a_note(tmp_path):
    n1, d1 = _tb_bytes(tmp_path, _events(300, nan_at=10**9))
    n2, d2 = _tb_bytes(tmp_path, _events(200, nan_at=10**9, start=200, lr=3e-3))
    n2 = n1.replace("tfevents.", "tfevents.9")
    n, src, events = _grow(tmp_path / "run", [[(n1, d1)], [(n2, d2[:999])], [(n2, d2[999:])]],
                           tmp_path / "ref")
    assert n == 3 and src.mode == "reread"
    assert any("steps go back" in e.get("message", "") for e in events)


def test_an_event_file_truncated_or_replaced_is_read_again(tmp_path):
    name, data = _tb_bytes(tmp_path, _events(400, nan_at=10**9))
    ends = _record_ends(data)
    run = tmp_path / "run"
    run.mkdir()
    log = run / name
    log.write_bytes(data)
    with Watcher([str(run)]) as w:
        w.poll()
        log.write_bytes(data[: ends[200]])  # truncated in place
        ev = w.poll()
        assert any("truncated" in e.get("message", "") for e in ev)
        assert _answer(w.diagnoses_[str(run)]) == _answer(lrdoctor.analyze(run)[0])
        other = tmp_path / "other"
        other.write_bytes(data[: ends[300]])
        os.replace(other, log)  # another inode
        ev = w.poll()
        assert any("replaced" in e.get("message", "") for e in ev)
        assert _answer(w.diagnoses_[str(run)]) == _answer(lrdoctor.analyze(run)[0])
        assert w._sources[str(run)].mode == "tensorboard"


def test_damaged_records_mid_file_are_skipped_with_one_note(tmp_path):
    name, data = _tb_bytes(tmp_path, _events(400, nan_at=10**9))
    ends = _record_ends(data)
    bad = bytearray(data)
    bad[ends[300] + 3: ends[300] + 40] = b"\xee" * 37  # the bytes of a record overwritten
    bad = bytes(bad)
    polls = [[(name, p)] for p in _cut(bad, [ends[250], ends[300] + 20, ends[320] + 5,
                                            ends[500], len(bad)])]
    n, src, events = _grow(tmp_path / "run", polls, tmp_path / "ref")
    assert n == 5 and src.mode == "tensorboard"
    notes = [e["message"] for e in events if e["event"] == "note"]
    assert len(notes) == 1 and "damaged and were skipped" in notes[0], notes
    assert f"bytes {ends[300]}-" in notes[0]  # where in the file, not in the piece read


def test_event_file_runs_are_kept_as_summaries(tmp_path):
    name, data = _tb_bytes(tmp_path, _events(20_000, nan_at=10**9, val_every=1000))
    run = tmp_path / "run"
    run.mkdir()
    with Watcher([str(run)]) as w:
        for part in _cut(data, [len(data) // 4, len(data) // 2, len(data)]):
            with open(run / name, "ab") as fh:
                fh.write(part)
            w.poll()
        rows = w._sources[str(run)].follower.rows
        # what waits for the next step is one step's writes, not the run
        assert all(len(s) <= 2 for s, _ in rows.wait.values())
        assert rows.stream.summary.m <= 4096
        assert w.diagnoses_[str(run)].outline()[0] == 20_000


# ------------------------------------------------------------------ MLflow
def _mlflow_lines(n=500, nan_at=None, every_val=100, lr_every=1):
    ts = 1_700_000_000_000
    out = {"loss": [], "learning_rate": [], "val_loss": []}
    for s in range(n):
        v = 2.5 * np.exp(-s / 150) + 0.1 if nan_at is None or s < nan_at else float("nan")
        out["loss"].append(f"{ts + s} {v} {s}\n")
        if s % lr_every == 0:
            out["learning_rate"].append(f"{ts + s} 0.001 {s}\n")
        if every_val and s % every_val == every_val - 1:
            out["val_loss"].append(f"{ts + s} {1.0 + s / 2000} {s}\n")
    return {k: "".join(v).encode() for k, v in out.items() if v}


def test_mlflow_run_folder_line_by_line_equals_batch(tmp_path):
    files = _mlflow_lines(nan_at=450)
    rng = np.random.default_rng(5)
    polls = []
    cuts = {k: _cut(v, sorted(set(rng.integers(1, len(v), 9).tolist())) + [len(v)])
            for k, v in files.items()}
    for i in range(10):  # each poll appends a piece of every metric file (mid-line too)
        polls.append([(f"metrics/{k}", c[i]) for k, c in cuts.items() if i < len(c)])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "meta.yaml").write_text("run_name: grow\n")
    n, src, events = _grow(tmp_path / "run", polls, tmp_path / "ref", lines=True)
    assert n >= 8 and src.mode == "mlflow"
    assert src.follower.records == sum(v.count(b"\n") for v in files.values())
    assert events[0]["run"] == "grow" and events[-1].get("verdict") == "too_high"


def test_mlflow_metric_files_that_appear_later_are_picked_up(tmp_path):
    files = _mlflow_lines(n=400, every_val=100, lr_every=50)
    loss, val = files["loss"], files["val_loss"]
    half = loss.index(b" 199\n") + 5
    polls = [[("metrics/loss", loss[:half]), ("metrics/learning_rate", files["learning_rate"])],
             [("metrics/loss", loss[half:]), ("metrics/val_loss", val)]]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "meta.yaml").write_text("run_name: late\n")
    n, src, _ = _grow(tmp_path / "run", polls, tmp_path / "ref")
    assert n == 2 and src.mode == "mlflow"
    assert src.follower.rows.sel.val == "val_loss"


def test_mlflow_metric_file_given_alone_and_the_real_one(shared, tmp_path):
    real = shared / "real_logs" / "mlflow" / "swahili_stt_ed05f9cd"
    data = (real / "metrics" / "loss").read_bytes()
    rng = np.random.default_rng(6)
    cuts = sorted(set(rng.integers(1, len(data), 6).tolist())) + [len(data)]
    polls = [[("metrics/loss", p)] for p in _cut(data, cuts)]
    n, src, _ = _grow(tmp_path / "a", polls, tmp_path / "ref_a", lines=True)
    assert n >= 4 and src.mode == "mlflow"
    n, src, _ = _grow(tmp_path / "b", polls, tmp_path / "ref_b", lines=True,
                      given=tmp_path / "b" / "metrics" / "loss")
    assert n >= 4 and src.mode == "mlflow"


def test_mlflow_damaged_line_goes_to_the_batch_reader_and_its_message(tmp_path):
    run = tmp_path / "run"
    (run / "metrics").mkdir(parents=True)
    (run / "meta.yaml").write_text("run_name: bad\n")
    log = run / "metrics" / "loss"
    log.write_bytes(_mlflow_lines(100)["loss"])
    with Watcher([str(run)]) as w:
        assert [e["event"] for e in w.poll()] == ["start"]
        with open(log, "ab") as fh:
            fh.write(b"1700000000999 0.5 x y z w\n")
        ev = w.poll()
        assert [e["event"] for e in ev] == ["error"] and "line 101" in ev[0]["message"]
        assert w._sources[str(run)].mode == "reread"


# ------------------------------------------------------------------ W&B history
def test_wandb_history_jsonl_is_followed_line_by_line(tmp_path):
    rng = np.random.default_rng(7)
    lines = []
    for s in range(400):
        rec = {"_step": s, "_runtime": s * 0.5, "_timestamp": 1.7e9 + s,
               "train/loss": float(2.0 * np.exp(-s / 90) + rng.normal(0, 0.01)),
               "train/learning_rate": 3e-4}
        if s % 100 == 99:
            rec["eval/loss"] = 1.1
        if s >= 380:
            rec["train/loss"] = float("nan")
        lines.append(json.dumps(rec).replace("NaN", "NaN"))
    data = ("\n".join(lines) + "\n").encode()
    cuts = sorted(set(rng.integers(1, len(data), 10).tolist())) + [len(data)]
    polls = [[("wandb-history.jsonl", p)] for p in _cut(data, cuts)]
    n, src, _ = _grow(tmp_path / "files", polls, tmp_path / "ref", lines=True,
                      given=tmp_path / "files" / "wandb-history.jsonl")
    assert n >= 8 and src.mode == "jsonl"


# ------------------------------------------------------------------ trainer_state.json
def _saves(doc: dict, cuts) -> list[bytes]:
    """The file as the Trainer rewrites it at each save: log_history up to each cut."""
    out = []
    for c in cuts:
        d = dict(doc, log_history=doc["log_history"][:c])
        out.append(json.dumps(d, indent=2).encode())
    return out


def _state_check(tmp_path, doc, cuts):
    log = tmp_path / "trainer_state.json"
    ref = tmp_path / "ref" / "trainer_state.json"
    ref.parent.mkdir(exist_ok=True)
    compared, events = 0, []
    with Watcher([str(log)]) as w:
        for c, data in zip(cuts, _saves(doc, cuts)):
            tmp = tmp_path / "save.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, log)  # written whole, as a save is
            events += w.poll()
            ref.write_bytes(data)
            try:
                batch = lrdoctor.analyze(ref)
            except lrdoctor.LrDoctorError:
                continue
            assert [_answer(d) for d in w.diagnoses_.values()] == \
                [_answer(d) for d in batch], f"after {c} entries"
            compared += 1
        src = w._sources[str(log)]
    return compared, src, events


def test_trainer_state_feeds_only_the_new_entries_of_each_save(shared, tmp_path):
    rng = np.random.default_rng(8)
    for f in sorted((shared / "real_logs" / "hf_trainer").glob("*.json")):
        doc = json.loads(f.read_text())
        n = len(doc["log_history"])
        cuts = sorted(set(rng.integers(1, n, 8).tolist())) + [n]
        out = tmp_path / f.stem
        out.mkdir()
        compared, src, _ = _state_check(out, doc, cuts)
        assert compared >= 5 and src.mode == "state", f.name
        fed = src.follower
        # every entry went into the streams once (a restart when roles changed aside)
        assert fed.fed == len([r for r in doc["log_history"] if "train_runtime" not in r])
        assert fed.jsonl.rows <= 2 * fed.fed


def test_trainer_state_synthetic_with_a_nan_and_a_rewritten_history(tmp_path):
    hist = []
    for s in range(1, 401):
        loss = 2.0 * np.exp(-s / 100) + 0.3 if s < 380 else float("nan")
        hist.append({"epoch": s / 100, "grad_norm": 1.0, "learning_rate": 5e-5,
                     "loss": loss, "step": s})
        if s % 100 == 0:
            hist.append({"epoch": s / 100, "eval_loss": 1.0 + s / 1000, "step": s})
    doc = {"global_step": 400, "log_history": hist}
    compared, src, events = _state_check(tmp_path, doc, [30, 99, 101, 250, 390, len(hist)])
    assert compared == 6 and src.mode == "state"
    assert src.follower.jsonl.rows <= len(hist) + 101  # fed again once: at the first eval
    assert "too_high" in [e.get("verdict") for e in events]
    # a run resumed from an earlier checkpoint: log_history cut back, then growing again
    n, _, events = _state_check(tmp_path, doc, [200, 150, 300])
    assert n == 3 and any("log_history was rewritten" in e.get("message", "") for e in events)


# ------------------------------------------------------------------ W&B run files
def test_wandb_run_file_record_by_record_equals_batch(tmp_path):
    from logs import wandb_write

    rows = []
    for s in range(3000):  # enough to span blocks, records split across block ends
        row = {"train/loss": f"{2.0 * np.exp(-s / 700) + 0.1:.5f}", "lr": "0.0003"}
        if s >= 2900:
            row["train/loss"] = '"NaN"'
        if s % 500 == 499:
            row["val/loss"] = f"{1.0 + s / 5000:.4f}"
        rows.append((s, row))
    src = wandb_write(tmp_path / "src.wandb", rows, name="growing")
    data = src.read_bytes()
    rng = np.random.default_rng(9)
    cuts = sorted(set(rng.integers(8, len(data), 14).tolist()) |
                  {32 * 1024 - 3, 32 * 1024 + 5, len(data)})
    name = "run-abc123.wandb"
    n, src, events = _grow(tmp_path / "offline-run-1-abc123", [[(name, p)] for p in
                                                               _cut(data, cuts)],
                           tmp_path / "ref", given=tmp_path / "offline-run-1-abc123" / name)
    assert n >= 14 and src.mode == "wandb"
    assert src.follower.records == 1 + 2 * len(rows)  # each record framed once
    assert events[0]["run"] == "growing" and events[-1].get("verdict") == "too_high"


def test_wandb_fixture_cut_anywhere_equals_batch(tmp_path):
    fixture = Path(__file__).parent / "fixtures" / "wandb_offline.wandb"
    data = fixture.read_bytes()
    rng = np.random.default_rng(10)
    cuts = sorted(set(rng.integers(8, len(data), 12).tolist())) + [len(data)]
    n, src, _ = _grow(tmp_path / "run", [[(fixture.name, p)] for p in _cut(data, cuts)],
                      tmp_path / "ref", given=tmp_path / "run" / fixture.name)
    assert n >= 10 and src.mode == "wandb"


def test_series_logged_one_after_another_or_once_wait_then_go_on(tmp_path):
    from logs import curve

    # every loss first, then every LR, then the validation losses (one add_scalar loop per
    # tag): the rows wait for the LR while they are few
    name, data = _tb_bytes(tmp_path, curve(300))
    rng = np.random.default_rng(11)
    n, src, events = _grow(tmp_path / "a", [[(name, p)] for p in
                                            _cut(data, _record_ends(data)[::40] + [len(data)])],
                           tmp_path / "ref_a")
    assert n >= 15 and src.mode == "tensorboard"
    # the LR logged once, at step 0, then 10,000 losses: rows go on past the wait
    sc = [(0, "lr", 1e-3)] + [(s, "train/loss", float(2.0 / (1 + s / 500)))
                              for s in range(10_000)]
    name, data = _tb_bytes(tmp_path, sc)
    cuts = sorted(set(rng.integers(1, len(data), 8).tolist())) + [len(data)]
    n, src, events = _grow(tmp_path / "b", [[(name, p)] for p in _cut(data, cuts)],
                           tmp_path / "ref_b")
    assert n >= 8 and src.mode == "tensorboard"
    assert src.follower.rows.stream.n_points >= 10_000 - WAIT + 1
