"""Fuzz lrdoctor with mutated real logs, through the Python API and the command line.

Seeds are the real logs (../shared/real_logs, when present), the bundled sample logs and the
test fixtures. Each case takes one seed and applies one to three mutations, chosen and
parametrized by a random generator seeded with ``(--seed, case number)``, so a case is the
same on every run and can be replayed alone (``--replay N``):

  flip        random bytes XORed            truncate    cut at a random byte
  garbage     random bytes inserted         dup_lines   lines repeated (up to 1000x)
  drop_lines  lines deleted (the header)    shuffle     a window of lines reordered
  huge        numbers -> 1e309, 400 digits, 0x1p1023, 1_000, '1.2.3', ...
  nonfinite   numbers -> NaN, -Infinity, None, null, NA, '#N/A', ...
  delims      one delimiter (, \\t : = | { } [ ] ") deleted from some lines or all
  cells       a cell added to or removed from some lines
  header      column names duplicated, emptied, made huge or non-ASCII
  encoding    non-ASCII text inserted, then written as UTF-16/32, Latin-1, with a BOM,
              or invalid UTF-8 bytes inserted
  nested      deeply nested JSON lines, a number replaced by an object, array or string
  long_line   one line of 10 kB to 5 MB      control     NUL, ESC sequences, \\r, \\f inserted
  newlines    \\n -> \\r\\n, \\r or a mix     empty       nothing, whitespace, a lone header
  rename      the file's extension changed (or removed)
and, after the mutations, sometimes ``gzip`` (the result compressed, named .gz) or
``gzip_flip`` (bytes of the compressed stream flipped).

API cases run ``lrdoctor.analyze(path)``, then the JSON document and the text report, in a
worker process (one per ``--workers``) with a soft per-case timeout (``--timeout`` CPU
seconds, a signal) and a hard one (6x that in wall time plus 30 s: the worker is killed and
restarted); the peak RSS of each case is read from
/proc/self/status (VmHWM, reset before the case). CLI cases run
``python -m lrdoctor analyze FILE --format text|json`` on a sample (their own case numbers,
after the API ones) and check the exit code, stderr and, for JSON, strict JSON on stdout.

Outcomes: ok (diagnosed), error (LrDoctorError / exit 2 with one line), and the failures:
exception (a traceback: the API raised something else, or the CLI printed one), internal
(a 'please report this' message), bad_exit (CLI exit code not 0/1/2), bad_output (the JSON
is not strict JSON, or an error message is not one line), timeout, hang (killed), memory
(peak RSS over --mem-mb), crash (the worker died), warning (a Python warning that the
command line would print on stderr). Failing cases are saved to --out, one
folder per failure family (the exception type and the innermost lrdoctor frame), with the
input and a .txt saying what happened and how to replay it.

usage: python benchmarks/fuzz.py [--cases 20000] [--cli 400] [--seed 0] [--workers 2]
                                 [--timeout 10] [--mem-mb 700] [--out fuzz_out]
       python benchmarks/fuzz.py --replay N [--seed 0]      (one case, in this process)
"""
from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED_DIRS = [ROOT.parent / "shared" / "real_logs", ROOT / "sample_logs", ROOT / "tests" / "fixtures"]
FAILURES = ("exception", "internal", "bad_exit", "bad_output", "timeout", "hang", "memory",
            "crash", "warning")


def seed_files() -> list[Path]:
    out = []
    for d in SEED_DIRS:
        if d.is_dir():
            out += sorted(p for p in d.rglob("*") if p.is_file() and p.stat().st_size < 4 << 20)
    return out


# -- mutations: each takes (bytes, rng, name) and returns (bytes, name, description) -------

_NUM = re.compile(rb"(?<![\w.])[-+]?\d+\.?\d*(?:[eE][-+]?\d+)?(?![\w.])")
HUGE = [b"1e308", b"1e309", b"-1e309", b"9" * 400, b"1e-400", b"0x1p1023", b"1_000",
        b"1,000", b"+5", b"-0", b"5e", b".", b"1.2.3", b"--1", b"1e99999", b"-" + b"9" * 40,
        b"3.4028235e38", b"18446744073709551616", b"1e+", b"0e0"]
