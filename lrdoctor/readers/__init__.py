"""Readers: find a log's format and turn it into canonical :class:`~lrdoctor.history.History`.

Each reader module has ``read(path, *, step=None, metric=None, lr_column=None) ->
list[History]``. :func:`read` picks the reader from the content first (a line starting with
``{`` is JSON lines) and the file name second.
"""
from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from lrdoctor.errors import LrDoctorError
from lrdoctor.history import History

#: File endings looked for when a directory is given.
LOG_SUFFIXES = (".csv", ".tsv", ".jsonl", ".csv.gz", ".tsv.gz", ".jsonl.gz",
                "trainer_state.json", "metrics.json", "log.txt", ".log", ".wandb")

FORMATS = {
    "csv": "comma- (or tab-, semicolon-) separated with a header: step,loss,lr,val_loss "
           "(also Lightning metrics.csv, Keras CSVLogger, YOLO results.csv, W&B history and "
           "chart exports, one-run-per-column sweeps)",
    "tsv": "tab-separated with a header",
    "jsonl": 'one JSON object per line: {"step": 10, "loss": 2.31, "lr": 0.001} '
             "(also Detectron2 metrics.json, DETR log.txt, W&B wandb-history.jsonl)",
    "hf_trainer": 'Hugging Face trainer_state.json: {"log_history": [{"step": 10, "loss": ...}]}',
    "text": "console output of a training script: nanoGPT 'iter 100: loss 2.31', Megatron "
            "'iteration 100/ 500 | ... | lm loss: 2.3E+00', fairseq 'loss=2.31 ... "
            "num_updates=100', Keras 'Epoch 3/10 ... loss: 0.31', YOLOv5 results.txt; any "
            "other numbers paired with names: 'step: 10, loss=2.3 | lr 1e-3', Hugging Face "
            "{'loss': 2.3, 'grad_norm': nan}, mmengine 'Epoch(train) [1][200/735]  lr: "
            "2e-04 ... loss: 2.75', a JSON object after a log prefix, OLMo '[step=2/2500]' "
            "blocks of indented 'name=value' lines; or --pattern REGEX",
    "mlflow": "an MLflow file-store run folder (mlruns/<experiment>/<run_id>/metrics/<key>: "
              "'timestamp value step' lines; meta.yaml optional), one metrics/<key> file, "
              "or an mlruns/ tree",
    "mlflow_db": "an MLflow tracking database: mlflow.db or sqlite:///path/mlflow.db (every "
                 "run of every experiment; --experiment NAME, --run ID narrow it)",
    "mlflow_server": "an MLflow tracking server: http://127.0.0.1:5000 --experiment NAME "
                     "(its REST API; --run ID)",
    "wandb": "a W&B run file: wandb/offline-run-*/run-<id>.wandb (history rows; read "
             "without the wandb package)",
    "tensorboard": "TensorBoard event files: runs/exp1/events.out.tfevents.1700000000.host "
                   "(a folder of them is one run; tags such as train/loss, loss, Loss/train)",
}


#: The name standard input goes by (``lrdoctor analyze -``): the command line copies it to a
#: file of this name in a temporary folder, and the results name it so.
STDIN = "<stdin>"


def sniff(path: Path, sample: bytes | None = None) -> str:
    """The format name of a file: from its content first, its name second (``sample``: its
    first 64 KiB of content when already read)."""
    from lrdoctor.readers import _io

    if sample is None:
        sample = _io.head(path, 1 << 16)
    if _looks_like_tfrecord(sample) or (path.is_file() and _tb_name(path)):
        return "tensorboard"
    if sample.startswith(b":W&B"):
        return "wandb"
    if not path.name.lower().endswith(LOG_SUFFIXES):
        from lrdoctor.readers.mlflow import is_metric_file

        if is_metric_file(path, sample):  # the head read above, not the file again
            return "mlflow"
    _io.check_text(path, sample)
    first = sample.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if first.startswith("{") and not _python_dict(first):
        line, newline, _ = first.partition("\n")
        if '"log_history"' in first or (newline and not line.strip().endswith("}")):
            return "hf_trainer"  # one JSON document over many lines
        return "jsonl"
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".tsv"):
        return "tsv"
    if name.endswith(".csv") or _table_header(first):
        return "csv"
    return "text"


