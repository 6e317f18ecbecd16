"""lrdoctor.watch: following logs while they are written (``lrdoctor watch``)."""
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import lrdoctor
from lrdoctor.cli import main
from lrdoctor.watch import Watcher

ROOT = Path(__file__).resolve().parents[1]
FAST = 0.05  # seconds between polls in these tests


def rows(start, n, loss=lambda s: 2.5 * np.exp(-s / 300) + 0.1, lr=1e-3):
    return "".join(f"{s},{loss(s):.6f},{lr}\n" for s in range(start, start + n))


def kinds(events):
    return [e["event"] for e in events]


def test_appended_in_steps_with_partial_lines(tmp_path):
    log = tmp_path / "run.csv"
    log.write_text("step,loss,lr\n" + rows(0, 50) + "50,2.3")  # a partial last line
    with Watcher([str(log)]) as w:
        ev = w.poll()
        assert kinds(ev) == ["start"] and ev[0]["last_step"] == 49
        with open(log, "a") as fh:
            fh.write("1,0.001\n" + rows(51, 10))
        assert kinds(w.poll()) in ([], ["verdict"], ["finding"], ["finding", "verdict"])
        d = w.diagnoses_[str(log)]
        assert d.history.logged_steps[-1] == 60 and len(d.history.logged_steps) == 61
        assert d.history.logged_loss[50] == pytest.approx(2.31)
        assert w.poll() == []  # nothing new: no event, nothing read


def test_empty_lines_before_the_header_are_skipped_as_in_batch(tmp_path):
    log = tmp_path / "run.csv"
    log.write_text("\n")  # nothing but an empty line yet
    with Watcher([str(log)]) as w:
        assert "error" not in kinds(w.poll())
        with open(log, "a") as fh:
            fh.write("\nstep,loss,lr\n" + rows(0, 50))
        ev = w.poll()
        assert kinds(ev) == ["start"] and ev[0]["n_points"] == 50
        assert ev[0]["verdict"] == lrdoctor.analyze(log)[0].verdict


def test_a_damaged_line_that_is_not_utf8_prints_no_traceback(tmp_path, monkeypatch):
    # pyarrow decodes a bad row before its handler sees it; Python would print the failure
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    log = tmp_path / "run.csv"
    log.write_bytes(("step,loss,lr\n" + rows(0, 30)).encode() + b"30,1.0,0.001,\xa7x\n"
                    + rows(31, 30).encode())
    with Watcher([str(log)]) as w:
        w.poll()
    assert unraisable == []


def test_nan_appended_turns_too_high_with_events(tmp_path):
    log = tmp_path / "run.csv"
    log.write_text("step,loss,lr\n" + rows(0, 300))
    with Watcher([str(log)]) as w:
        w.poll()
        with open(log, "a") as fh:
            fh.write("300,nan,0.001\n")
        ev = w.poll()
        assert "verdict" in kinds(ev) and "finding" in kinds(ev)
        verdict = next(e for e in ev if e["event"] == "verdict")
        assert verdict["verdict"] == "too_high" and verdict["since_step"] == 300
        assert "too_high" in verdict["alert"]
        finding = next(e for e in ev if e["event"] == "finding")
        assert finding["finding"]["kind"] == "nonfinite" and finding["alert"] == ["nonfinite"]


def test_truncated_and_replaced_are_read_again(tmp_path):
    log = tmp_path / "run.csv"
    log.write_text("step,loss,lr\n" + rows(0, 100))
    with Watcher([str(log)]) as w:
        w.poll()
        log.write_text("step,loss,lr\n" + rows(0, 20))  # truncated in place
        ev = w.poll()
        assert any("truncated" in e.get("message", "") for e in ev)
        assert len(w.diagnoses_[str(log)].history.logged_steps) == 20
        other = tmp_path / "new.csv"
        other.write_text("step,loss,lr\n" + rows(0, 30))
        os.replace(other, log)  # rotated: another inode
        ev = w.poll()
        assert any("replaced" in e.get("message", "") for e in ev)
        assert len(w.diagnoses_[str(log)].history.logged_steps) == 30


def test_deleted_file_one_note_and_back(tmp_path):
    log = tmp_path / "run.csv"
    log.write_text("step,loss,lr\n" + rows(0, 40))
    with Watcher([str(log)]) as w:
        w.poll()
        log.unlink()
        notes = w.poll() + w.poll()
        assert [e["message"] for e in notes if e["event"] == "note"] == \
            ["the file was deleted; waiting for it to come back"]
        log.write_text("step,loss,lr\n" + rows(0, 60))
        w.poll()
        assert len(w.diagnoses_[str(log)].history.logged_steps) == 60