NONFINITE = [b"nan", b"NaN", b"inf", b"-inf", b"Infinity", b"-Infinity", b"None", b"null",
             b"NULL", b"", b'"nan"', b"NA", b"N/A", b"#N/A", b"nan(ind)", b"1.#INF", b"NaT",
             b"+inf", b"-nan", b"INF"]
DELIMS = [b",", b"\t", b":", b"=", b"|", b"{", b"}", b"[", b"]", b'"', b" ", b"\n"]
NONASCII = ["é", "λ", "\u2028", "\ufeff", "😀", "ß", "\u00a0", "中文", "\u202e", "İ"]


def _lines(b):
    return b.split(b"\n")


def m_flip(b, rng, name):
    if not b:
        return b, name, "flip (empty)"
    a = bytearray(b)
    k = rng.choice([1, 2, 4, 16, 64, 512])
    for _ in range(k):
        i = rng.randrange(len(a))
        a[i] ^= rng.randrange(1, 256)
    return bytes(a), name, f"flip {k}"


def m_truncate(b, rng, name):
    n = rng.randrange(len(b) + 1)
    return b[:n], name, f"truncate at {n}"


def m_garbage(b, rng, name):
    n = rng.choice([1, 16, 256, 4096, 65536])
    i = rng.randrange(len(b) + 1)
    return b[:i] + rng.randbytes(n) + b[i:], name, f"garbage {n} at {i}"


