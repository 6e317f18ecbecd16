"""MLflow file store: a run folder (``mlruns/<experiment>/<run_id>/``).

Each metric is a file under ``metrics/`` (``metrics/train/loss`` for the key ``train/loss``)
of ``timestamp value step`` lines (very old MLflow wrote ``timestamp value``). The run's
name comes from its ``mlflow.runName`` tag, else ``run_name`` in ``meta.yaml``, else the run
id. An ``mlruns/`` tree holds many runs: a folder walk finds each (``lrdoctor.readers.walk``).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lrdoctor.errors import LrDoctorError
from lrdoctor.history import History
from lrdoctor.readers import _io
from lrdoctor.readers._table import Selection, from_series


def is_run_folder(path: Path) -> bool:
    return path.is_dir() and (path / "meta.yaml").is_file() and (path / "metrics").is_dir()


def run_name(path: Path) -> str:
    tag = path / "tags" / "mlflow.runName"
    if tag.is_file():
        name = tag.read_text(errors="replace").strip()
        if name:
            return name
    m = re.search(r"^run_name:\s*'?\"?([^'\"\n]+)", (path / "meta.yaml").read_text(
        errors="replace"), re.MULTILINE)
    return m.group(1).strip() if m else path.name


def metric_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one metric file, in the order written."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    text_head = _io.head(path, 4096).decode("utf-8", errors="replace")
    first = next((ln for ln in text_head.splitlines() if ln.strip()), "")
    ncols = len(first.split())
    if ncols not in (2, 3):
        raise LrDoctorError(f"line 1: {ncols} field(s), expected 'timestamp value step'; "
                            "the metric file is damaged", str(path))
    names = ["timestamp", "value", "step"][:ncols]
    try:
        tbl = pacsv.read_csv(
            path, read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(delimiter=" "),
            convert_options=pacsv.ConvertOptions(
                column_types={"timestamp": pa.float64(), "value": pa.float64(),
                              "step": pa.float64()}))
    except pa.ArrowInvalid as exc:
        raise LrDoctorError(_damage(path, ncols, str(exc)), str(path)) from None
    from lrdoctor.readers.delimited import column_values

    values, _ = column_values(tbl.column("value"))
    steps = (column_values(tbl.column("step"))[0] if ncols == 3
             else np.arange(len(values), dtype=np.float64))
    return steps, values


def _damage(path: Path, ncols: int, msg: str) -> str:
    """Say which line breaks the file, found by reading it as text (error path only)."""
    for k, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != ncols:
            return (f"line {k}: {len(parts)} field(s) where the file has {ncols} "
                    f"('timestamp value{' step' if ncols == 3 else ''}'); the metric file is "
                    "damaged: fix or delete that line")
        try:
            [float(p) for p in parts]
        except ValueError:
            return f"line {k}: {line.strip()!r} is not numbers; fix or delete that line"
    return f"cannot parse the metric file: {msg.splitlines()[0]}"


def read(path: Path, *, step=None, metric=None, lr_column=None) -> list[History]:
    src = str(path)
    if not is_run_folder(path):
        raise LrDoctorError("not an MLflow run folder (it needs meta.yaml and metrics/)", src)
    root = path / "metrics"
    files = {str(f.relative_to(root)).replace("\\", "/"): f
             for f in sorted(root.rglob("*")) if f.is_file()}
    if not files:
        raise LrDoctorError("the run logged no metrics (metrics/ is empty)", src)
    sel = Selection(list(files), metric=metric, lr_column=lr_column, source=src)
    wanted = [t for t in dict.fromkeys([*(sel.parts or [sel.loss]), sel.lr, sel.val])
              if t is not None]
    series, notes = {}, []
    if step is not None:
        notes.append("--step is ignored for MLflow runs: every metric line has its step")
    for key in wanted:
        try:
            series[key] = metric_file(files[key])
        except LrDoctorError as exc:
            if key == sel.loss or key in sel.parts:
                raise
            notes.append(f"{key}: {exc.message} (left out)")  # the LR or validation loss
            sel.lr = None if key == sel.lr else sel.lr
            sel.val = None if key == sel.val else sel.val
    return [from_series(series, sel, src, run_name(path), notes)]
