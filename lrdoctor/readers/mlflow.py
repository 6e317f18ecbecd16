"""MLflow file store: a run folder (``mlruns/<experiment>/<run_id>/``).

Each metric is a file under ``metrics/`` (``metrics/train/loss`` for the key ``train/loss``)
of ``timestamp value step`` lines (very old MLflow wrote ``timestamp value``; MLflow 3 adds
``dataset_name dataset_digest`` when a metric is logged with a dataset). The run's name
comes from its ``mlflow.runName`` tag, else ``run_name`` in ``meta.yaml``, else the run
folder's name. A run folder copied without its ``meta.yaml`` is still one (its ``metrics/``
files say so), and so is a single metric file given alone (``<run>/metrics/loss``: that run,
with that metric). An ``mlruns/`` tree holds many runs: a folder walk finds each
(``lrdoctor.readers.walk``).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lrdoctor.errors import LrDoctorError
from lrdoctor.history import History
from lrdoctor.readers import _io
from lrdoctor.readers._table import Selection, from_series


#: ``timestamp value step`` (and MLflow 3's ``dataset_name dataset_digest``)
FIELDS = ["timestamp", "value", "step", "dataset_name", "dataset_digest"]
_LINE = re.compile(rb"^\d{9,14} +\S+( +-?\d+)?( +\S+ +\S+)?\r?$")


def is_metric_file(path: Path, head: bytes | None = None) -> bool:
    """Whether the file's first line reads as an MLflow metric line (a millisecond
    timestamp, a value, a step). ``head``: the file's first bytes, when the caller has
    read them already (they are not read again)."""
    if head is None:
        try:
            head = _io.head(path, 512)
        except LrDoctorError:
            return False
    return bool(_LINE.match(head.split(b"\n", 1)[0]))


def is_run_folder(path: Path) -> bool:
    """A folder with ``meta.yaml`` and ``metrics/``, or with a ``metrics/`` whose first
    file holds MLflow metric lines (a run copied without its ``meta.yaml``)."""
    if not path.is_dir() or not (path / "metrics").is_dir():
        return False
    if (path / "meta.yaml").is_file():
        return True
    first = next((f for f in sorted((path / "metrics").rglob("*")) if f.is_file()), None)
    return first is not None and is_metric_file(first)


def run_of_metric_file(path: Path) -> tuple[Path, str] | None:
    """(run folder, metric key) of a file at ``<run>/metrics/<key>``, else None."""
    for parent in path.parents:
        if parent.name == "metrics":
            key = str(path.relative_to(parent)).replace("\\", "/")
            return parent.parent, key
    return None


def run_name(path: Path) -> str:
    tag = path / "tags" / "mlflow.runName"
    if tag.is_file():
        name = tag.read_text(errors="replace").strip()
        if name:
            return name
    meta = path / "meta.yaml"
    if not meta.is_file():
        return path.name
    m = re.search(r"^run_name:\s*'?\"?([^'\"\n]+)", meta.read_text(errors="replace"),
                  re.MULTILINE)
    return m.group(1).strip() if m else path.name


def metric_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one metric file, in the order written."""
    text_head = _io.head(path, 4096).decode("utf-8", errors="replace")
    first = next((ln for ln in text_head.splitlines() if ln.strip()), "")
    ncols = len(first.split())
    # as every table is read: a gzip file decompressed within its bounds, a damaged one
    # one clear line (pyarrow's own inflate would raise a bare OSError), said before
    # pyarrow's parse error on the cut content
    try:
        with _io.for_arrow(path, _io.MAX_LINE_BYTES) as fh:
            steps, values = metric_lines(fh, ncols, path)
    except (EOFError, OSError) as exc:
        raise _io.gzip_error(path, exc) from None
    if steps is None:
        steps = np.arange(len(values), dtype=np.float64)
    return steps, values