def _python_dict(text: str) -> bool:
    """Whether the first line is a Python dict repr (``{'loss': 0.5, 'grad_norm': nan}``, as
    the Hugging Face Trainer prints to the console), not JSON: console text."""
    line = text.partition("\n")[0]
    return bool(re.match(r"\{\s*'", line)) or bool(
        re.search(r"[:,\[]\s*(?:nan|inf|-inf|None|True|False)\s*[,}\]]", line))


def _table_header(text: str) -> bool:
    """Whether the text starts as a delimited table: a first line that names a loss or a step,
    or a header over rows of numbers (the test that does not need a ``.csv`` name, so that a
    table piped to standard input is read as one: a YOLO ``results.csv``, a wide sweep)."""
    from lrdoctor.readers import _columns as C

    lines = text.split("\n")
    line = lines[0].strip()
    for sep in (",", "\t", ";"):
        cells = [c.strip().strip('"') for c in line.split(sep)]
        if len(cells) < 2:
            continue
        if C.find(cells, C.LOSS) or C.find(cells, C.STEP) or C.find(cells, C.EPOCH):
            return True
        if _numeric_rows(lines[1:-1], sep, len(cells)):  # the last line may be cut short
            return True
    return False


#: A cell of a numeric table: a number, nan/inf, or empty.
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)|",
                     re.IGNORECASE)


def _numeric_rows(lines: list[str], sep: str, width: int, least: int = 2) -> bool:
    """Whether the (complete) lines are rows of ``width`` cells split by ``sep``, at least 80%
    of the cells numbers or empty, as under a table's header; text logs ("loss 0.5, acc 0.9",
    a printed dict) give cells holding words."""
    rows = [ln.strip() for ln in lines[:50] if ln.strip()]
    if len(rows) < least:
        return False
    cells = []
    for row in rows:
        got = [c.strip().strip('"') for c in row.split(sep)]
        if len(got) != width:
            return False
        cells += got
    return sum(_NUMBER.fullmatch(c) is not None for c in cells) >= 0.8 * len(cells)


def _mlflow_db(path: Path) -> bool:
    from lrdoctor.readers.mlflow_db import is_tracking_db

    return is_tracking_db(path)


def _tb_name(path: Path) -> bool:
    from lrdoctor.readers.tensorboard import is_event_file

    return is_event_file(path)


def _looks_like_tfrecord(sample: bytes) -> bool:
    """A TFRecord whose first record is an Event (its first field, the wall time, is tag
    0x09) and whose length is sane."""
    if len(sample) < 13:
        return False
    length = int.from_bytes(sample[:8], "little")
    return 0 < length < (1 << 24) and sample[12] == 0x09


def read(path: str | Path, *, format: str | None = None, step: str | None = None,
         metric: str | None = None, lr_column: str | None = None,
         pattern: str | None = None, experiment: str | None = None,
         run: str | None = None) -> list[History]:
    """Read one log file into one History per run it holds.

    ``path`` may also be an MLflow tracking database (``mlflow.db``, ``sqlite:///...``) or
    an MLflow tracking server's URL (``http://host:5000``); ``experiment`` and ``run`` (a
    name or id) narrow what those are read for.

    Raises
    ------
    LrDoctorError
        When the file is missing, unreadable, or holds no usable loss.
    """
    tracker = _tracker(path, format)
    if tracker is not None:
        return tracker.read(path, step=step, metric=metric, lr_column=lr_column,
                            experiment=experiment, run=run)
    p = Path(path)
    if not p.exists():
        raise LrDoctorError("no such file; check the path", str(path))
    if p.is_dir():
        from lrdoctor.readers import mlflow, tensorboard

        if format in (None, "tensorboard") and (tensorboard.event_files(p)
                                                 or tensorboard.split_run(p)):
            return tensorboard.read(p, step=step, metric=metric, lr_column=lr_column)
        if format in (None, "mlflow") and mlflow.is_run_folder(p):
            return mlflow.read(p, step=step, metric=metric, lr_column=lr_column)
        raise LrDoctorError("is a directory; lrdoctor.read takes one file or one run folder "
                            "(lrdoctor.analyze and the CLI take any directory)", str(path))
    from lrdoctor.readers import _io, mlflow_db

    # one open: permission denied, a FIFO or a device said before any read; a small plain
    # file read whole (the CSV parser takes it from memory), a larger one's head
    peeked = _io.peek(p)
    if peeked.size == 0:
        raise LrDoctorError("the file is empty; it needs a header line and rows of losses",
                            str(path))
    if format is None and peeked.sample[:16] == mlflow_db.MAGIC:
        return mlflow_db.read(path, step=step, metric=metric, lr_column=lr_column,
                              experiment=experiment, run=run)  # says if it is not MLflow's
    fmt = format or ("text" if pattern is not None else sniff(p, peeked.sample))
    if fmt == "text":
        from lrdoctor.readers import text

        return text.read(p, step=step, metric=metric, lr_column=lr_column, pattern=pattern)
    if fmt in ("csv", "tsv"):
        from lrdoctor.readers import delimited

        return delimited.read(p, step=step, metric=metric, lr_column=lr_column,
                              peeked=peeked)
    if fmt == "jsonl":
        from lrdoctor.readers import jsonlines as mod
    elif fmt == "hf_trainer":
        from lrdoctor.readers import hf_trainer as mod
    elif fmt == "tensorboard":
        from lrdoctor.readers import tensorboard as mod
    elif fmt == "wandb":
        from lrdoctor.readers import wandb as mod
    elif fmt == "mlflow":
        from lrdoctor.readers import mlflow as mod
    else:
        raise LrDoctorError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}", str(path))
    return mod.read(p, step=step, metric=metric, lr_column=lr_column)


