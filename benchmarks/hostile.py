"""Replay the hostile inputs of issue 13 through the command line and judge each result.

Every case is generated in a temporary folder (gzip bombs of valid rows, 500 MB single-line
logs, a bad row in a 10M-row CSV, symlink loops, names with '$', escape sequences or bytes
that are not UTF-8, unreadable files and folders, a FIFO, deep JSON, a damaged TensorBoard
file, standard input, NULL cells...), then run as ``python -m lrdoctor ...`` in a fresh
process with a 60 s limit. For each it prints the exit code, wall seconds, the peak RSS of
the process (its own rusage, from wait4), the first line of stderr, whether a traceback was
printed, and a verdict against the targets:

- a correct result (exit 0 and the case's own check) or one clear line (exit 2, one line
  on stderr, naming the cause) where the input is an error;
- under 5 s, under 500 MB peak, no traceback.

The clean 10M-row CSV is replayed too ('ref'), as the reference the bad-row case is held to:
its time and peak (+20%) when they exceed 5 s or 500 MB, an error path costing no more than
the clean read.

usage: python benchmarks/hostile.py [-k SUBSTRING ...] [--list] [--src DIR] [--keep]
       -k      run only the cases whose name contains one of the substrings
       --src   run the lrdoctor package found in DIR (a checkout) instead of the installed one
       --keep  leave the generated files (their folder is printed)

Cases that need an unreadable file or folder, when run as root, run the command without
root's capability to read anything. Exit status: 1 when a case FAILs.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

LIMIT_S = 60.0  # a case still running then is killed (and FAILs)
TARGET_S = 5.0
TARGET_MB = 500.0


@dataclass
class Result:
    code: int | None  # None: killed at the time limit
    seconds: float
    peak_mb: float
    stdout: str
    stderr: str
    files: dict = field(default_factory=dict)  # the case's paths, for its check

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr


# --- generators -----------------------------------------------------------------------

def gzip_bomb(path: Path, header: bytes, row: bytes, total: int) -> None:
    """A valid gzip file of ``header`` then ``row`` repeated to ``total`` bytes. One MiB of
    rows is compressed once after a full flush (which resets the window), so the same
    deflate bytes can be repeated: a gigabyte is written in a fraction of a second."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = row * ((1 << 20) // len(row))
    first = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    end = c.flush(zlib.Z_FINISH)
    n = max(1, total // len(chunk))
    crc = zlib.crc32(header)
    for _ in range(n):
        crc = zlib.crc32(chunk, crc)
    size = len(header) + n * len(chunk)
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")
        f.write(first)
        for _ in range(n):
            f.write(block)
        f.write(end)
        f.write(struct.pack("<II", crc, size & 0xFFFFFFFF))


def repeated(path: Path, head: bytes, unit: bytes, total: int, tail: bytes = b"\n") -> None:
    """``head`` + ``unit`` repeated to ``total`` bytes + ``tail``, written in 16 MiB pieces."""
    piece = unit * ((16 << 20) // len(unit))
    with open(path, "wb") as f:
        f.write(head)
        left = total
        while left > 0:
            f.write(piece[:left])
            left -= len(piece)
        f.write(tail)


def small_csv(path: Path, n: int = 400) -> Path:
    import numpy as np

    t = np.arange(n)
    loss = 2.5 * np.exp(-t / 120) + 0.3 + 0.01 * np.sin(t)
    path.write_text("step,loss,lr\n" + "".join(f"{s},{v:.5f},0.001\n"
                                               for s, v in zip(t, loss)))
    return path


def big_csv(tmp: Path) -> Path:
    """The 10M-row CSV (step,loss,lr,val_loss) that benchmarks/speed.py writes; made once."""
    path = tmp / "clean_10m.csv"
    if not path.exists():
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from speed import write_log

        write_log(path.with_suffix(".part"), 10_000_000)
        path.with_suffix(".part").rename(path)
    return path


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def _masked_crc(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    c ^= 0xFFFFFFFF
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def tb_events(path: Path, n: int = 400) -> None:
    """A TensorBoard event file of ``n`` 'loss' scalars (TFRecords of Event protos,
    written by hand: no tensorflow or tensorboard needed)."""
    import math

    def record(data: bytes) -> bytes:
        length = struct.pack("<Q", len(data))
        return (length + struct.pack("<I", _masked_crc(length)) + data
                + struct.pack("<I", _masked_crc(data)))

    out = [record(b"\x09" + struct.pack("<d", 1.7e9) + b"\x1a\x0ebrain.Event:2")]
    for step in range(n):
        value = b"\x0a\x04loss" + b"\x15" + struct.pack("<f", 2.0 * math.exp(-step / 150) + 0.3)
        summary = b"\x0a" + _varint(len(value)) + value
        event = (b"\x09" + struct.pack("<d", 1.7e9 + step) + b"\x10" + _varint(step)
                 + b"\x2a" + _varint(len(summary)) + summary)
        out.append(record(event))
    path.write_bytes(b"".join(out))


# --- the cases ------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    section: str
    what: str
    make: Callable  # (folder) -> (argv after 'lrdoctor', files dict, options dict)
    expect: str  # "ok" or "error"
    check: Callable[[Result], str | None] | None = None  # a reason it is wrong, or None
    cause: str | None = None  # a regex the error line must match (case-insensitive)
    #: a clean case whose time and memory (+20%) this one may use when they exceed the
    #: targets (an error path costs no more than the clean read of the same data)
    reference: str | None = None


def _analyze(*paths, fmt=None):
    return ["analyze", *map(str, paths)] + (["--format", fmt] if fmt else [])


def mk_file(name: str, write: Callable, args: tuple, extra: tuple, d: Path):
    """A case of one generated file: ``write(path, *args)``, then ``analyze path extra``."""
    f = d / name
    write(f, *args)
    return _analyze(f) + list(extra), {}, {}


def one_file(name: str, write: Callable, *args, extra: tuple = ()):
    return partial(mk_file, name, write, args, extra)  # picklable, for the worker


mk_csv_gz_bomb = one_file("bomb.csv.gz", gzip_bomb, b"step,loss\n", b"1,2\n", 1 << 30)
mk_jsonl_gz_bomb = one_file("bomb.jsonl.gz", gzip_bomb, b"", b'{"step": 1, "loss": 2.0}\n',
                            1900 << 20)
mk_zeros_bomb = one_file("zeros.csv.gz", gzip_bomb, b"", b"\0" * 4096, 1 << 30)
mk_long_log = one_file("one_line.log", repeated, b"", b"loss: 2.5 lr: 0.001 ", 500 << 20)
mk_long_jsonl = one_file("one_line.jsonl", repeated, b'{"step": 1, "loss": 2.5, "pad": "',
                         b"x" * 64, 500 << 20, b'"}\n')
mk_long_csv = one_file("one_line.csv", repeated, b"step,loss\n", b"1,", 500 << 20, b"2\n")
mk_long_pattern = one_file("one_line.txt", repeated, b"", b"it 5 loss 2.5 ", 500 << 20,
                           extra=("--pattern", r"loss (?P<loss>\S+)"))


def mk_clean_10m(d: Path):
    return _analyze(big_csv(d.parent)), {}, {}


def mk_bad_row_10m(d: Path):
    src = big_csv(d.parent)
    data = src.read_bytes()
    mid = data.index(b"\n", len(data) // 2) + 1
    end = data.index(b"\n", mid)
    line_no = data.count(b"\n", 0, mid) + 1
    cells = data[mid:end].split(b",")
    cells[1] = b"abc"
    f = d / "bad_row_10m.csv"
    with open(f, "wb") as out:
        out.write(memoryview(data)[:mid])
        out.write(b",".join(cells))
        out.write(memoryview(data)[end:])
    return _analyze(f), {"line": line_no}, {}


def ck_bad_row(r: Result) -> str | None:
    line = r.files["line"]
    if not re.search(rf"line {line}\b", r.stderr) or "abc" not in r.stderr:
        return f"does not name line {line} and its value 'abc'"
    return None


def _loop_tree(d: Path) -> Path:
    root = d / "runs"
    (root / "exp").mkdir(parents=True)
    small_csv(root / "exp" / "run.csv")
    os.symlink("..", root / "exp" / "up")  # two links back up: 2^depth paths to follow
    os.symlink("..", root / "exp" / "again")
    return root


def mk_glob_loop(d: Path):
    root = _loop_tree(d)
    return _analyze(f"{root}/**/*.csv", fmt="json"), {}, {}


def mk_walk_loop(d: Path):
    root = _loop_tree(d)
    return _analyze(root, fmt="json"), {}, {}


def ck_one_run(r: Result) -> str | None:
    import json

    try:
        runs = json.loads(r.stdout)["runs"]
    except (ValueError, KeyError, TypeError):
        return "no JSON runs on stdout"
    return None if len(runs) == 1 else f"{len(runs)} runs, expected the one run.csv"


def mk_empty(d: Path):
    f = d / "empty.csv"
    f.write_bytes(b"")
    return _analyze(f), {}, {}


def mk_truncated_gz(d: Path):
    import gzip

    f = d / "cut.csv.gz"
    data = gzip.compress(small_csv(d / "whole.csv").read_bytes())
    f.write_bytes(data[: len(data) // 2])
    return _analyze(f), {}, {}


def mk_million_columns(d: Path):
    f = d / "wide_header.csv"
    f.write_text(",".join(f"c{i}" for i in range(1_000_000)) + ",loss\n" + "1," * 1_000_000
                 + "2\n")
    return _analyze(f), {}, {}


def mk_html_name(d: Path):
    f = small_csv(d / "<script>alert(1)<script>.csv")
    out = d / "report.html"
    return ["report", str(f), "-o", str(out)], {"out": out}, {}


def _report(r: Result) -> str | None:
    """The report the case wrote, or None."""
    out = r.files["out"]
    return out.read_text(errors="replace") if out.exists() else None


def ck_html(r: Result) -> str | None:
    text = _report(r)
    if text is None:
        return "no report written"
    return "raw <script> in the report" if "<script>alert" in text else None


def mk_mathtext_name(d: Path):
    f = small_csv(d / "lr$\\nosuchcmd$x.csv")
    out = d / "report.html"
    return ["report", str(f), "-o", str(out)], {"out": out}, {}


def mk_dollar_name(d: Path):
    f = small_csv(d / "price $5 and $6.csv")
    out = d / "report.html"
    return ["report", str(f), "-o", str(out)], {"out": out}, {}


def ck_report(r: Result) -> str | None:
    return None if _report(r) is not None else "no report written"


def mk_escape_name(d: Path):
    f = small_csv(d / "run\x1b]0;pwned\x07\x1b[31mred.csv")
    return _analyze(f), {}, {}


def ck_no_escape(r: Result) -> str | None:
    raw = [c for c in ("\x1b", "\x07") if c in r.stdout or c in r.stderr]
    return f"raw control characters printed: {raw!r}" if raw else None


def mk_non_utf8_name(d: Path):
    f = small_csv(Path(os.fsdecode(os.fsencode(str(d)) + b"/run\xff\xfe.csv")))
    return _analyze(f, fmt="json"), {}, {}


def ck_json_utf8(r: Result) -> str | None:
    import json

    if "please report" in r.stderr:
        return "an internal error"
    try:
        json.loads(r.stdout)
    except ValueError:
        return "stdout is not JSON"
    try:
        r.stdout.encode("utf-8")
    except UnicodeEncodeError:
        return "stdout is not valid UTF-8"
    return None


def mk_permission(d: Path):
    f = small_csv(d / "secret.csv")
    f.chmod(0)
    return _analyze(f), {}, {"unprivileged": True}


def mk_fifo(d: Path):
    f = d / "pipe.csv"
    os.mkfifo(f)
    return _analyze(f), {}, {}


def mk_dev_stdin(d: Path):
    f = small_csv(d / "piped.csv")
    return _analyze("/dev/stdin"), {}, {"stdin": f}


def ck_not_empty(r: Result) -> str | None:
    if r.code == 0:
        return None
    if "empty" in r.stderr:
        return "called empty"
    return None if re.search(r"not a regular file", r.stderr, re.I) else "wrong cause"


def mk_stdin_dash(d: Path):
    f = small_csv(d / "piped.csv")
    return _analyze("-"), {}, {"stdin": f}


def mk_deep_jsonl(d: Path):
    f = d / "deep.jsonl"
    f.write_text('{"step": 1, "loss": ' + "[" * 10_000 + "]" * 10_000 + "}\n")
    return _analyze(f), {}, {}


def mk_deep_trainer_state(d: Path):
    f = d / "trainer_state.json"
    f.write_text('{"log_history": ' + "[" * 10_000 + "]" * 10_000 + "}")
    return _analyze(f), {}, {}


def mk_log_history_not_objects(d: Path):
    f = d / "trainer_state.json"
    f.write_text('{"log_history": [1, 2, "x", null]}')
    return _analyze(f), {}, {}


def mk_unreadable_subdir(d: Path):
    root = d / "runs"
    (root / "a").mkdir(parents=True)
    small_csv(root / "a" / "run.csv")
    (root / "secret").mkdir()
    small_csv(root / "secret" / "run.csv")
    (root / "secret").chmod(0)
    return _analyze(root), {}, {"unprivileged": True}


def ck_subdir_note(r: Result) -> str | None:
    if r.code != 0:
        return f"exit {r.code}"
    return None if "secret" in r.stderr else "no note about the unreadable folder"


def mk_skipped_in_report(d: Path):
    root = d / "runs"
    root.mkdir()
    small_csv(root / "good.csv")
    (root / "manifest.csv").write_text("name,size\na,1\nb,2\n")
    out = d / "report.md"
    return ["report", str(root), "-o", str(out)], {"out": out}, {}


def ck_skipped_listed(r: Result) -> str | None:
    text = _report(r)
    if text is None:
        return "no report written"
    return None if "manifest" in text else "the skipped manifest.csv is not in the report"


def mk_tb_garbage(d: Path):
    run = d / "tb"
    run.mkdir()
    f = run / "events.out.tfevents.1700000000.host"
    tb_events(f, 400)
    data = f.read_bytes()
    mid = len(data) // 2
    f.write_bytes(data[:mid] + os.urandom(4096) + data[mid:])
    return _analyze(run, fmt="json"), {}, {}


def ck_tb_second_half(r: Result) -> str | None:
    import json

    try:
        run = json.loads(r.stdout)["runs"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return "no run in the JSON output"
    text = json.dumps(run)
    last = re.search(r'"last_step": (\d+)', text) or re.search(r'"steps": \[\d+, (\d+)\]', text)
    if last and int(last.group(1)) < 390:
        return f"the second half is lost (last step {last.group(1)})"
    return None if re.search(r"record", text) else "no note on the records lost"


def mk_null_cells(d: Path):
    f = small_csv(d / "nulls.csv")
    lines = f.read_text().splitlines()
    for k, word in ((5, "None"), (9, "NULL"), (13, "null")):
        s, _, lr = lines[k].split(",")
        lines[k] = f"{s},{word},{lr}"
    f.write_text("\n".join(lines) + "\n")
    return _analyze(f), {}, {}


def ck_null_note(r: Result) -> str | None:
    if r.code != 0:
        return f"exit {r.code}"
    return None if re.search(r"\b3\b[^\n]*(missing|null|none)", r.stdout + r.stderr, re.I) \
        else "no note counting the 3 NULL cells"


CASES = [
    Case("csv_gz_bomb", "resources", "1 MB .csv.gz of valid rows -> 1 GB, 268M rows",
         mk_csv_gz_bomb, "error", cause=r"decompress"),
    Case("jsonl_gz_bomb", "resources", "1.9 MB .jsonl.gz of valid lines -> 1.9 GB",
         mk_jsonl_gz_bomb, "error", cause=r"decompress"),
    Case("zeros_gz_bomb", "resources", ".csv.gz of 1 GB of zeros", mk_zeros_bomb, "error"),
    Case("long_line_log", "resources", "500 MB single-line .log", mk_long_log, "error",
         cause=r"line 1\b.*long"),
    Case("long_line_jsonl", "resources", "500 MB single-line .jsonl", mk_long_jsonl, "error",
         cause=r"line 1\b.*long"),
    Case("long_line_csv", "resources", "500 MB single-line .csv (after the header)",
         mk_long_csv, "error", cause=r"line 2\b.*long"),
    Case("long_line_pattern", "resources", "500 MB single-line text with --pattern",
         mk_long_pattern, "error", cause=r"line 1\b.*long"),
    Case("clean_10m", "resources", "10M-row CSV, clean (the reference)", mk_clean_10m, "ref"),
    Case("bad_row_10m", "resources", "10M-row CSV, one bad cell in the middle",
         mk_bad_row_10m, "error", ck_bad_row, reference="clean_10m"),
    Case("glob_symlink_loop", "resources", "quoted 'dir/**/*.csv' over a symlink loop",
         mk_glob_loop, "ok", ck_one_run),
    Case("walk_symlink_loop", "resources", "a folder walk over a symlink loop", mk_walk_loop,
         "ok", ck_one_run),
    Case("empty_file", "resources", "an empty .csv", mk_empty, "error", cause="empty"),
    Case("truncated_gz", "resources", "a .csv.gz cut in half", mk_truncated_gz, "error",
         cause="truncated"),
    Case("million_columns", "resources", "a header of a million columns (7.9 MB)",
         mk_million_columns, "error", cause=r"line 1\b.*long"),
    Case("html_name", "names", "HTML in a run name, report", mk_html_name, "ok", ck_html),
    Case("mathtext_name", "names", r"'lr$\nosuchcmd$x.csv', report", mk_mathtext_name, "ok",
         ck_report),
    Case("dollar_name", "names", "'price $5 and $6.csv', report", mk_dollar_name, "ok",
         ck_report),
    Case("escape_name", "names", "terminal escape sequences in a file name", mk_escape_name,
         "ok", ck_no_escape),
    Case("non_utf8_name", "names", "a file name that is not UTF-8, --format json",
         mk_non_utf8_name, "ok", ck_json_utf8),
    Case("permission_denied", "errors", "a plain CSV the user may not read", mk_permission,
         "error", cause=r"^(?!.*gzip).*permission denied"),
    Case("fifo", "errors", "a FIFO", mk_fifo, "error", cause=r"not a regular file"),
    Case("dev_stdin", "errors", "/dev/stdin (a CSV piped in)", mk_dev_stdin, "either",
         ck_not_empty),
    Case("stdin_dash", "errors", "'-' (a CSV piped in)", mk_stdin_dash, "ok"),
    Case("deep_jsonl", "errors", "JSON lines nested 10,000 deep", mk_deep_jsonl, "error",
         cause=r"nest|deep"),
    Case("deep_trainer_state", "errors", "trainer_state.json nested 10,000 deep",
         mk_deep_trainer_state, "error", cause=r"nest|deep"),
    Case("log_history_not_objects", "errors", 'log_history: [1, 2, "x", null]',
         mk_log_history_not_objects, "error", cause=r"not .*object"),
    Case("unreadable_subdir", "errors", "a walk over an unreadable sub-folder",
         mk_unreadable_subdir, "ok", ck_subdir_note),
    Case("skipped_in_report", "errors", "a file skipped in a walk, Markdown report",
         mk_skipped_in_report, "ok", ck_skipped_listed),
    Case("tb_garbage_mid", "errors", "4 KB of garbage in the middle of a TensorBoard file",
         mk_tb_garbage, "ok", ck_tb_second_half),
    Case("null_cells", "errors", "CSV cells None/NULL/null", mk_null_cells, "ok",
         ck_null_note),
]


# --- running --------------------------------------------------------------------------

def _without_root_reads() -> None:
    """Drop the capabilities that let root read any file (CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH) from the bounding set before exec: the child is root without
    them, so a file or folder of mode 000 is unreadable to it, as to any user."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run(argv: list[str], *, src: Path | None, stdin: Path | None, unprivileged: bool,
        workdir: Path) -> Result:
    env = dict(os.environ, PYTHONIOENCODING="utf-8", COLUMNS="100")
    env.pop("CI", None)
    if src is not None:
        env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    out, err = workdir / ".stdout", workdir / ".stderr"
    kw = {}
    if unprivileged and os.geteuid() == 0:
        kw = dict(preexec_fn=_without_root_reads)
    # standard input is a pipe (cat FILE | lrdoctor ...), or nothing
    cat = subprocess.Popen(["cat", str(stdin)], stdout=subprocess.PIPE) if stdin else None
    with open(out, "wb") as fo, open(err, "wb") as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "lrdoctor", *argv],
                             stdin=cat.stdout if cat else subprocess.DEVNULL, stdout=fo,
                             stderr=fe, env=env, cwd=workdir, start_new_session=True, **kw)
        if cat:
            cat.stdout.close()
        code, usage = None, None
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.perf_counter() - t0 > LIMIT_S:
                os.killpg(p.pid, signal.SIGKILL)
                _, status, usage = os.wait4(p.pid, 0)
                break
            time.sleep(0.01)
        seconds = time.perf_counter() - t0
        p.returncode = code if code is not None else -9  # reaped above
    if cat:
        cat.kill()
        cat.wait()
    return Result(code, seconds, usage.ru_maxrss / 1024,
                  out.read_bytes().decode("utf-8", "backslashreplace"),
                  err.read_bytes().decode("utf-8", "backslashreplace"))


def judge(case: Case, r: Result, ref: Result | None = None) -> str | None:
    """Why the result misses the targets, or None."""
    if r.code is None:
        return f"killed after {LIMIT_S:.0f} s"
    if r.traceback:
        return "traceback"
    if case.expect == "ref":  # the clean reference: only its result is judged
        return None if r.code == 0 else f"exit {r.code}, expected 0"
    limit_s, limit_mb = TARGET_S, TARGET_MB
    if ref is not None and ref.code == 0:
        limit_s, limit_mb = max(limit_s, 1.2 * ref.seconds), max(limit_mb, 1.2 * ref.peak_mb)
    if r.seconds >= limit_s:
        return f"{r.seconds:.1f} s (limit {limit_s:.1f})"
    if r.peak_mb >= limit_mb:
        return f"{r.peak_mb:.0f} MB (limit {limit_mb:.0f})"
    if "please report" in r.stderr or "could not be analyzed (" in r.stderr:
        return "internal error"
    if case.expect == "error":
        if r.code != 2:
            return f"exit {r.code}, expected 2"
        if len(r.lines) != 1:
            return f"{len(r.lines)} lines on stderr, expected one"
        if case.cause and not re.search(case.cause, r.lines[0], re.I):
            return f"the cause is not named (/{case.cause}/)"
    elif case.expect == "ok" and r.code != 0:
        return f"exit {r.code}, expected 0"
    return case.check(r) if case.check else None


def _clip(s: str, n: int) -> str:
    s = s.encode("ascii", "backslashreplace").decode("ascii")  # no raw escapes in the table
    return s if len(s) <= n else s[: n - 3] + "..."


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", action="append", default=[], metavar="SUBSTRING",
                    help="run only cases whose name contains it (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--src", type=Path, help="a checkout whose lrdoctor package to run")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    args = ap.parse_args(argv)
    cases = [c for c in CASES if not args.k or any(k in c.name for k in args.k)]
    if args.list:
        for c in cases:
            print(f"{c.name:<26} {c.section:<10} {c.what}")
        return 0
    src = args.src.resolve() if args.src else None
    tmp = Path(tempfile.mkdtemp(prefix="lrdoctor-hostile-"))
    print(f"{'case':<24} {'exit':>4} {'s':>6} {'MB':>6} {'tb':>3} {'verdict':<7} "
          f"first line of stderr / why", flush=True)
    failed, total_t = 0, time.perf_counter()
    done: dict[str, Result] = {}
    try:
        for case in cases:
            d = tmp / case.name
            d.mkdir()
            # made in a forked worker: this process stays small, and a child's peak RSS
            # (which on Linux starts from its parent's high-water mark) is its own
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as ex:
                argv_, files, opts = ex.submit(case.make, d).result()
            r = run(argv_, src=src, stdin=opts.get("stdin"), unprivileged=opts.get("unprivileged", False),
                    workdir=d)
            r.files = files
            done[case.name] = r
            why = judge(case, r, done.get(case.reference))
            failed += why is not None
            first = r.lines[0] if r.lines else ""
            first = first.removeprefix("lrdoctor: ").replace(str(tmp) + "/", "")
            code = "kill" if r.code is None else r.code
            print(f"{case.name:<24} {code:>4} {r.seconds:6.2f} {r.peak_mb:6.0f} "
                  f"{'yes' if r.traceback else 'no':>3} {('ref' if case.expect == 'ref' else 'OK') if why is None else 'FAIL':<7} "
                  f"{_clip(first, 110)}" + (f"\n{'':<55}-> {_clip(why, 100)}" if why else ""),
                  flush=True)
            for p in sorted(d.rglob("*"), reverse=True):  # free the disk as we go
                if p.is_file() and not args.keep and not p.is_symlink():
                    p.unlink()
    finally:
        for p in tmp.rglob("*"):
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)
        if args.keep:
            print(f"files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this script's own peak: {own:.0f} MB)")
    print(f"{len(cases) - failed}/{len(cases)} OK, {time.perf_counter() - total_t:.0f} s "
          "in all (generation included)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