def metric_lines(source, ncols: int, path: Path) -> tuple[np.ndarray | None, np.ndarray]:
    """(steps, values) of metric lines of ``ncols`` fields (``source``: the bytes of whole
    lines, or a stream of them); the steps are None for ``timestamp value`` lines (their
    order is the step). One parser for the batch reader (a whole file) and for
    ``lrdoctor watch`` (the lines appended since it last read)."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv

    if ncols not in (2, 3, 5):
        raise LrDoctorError(f"line 1: {ncols} field(s), expected 'timestamp value step'; "
                            "the metric file is damaged", str(path))
    names = FIELDS[:ncols]
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    try:
        tbl = pacsv.read_csv(
            source, read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(delimiter=" "),
            convert_options=pacsv.ConvertOptions(
                include_columns=names[:3],
                column_types={"timestamp": pa.float64(), "value": pa.float64(),
                              "step": pa.float64()}))
    except pa.ArrowInvalid as exc:
        raise LrDoctorError(_damage(path, ncols, str(exc)), str(path)) from None
    except (EOFError, OSError) as exc:
        raise _io.gzip_error(path, exc) from None
    from lrdoctor.readers.delimited import column_values

    values, _ = column_values(tbl.column("value"))
    steps = column_values(tbl.column("step"))[0] if ncols >= 3 else None
    return steps, values


def _damage(path: Path, ncols: int, msg: str) -> str:
    """Say which line breaks the file, found by reading it as text (error path only)."""
    for k, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != ncols:
            return (f"line {k}: {len(parts)} field(s) where the file has {ncols} "
                    f"('{' '.join(FIELDS[:ncols])}'); the metric file is damaged: fix or "
                    "delete that line")
        try:
            [float(p) for p in parts[:3]]
        except ValueError:
            return f"line {k}: {line.strip()!r} is not numbers; fix or delete that line"
    return f"cannot parse the metric file: {msg.splitlines()[0]}"


def read(path: Path, *, step=None, metric=None, lr_column=None) -> list[History]:
    """One History from a run folder, or from one metric file of a run (that metric, with
    the run's LR and validation loss where its other files have them)."""
    src = str(path)
    if path.is_file():
        return _read_metric_file(path, step=step, metric=metric, lr_column=lr_column)
    if not is_run_folder(path):
        raise LrDoctorError("not an MLflow run folder (it needs a metrics/ folder of "
                            "'timestamp value step' files)", src)
    root = path / "metrics"
    files = {str(f.relative_to(root)).replace("\\", "/"): f
             for f in sorted(root.rglob("*")) if f.is_file()}
    if not files:
        raise LrDoctorError("the run logged no metrics (metrics/ is empty)", src)
    sel = Selection(list(files), metric=metric, lr_column=lr_column, source=src)
    wanted = [t for t in dict.fromkeys([*(sel.parts or [sel.loss]), sel.lr, sel.val,
                                        sel.grad_norm]) if t is not None]
    series, notes = {}, []
    if step is not None:
        notes.append("--step is ignored for MLflow runs: every metric line has its step")
    for key in wanted:
        try:
            series[key] = metric_file(files[key])
        except LrDoctorError as exc:
            if key == sel.loss or key in sel.parts:
                raise
            notes.append(f"{key}: {exc.message} (left out)")  # LR, val loss, grad norm
            sel.lr = None if key == sel.lr else sel.lr
            sel.val = None if key == sel.val else sel.val
            sel.grad_norm = None if key == sel.grad_norm else sel.grad_norm
    return [from_series(series, sel, src, run_name(path), notes)]


def _read_metric_file(path: Path, *, step=None, metric=None, lr_column=None
                      ) -> list[History]:
    """A single metric file: the metric of its run folder when it sits at
    ``<run>/metrics/<key>``, else a run of its own."""
    from lrdoctor.readers import _columns as C

    src = str(path)
    found = run_of_metric_file(path)
    key = found[1] if found else path.name
    from lrdoctor.readers import STDIN

    if found is None and key == STDIN:  # piped: the file's name was the metric's
        if metric is None:
            raise LrDoctorError("an MLflow metric file read from standard input has no name "
                                "to tell its metric: pass its path (mlruns/.../metrics/KEY), "
                                "or name it with --metric (--metric loss)", src)
        key = metric
    if metric is None and C.find([key], C.LOSS) is None and C.pick_loss([key]) is None:
        raise LrDoctorError(f"the MLflow metric {key!r} is not a loss; pass the run folder, "
                            "a loss metric's file, or --metric to diagnose it anyway", src)
    if found and is_run_folder(found[0]):
        [h] = read(found[0], step=step, metric=metric or key, lr_column=lr_column)
        h.source = src
        return [h]
    steps, values = metric_file(path)
    sel = Selection([key], metric=metric or key, source=src)
    return [from_series({key: (steps, values)}, sel, src, path.name, [])]
