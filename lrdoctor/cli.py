"""The command line: parse, call the public API, render, choose the exit code."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from lrdoctor.readers import STDIN

EPILOG = """examples:
  lrdoctor analyze run.csv
  lrdoctor analyze runs/ --format json > report.json
  lrdoctor analyze metrics.csv --metric train_loss_step --lr 3e-4 --context finetune
  lrdoctor analyze run.csv --plot run.png
  lrdoctor analyze sweep_runs/ --plot sweep.png
  lrdoctor analyze train.log --pattern 'step (?P<step>\\d+) .* loss=(?P<loss>\\S+)'
  ssh gpu-box cat run/train.log | lrdoctor analyze -        ('-' reads standard input)
  lrdoctor analyze mlflow.db --experiment resnet-sweep
  lrdoctor analyze http://127.0.0.1:5000 --experiment resnet-sweep
  lrdoctor analyze 'sweeps/**/*.csv' --jobs 8 --format jsonl > runs.jsonl
  lrdoctor analyze runs/ --scheduler tcp://scheduler:8786     (needs lrdoctor[dask])
  lrdoctor analyze runs/ --fail-on too_high,too_low           (a CI gate)

exit status: 0 every input analyzed; 1 a run got a --fail-on verdict; 2 an input could not
be read or the command was used wrongly (the other inputs are still analyzed and
reported; 2 wins over 1)."""


REPORT_EPILOG = """examples:
  lrdoctor report runs/ -o report.html
  lrdoctor report lightning_logs/ -o docs/lr-report.md     (figures in docs/lr-report_files/)

exit status: 0 every input analyzed; 1 a run got a --fail-on verdict; 2 an input could not
be read (the report still covers the others and lists it) or the command was used wrongly
(2 wins over 1)."""

WATCH_EPILOG = """examples:
  lrdoctor watch runs/train.csv                   (status lines on a terminal; Ctrl-C ends)
  lrdoctor watch lightning_logs/ --interval 5     (new runs in the folder are followed too)
  lrdoctor watch train.log --format json | my-log-shipper
  lrdoctor watch metrics.csv --exit-on nonfinite || kill "$TRAIN_PID"
  lrdoctor watch runs/ --webhook https://hooks.slack.com/services/...
  lrdoctor watch run.jsonl --on-alert 'python notify.py'   (the event as JSON on stdin)

events (one JSON line each with --format json or when stdout is not a terminal): start,
verdict (a change, with since_step), finding (a new kind), note, error, end; run events
carry the run object of 'analyze --format json' plus event, time and alert.