def is_tracker(target: str | Path) -> bool:
    """Whether the input is an MLflow tracking server URL or a ``sqlite:///`` URI."""
    return str(target).startswith(("http://", "https://", "sqlite:///"))


def _tracker(path, format):
    """The MLflow tracking reader for a server URL or a ``sqlite:///`` URI."""
    from lrdoctor.readers import mlflow_db, mlflow_server

    s = str(path)
    if format == "mlflow_server" or (format is None and mlflow_server.is_server_url(s)):
        return mlflow_server
    if format == "mlflow_db" or mlflow_db.db_path(s) is not None:
        return mlflow_db
    return None  # a file that is a SQLite database: known by its head in read()


def expand(inputs: list[str], found_in_dirs: dict | set | None = None,
           skipped: list | None = None) -> tuple[list[str], list[LrDoctorError]]:
    """The logs named by paths, directories (searched recursively) and glob patterns.

    Returns the inputs to read in a stable order (files, and run folders: a folder of
    TensorBoard event files, an MLflow run) and one error for each input that named nothing.
    ``found_in_dirs``, when given, receives what was found by walking a directory (a file
    there that holds no loss, such as a manifest, is skipped rather than an error); when it
    is a dict, each found input maps to the run name its path gives it. ``skipped``, when
    given, receives ``(folder, why)`` for each folder a walk could not search
    (permission denied): a note, the other logs are still read.
    """
    files: list[str] = []
    errors: list[LrDoctorError] = []
    for item in inputs:
        p = Path(item)
        if is_tracker(item):
            files.append(item)
        elif p.is_dir():
            unreadable: list = []
            named: dict = {}
            found = walk(p, unreadable, named)
            if skipped is not None:
                skipped.extend(d if isinstance(d, tuple) else (d, UNREADABLE_DIR)
                               for d in unreadable if d != str(p))
            if str(p) in unreadable:
                errors.append(LrDoctorError(
                    "permission denied: this user may not list the directory; check its "
                    "permissions (ls -ld) or run as a user who may", item))
                continue
            if not found:
                errors.append(LrDoctorError(
                    "directory holds no loss logs (looked for TensorBoard event files, "
                    f"MLflow runs and files ending in {', '.join(LOG_SUFFIXES)})", item))
            files.extend(found)
            if isinstance(found_in_dirs, dict):
                found_in_dirs.update({f: named[f] if f in named else name_by_path(Path(f), p)
                                      for f in found})
            elif found_in_dirs is not None:
                found_in_dirs.update(found)
        elif p.exists():
            files.append(item)
        elif any(ch in item for ch in "*?["):
            found = sorted(_glob(item))
            if not found:
                errors.append(LrDoctorError("the pattern matches no file", item))
            files.extend(f for f in found if Path(f).is_file() or _is_run_folder(Path(f)))
            if skipped is not None:
                skipped.extend((f, DANGLING) for f in found
                               if os.path.islink(f) and not os.path.exists(f))
        else:
            errors.append(LrDoctorError("no such file or directory; check the path", item))
    return list(dict.fromkeys(files)), errors


#: Why a folder found in a walk was not searched.
UNREADABLE_DIR = ("permission denied: this folder could not be searched, the logs in it "
                  "were not read; check its permissions (ls -ld)")


