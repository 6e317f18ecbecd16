"""Plain-text training output: what a training script printed to its console or log file.

Built-in dialects, tried in turn; the one that finds the most losses wins and the diagnosis
says which was used:

- nanoGPT: ``iter 100: loss 2.3100, time 12.34ms`` (and ``step 100: train loss 2.31, val
  loss 2.40`` evaluation lines, kept as the validation loss);
- Megatron-LM / DeepSpeed: ``iteration 100/ 5000 | ... | learning rate: 3.000E-04 | ... |
  lm loss: 2.300E+00 | ...``;
- fairseq: ``epoch 001:    100 / 1000 loss=9.123, ..., num_updates=100, lr=0.0001, ...``
  (``train_inner`` lines), with ``valid on 'valid' subset | loss 8.5 | ... | num_updates 1000``;
- Keras ``model.fit`` console output: ``Epoch 3/10`` then ``100/100 [====] - 2s - loss: 0.31
  - val_loss: 0.35`` (the last line of each epoch gives its loss);
- YOLOv5/YOLOv7 ``results.txt``: no header, 15 whitespace columns ``epoch/last gpu_mem box
  obj cls total targets img_size P R mAP@.5 mAP@.5:.95 val_box val_obj val_cls`` (the
  training loss is ``total``; the validation loss the sum of the three ``val`` parts);
- generic (:mod:`lrdoctor.readers._kv`): numbers paired with names in any print format
  (``name: value``, ``name=value``, ``name value``, Python dict reprs, a JSON object after a
  log prefix, OLMo's ``[step=N/M]`` blocks of indented ``name=value`` lines), the roles
  chosen by name as for CSV. It is used when no dialect above matches, or when it finds
  clearly more losses than the one that does.

``--pattern REGEX`` reads anything else: a regular expression with the named groups
``loss`` (required) and optionally ``step``, ``lr`` and ``val_loss``, applied to every line.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lrdoctor.errors import LrDoctorError
from lrdoctor.history import History, from_columns
from lrdoctor.readers import _io, _kv

NUM = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|NaN|inf|Inf|Infinity)"

#: name -> (line regex with named groups, validation-line regex or None)
DIALECTS = {
    # patterns open with a literal (no \b) so the regex engine can jump to candidate lines
    "nanoGPT": (rf"iter (?P<step>\d+): loss (?P<loss>{NUM})",
                rf"step (?P<step>\d+): train loss {NUM}, val loss (?P<val_loss>{NUM})"),
    "Megatron/DeepSpeed": (
        rf"iteration\s+(?P<step>\d+)\s*/\s*\d+\s*\|"
        rf"(?:[^\n]*?\blearning rate:\s*(?P<lr>{NUM}))?[^\n]*?\blm loss:\s*(?P<loss>{NUM})",
        rf"validation loss at iteration (?P<step>\d+)[^\n]*?\blm loss value:\s*"
        rf"(?P<val_loss>{NUM})"),
    "fairseq": (
        rf"(?m:^)(?=[^\n]*?\bnum_updates=(?P<step>\d+))(?=(?:[^\n]*?\blr=(?P<lr>{NUM}))?)"
        rf"[^\n]*?\bloss=(?P<loss>{NUM})",
        rf"valid on '[^']*' subset \|\s*(?:valid_loss|valid loss|loss)\s+"
        rf"(?P<val_loss>{NUM})[^\n]*?\bnum_updates (?P<step>\d+)"),
}

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_REDRAW = re.compile(r"[\r\x08]+")
_KERAS_EPOCH = re.compile(r"^Epoch (\d+)/\d+\s*$", re.MULTILINE)
_KERAS_LOSS = re.compile(rf"(?:^|[\s\x08\r])(?:- )?loss: (?P<loss>{NUM})"
                         rf"(?:.*?\bval_loss: (?P<val_loss>{NUM}))?", re.MULTILINE)
_KERAS_LR = re.compile(rf"\b(?:learning_rate|lr): (?P<lr>{NUM})")


def read(path: Path, *, step=None, metric=None, lr_column=None, pattern=None
         ) -> list[History]:
    data = _io.read_text(path)  # the line-length cap is checked as it is read
    return read_data(data, path, step=step, metric=metric, lr_column=lr_column,
                     pattern=pattern)


def read_data(data: bytes, path: Path, *, step=None, metric=None, lr_column=None,
              pattern=None) -> list[History]:
    """:func:`read` of the bytes of the log at ``path`` (``lrdoctor watch``: its complete
    lines so far)."""
    src = str(path)
    _io.check_text(path, data[: 1 << 16])
    text, ascii_bytes = normalize(data)
    if pattern is not None:
        got = _apply(compile_pattern(pattern, src), None, text)
        if got is None:
            raise LrDoctorError(f"no loss found in this text: no line matches --pattern "
                                f"{pattern!r}", src)
        return [_history(got, src, path, "--pattern")]
    # The dialect is chosen on a sample (the head and the tail of the log), then only that
    # one reads the whole text; a log whose sample matches nothing is tried whole.
    sample = _sample(text)
    kind, got = decide(sample, text, src, step, metric, lr_column)
    if kind == "generic":
        if got[2] is text:
            return got[0]
        return _kv.read(text, src, step=step, metric=metric, lr_column=lr_column,
                        lines=_kv.Lines(text, ascii_bytes))[0]
    name, best = got
    if sample is not text:
        best = _read_dialect(name, text)  # chosen on the sample: now read it all
    return [_history(best, src, path, name)]


def normalize(data: bytes, first: bool = True) -> tuple[str, bytes | None]:
    """The text of a log's bytes as the readers take it (UTF-8, a byte-order mark at the
    start dropped, Windows line ends, colours and progress-bar redraws undone), and its
    bytes when they are the text's (ASCII, unchanged), for :class:`_kv.Lines`. Every step
    stays within a line, so the text of complete lines read piece by piece (``first``: the
    piece at the start of the file) is the text of the whole, piece by piece."""
    text = data.decode("utf-8", errors="replace")
    # the bytes of the text as it is read (when it is not changed below), for _kv.Lines
    ascii_bytes = data if text.isascii() else None
    if first:
        text = text.lstrip("\ufeff")
    if "\r" in text:  # (a one-character search is much faster than replace's)
        text = text.replace("\r\n", "\n")
        ascii_bytes = None
    # colours of progress bars; a bar redrawn with \r or backspaces is a line per redraw
    if "\x1b" in text:
        text = _ANSI.sub("", text)
        ascii_bytes = None
    if "\r" in text or "\x08" in text:
        text = _REDRAW.sub("\n", text)
        ascii_bytes = None
    return text, ascii_bytes


def compile_pattern(pattern: str, src: str) -> re.Pattern:
    """``--pattern``, checked: a valid regular expression with a ``loss`` group."""
    try:
        rx = re.compile(pattern, re.MULTILINE | re.IGNORECASE)
    except re.error as exc:
        raise LrDoctorError(f"--pattern is not a valid regular expression ({exc})",
                            src) from None
    if "loss" not in rx.groupindex:
        raise LrDoctorError("--pattern needs a named group (?P<loss>...) for the loss "
                            "(and may have step, lr, val_loss)", src)
    return rx


def decide(sample: str, text: str | None, src: str, step, metric, lr_column) -> tuple:
    """How a text is read, chosen on its sample (:func:`_sample`; ``text``: the whole
    text, or None when it is not at hand): ``("generic", (histories, loss rows, the text
    they were read from))`` or ``("dialect", (name, what it read))``; ``("whole", None)``
    when the sample is not the whole text and matches nothing and the text is not at hand
    (the whole text is then tried). Raises LrDoctorError when no loss is found."""
    chosen = _choose(sample)
    generic, refusal = _generic(sample, src, step, metric, lr_column)
    if generic is None and chosen is None and sample is not text:
        if text is None:
            return "whole", None
        chosen = _choose(text)
        if chosen is None:
            generic, refusal = _generic(text, src, step, metric, lr_column)
    n_chosen = chosen[1].get("lines", len(chosen[1]["loss"])) if chosen else 0
    named = any(x is not None for x in (step, metric, lr_column))
    if generic is not None and (named or generic[1] > GENERIC_MARGIN * n_chosen):
        return "generic", generic
    if chosen is None or (named and refusal is not None):
        if refusal is not None:
            raise refusal
        raise LrDoctorError(
            "no loss found in this text; tried nanoGPT, Megatron/DeepSpeed, fairseq, Keras "
            "console, YOLOv5 results.txt and generic 'name: value' lines; pass --pattern "
            "with named groups, e.g. --pattern 'step (?P<step>\\d+).*loss (?P<loss>\\S+)'",
            src)
    return "dialect", chosen


#: The generic reader is used over a dialect that matched when it reads more than this
#: many times as many losses (a log that prints nanoGPT-like lines only now and then).
GENERIC_MARGIN = 1.5


def _generic(text: str, src: str, step, metric, lr_column):
    """((histories, loss rows, text), None) from the generic reader, or (None, the error
    that says why it found no loss)."""
    try:
        hist, n = _kv.read(text, src, step=step, metric=metric, lr_column=lr_column)
    except LrDoctorError as exc:
        return None, exc
    return ((hist, n, text), None) if n else (None, None)


#: Tried in this order: the specific dialects first (their lines are unmistakable), the
#: generic ones only when none of them matched (a nanoGPT log also has 'step N: train loss'
#: lines).
_GROUPS = (("nanoGPT", "Megatron/DeepSpeed", "fairseq", "Keras console",
            "YOLOv5 results.txt"),)


#: The sample a dialect is chosen on: this many characters of the head and of the tail.
_HEAD, _TAIL = 1 << 18, 1 << 16


def _sample(text: str, head: int = _HEAD, tail: int = _TAIL) -> str:
    if len(text) <= head + tail:
        return text
    return text[:head].rpartition("\n")[0] + "\n" + text[-tail:].partition("\n")[2]


def _read_dialect(dialect: str, text: str) -> dict | None:
    if dialect == "Keras console":
        return _keras(text)
    if dialect == "YOLOv5 results.txt":
        return _yolov5(text)
    line_rx, val_rx = DIALECTS[dialect]
    return _apply(re.compile(line_rx), re.compile(val_rx) if val_rx else None, text)


def _choose(text: str) -> tuple[str, dict] | None:
    """The dialect that reads the most losses from ``text``, with what it read."""
    for group in _GROUPS:
        got = {d: r for d in group if (r := _read_dialect(d, text)) is not None}
        if got:
            name = max(got, key=lambda d: len(got[d]["loss"]))
            return name, got[name]
    return None


def _floats(values: list[str]) -> np.ndarray:
    return np.array([v if v else "nan" for v in values], dtype=np.float64)


def _apply(rx: re.Pattern, val_rx: re.Pattern | None, text: str) -> dict | None:
    """Columns from every line the pattern matches (findall: the loop runs in C)."""
    names = list(rx.groupindex)
    found = rx.findall(text)
    if not found:
        return None
    if len(names) == 1:
        found = [(f,) for f in found]
    cols = {n: [f[rx.groupindex[n] - 1] for f in found] for n in names}
    out = {"loss": _floats(cols["loss"])}
    if "step" in cols:
        out["step"] = _floats(cols["step"])
    if "lr" in cols:
        lr = _floats(cols["lr"])
        out["lr"] = None if np.isnan(lr).all() else lr
    if "val_loss" in cols:
        v = _floats(cols["val_loss"])
        out["val_steps"], out["val"] = out.get("step"), v
    if val_rx is not None:
        vf = val_rx.findall(text)
        if vf:
            vi = val_rx.groupindex
            out["val"] = _floats([f[vi["val_loss"] - 1] for f in vf])
            out["val_steps"] = _floats([f[vi["step"] - 1] for f in vf])
    return out


def _keras(text: str) -> dict | None:
    """Keras ``fit`` output: the last ``loss:`` printed in each ``Epoch k/N`` block."""
    epochs = list(_KERAS_EPOCH.finditer(text))
    if not epochs:
        return None
    starts = np.array([m.start() for m in epochs])
    numbers = np.array([float(m.group(1)) for m in epochs])  # 400 digits: inf, no OverflowError
    losses = list(_KERAS_LOSS.finditer(text))
    if not losses:
        return None
    pos = np.array([m.start() for m in losses])
    block = np.searchsorted(starts, pos, side="right") - 1
    keep = block >= 0
    # the last loss line of each epoch block is the epoch's result
    last = np.r_[block[1:] != block[:-1], True] & keep
    idx = np.flatnonzero(last)
    loss = _floats([losses[i].group("loss") for i in idx])
    val = _floats([losses[i].group("val_loss") or "" for i in idx])
    lrs = [(_KERAS_LR.search(losses[i].string, losses[i].start(),
                             text.find("\n", losses[i].start()) % (len(text) + 1)))
           for i in idx]
    lr = _floats([m.group("lr") if m else "" for m in lrs])
    step = numbers[block[idx]].astype(np.float64)
    return {"loss": loss, "step": step, "val": val if not np.isnan(val).all() else None,
            "val_steps": step, "lr": None if np.isnan(lr).all() else lr,
            "lines": len(losses)}  # progress-bar redraws, of which each epoch's last is kept


#: YOLOv5's (and YOLOv7's) results.txt: '%10s' * 2 + '%10.4g' * 6 (epoch/last, GPU memory,
#: box, obj, cls, total, targets, image size) then '%10.4g' * 7 (P, R, mAP@.5, mAP@.5:.95 and
#: the validation box, obj, cls losses), one line per epoch, no header.
_YOLOV5 = re.compile(
    rf"(?m)^[ \t]*(\d+)/\d+[ \t]+[\d.]+[GMK]?(?:[ \t]+{NUM}){{3}}[ \t]+({NUM})"
    rf"(?:[ \t]+{NUM}){{6}}[ \t]+({NUM})[ \t]+({NUM})[ \t]+({NUM})[ \t]*$")


def _yolov5(text: str) -> dict | None:
    found = _YOLOV5.findall(text)
    if not found:
        return None
    cols = np.array(found, dtype=np.float64)
    step = cols[:, 0]
    return {"loss": cols[:, 1], "step": step, "val": cols[:, 2:].sum(axis=1),
            "val_steps": step, "lr": None}


def rows(got: dict, at: int = 0) -> dict:
    """The rows of what a dialect read (step, loss, logged, lr, val): a row per loss line
    (numbered from ``at`` when the lines have no step), then a row per validation line."""
    loss = got["loss"]
    step = got.get("step")
    if step is None:
        step = np.arange(at, at + len(loss), dtype=np.float64)
    lr = got.get("lr")
    val, val_steps = got.get("val"), got.get("val_steps")
    if val is not None and val_steps is not None and val_steps is not got.get("step"):
        # validation lines become rows of their own, as in a Lightning CSV
        return {"step": np.r_[step, val_steps],
                "loss": np.r_[loss, np.full(len(val_steps), np.nan)],
                "logged": np.r_[np.ones(len(loss), bool), np.zeros(len(val_steps), bool)],
                "val": np.r_[np.full(len(loss), np.nan), val],
                "lr": None if lr is None else np.r_[lr, np.full(len(val_steps), np.nan)]}
    return {"step": step, "loss": loss, "logged": None, "val": val, "lr": lr}


def run_name(path: Path) -> str:
    stem = path.name
    for suffix in (".gz", ".txt", ".log", ".out"):
        stem = stem.removesuffix(suffix)
    return stem


def _history(got: dict, src: str, path: Path, dialect: str) -> History:
    r = rows(got)
    available = ["val_loss"] if got.get("val") is not None else []
    return from_columns(r["step"], r["loss"], logged=r["logged"], lr=r["lr"],
                        val_loss=r["val"], run=run_name(path), source=src, metric="loss",
                        available=available, notes=[f"read as {dialect} output"])