exit status: 0 ended by Ctrl-C, --timeout or --once; 3 an --exit-on condition turned true
(a run became too_high, too_low, or its loss non-finite); 2 the command was used wrongly
or an input never gave a run (missing or unreadable until the end)."""


def build_parser() -> argparse.ArgumentParser:
    from lrdoctor._version import __version__

    p = argparse.ArgumentParser(
        prog="lrdoctor",
        description="Diagnose the learning rate of a training run from its loss log.")
    p.add_argument("--version", action="version", version=f"lrdoctor {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    a = sub.add_parser(
        "analyze", help="diagnose loss logs (files, directories, globs)",
        description="Read loss logs, find instability, plateaus and slow progress, and say "
                    "whether to lower, raise or keep the learning rate.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--format", choices=["text", "json", "jsonl"], default="text",
                   help="output: a report for people (default), JSON for scripts, or JSON "
                        "lines: one run object a line as the runs finish, then the sweeps "
                        "and the errors")
    _reading_options(a)
    _many_options(a)
    a.add_argument("--plot", metavar="FILE",
                   help="write the annotated figure (.png, .svg or .pdf); with several runs "
                        "the sweep figure: every run coloured by LR, verdicts marked, and "
                        "final loss against LR")
    a.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="colour the verdicts in the text output: auto (on a terminal, unless NO_COLOR "
                   "is set), always or never")
    r = sub.add_parser(
        "report", help="write an HTML or Markdown report (summary table, figures, findings)",
        description="Analyze the logs and write one report: a self-contained HTML file "
                    "(figures embedded, no network) or Markdown with its figures beside it.",
        epilog=REPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="report.html or report.md")
    _reading_options(r)
    _many_options(r)
    w = sub.add_parser(
        "watch", help="follow logs while they are written; alert when the LR goes wrong",
        description="Follow loss logs as training writes them (CSV/TSV, JSON lines, text "
                    "logs, trainer_state.json, TensorBoard, MLflow, W&B, a folder where "
                    "runs appear) and report every change of verdict and every new finding.",
        epilog=WATCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _watch_options(w)
    sub.add_parser("formats", help="list the log formats lrdoctor reads, with an example each",
                   description="List the log formats lrdoctor reads (the names "
                               "--input-format takes), with an example each.")
    return p


def _reading_options(a) -> None:
    from lrdoctor.readers import FORMATS

    a.add_argument("paths", nargs="+", metavar="PATH",
                   help="log files, run folders, directories or globs; '-' reads the log "
                        "from standard input (CSV, JSON lines, a console log, ...)")
    a.add_argument("--lr", type=float, help="the current (peak) LR, when the log lacks it")
    a.add_argument("--context", choices=["scratch", "finetune"], default="scratch",
                   help="training from scratch (default) or fine-tuning a pretrained model")
    a.add_argument("--metric", help="the column to diagnose (default: the training loss)")
    a.add_argument("--step", help="the step column (default: found by name)")
    a.add_argument("--lr-column", help="the LR column (default: found by name)")
    a.add_argument("--input-format", "--log-format", dest="input_format",
                   choices=list(FORMATS), metavar="NAME",
                   help="force the log format (default: found from the content, then the "
                        "name); 'lrdoctor formats' lists them")
    g = a.add_mutually_exclusive_group()
    g.add_argument("--sweep", action="store_true",
                   help="the runs given are one model at several LRs: judge them as one sweep "
                        "(default: runs whose names differ only by an LR and seed token are "
                        "grouped by themselves)")
    g.add_argument("--no-sweep", action="store_true",
                   help="judge every run on its own curve only")
    a.add_argument("--pattern", metavar="REGEX",
                   help="read plain-text logs with this regular expression: named groups "
                        "loss (required), step, lr, val_loss")
    a.add_argument("--experiment", metavar="NAME",
                   help="MLflow tracking database or server: read this experiment only")
    a.add_argument("--run", metavar="ID",
                   help="MLflow tracking database or server: read this run only (id or name)")
    a.add_argument("--logy", action=argparse.BooleanOptionalAction, default=None,
                   help="log-scale loss axis in figures (default: when the loss spans "
                        "more than 1.5 decades)")


#: The verdicts ``--fail-on`` takes.
FAIL_ON = ("too_high", "too_low", "unknown")


def _many_options(a) -> None:
    from lrdoctor.many import MANY

    a.add_argument("--jobs", "-j", type=int, metavar="N",
                   help=f"analyze N logs at a time in worker processes (default: one per CPU "
                        f"from {MANY} logs on, else 1)")
    a.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the analysis on a dask.distributed cluster: its scheduler's "
                        "address (tcp://host:8786), or 'local' for a cluster on this machine "
                        "(needs: pip install 'lrdoctor[dask]')")
    a.add_argument("--fail-on", type=_verdicts, default=(), metavar="VERDICTS",
                   help="exit with status 1 when any run gets one of these verdicts, "
                        "comma-separated: too_high, too_low, unknown (a CI gate)")


def _verdicts(text: str) -> tuple:
    got = tuple(v.strip() for v in text.split(",") if v.strip())
    wrong = [v for v in got if v not in FAIL_ON]
    if wrong or not got:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give one or more of {', '.join(FAIL_ON)}, comma-separated")
    return got


def _watch_options(w) -> None:
    from lrdoctor.readers import FORMATS
    from lrdoctor.watch import CONDITIONS

    w.add_argument("paths", nargs="+", metavar="PATH",
                   help="log files, run folders, directories or globs (a path that does "
                        "not exist yet is waited for)")
    w.add_argument("--interval", type=float, default=2.0, metavar="S",
                   help="seconds between polls (default 2)")
    w.add_argument("--format", choices=["auto", "text", "json"], default="auto",
                   help="status lines for people, or one JSON line per event (default: "
                        "status lines on a terminal, JSON otherwise)")
    w.add_argument("--exit-on", action="append", choices=CONDITIONS, default=[],
                   metavar="COND", help="exit with status 3 as soon as a run turns so: "
                   "too_high, too_low or nonfinite (repeatable)")
    w.add_argument("--alert-on", action="append", choices=CONDITIONS, default=None,
                   metavar="COND", help="what --on-alert and --webhook fire on (repeatable; "
                   "default: too_high and nonfinite)")
    w.add_argument("--on-alert", metavar="CMD",
                   help="run this shell command with the event as JSON on its stdin")
    w.add_argument("--webhook", metavar="URL",
                   help="POST the event as JSON (with a Slack-compatible 'text' field)")
    w.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
    w.add_argument("--once", action="store_true", help="one pass, then stop")
    w.add_argument("--lr", type=float, help="the current (peak) LR, when the log lacks it")
    w.add_argument("--context", choices=["scratch", "finetune"], default="scratch")
    w.add_argument("--metric", help="the column to diagnose (default: the training loss)")
    w.add_argument("--step", help="the step column (default: found by name)")
    w.add_argument("--lr-column", help="the LR column (default: found by name)")
    w.add_argument("--input-format", "--log-format", dest="input_format",
                   choices=list(FORMATS), metavar="NAME", help="force the log format")
    w.add_argument("--pattern", metavar="REGEX",
                   help="read plain-text logs with this regular expression (as analyze)")
    w.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="colour the verdicts in the text output: auto (on a terminal, unless NO_COLOR "
                   "is set), always or never")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "formats":
        from lrdoctor.readers import FORMATS

        width = max(map(len, FORMATS))
        for name, example in FORMATS.items():
            print(f"{name:<{width}}  {example}")
        return 0
    _short_lived_allocations()
    try:
        if args.command == "report":
            return report_command(args)
        if args.command == "watch":
            return watch_command(args)
        return analyze_command(args)
    except BrokenPipeError:
        # the reader of the output went away (| head): end quietly; what it read stands
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush does not raise
    BrokenPipeError again (Python's documented idiom for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (a test's capture)
        pass


def _short_lived_allocations() -> None:
    """Turn off NumPy's transparent-huge-page hint for this short-lived process.

    NumPy asks the kernel for huge pages on every large array; where the kernel then
    compacts memory on the spot (``defrag=madvise``), a 1e7-step log spent up to a second in
    the kernel. A command that reads once and exits gains nothing from huge pages.
    (``NUMPY_MADVISE_HUGEPAGE=1`` in the environment keeps them.) Only the CLI does this;
    importing lrdoctor as a library leaves NumPy as the user set it.
    """
    if os.environ.get("NUMPY_MADVISE_HUGEPAGE"):
        return
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # NumPy < 2
        try:
            from numpy.core.multiarray import _set_madvise_hugepage
        except ImportError:
            return
    _set_madvise_hugepage(False)


def _err(msg: str) -> None:
    from lrdoctor.render import printable

    print(f"lrdoctor: {printable(msg)}", file=sys.stderr)


def _read_stdin(folder: str):
    """Standard input copied to ``folder/<stdin>`` (the readers sniff a file's content,
    then read it, which a pipe does not allow): its path, or the error."""
    from lrdoctor.errors import LrDoctorError

    if sys.stdin is None or sys.stdin.isatty():
        return LrDoctorError("standard input is a terminal, not a log; pipe one in: "
                             "cat train.log | lrdoctor analyze -", STDIN)
    target = Path(folder) / STDIN
    with open(target, "wb") as out:
        shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
    if target.stat().st_size == 0:
        return LrDoctorError("standard input is empty: nothing was piped in "
                             "(cat train.log | lrdoctor analyze -)", STDIN)
    with open(target, "rb") as f:
        if f.read(2) == b"\x1f\x8b":  # gzip: named so, as the readers know it by its name
            target = target.rename(target.with_name(STDIN + ".gz"))
    return str(target)


def _as_stdin(res, copy: str) -> None:
    """Name the copy of standard input ``<stdin>`` wherever the result names it."""
    from lrdoctor.errors import LrDoctorError

    def named(text):
        if not isinstance(text, str):
            return text
        return text.replace(copy, STDIN).replace(Path(copy).name, STDIN)

    res.path = named(res.path)
    for d in res.runs:
        d.source, d.notes = named(d.source), [named(n) for n in d.notes]
    if res.error is not None:
        res.error = LrDoctorError(named(res.error.message), named(res.error.source))


def results(args, *, keep_history: bool, progress: bool):
    """Each input's :class:`lrdoctor.many.LogResult` as it finishes (``--jobs``,
    ``--scheduler``), a progress bar on stderr when it is a terminal; a file found by
    walking a folder that is not a loss log is skipped with a note. PATH ``-`` is standard
    input, read into a temporary file for the command's time and named ``<stdin>``."""
    import tempfile

    from lrdoctor.errors import LrDoctorError
    from lrdoctor.many import LogResult

    paths, copy = list(args.paths), None
    with tempfile.TemporaryDirectory(prefix="lrdoctor-stdin-") as folder:
        if "-" in paths:
            got = _read_stdin(folder)
            if isinstance(got, LrDoctorError):
                paths = [p for p in paths if p != "-"]
                yield LogResult(STDIN, -1, len(paths), error=got)
            else:
                copy, paths = got, [got if p == "-" else p for p in paths]
        if paths:
            yield from _results(args, paths, copy, keep_history=keep_history,
                                progress=progress)