#: Why a symbolic link found in a walk was not read.
DANGLING = ("a symbolic link to nothing (its target was moved or deleted): not read; "
            "remove the link or restore its target")


def _glob(pattern: str) -> list[str]:
    """The paths a glob pattern matches. ``**`` (any depth) never follows a symbolic link
    to a folder, so a link back up the tree cannot make it endless (``glob.glob`` follows
    them: two such links make 2^40 paths); other patterns are ``glob.glob``'s."""
    if "**" not in pattern:
        return glob.glob(pattern)
    parts = pattern.split("/")
    k = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = "/".join(parts[:k]) or ("/" if pattern.startswith("/") else "")
    rest = "/".join(parts[k:])
    out = []
    for found in Path(base or ".").glob(rest):
        rel = found.relative_to(base or ".").as_posix()
        if any(seg.startswith(".") for seg in rel.split("/")) and "/." not in "/" + rest:
            continue  # hidden names, as glob.glob leaves them out
        out.append(rel if not base else base.rstrip("/") + "/" + rel)
    return out


def walk(root: Path, unreadable: list | None = None, named: dict | None = None) -> list[str]:
    """Every run under ``root``: log files by their ending, each folder of TensorBoard event
    files as one run, each MLflow run folder (``meta.yaml`` beside ``metrics/``) as one run.

    A symbolic link to a folder is not followed (so no link can make the walk endless); a
    folder that cannot be listed is added to ``unreadable`` when it is given, and so is
    ``(path, DANGLING)`` for a symbolic link whose target is gone. ``named``,
    when given, receives the run name (:func:`name_by_path`) of each plain log file found,
    worked out from the walk's own listing (no path object, no stat per file)."""
    from lrdoctor.readers.tensorboard import EVENT_FILE

    def failed(exc: OSError) -> None:
        if unreadable is not None and exc.filename is not None:
            unreadable.append(os.fsdecode(exc.filename))

    # each file once, as strings: a folder's path and its place under root are worked out
    # once per folder; ordered as sorted Path objects are (by their parts)
    listed = []
    for d, _, names in os.walk(root, onerror=failed):
        dp = Path(d)
        folder, parts = str(dp), dp.parts
        rel = dp.relative_to(root).parts
        for name in names:
            listed.append((parts + (name,), folder, name, rel))
    listed.sort(key=lambda e: e[0])
    out: list[str] = []
    dangling: list[str] = []
    events: set[str] = set()
    tb_dirs: dict[Path, int] = {}
    mlflow_runs: set[Path] = set()
    for _, folder, name, rel in listed:
        fs = name if folder == "." else os.path.join(folder, name)
        if not os.path.isfile(fs):
            if unreadable is not None and os.path.islink(fs) and not os.path.exists(fs):
                dangling.append(fs)  # a link whose target is gone: said, not silently lost
            continue
        if mlflow_runs and any(parent in mlflow_runs for parent in Path(fs).parents):
            continue
        dot = name.rfind(".")
        if name == "meta.yaml" and os.path.isdir(os.path.join(folder, "metrics")):
            mlflow_runs.add(Path(folder))
            out.append(str(Path(folder)))
        elif not 0 < dot < len(name) - 1 and "metrics" in rel:
            # a run copied without its meta.yaml: <run>/metrics/<key> files
            from lrdoctor.readers.mlflow import is_run_folder, run_of_metric_file

            run = run_of_metric_file(Path(fs))
            if run and run[0] not in mlflow_runs and is_run_folder(run[0]):
                mlflow_runs.add(run[0])
                out.append(str(run[0]))
        elif EVENT_FILE.search(name):
            parent = Path(folder)
            tb_dirs[parent] = tb_dirs.get(parent, 0) + 1
            if tb_dirs[parent] == 1:
                out.append(fs)
                events.add(fs)
        elif name.lower().endswith(LOG_SUFFIXES):
            out.append(fs)
            if named is not None:
                named[fs] = _file_run_name(name, "/".join(rel), root)
        elif name[dot:] == ".db" and 0 < dot and _mlflow_db(Path(fs)):
            out.append(fs)
            if named is not None:
                named[fs] = _file_run_name(name, "/".join(rel), root)
    # a folder with several event files (a resumed run) is read as one run; so is a run
    # folder laid out as Keras writes it (train/ and validation/ subfolders)
    from lrdoctor.readers.tensorboard import VALIDATION_DIRS, split_run

    several = {d for d, k in tb_dirs.items() if k > 1}
    paired = {d.parent for d in tb_dirs if d.name == "train" and split_run(d.parent)}

    def unit(o: str) -> str:
        if o not in events:
            return o
        p = Path(o)
        if p.parent.parent in paired and p.parent.name in ("train", *VALIDATION_DIRS):
            return str(p.parent.parent)
        return str(p.parent) if p.parent in several else o

    out = [unit(o) for o in out]
    if dangling and unreadable is not None:
        unreadable.extend((f, DANGLING) for f in dangling)
    if not mlflow_runs:
        return list(dict.fromkeys(out))
    # drop files found inside an MLflow run folder before the folder itself was seen
    return [o for o in dict.fromkeys(out)
            if not any(str(Path(o)).startswith(str(m) + "/") for m in mlflow_runs)]