def test_late_file_is_waited_for(tmp_path):
    log = tmp_path / "later.jsonl"
    with Watcher([str(log)]) as w:
        ev = w.poll() + w.poll()
        assert kinds(ev) == ["note"] and "waiting" in ev[0]["message"]
        log.write_text("".join(json.dumps({"step": s, "loss": 2.0 - s / 100}) + "\n"
                               for s in range(30)))
        assert kinds(w.poll()) == ["start"]
        assert w.unread_inputs() == []


def test_directory_where_a_new_run_appears(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "metrics.csv").write_text("step,loss,lr\n" + rows(0, 40))
    with Watcher([str(tmp_path)]) as w:
        assert [e["run"] for e in w.poll()] == ["a"]
        (tmp_path / "b").mkdir()
        (tmp_path / "b" / "metrics.csv").write_text("step,loss,lr\n" + rows(0, 40))
        ev = w.poll()
        assert [(e["event"], e["run"]) for e in ev] == [("start", "b")]


def test_damaged_line_is_a_note_and_other_runs_go_on(tmp_path):
    bad, good = tmp_path / "bad.csv", tmp_path / "good.csv"
    bad.write_text("step,loss,lr\n" + rows(0, 40))
    good.write_text("step,loss,lr\n" + rows(0, 40))
    with Watcher([str(bad), str(good)]) as w:
        w.poll()
        with open(bad, "a") as fh:
            fh.write("40,2.\x00x1,0.001\n41,1.0\n" + rows(42, 5))
        with open(good, "a") as fh:
            fh.write(rows(40, 5))
        ev = w.poll()
        assert any(e["event"] == "note" and e["source"] == str(bad) for e in ev)
        assert w.diagnoses_[str(good)].history.logged_steps[-1] == 44
        assert w.diagnoses_[str(bad)].history.logged_steps[-1] == 46


def test_a_json_line_nested_too_deep_is_a_damaged_line_not_an_error(tmp_path):
    # json.loads raises RecursionError (not JSONDecodeError) on 10,000 levels of nesting
    log = tmp_path / "run.jsonl"
    log.write_text("".join(json.dumps({"step": i, "loss": 2.3 - i * 0.01}) + "\n"
                           for i in range(30)))
    with Watcher([str(log)]) as w:
        w.poll()
        with open(log, "a") as fh:
            fh.write('{"a":' * 10_000 + "1" + "}" * 10_000 + "\n")
            fh.write("".join(json.dumps({"step": i, "loss": 2.0}) + "\n" for i in (30, 31)))
        ev = w.poll()
    assert not any(e["event"] == "error" for e in ev)
    assert any(e["event"] == "note" and "damaged" in e["message"] for e in ev)
    assert w.diagnoses_[str(log)].history.logged_steps[-1] == 31


def _prefix_check(full: Path, tmp_path: Path, cuts, name=None):
    """Stream ``full`` in the given byte cuts; after each, the watcher's verdict equals
    lrdoctor.analyze on the complete lines written so far."""
    _pieces_check(full.read_bytes(), tmp_path / (name or full.name), cuts,
                  lambda d: (d.run, d.verdict, [f.kind for f in d.findings], d.outline()[0]))