def _results(args, paths: list, copy: str | None, *, keep_history: bool, progress: bool):
    from lrdoctor.many import analyze_many

    client = _dask_client(args) if args.scheduler else None
    bar = _Progress() if progress and sys.stderr.isatty() else None
    try:
        for res in analyze_many(
                paths, executor=client.get_executor() if client else None,
                jobs=args.jobs, keep_history=keep_history, lr=args.lr, context=args.context,
                step=args.step, metric=args.metric, lr_column=args.lr_column,
                format=args.input_format, pattern=args.pattern,
                experiment=args.experiment, run=args.run):
            if copy is not None:
                _as_stdin(res, copy)
            if res.skipped:
                _err(f"{res.path}: skipped, {res.skipped}")
            if bar is not None and res.index >= 0:
                bar.update(res)
            yield res
    finally:
        if bar is not None:
            bar.close()
        if client is not None:
            client.close()


def collect(args, *, progress: bool, keep_history: bool = True,
            skipped: list | None = None) -> tuple[list, list]:
    """Read and diagnose every input: (diagnoses, errors), in the order of the inputs
    whatever order they finish in. One bad input never stops the others; files found by
    walking a folder are named by their path there. ``skipped``, when given, receives
    (path, why) for each input found in a folder and skipped, as said on stderr."""
    done = sorted(results(args, keep_history=keep_history, progress=progress),
                  key=lambda r: r.index)
    diagnoses = [d for r in done for d in r.runs]
    errors = [r.error for r in done if r.error is not None]
    if skipped is not None:
        skipped += [(r.path, r.skipped) for r in done if r.skipped]
    for e in errors:
        _err(str(e))
    return diagnoses, errors