def _file_run_name(name: str, parent: str, root: Path) -> str:
    """:func:`name_by_path` of a log file (not an event file) named ``name`` in the folder
    ``parent`` under ``root`` ("" for root itself)."""
    stem = _stem(name)
    if name.endswith(".wandb"):
        stem = ""  # run-<id>.wandb: its folder (offline-run-<date>-<id>) names it
    if stem.lower() in GENERIC_NAMES or not stem:
        return parent or root.name
    return f"{parent}/{stem}" if parent else stem


def _stem(name: str) -> str:
    """A log file's name without its log suffixes (``run.csv.gz`` -> ``run``)."""
    for suffix in (".gz", ".csv", ".tsv", ".jsonl", ".json", ".txt", ".log", ".wandb", ".db"):
        name = name.removesuffix(suffix)
    return name


#: File names that say nothing about the run: the folder names it instead.
GENERIC_NAMES = {"metrics", "results", "trainer_state", "log", "logs", "history",
                 "training_log", "train_log", "wandb-history", "progress", "events"}


def names_apart(paths: list[str]) -> dict[str, str]:
    """Run names for logs given by path (a list, a glob) whose own names clash: each of
    Lightning's ``version_*/metrics.csv`` would be ``metrics``, each checkpoint's
    ``trainer_state.json`` ``trainer_state``. Those are named as a walk of their common
    folder names them (:func:`name_by_path`: ``version_0``, ``checkpoint-96``, ``a/run``);
    a path whose name is its own keeps it (it is not in the result)."""
    own: dict[str, list[str]] = {}
    for f in paths:
        p = Path(f)
        if f == "-" or is_tracker(f) or not p.exists():
            continue
        own.setdefault(_stem(p.name), []).append(f)
    out = {}
    for clash in (fs for fs in own.values() if len(fs) > 1):
        full = [Path(os.path.abspath(f)) for f in clash]
        root = Path(os.path.commonpath([str(p.parent) for p in full]))
        named = {f: name_by_path(p, root) for f, p in zip(clash, full)}
        if len(set(named.values())) == len(clash):  # (else: the same name twice, left)
            out.update(named)
    return out


def name_by_path(found: Path, root: Path) -> str:
    """A run's name from where it was found under ``root``: ``version_0`` for
    ``root/version_0/metrics.csv``, ``exp1/seed2`` for ``root/exp1/seed2.csv``."""
    from lrdoctor.readers import mlflow
    from lrdoctor.readers.tensorboard import is_event_file, run_name

    rel = found.relative_to(root)
    if found.is_dir():
        if mlflow.is_run_folder(found):  # the run id says nothing; its name does
            parent = str(rel.parent) if str(rel.parent) != "." else ""
            return f"{parent}/{mlflow.run_name(found)}" if parent else mlflow.run_name(found)
        return str(rel) if str(rel) != "." else root.name
    stem = _stem(found.name)
    if found.name.endswith(".wandb"):
        stem = ""  # run-<id>.wandb: its folder (offline-run-<date>-<id>) names it
    if is_event_file(found):
        stem = run_name(found)
        stem = "" if stem == found.parent.name else stem
    parent = str(rel.parent) if str(rel.parent) != "." else ""
    if stem.lower() in GENERIC_NAMES or not stem:
        return parent or root.name
    return f"{parent}/{stem}" if parent else stem


def _is_run_folder(p: Path) -> bool:
    from lrdoctor.readers.mlflow import is_run_folder
    from lrdoctor.readers.tensorboard import event_files, split_run

    return p.is_dir() and (bool(event_files(p)) or is_run_folder(p) or bool(split_run(p)))