def test_streaming_equals_batch_on_prefixes_of_a_real_csv(shared, tmp_path):
    files = sorted((shared / "benchmarks" / "lr_sweeps" / "runs").glob("*.csv"))
    if not files:
        pytest.skip("no sweep runs")
    rng = np.random.default_rng(0)
    for f in files[:: max(1, len(files) // 4)][:4]:
        size = f.stat().st_size
        cuts = sorted(set(rng.integers(1, size, 12).tolist())) + [size]
        _prefix_check(f, tmp_path, cuts)


def test_streaming_equals_batch_on_prefixes_of_jsonl_and_text(tmp_path):
    rng = np.random.default_rng(1)
    jl = tmp_path / "src" / "metrics.jsonl"
    jl.parent.mkdir()
    lines = []
    for s in range(400):
        rec = {"step": s, "loss": float(2.5 * np.exp(-s / 80) + rng.normal(0, .02)),
               "lr": 1e-3}
        if s % 50 == 49:
            rec = {"step": s, "val_loss": 1.0}  # an evaluation line, no loss
        if s == 350:
            rec["loss"] = float("nan")
        lines.append(json.dumps(rec))
    jl.write_text("\n".join(lines) + "\n")
    size = jl.stat().st_size
    _prefix_check(jl, tmp_path, sorted(set(rng.integers(1, size, 15).tolist())) + [size])
    txt = tmp_path / "src" / "train.log"
    txt.write_text("".join(f"iter {s}: loss {2.5 * np.exp(-s / 200) + 0.05:.4f}, time 1ms\n"
                           for s in range(600)))
    size = txt.stat().st_size
    _prefix_check(txt, tmp_path, sorted(set(rng.integers(1, size, 8).tolist())) + [size])


def test_csv_runs_are_kept_as_summaries_not_rows(tmp_path):
    # 300,000 rows: the follower keeps each run's bounded summary, never its rows
    n = 300_000
    steps = np.arange(n)
    loss = 2.5 * np.exp(-steps / 5e4) + 0.1 + 0.01 * np.sin(steps)
    src = tmp_path / "src" / "big.csv"
    src.parent.mkdir()
    src.write_text("step,loss,lr\n" + "".join(f"{s},{v:.6f},0.001\n"
                                               for s, v in zip(steps, loss)))
    size = src.stat().st_size
    _prefix_check(src, tmp_path, [size // 3, size // 2, size])
    with Watcher([str(src)]) as w:
        w.poll()
        follower = w._sources[str(src)].follower
        [st] = follower.streams.streams.values()
        assert st.ramp is None and not st.val and len(st.summary.t_x) < st.summary.w
        assert st.summary.m <= 4096 and w.diagnoses_[str(src)].to_dict()["n_points"] == n


def test_csv_with_a_run_column_streams_each_run(tmp_path):
    src = tmp_path / "src" / "runs.csv"
    src.parent.mkdir()
    rows = ["run,step,loss,val_loss"]
    for s in range(300):
        rows.append(f"a,{s},{2.0 * np.exp(-s / 60) + 0.05:.5f},")
        rows.append(f"b,{s},{2.0 + 0.001 * s + (40.0 if s > 200 else 0):.5f},")
        if s % 50 == 49:
            rows.append(f"a,{s},,{1.0 + s / 1000:.4f}")
    src.write_text("\n".join(rows) + "\n")
    size = src.stat().st_size
    _prefix_check(src, tmp_path, [size // 5, size // 2, 2 * size // 3, size])


def test_steps_that_go_back_are_read_whole_with_a_note(tmp_path):
    log = tmp_path / "resumed.csv"
    log.write_text("step,loss\n" + "".join(f"{s},{2.0 / (1 + s / 50):.4f}\n"
                                            for s in range(200)))
    with Watcher([str(log)]) as w:
        w.poll()
        with open(log, "a") as fh:  # resumed from step 150
            fh.write("".join(f"{s},{1.5 / (1 + s / 50):.4f}\n" for s in range(150, 260)))
        ev = w.poll()
        assert any("steps go back" in e.get("message", "") for e in ev)
        [batch] = lrdoctor.analyze(log)
        d = w.diagnoses_[str(log)]
        assert (d.verdict, d.outline()[0], d.notes) == (batch.verdict, batch.outline()[0],
                                                        batch.notes)


# ------------------------------------------------------------------ text logs in pieces
def _answer(d):
    return (d.run, d.verdict, [(f.kind, f.start, f.end, round(f.severity, 3))
                               for f in d.findings], d.outline()[:3],
            d.recommendation.action, d.recommendation.suggested_lr)


def _pieces_check(data: bytes, log: Path, cuts, answer=_answer, **how):
    """Write ``data`` to ``log`` in the given byte cuts (mid-line too); after each, the
    watcher's answer (by default: verdict, findings with their steps, points, advice)
    equals lrdoctor.analyze on the complete lines written so far. Returns the cuts
    compared and the log's follower."""
    ref = log.parent / "ref" / log.name
    ref.parent.mkdir(exist_ok=True)
    log.write_bytes(b"")
    compared = 0
    with Watcher([str(log)], **how) as w:
        done = 0
        for cut in cuts:
            with open(log, "ab") as fh:
                fh.write(data[done:cut])
            done = cut
            w.poll()
            ref.write_bytes(data[: data.rfind(b"\n", 0, cut) + 1])
            try:
                batch = lrdoctor.analyze(ref, **how)
            except lrdoctor.LrDoctorError:
                continue  # header only, too short: nothing to compare
            got = sorted(answer(d) for d in w.diagnoses_.values())
            assert got == sorted(answer(d) for d in batch), f"{log.name} after {cut} bytes"
            compared += 1
        follower = w._sources[str(log)].follower
    return compared, follower


def _cuts(rng, size, k):
    return sorted(set(rng.integers(1, size, k).tolist())) + [size]


TEXT_LOGS = ("hf_console", "keras_console", "mlx", "mmengine", "nanogpt", "plain_custom",
             "yolov5_txt", "olmo_console")


def test_text_logs_in_pieces_equal_batch_on_every_prefix(shared, tmp_path):
    rng = np.random.default_rng(21)
    files = [f for d in TEXT_LOGS for f in sorted((shared / "real_logs" / d).iterdir())]
    files += sorted((ROOT / "tests" / "fixtures" / "console").glob("*.log"))
    assert len(files) >= 15
    compared, kept = 0, 0
    for f in files:
        data = f.read_bytes()
        # the first piece holds whole lines: the format is sniffed on it
        first = data.find(b"\n", min(len(data) - 1, 400)) + 1 or len(data)
        cuts = sorted({first, *_cuts(rng, len(data), 20)} - set(range(first)))
        n, follower = _pieces_check(data, tmp_path / f.name, cuts)
        compared += n
        kept += not follower.whole  # read piece by piece, not whole at each change
    assert compared >= 200 and kept >= len(files) - 3


def _generic_log(n: int, rng, every_val: int = 0, nan_at: int | None = None) -> str:
    out = ["Loading model ... done", "config: lr=0.0003 batch_size=64 warmup=100"]
    for s in range(n):
        loss = 3.0 * np.exp(-s / (n / 3)) + 0.2 + rng.normal(0, 0.02)
        if nan_at is not None and s >= nan_at:
            loss = float("nan")
        out.append(f"step {s:>6} | loss {loss:.5f} | lr {3e-4 * min(1, (s + 1) / 100):.3e}"
                   f" | grad_norm {1 + rng.random():.3f} | 12.{s % 10}ms")
        if every_val and s % every_val == every_val - 1:
            out.append(f"eval at step {s}: val_loss {2.5 * np.exp(-s / n) + 0.3:.4f}")
    return "\n".join(out) + "\n"


def test_generic_text_in_pieces_a_late_evaluation_and_a_nan(tmp_path):
    rng = np.random.default_rng(22)
    data = _generic_log(3000, rng, every_val=700, nan_at=2900).encode()
    n, follower = _pieces_check(data, tmp_path / "train.log", _cuts(rng, len(data), 25))
    assert n >= 20 and follower.kind == "generic" and not follower.whole
    # the validation line's first appearance changed the roles: read again once, then
    # piece by piece; the templates are kept, not the lines
    parser = follower.parser
    assert len(parser.registry.templates) < 10 and parser.rows.stream.val_steps


def test_generic_text_larger_than_the_sample_in_pieces(tmp_path):
    # over 320,000 characters: the dialect is chosen on the head and the tail
    rng = np.random.default_rng(23)
    data = _generic_log(8000, rng, every_val=1000).encode()
    assert len(data) > (1 << 18) + (1 << 16)
    n, follower = _pieces_check(data, tmp_path / "long.log", _cuts(rng, len(data), 8))
    assert n >= 8 and not follower.whole


def test_text_with_redraws_fractional_epochs_and_a_pattern_in_pieces(tmp_path):
    rng = np.random.default_rng(24)
    # a progress bar redrawn with \r at one step: its last loss is the step's
    bar = "".join(f"step {s // 3}/900 loss={2.0 * np.exp(-s / 900) + 0.1:.4f}"
                  + ("\n" if s % 3 == 2 else "\r") for s in range(2700))
    n, _ = _pieces_check(bar.encode(), tmp_path / "bar.log", _cuts(rng, len(bar), 20))
    assert n >= 15
    # Hugging Face's dicts: a fractional epoch is no step, the line order is
    hf = "".join(f"{{'loss': {2.0 / (1 + s / 30):.4f}, 'learning_rate': 5e-05, "
                 f"'epoch': {s / 100:.2f}}}\n" for s in range(400))
    n, _ = _pieces_check(hf.encode(), tmp_path / "hf.log", _cuts(rng, len(hf), 20))
    assert n >= 15
    # --pattern
    custom = "".join(f"[{s}] objective={1.5 / (1 + s / 40):.4f} (lr {1e-3})\n"
                     for s in range(500)) + "[500] objective=nan (lr 0.001)\n"
    n, follower = _pieces_check(
        custom.encode(), tmp_path / "custom.log", _cuts(rng, len(custom), 20),
        format="text", pattern=r"\[(?P<step>\d+)\] objective=(?P<loss>\S+) \(lr (?P<lr>[\d.e-]+)")
    assert n >= 15 and follower.kind == "pattern"


def test_a_text_log_truncated_is_read_again_with_a_note(tmp_path):
    rng = np.random.default_rng(25)
    log = tmp_path / "run.log"
    log.write_text(_generic_log(300, rng))
    with Watcher([str(log)]) as w:
        w.poll()
        log.write_text(_generic_log(120, rng))  # rewritten, shorter
        ev = w.poll()
        assert any("truncated" in e.get("message", "") for e in ev)
        [batch] = lrdoctor.analyze(log)
        assert _answer(w.diagnoses_[str(log)]) == _answer(batch)


# ------------------------------------------------------------------ the command line
def _writer(path: Path, lines: list[str], delay: float):
    def go():
        for ln in lines:
            time.sleep(delay)
            with open(path, "a") as fh:
                fh.write(ln)
    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def test_cli_json_events_and_exit_on_nonfinite(tmp_path, capsys):
    log = tmp_path / "run.csv"
    log.write_text("step,loss,lr\n" + rows(0, 100))
    _writer(log, ["100,nan,0.001\n"], delay=0.3)
    t0 = time.monotonic()
    rc = main(["watch", str(log), "--interval", str(FAST), "--exit-on", "nonfinite",
               "--timeout", "30", "--format", "json"])
    assert rc == 3
    assert time.monotonic() - t0 < 20  # fired long before the timeout
    events = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert events[0]["event"] == "start"
    for key in ("source", "run", "verdict", "recommendation", "findings", "last_step"):
        assert key in events[0]
    fired = [e for e in events if "nonfinite" in (e.get("alert") or [])]
    assert fired and fired[0]["finding"]["start"] == 100


def test_nan_reported_within_two_intervals(tmp_path):
    log = tmp_path / "run.csv"
    log.write_text("step,loss,lr\n" + rows(0, 200))
    with Watcher([str(log)], interval=FAST) as w:
        passes = w.run(timeout=30)
        next(passes)
        with open(log, "a") as fh:
            fh.write("200,nan,0.001\n")
        for k, batch in enumerate(passes):
            if any(e.get("finding", {}).get("kind") == "nonfinite" for e in batch):
                break
        assert k + 1 <= 2


def test_cli_on_alert_command_gets_the_event(tmp_path, capsys):
    log, out = tmp_path / "run.csv", tmp_path / "alert.json"
    log.write_text("step,loss,lr\n" + rows(0, 100) + "100,inf,0.001\n")
    cmd = f"{sys.executable} -c \"import sys; open(r'{out}', 'w').write(sys.stdin.read())\""
    assert main(["watch", str(log), "--once", "--on-alert", cmd, "--format", "json"]) == 0
    got = json.loads(out.read_text())
    assert got["event"] == "start" and got["verdict"] == "too_high"
    assert main(["watch", str(log), "--once", "--on-alert", "exit 7"]) == 0
    assert "--on-alert command exited with status 7" in capsys.readouterr().out


class _Hook(http.server.BaseHTTPRequestHandler):
    got: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.got.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_cli_webhook_posts_slack_text(tmp_path, capsys):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        log = tmp_path / "run.csv"
        log.write_text("step,loss,lr\n" + rows(0, 100) + "100,nan,0.001\n")
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        assert main(["watch", str(log), "--once", "--webhook", url]) == 0
        [posted] = _Hook.got
        assert posted["event"] == "start" and posted["verdict"] == "too_high"
        assert "run 'run'" in posted["text"] and "step 100" in posted["text"]
    finally:
        server.shutdown()
        server.server_close()
    # a webhook nobody answers: one note, no crash
    assert main(["watch", str(log), "--once", "--webhook", url]) == 0
    assert "not delivered" in capsys.readouterr().out


def test_cli_text_mode_and_exit_codes(tmp_path, capsys):
    log = tmp_path / "run.csv"
    log.write_text("step,loss,lr\n" + rows(0, 100))
    assert main(["watch", str(log), "--once", "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert "run: watching:" in out and "verdict" in out  # the event line, the summary table
    assert main(["watch", str(tmp_path / "missing.csv"), "--timeout", "0.2",
                 "--interval", str(FAST)]) == 2
    assert main(["watch", str(log), "--once", "--interval", "0"]) == 2
    with pytest.raises(SystemExit):
        main(["watch", str(log), "--exit-on", "bogus"])


def test_ctrl_c_ends_with_the_summary(tmp_path):
    log = tmp_path / "run.csv"
    log.write_text("step,loss,lr\n" + rows(0, 100))
    p = subprocess.Popen([sys.executable, "-m", "lrdoctor", "watch", str(log), "--format",
                          "text", "--interval", str(FAST)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=ROOT)
    time.sleep(3)
    p.send_signal(2)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "Traceback" not in err and "advice" in out