class _Progress:
    """``[#####.....] 120/2000 logs  35/s  0:53 left`` redrawn in place on stderr."""

    def __init__(self):
        import time

        self.clock, self.start, self.done, self.shown = time.monotonic, time.monotonic(), 0, 0

    def update(self, res) -> None:
        self.done += 1
        now = self.clock()
        if res.total <= 20 or (now - self.shown < 0.1 and self.done < res.total):
            return
        self.shown = now
        rate = self.done / max(now - self.start, 1e-9)
        left = int((res.total - self.done) / rate) if rate > 0 else 0
        bar = "#" * (20 * self.done // res.total)
        print(f"\r[{bar:<20}] {self.done}/{res.total} logs  {rate:.0f}/s  "
              f"{left // 60}:{left % 60:02d} left ", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.shown:
            print("\r" + " " * 60 + "\r", end="", file=sys.stderr, flush=True)


def _dask_client(args):
    """The dask.distributed Client of ``--scheduler`` (an address, or ``local``)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        _err("--scheduler needs dask.distributed: pip install 'lrdoctor[dask]'")
        raise SystemExit(2)
    if args.scheduler == "local":
        from lrdoctor.many import cpu_count

        return Client(LocalCluster(n_workers=args.jobs or cpu_count(), threads_per_worker=1,
                                   dashboard_address=None))
    try:
        return Client(args.scheduler, timeout=30)
    except (OSError, TimeoutError) as exc:
        _err(f"--scheduler {args.scheduler}: could not connect ({exc})")
        raise SystemExit(2)


def exit_code(args, diagnoses: list, errors: list) -> int:
    """2 when an input could not be read; else 1 when a run got a ``--fail-on`` verdict."""
    failed = [d for d in diagnoses if d.verdict in args.fail_on]
    if failed:
        _err(f"--fail-on {','.join(args.fail_on)}: {len(failed)} run(s) failed: " +
             ", ".join(f"{d.run} ({d.verdict})" for d in failed[:5]) +
             (", ..." if len(failed) > 5 else ""))
    return 2 if errors else 1 if failed else 0


def sweeps_of(args, diagnoses) -> list:
    """The sweeps among the runs (a list, or a Spool: its own find_sweeps; ``--sweep``: all
    of them; ``--no-sweep``: none)."""
    if args.no_sweep or len(diagnoses) < 2:
        return []
    from lrdoctor.many import Spool
    from lrdoctor.sweep import find_sweeps

    if isinstance(diagnoses, Spool):
        return diagnoses.find_sweeps(explicit=args.sweep)
    return find_sweeps(diagnoses, explicit=args.sweep)


def _check_common(args) -> bool:
    if args.lr is not None and not 0 < args.lr < float("inf"):
        _err(f"--lr must be a positive number, not {args.lr}")
        return False
    if getattr(args, "jobs", None) is not None and args.jobs < 1:
        _err(f"--jobs must be 1 or more, not {args.jobs}")
        return False
    return True


def analyze_command(args) -> int:
    from lrdoctor.render import printable, write_json_document, write_text_report

    if not _check_common(args):
        return 2
    if args.plot and Path(args.plot).suffix.lower() not in (".png", ".svg", ".pdf"):
        _err(f"--plot {args.plot}: the file must end in .png, .svg or .pdf")
        return 2
    if args.format == "jsonl":
        return stream_jsonl(args)
    spool, errors = spooled(args)
    try:
        sweeps = sweeps_of(args, spool)
        figures = []
        if args.plot and len(spool):
            failed = _figure(args, list(spool))
            errors += failed
            figures += [] if failed else [args.plot]
        verdicts = _FailWatch(spool, args.fail_on)  # a failing run noted as it is written
        if args.format == "json":  # written a run at a time: never the whole document
            write_json_document(sys.stdout.write, verdicts, errors, sweeps)
            sys.stdout.write("\n")
        else:
            color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty()
                                               and not os.environ.get("NO_COLOR"))
            write_text_report(sys.stdout.write, verdicts, color=color, sweeps=sweeps)
            for path in figures:
                print(f"figure written to {printable(path)}")
        return exit_code(args, verdicts.failing(), errors)
    finally:
        spool.close()


class _FailWatch:
    """The runs of a Spool as they are read, those that get a ``--fail-on`` verdict noted
    on the way (by name and verdict: all that :func:`exit_code` says of them)."""

    def __init__(self, spool, fail_on):
        self.spool, self.fail_on, self.failed = spool, fail_on, {}

    def __len__(self) -> int:
        return len(self.spool)

    def __iter__(self):
        for order, d in self.spool.items():
            self.note(order, d)
            yield d

    def note(self, order, d) -> None:
        if d.verdict in self.fail_on:
            self.failed[order] = (d.run, d.verdict)

    def failing(self) -> list:
        from types import SimpleNamespace

        return [SimpleNamespace(run=run, verdict=verdict)
                for _, (run, verdict) in sorted(self.failed.items())]


def spooled(args, *, keep_history: bool | None = None):
    """:func:`collect`, the runs kept in a :class:`lrdoctor.many.Spool` (on disk, unless
    ``--plot`` needs their histories in memory): (spool, errors)."""
    from lrdoctor.many import Spool

    keep = bool(args.plot) if keep_history is None else keep_history
    spool, failed = Spool(memory=keep), []
    for res in results(args, keep_history=keep, progress=True):
        if res.error is not None:
            failed.append(res)
        for k, d in enumerate(res.runs):
            spool.add((res.index, k), d)
    errors = [r.error for r in sorted(failed, key=lambda r: r.index)]
    for e in errors:
        _err(str(e))
    return spool, errors


def stream_jsonl(args) -> int:
    """``--format jsonl``: each run object on its own line as its log finishes, with
    ``order`` ([log, run in the log]: sort by it for the order of ``--format json``). A run
    with an LR may be judged by a sweep, which needs all of them: unless ``--no-sweep``,
    such runs wait for the end (on disk: :class:`lrdoctor.many.Spool`). Then one
    ``{"sweep": ...}`` line per sweep and one ``{"error": ...}`` line per input that could
    not be read."""
    import json

    from lrdoctor.many import Spool
    from lrdoctor.render import _clean
    from lrdoctor.sweep import run_lr

    def line(obj):
        print(json.dumps(_clean(obj), allow_nan=False), flush=True)

    def run_line(d, order):
        line({**d.to_dict(), "order": list(order)})
        verdicts.note(order, d)

    held, errors = Spool(memory=bool(args.plot)), []
    everything = [] if args.plot else None  # the figure needs every run, in order
    verdicts = _FailWatch(held, args.fail_on)
    try:
        for res in results(args, keep_history=bool(args.plot), progress=True):
            if res.error is not None:
                errors.append(res)
            for k, d in enumerate(res.runs):
                if everything is not None:
                    everything.append(((res.index, k), d))
                if args.no_sweep or run_lr(d) is None:
                    run_line(d, (res.index, k))
                else:
                    held.add((res.index, k), d)
        sweeps = sweeps_of(args, held)
        for order, d in held.items():
            run_line(d, order)
    finally:
        held.close()
    for sw in sweeps:
        line({"sweep": sw.to_dict()})
    errors = [r.error for r in sorted(errors, key=lambda r: r.index)]
    for e in errors:
        _err(str(e))
    if everything:
        errors += _figure(args, [d for _, d in sorted(everything, key=lambda x: x[0])])
    for e in errors:
        line({"error": {"source": e.source, "message": e.message}})
    return exit_code(args, verdicts.failing(), errors)


def _figure(args, diagnoses: list) -> list:
    """Write ``--plot``: one run's diagnosis figure, or the sweep figure of several; the
    error when it could not be written."""
    from lrdoctor.errors import LrDoctorError
    from lrdoctor.plot import save

    target = diagnoses[0] if len(diagnoses) == 1 else diagnoses
    try:
        save(target, args.plot, logy=args.logy)
    except Exception as exc:
        _err(f"{args.plot}: could not write the figure ({exc})")
        return [LrDoctorError(f"figure not written: {exc}", args.plot)]
    return []


def report_command(args) -> int:
    from lrdoctor.report import write_report

    if not _check_common(args):
        return 2
    out = Path(args.output)
    if out.suffix.lower() not in (".html", ".htm", ".md"):
        _err(f"-o {args.output}: the report must end in .html or .md")
        return 2
    skipped: list = []
    diagnoses, errors = collect(args, progress=True, skipped=skipped)
    if not diagnoses:
        _err("nothing could be analyzed: no report written")
        return 2
    from lrdoctor.many import Progress

    bar = Progress() if sys.stderr.isatty() else None  # a line for every phase
    if bar is not None:
        bar.start(f"finding the sweeps among {len(diagnoses)} runs")
    sweeps = sweeps_of(args, diagnoses)
    try:
        written = write_report(diagnoses, out, errors=errors, logy=args.logy, sweeps=sweeps,
                               skipped=skipped, jobs=args.jobs, progress=bar)
    except OSError as exc:
        _err(f"{out}: could not write the report ({exc.strerror or exc})")
        return 2
    finally:
        if bar is not None:
            bar.close()
    from lrdoctor.render import printable

    print(f"report written to {printable(out)}" + (
        f" (and {len(written) - 1} figure file(s) beside it)" if len(written) > 1 else ""))
    return exit_code(args, diagnoses, errors)


def watch_command(args) -> int:
    """Follow the logs, render each event, fire the alerts, pick the exit code."""
    import json

    from lrdoctor.render import _clean, summary_table, watch_line, watch_status
    from lrdoctor.watch import Watcher, post_webhook, run_alert_command

    if not _check_common(args):
        return 2
    if "-" in args.paths:
        _err("watch follows files as they grow; standard input ('-') cannot be followed: "
             "let training write its log to a file and watch that")
        return 2
    if not args.interval > 0:
        _err(f"--interval must be a positive number of seconds, not {args.interval}")
        return 2
    as_json = args.format == "json" or (args.format == "auto" and not sys.stdout.isatty())
    live = not as_json and sys.stdout.isatty()  # status lines redrawn in place
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty()
                                       and not os.environ.get("NO_COLOR"))
    alert_on = set(args.alert_on or ("too_high", "nonfinite"))
    exit_on = set(args.exit_on)
    shown = 0  # status lines on screen, redrawn at each pass

    def emit(ev):
        if as_json:
            print(json.dumps(_clean(ev), allow_nan=False), flush=True)
        else:
            print(watch_line(ev, color=color), flush=True)

    def redraw(watcher, lines_before):
        nonlocal shown
        if not live:
            return
        width = shutil.get_terminal_size().columns
        status = [watch_status(d, width=width, color=color)
                  for d in watcher.diagnoses_.values()]
        sys.stdout.write("".join(lines_before) + "\n".join(status) + ("\n" if status else ""))
        sys.stdout.flush()
        shown = len(status)

    def clear():
        if live and shown:
            sys.stdout.write(f"\033[{shown}F\033[J")

    def alert(ev, watcher):
        notes = []
        if args.on_alert:
            notes.append(run_alert_command(args.on_alert, ev))
        if args.webhook:
            notes.append(post_webhook(args.webhook, ev))
        for n in filter(None, notes):
            for note in watcher.note("alert", n):
                emit(note)

    fired = False
    watcher = Watcher(args.paths, interval=args.interval, lr=args.lr, context=args.context,
                      step=args.step, metric=args.metric, lr_column=args.lr_column,
                      format=args.input_format, pattern=args.pattern)
    try:
        for batch in watcher.run(timeout=args.timeout, once=args.once):
            clear()
            for ev in batch:
                emit(ev)
                turned = set(ev.get("alert") or ())
                if turned & alert_on:
                    alert(ev, watcher)
                if turned & exit_on:
                    fired = True
            redraw(watcher, [])
            if fired:
                break
    except KeyboardInterrupt:
        pass
    finally:
        watcher.close()
    clear()
    try:
        if as_json:
            for ev in watcher.end_events():
                emit(ev)
        elif watcher.diagnoses_:
            print(summary_table(list(watcher.diagnoses_.values())), end="", flush=True)
    except KeyboardInterrupt:  # a second Ctrl-C: end at once
        pass
    if fired:
        return 3
    unread = watcher.unread_inputs()
    for p in unread:
        _err(f"{p}: never gave a run (missing or unreadable until the end)")
    return 2 if unread else 0


if __name__ == "__main__":
    raise SystemExit(main())
