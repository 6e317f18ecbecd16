"""The command line: parse, call the public API, render, choose the exit code."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EPILOG = """examples:
  lrdoctor analyze run.csv
  lrdoctor analyze runs/ --format json > report.json
  lrdoctor analyze metrics.csv --metric train_loss_step --lr 3e-4 --context finetune
  lrdoctor analyze run.csv --plot run.png

exit status: 0 every input analyzed; 2 an input could not be read or the command was
used wrongly (the other inputs are still analyzed and reported)."""


def build_parser() -> argparse.ArgumentParser:
    from lrdoctor.readers import FORMATS

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
    a.add_argument("paths", nargs="+", metavar="PATH", help="log files, directories or globs")
    a.add_argument("--format", choices=["text", "json"], default="text",
                   help="output: a report for people (default) or JSON for scripts")
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
    a.add_argument("--pattern", metavar="REGEX",
                   help="read plain-text logs with this regular expression: named groups "
                        "loss (required), step, lr, val_loss")
    a.add_argument("--plot", metavar="FILE",
                   help="write the annotated figure (.png, .svg or .pdf); with several runs "
                        "one file per run, named FILE-<run>.EXT")
    a.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    sub.add_parser("formats", help="list the log formats lrdoctor reads, with an example each")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "formats":
        from lrdoctor.readers import FORMATS

        for name, example in FORMATS.items():
            print(f"{name:<11} {example}")
        return 0
    _short_lived_allocations()
    return analyze_command(args)


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


#: Errors that, for a file found by walking a folder, mean "not a log" (skipped with a note).
NOT_A_LOG = ("no loss column found", "no loss found in this text")


def _err(msg: str) -> None:
    print(f"lrdoctor: {msg}", file=sys.stderr)


def analyze_command(args) -> int:
    from lrdoctor.diagnosis import analyze
    from lrdoctor.errors import LrDoctorError
    from lrdoctor.readers import expand
    from lrdoctor.render import json_document, text_report

    if args.lr is not None and not args.lr > 0:
        _err(f"--lr must be a positive number, not {args.lr}")
        return 2
    if args.plot and Path(args.plot).suffix.lower() not in (".png", ".svg", ".pdf"):
        _err(f"--plot {args.plot}: the file must end in .png, .svg or .pdf")
        return 2
    walked: dict = {}
    files, errors = expand(args.paths, walked)
    diagnoses = []
    show_progress = args.format == "text" and sys.stderr.isatty() and len(files) > 20
    for k, f in enumerate(files):
        if show_progress:
            print(f"\r{k + 1}/{len(files)} {f[-50:]:<50}", end="", file=sys.stderr)
        try:
            found = analyze(f, lr=args.lr, context=args.context, step=args.step,
                            metric=args.metric, lr_column=args.lr_column,
                            format=args.input_format, pattern=args.pattern)
        except LrDoctorError as exc:
            if f in walked and exc.message.startswith(NOT_A_LOG):
                _err(f"{f}: skipped, not a loss log ({exc.message.split(';')[0]})")
                continue
            errors.append(exc)
            continue
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # never a traceback for one bad input
            errors.append(LrDoctorError(f"could not be analyzed ({type(exc).__name__}: "
                                        f"{exc}); please report this with the file", f))
            continue
        if f in walked:  # found by walking a folder: named by its path there
            for d in found:
                d.run = walked[f] if len(found) == 1 else f"{walked[f]}/{d.run}"
        diagnoses.extend(found)
    if show_progress:
        print("\r" + " " * 60 + "\r", end="", file=sys.stderr)
    for e in errors:
        _err(str(e))
    figures = _plot_targets(args.plot, diagnoses) if args.plot and diagnoses else []
    if figures:
        from lrdoctor.plot import save

        written = []
        for path, d in figures:
            try:
                save(d, path)
                written.append((path, d))
            except Exception as exc:
                _err(f"{path}: could not write the figure ({exc})")
                errors.append(LrDoctorError(f"figure not written: {exc}", path))
        figures = written
    if args.format == "json":
        print(json_document(diagnoses, errors))
    else:
        color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty()
                                           and not os.environ.get("NO_COLOR"))
        sys.stdout.write(text_report(diagnoses, color=color))
        for path, _ in figures:
            print(f"figure written to {path}")
    return 2 if errors else 0


def _plot_targets(plot: str, diagnoses: list):
    if len(diagnoses) == 1:
        return [(plot, diagnoses[0])]
    p = Path(plot)
    safe = lambda s: "".join(c if c.isalnum() or c in "-_." else "_" for c in s)  # noqa: E731
    names = {}
    out = []
    for d in diagnoses:
        base = safe(d.run)
        names[base] = names.get(base, 0) + 1
        if names[base] > 1:
            base += f"_{names[base]}"
        out.append((str(p.with_name(f"{p.stem}-{base}{p.suffix}")), d))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