def m_dup_lines(b, rng, name):
    ls = _lines(b)
    i = rng.randrange(len(ls))
    n = rng.choice([1, 2, 10, 1000])
    width = rng.choice([1, 1, 5, 50])
    block = ls[i:i + width]
    n = max(1, min(n, (32 << 20) // (sum(map(len, block)) + len(block))))  # at most ~32 MiB
    at = rng.choice([i, rng.randrange(len(ls) + 1)])
    return b"\n".join(ls[:at] + block * n + ls[at:]), name, f"dup {width} lines x{n}"


def m_drop_lines(b, rng, name):
    ls = _lines(b)
    if rng.random() < 0.3:
        return b"\n".join(ls[1:]), name, "drop the first line"
    keep = [l for l in ls if rng.random() > 0.2]
    return b"\n".join(keep), name, f"drop {len(ls) - len(keep)} lines"


def m_shuffle(b, rng, name):
    ls = _lines(b)
    i = rng.randrange(len(ls))
    w = ls[i:i + rng.choice([2, 10, 100])]
    rng.shuffle(w)
    return b"\n".join(ls[:i] + w + ls[i + len(w):]), name, "shuffle a window"


def _numbers(b, rng, choices, tag):
    share = rng.choice([0.01, 0.1, 0.5, 1.0])
    hits = [0]

    def sub(m):
        if rng.random() < share:
            hits[0] += 1
            return rng.choice(choices)
        return m.group(0)

    return _NUM.sub(sub, b), f"{tag} {hits[0]} numbers"


def m_huge(b, rng, name):
    out, d = _numbers(b, rng, HUGE, "huge")
    return out, name, d


def m_nonfinite(b, rng, name):
    out, d = _numbers(b, rng, NONFINITE, "nonfinite")
    return out, name, d


def m_delims(b, rng, name):
    c = rng.choice(DELIMS)
    if rng.random() < 0.5:
        return b.replace(c, b""), name, f"delete every {c!r}"
    ls = _lines(b)
    ls = [l.replace(c, b"") if rng.random() < 0.2 else l for l in ls]
    return b"\n".join(ls), name, f"delete {c!r} in some lines"


def m_cells(b, rng, name):
    ls = _lines(b)
    sep = b"\t" if b.count(b"\t") > b.count(b",") else b","
    out = []
    for l in ls:
        if rng.random() < 0.1:
            l = l + sep + rng.choice([b"1", b"", b"x", b"1" + sep + b"2"]) if rng.random() < 0.5 \
                else l.rpartition(sep)[0]
        out.append(l)
    return b"\n".join(out), name, "cells added/removed"


def m_header(b, rng, name):
    ls = _lines(b)
    h = ls[0]
    sep = b"\t" if h.count(b"\t") > h.count(b",") else b","
    cells = h.split(sep)
    k = rng.randrange(len(cells))
    how = rng.choice(["dup", "empty", "huge", "unicode", "loss"])
    if how == "dup":
        cells[k] = cells[(k + 1) % len(cells)]
    elif how == "empty":
        cells[k] = b""
    elif how == "huge":
        cells[k] = b"x" * 100000
    elif how == "unicode":
        cells[k] = rng.choice(NONASCII).encode() + cells[k]
    else:
        cells = [b"loss"] * len(cells)
    return b"\n".join([sep.join(cells)] + ls[1:]), name, f"header {how}"


def m_encoding(b, rng, name):
    if rng.random() < 0.3:
        bad = rng.choice([b"\xff\xfe", b"\xc3(", b"\xe2\x82", b"\x80", b"\xed\xa0\x80", b"\xf5"])
        i = rng.randrange(len(b) + 1)
        return b[:i] + bad + b[i:], name, f"invalid UTF-8 {bad!r}"
    t = b.decode("utf-8", "replace")
    for _ in range(rng.choice([0, 1, 5])):
        i = rng.randrange(len(t) + 1)
        t = t[:i] + rng.choice(NONASCII) + t[i:]
    enc = rng.choice(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252",
                      "utf-8-sig", "utf-8"])
    return t.encode(enc, "replace"), name, f"encoded {enc}"


def m_nested(b, rng, name):
    how = rng.choice(["deep_array", "deep_object", "value", "log_history"])
    ls = _lines(b)
    i = rng.randrange(len(ls) + 1)
    if how == "deep_array":
        n = rng.choice([10, 1000, 100000])
        return b"\n".join(ls[:i] + [b"[" * n + b"]" * n] + ls[i:]), name, f"array {n} deep"
    if how == "deep_object":
        n = rng.choice([10, 1000, 100000])
        return (b"\n".join(ls[:i] + [b'{"loss":' * n + b"1" + b"}" * n] + ls[i:]), name,
                f"object {n} deep")
    if how == "log_history":
        v = rng.choice([b'[1, 2, "x", null]', b"{}", b"null", b"[[]]", b'"s"', b"[{}]"])
        out = re.sub(rb'"log_history"\s*:\s*\[', b'"log_history": ' + v + b", \"_was\": [",
                     b, count=1)
        return out, name, f"log_history {v!r}"
    v = rng.choice([b"[1,2]", b'{"a":1}', b'"x"', b"true", b"null", b"[]", b"{}"])
    out, k = re.subn(rb'("(?:loss|train_loss|total_loss|learning_rate|lr|step)"\s*:\s*)'
                     rb'[^,}\s]+', rb"\g<1>" + v, b, count=rng.choice([1, 10, 0]))
    return out, name, f"{k} values -> {v!r}"


def m_long_line(b, rng, name):
    n = rng.choice([10_000, 1_000_000, 5_000_000])
    fill = rng.choice([b"a", b"1", b",", b"1,", b" ", b"loss=1 "])
    ls = _lines(b)
    i = rng.randrange(len(ls) + 1)
    line = (fill * (n // len(fill) + 1))[:n]
    return b"\n".join(ls[:i] + [line] + ls[i:]), name, f"line of {n} x {fill!r}"


def m_control(b, rng, name):
    out = b
    k = rng.choice([1, 10, 100])
    for _ in range(k):
        i = rng.randrange(len(out) + 1)
        out = out[:i] + rng.choice([b"\x00", b"\x1b[31m", b"\x1b]0;t\x07", b"\r", b"\x0c",
                                    b"\x08", b"\x7f", b"\x1a"]) + out[i:]
    return out, name, f"control x{k}"


def m_newlines(b, rng, name):
    how = rng.choice(["crlf", "cr", "mix", "none"])
    if how == "crlf":
        return b.replace(b"\n", b"\r\n"), name, how
    if how == "cr":
        return b.replace(b"\n", b"\r"), name, how
    if how == "none":
        return b.rstrip(b"\n"), name, "no final newline"
    return (b"".join(l + rng.choice([b"\n", b"\r\n", b"\r"]) for l in _lines(b)), name, how)


def m_empty(b, rng, name):
    v = rng.choice([b"", b"\n", b"   \n\n", _lines(b)[0], _lines(b)[0] + b"\n", b"\xef\xbb\xbf",
                    b"\x00" * 100])
    return v, name, f"empty-ish {v[:20]!r}"


def m_rename(b, rng, name):
    stem = name.split(".")[0] or "x"
    new = stem + rng.choice([".csv", ".tsv", ".jsonl", ".json", ".log", ".txt", "", ".wandb",
                             ".csv.gz", "_trainer_state.json", ".out.tfevents.1"])
    return b, new, f"renamed {new}"


MUTATIONS = {f.__name__[2:]: f for f in [
    m_flip, m_truncate, m_garbage, m_dup_lines, m_drop_lines, m_shuffle, m_huge,
    m_nonfinite, m_delims, m_cells, m_header, m_encoding, m_nested, m_long_line, m_control,
    m_newlines, m_empty, m_rename]}
# how often each is drawn (the ones that keep most of a log readable are drawn more)
WEIGHTS = {"flip": 3, "truncate": 2, "garbage": 2, "dup_lines": 2, "drop_lines": 2,
           "shuffle": 1, "huge": 3, "nonfinite": 3, "delims": 2, "cells": 2, "header": 2,
           "encoding": 2, "nested": 2, "long_line": 1, "control": 2, "newlines": 1,
           "empty": 1, "rename": 1}


def make_case(seeds: list[Path], seed: int, case: int) -> tuple[bytes, str, str, list[str]]:
    """(content, file name, folder name, what was done) of one case, the same every time."""
    rng = random.Random(f"{seed}:{case}")
    src = rng.choice(seeds)
    b = src.read_bytes()
    name = src.name
    done = [str(src)]
    names = list(WEIGHTS)
    for m in rng.choices(names, weights=[WEIGHTS[k] for k in names],
                         k=rng.choices([1, 2, 3], weights=[6, 3, 1])[0]):
        b, name, what = MUTATIONS[m](b, rng, name)
        done.append(what)
    r = rng.random()
    if r < 0.05 and not name.endswith(".gz"):
        b, name = gzip.compress(b, 1), name + ".gz"
        done.append("gzip")
    elif r < 0.07:
        z = bytearray(gzip.compress(b, 1))
        for _ in range(rng.choice([1, 4])):
            i = rng.randrange(len(z))
            z[i] ^= rng.randrange(1, 256)
        b, name = bytes(z), (name if name.endswith(".gz") else name + ".gz")
        done.append("gzip_flip")
    elif name.endswith(".gz") and b[:2] != b"\x1f\x8b":
        b = gzip.compress(b, 1)
    return b, name, src.parent.name, done


def write_case(base: Path, content: bytes, name: str, folder: str) -> Path:
    d = base / folder
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    p = d / name
    p.write_bytes(content)
    return p


# -- the API, in worker processes -------------------------------------------------------

class CaseTimeout(BaseException):
    """Raised by the alarm (a BaseException: lrdoctor's own 'except Exception' lets it by)."""


def _alarm(signum, frame):
    raise CaseTimeout()


def _peak_reset():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_mb() -> float:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def family(exc: BaseException) -> str:
    """The exception's type and the innermost frame in lrdoctor."""
    tb = traceback.extract_tb(exc.__traceback__)
    inner = [f for f in tb if "lrdoctor" in f.filename and "benchmarks" not in f.filename]
    where = inner[-1] if inner else (tb[-1] if tb else None)
    at = f"{Path(where.filename).parent.name}/{Path(where.filename).name}:{where.name}" \
        if where else "?"
    return f"{type(exc).__name__} at {at}"


def run_api_case(path: Path, timeout: float) -> tuple[str, str, str]:
    """(outcome, family, detail) of lrdoctor.analyze on one file."""
    import lrdoctor
    from lrdoctor.errors import LrDoctorError
    from lrdoctor.render import json_document, text_report

    signal.setitimer(signal.ITIMER_PROF, timeout)  # CPU seconds: a loaded machine is no hang
    try:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                found = lrdoctor.analyze(str(path))
                doc = json_document(found, [])
                text_report(found)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
    except CaseTimeout:
        return "timeout", "timeout", f"over {timeout} s of CPU"
    except LrDoctorError as exc:
        msg = str(exc)
        if "please report" in msg:
            return "internal", "internal: " + msg.split("(")[1].split(":")[0] \
                if "(" in msg else "internal", msg
        if "\n" in msg.strip() or not exc.message.strip():
            return "bad_output", "multi-line or empty error", msg
        return "error", "", msg
    except RecursionError as exc:
        return "exception", family(exc), "".join(traceback.format_exception(exc))[-3000:]
    except Exception as exc:
        return "exception", family(exc), "".join(traceback.format_exception(exc))[-6000:]
    except MemoryError as exc:
        return "memory", "MemoryError", "".join(traceback.format_exception(exc))[-3000:]
    try:
        json.loads(doc, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except ValueError as exc:
        return "bad_output", "JSON document not strict JSON", str(exc)
    if caught:  # the command line would print it on stderr
        w = caught[0]
        return ("warning", f"{w.category.__name__} at {Path(w.filename).parent.name}/"
                f"{Path(w.filename).name}:{w.lineno}", f"{w.message}")
    return "ok", "", f"{len(found)} run(s)"


def api_worker(conn, seeds, seed, timeout, mem_mb, workdir):
    signal.signal(signal.SIGPROF, _alarm)
    import lrdoctor  # noqa: F401  (import once, not in the first case's time)
    import lrdoctor.render  # noqa: F401
    base = Path(workdir)
    while True:
        case = conn.recv()
        if case is None:
            return
        content, name, folder, done = make_case(seeds, seed, case)
        path = write_case(base, content, name, folder)
        _peak_reset()
        t0 = time.perf_counter()
        outcome, fam, detail = run_api_case(path, timeout)
        dt = time.perf_counter() - t0
        peak = _peak_mb()
        if outcome in ("ok", "error") and peak > mem_mb:
            outcome, fam, detail = "memory", "peak RSS", f"{peak:.0f} MB > {mem_mb} MB"
        conn.send((case, outcome, fam, detail, dt, peak))


class Worker:
    def __init__(self, ctx, args, seeds, k):
        self.args, self.seeds, self.k, self.ctx = args, seeds, k, ctx
        self.start()

    def start(self):
        self.dir = tempfile.mkdtemp(prefix=f"lrdoctor_fuzz{self.k}_")
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=api_worker, daemon=True, args=(
            child, self.seeds, self.args.seed, self.args.timeout, self.args.mem_mb, self.dir))
        self.proc.start()
        self.case = None

    def send(self, case):
        self.case, self.t0 = case, time.monotonic()
        self.conn.send(case)

    def kill(self):
        self.proc.kill()
        self.proc.join()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_api(args, seeds, cases, record):
    ctx = mp.get_context("fork")
    workers = [Worker(ctx, args, seeds, k) for k in range(args.workers)]
    todo = list(cases)
    todo.reverse()
    busy = []
    for w in workers:
        if todo:
            w.send(todo.pop())
            busy.append(w)
    hard = args.timeout * 6 + 30  # wall seconds (the soft limit counts CPU seconds)
    while busy:
        ready = mp.connection.wait([w.conn for w in busy] + [w.proc.sentinel for w in busy],
                                   timeout=1.0)
        for w in list(busy):
            res = None
            if w.conn in ready:
                try:
                    res = w.conn.recv()
                except EOFError:
                    res = None
            if res is not None:
                record("api", *res)
            elif w.proc.sentinel in ready or not w.proc.is_alive():
                record("api", w.case, "crash", f"worker died (exit {w.proc.exitcode})",
                       "", time.monotonic() - w.t0, 0.0)
                w.kill()
                w.start()
            elif time.monotonic() - w.t0 > hard:
                record("api", w.case, "hang", "hang", f"killed after {hard:.0f} s",
                       time.monotonic() - w.t0, 0.0)
                w.kill()
                w.start()
            else:
                continue
            busy.remove(w)
            if todo:
                w.send(todo.pop())
                busy.append(w)
    for w in workers:
        w.conn.send(None)
        w.proc.join(5)
        w.kill()


# -- the command line, on a sample -------------------------------------------------------

#: ``python -m lrdoctor``, writing its own peak RSS (VmHWM) at exit: a child's ru_maxrss
#: counts the parent's memory at the fork
CLI_CHILD = """
import atexit, os, sys
def _peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            open(os.environ['FUZZ_PEAK'], 'w').write(str(int(line.split()[1]) / 1024))
atexit.register(_peak)
from lrdoctor.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_cli_case(args, seeds, case, fmt, base: Path):
    content, name, folder, done = make_case(seeds, args.seed, case)
    path = write_case(base / str(case), content, name, folder)
    peak_file = base / f"{case}.peak"
    proc = subprocess.Popen([sys.executable, "-c", CLI_CHILD, "analyze", str(path), "--format",
                             fmt], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=str(base), env=dict(os.environ, FUZZ_PEAK=str(peak_file)))
    t0 = time.perf_counter()
    timer = threading.Timer(args.timeout * 3 + 10, proc.kill)
    timer.start()
    bufs = {}

    def drain(name, f):
        bufs[name] = f.read()

    readers = [threading.Thread(target=drain, args=(k, f))
               for k, f in (("out", proc.stdout), ("err", proc.stderr))]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    proc.wait()
    timer.cancel()
    out, err = bufs["out"], bufs["err"]
    try:
        peak = float(peak_file.read_text())
    except (OSError, ValueError):
        peak = 0.0
    dt = time.perf_counter() - t0
    rc = proc.returncode
    shutil.rmtree(base / str(case), ignore_errors=True)
    peak_file.unlink(missing_ok=True)
    text = err.decode("utf-8", "replace")
    if rc == -signal.SIGKILL:
        return case, "hang", "hang", f"CLI killed after {dt:.0f} s", dt, peak
    if "Traceback" in text:
        last = [l for l in text.splitlines() if l.strip()][-1]
        return case, "exception", f"CLI traceback: {last[:80]}", text[-6000:], dt, 0.0
    if "please report" in text:
        return case, "internal", "CLI internal: " + text.split("(")[1].split(":")[0] \
            if "(" in text else "CLI internal", text[-3000:], dt, 0.0
    if re.search(r"\w+Warning: ", text):
        w = re.search(r"(\S+\.py):\d+: (\w+Warning)", text)
        return case, "warning", f"CLI {w.group(2)} at {Path(w.group(1)).name}" if w else \
            "CLI warning", text[-3000:], dt, peak
    if rc not in (0, 1, 2):
        return case, "bad_exit", f"CLI exit {rc}", text[-3000:], dt, peak
    if peak > args.mem_mb:
        return case, "memory", "CLI peak RSS", f"{peak:.0f} MB > {args.mem_mb} MB", dt, peak
    if fmt == "json":
        try:
            json.loads(out, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except ValueError as exc:
            return case, "bad_output", "CLI JSON not strict JSON", str(exc), dt, 0.0
    return case, "ok" if rc == 0 else "error", "", text[-500:], dt, peak


def run_cli(args, seeds, cases, record):
    from concurrent.futures import ThreadPoolExecutor

    base = Path(tempfile.mkdtemp(prefix="lrdoctor_fuzzcli_"))
    try:
        with ThreadPoolExecutor(args.workers) as ex:
            futs = [ex.submit(run_cli_case, args, seeds, c, ("text", "json")[c % 2], base)
                    for c in cases]
            for f in futs:
                record("cli", *f.result())
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- the run -----------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=20000, help="API cases")
    ap.add_argument("--cli", type=int, default=400, help="CLI cases (a sample)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per API case")
    ap.add_argument("--mem-mb", type=float, default=700.0, help="peak RSS per case")
    ap.add_argument("--out", type=Path, default=Path("fuzz_out"))
    ap.add_argument("--keep", type=int, default=5, help="saved cases per failure family")
    ap.add_argument("--replay", type=int, default=None, help="run one case here and show it")
    a = ap.parse_args(argv)
    seeds = seed_files()
    if not seeds:
        sys.exit("no seed logs found")
    if a.replay is not None:
        content, name, folder, done = make_case(seeds, a.seed, a.replay)
        d = Path(tempfile.mkdtemp(prefix="lrdoctor_replay_"))
        path = write_case(d, content, name, folder)
        signal.signal(signal.SIGPROF, _alarm)
        print(" | ".join(done), "->", path)
        print(*run_api_case(path, a.timeout), sep="\n")
        return
    if a.out.exists():
        shutil.rmtree(a.out)
    a.out.mkdir(parents=True)
    counts = {"api": Counter(), "cli": Counter()}
    fams = defaultdict(list)
    slow = []
    t_start = time.time()
    n_done = [0]

    def record(kind, case, outcome, fam, detail, dt, peak):
        counts[kind][outcome] += 1
        n_done[0] += 1
        slow.append((dt, kind, case))
        if outcome in FAILURES:
            key = f"{outcome}: {fam}"
            fams[key].append(case)
            if len(fams[key]) <= a.keep:
                content, name, folder, done = make_case(seeds, a.seed, case)
                d = a.out / re.sub(r"[^\w.-]+", "_", key)[:100]
                d.mkdir(exist_ok=True)
                (d / f"{case}_{name}").write_bytes(content)
                (d / f"{case}.txt").write_text(
                    f"{kind} case {case} (seed {a.seed}): {' | '.join(done)}\n"
                    f"outcome {outcome} in {dt:.2f} s, peak {peak:.0f} MB\n"
                    f"replay: python benchmarks/fuzz.py --replay {case} --seed {a.seed}\n\n"
                    f"{detail}\n", errors="replace")
        if n_done[0] % 2000 == 0:
            print(f"  {n_done[0]} cases, {time.time() - t_start:.0f} s", file=sys.stderr,
                  flush=True)

    print(f"{len(seeds)} seed logs; {a.cases} API cases, {a.cli} CLI cases, seed {a.seed}")
    run_api(a, seeds, range(a.cases), record)
    t_api = time.time() - t_start
    run_cli(a, seeds, range(a.cases, a.cases + a.cli), record)
    t_all = time.time() - t_start
    for kind in ("api", "cli"):
        c = counts[kind]
        print(f"{kind}: {sum(c.values())} cases: " +
              ", ".join(f"{k} {c[k]}" for k in ("ok", "error", *FAILURES) if c[k]))
    print(f"time: API {t_api:.0f} s, CLI {t_all - t_api:.0f} s; slowest: " +
          ", ".join(f"{k} {c} {dt:.1f}s" for dt, k, c in sorted(slow, reverse=True)[:5]))
    if fams:
        print(f"failure families ({sum(len(v) for v in fams.values())} cases; saved to {a.out}):")
        for key, cases in sorted(fams.items(), key=lambda kv: -len(kv[1])):
            print(f"  {len(cases):5d}  {key}  (e.g. case {cases[0]})")
    total = sum(sum(c.values()) for c in counts.values())
    bad = sum(counts[k][o] for k in counts for o in FAILURES)
    print(f"cases={total} failures={bad} families={len(fams)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
