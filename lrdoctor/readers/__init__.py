"""Readers: find a log's format and turn it into canonical :class:`~lrdoctor.history.History`.

Each reader module has ``read(path, *, step=None, metric=None, lr_column=None) ->
list[History]``. :func:`read` picks the reader from the content first (a line starting with
``{`` is JSON lines) and the file name second.
"""
from __future__ import annotations

import glob
from pathlib import Path

from lrdoctor.errors import LrDoctorError
from lrdoctor.history import History

#: File endings looked for when a directory is given.
LOG_SUFFIXES = (".csv", ".tsv", ".jsonl", ".csv.gz", ".tsv.gz", ".jsonl.gz",
                "trainer_state.json", "metrics.json")

FORMATS = {
    "csv": "comma- (or tab-, semicolon-) separated with a header: step,loss,lr,val_loss",
    "tsv": "tab-separated with a header",
    "jsonl": 'one JSON object per line: {"step": 10, "loss": 2.31, "lr": 0.001} '
             "(also Detectron2 metrics.json, DETR log.txt)",
    "hf_trainer": 'Hugging Face trainer_state.json: {"log_history": [{"step": 10, "loss": ...}]}',
}


def sniff(path: Path) -> str:
    """The format name of a file: from its content first, its name second."""
    from lrdoctor.readers import _io

    sample = _io.head(path, 1 << 16)
    _io.check_text(path, sample)
    first = sample.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if first.startswith("{"):
        line, newline, _ = first.partition("\n")
        if '"log_history"' in first or (newline and not line.strip().endswith("}")):
            return "hf_trainer"  # one JSON document over many lines
        return "jsonl"
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".tsv"):
        return "tsv"
    return "csv"


def read(path: str | Path, *, format: str | None = None, step: str | None = None,
         metric: str | None = None, lr_column: str | None = None) -> list[History]:
    """Read one log file into one History per run it holds.

    Raises
    ------
    LrDoctorError
        When the file is missing, unreadable, or holds no usable loss.
    """
    p = Path(path)
    if not p.exists():
        raise LrDoctorError("no such file; check the path", str(path))
    if p.is_dir():
        raise LrDoctorError("is a directory; lrdoctor.read takes one file "
                            "(lrdoctor.analyze and the CLI take directories)", str(path))
    if p.stat().st_size == 0:
        raise LrDoctorError("the file is empty; it needs a header line and rows of losses",
                            str(path))
    fmt = format or sniff(p)
    if fmt in ("csv", "tsv"):
        from lrdoctor.readers import delimited as mod
    elif fmt == "jsonl":
        from lrdoctor.readers import jsonlines as mod
    elif fmt == "hf_trainer":
        from lrdoctor.readers import hf_trainer as mod
    else:
        raise LrDoctorError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}", str(path))
    return mod.read(p, step=step, metric=metric, lr_column=lr_column)


def expand(inputs: list[str], found_in_dirs: set | None = None
           ) -> tuple[list[str], list[LrDoctorError]]:
    """Files named by paths, directories (searched recursively) and glob patterns.

    Returns the files in a stable order and one error for each input that named nothing.
    ``found_in_dirs``, when given, receives the files that were found by walking a directory
    (a CSV there that holds no loss, such as a manifest, is skipped rather than an error).
    """
    files: list[str] = []
    errors: list[LrDoctorError] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*")
                           if f.is_file() and f.name.lower().endswith(LOG_SUFFIXES))
            if not found:
                errors.append(LrDoctorError(
                    f"directory holds no loss logs (looked for {', '.join(LOG_SUFFIXES)})",
                    item))
            files.extend(found)
            if found_in_dirs is not None:
                found_in_dirs.update(found)
        elif p.exists():
            files.append(item)
        elif any(ch in item for ch in "*?["):
            found = sorted(glob.glob(item, recursive=True))
            if not found:
                errors.append(LrDoctorError("the pattern matches no file", item))
            files.extend(f for f in found if Path(f).is_file())
        else:
            errors.append(LrDoctorError("no such file or directory; check the path", item))
    return list(dict.fromkeys(files)), errors
