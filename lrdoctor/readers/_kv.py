"""Generic console lines: numbers paired with names, whatever the print statement.

A training script prints the same few lines over and over with different numbers. So every
line is first turned into its *template* (each number replaced by a slot, one regular
expression pass over the whole text, in C); the few distinct templates are read once each
for the name of every slot (``loss: 2.3``, ``loss=2.3``, ``Train loss 2.3``, ``'loss':
2.3``, ``"loss": 2.3``, ``[step=2/2500]``); and the numbers of the slots that are needed
(step, loss, LR, validation loss, epoch) are then pulled, template by template, with one
``findall`` each. Python never loops over the characters, and over the lines only to number
their templates.

A *record* is one line, or a header line with the indented ``name=value`` lines under it
(OLMo's ``[step=N/M]`` blocks). One row per record holding a loss becomes one row of a named
table, and :class:`lrdoctor.readers._table.Selection` chooses the roles, as for CSV.
"""
from __future__ import annotations

import itertools
import re

import numpy as np

from lrdoctor.errors import LrDoctorError
from lrdoctor.readers import _columns as C
from lrdoctor.readers import _table

#: A number as training scripts print it: int, float, e-notation, nan/inf, thousands commas
#: (``41,957``: a comma followed by exactly three digits, no space), optionally quoted (HF
#: writes ``'loss': '2.833e+05'``) and followed by a unit (``17.2s``, ``1.86G``, ``45%``).
_EXP = r"(?:[eE][-+]?\d+)?"
_DIGITS = rf"(?:\d{{1,3}}(?:,\d{{3}})+(?![\d,])(?:\.\d+)?|\d+\.?\d*{_EXP}|\.\d+{_EXP})"
_UNIT_OR_END = r"(?=[A-Za-z%]|(?!\w))"
_NUM = rf"[-+]?{_DIGITS}{_UNIT_OR_END}|[-+]?(?i:nan|inf(?:inity)?)(?!\w)"
#: The same numbers, written to start with a character class so that the regex engine skips
#: in C to where one may start (twice as fast over a large log): the first character, then
#: (looking back at it) the rest. Not glued to a name on the left (``lr0``, ``fp16``).
_NUMBER = re.compile(
    rf"[-+\d.nNiI](?<![\w.].)"
    rf"(?:(?<=[-+])(?:{_DIGITS}{_UNIT_OR_END}|(?i:nan|inf(?:inity)?)(?!\w))"
    rf"|(?<=\d)(?:\d{{0,2}}(?:,\d{{3}})+(?![\d,])(?:\.\d+)?|\d*\.?\d*{_EXP}){_UNIT_OR_END}"
    rf"|(?<=\.)\d+{_EXP}{_UNIT_OR_END}"
    rf"|(?<=[nN])(?i:an)(?!\w)|(?<=[iI])(?i:nf(?:inity)?)(?!\w))"
    rf"(?:[A-Za-z]+|%)?(?!\w)")
_DIGIT_BYTES = b"0123456789"
SLOT = "\x00"

#: What ends a name on its left: separators of pairs, brackets, a slot, ' - ', 2+ spaces.
_LEFT_END = re.compile(r".*(?:[,|;{}\[\]<>:=\t\x00]| - |  |^- )")
_QUALIFIER = re.compile(r"\s*\((train|training|val|valid|validation|eval|test)\)$", re.I)
_CONTINUATION = re.compile(r"^[ \t]+[^\x00\s][^\x00]*?[ \t]*[:=][ \t]*'?\"?\x00'?\"?[ \t]*$")
_SPACES = re.compile(r"[ \t]*\t[ \t]*|  +")
_ROLE_WORDS = set(C.STEP) | set(C.LR) | set(C.EPOCH) | {"ep"}
#: A counter within an epoch: combined with the epoch into one increasing step.
_WITHIN_EPOCH = {"batch", "iter", "it", "iteration", "step", "steps"}


class Template:
    """The names of one line template's slots.

    Attributes
    ----------
    names : dict
        slot index -> name, for the slots that have one.
    totals : dict
        name -> slot index of its total (``[200/735]``, ``step=2/2500``).
    continuation : bool
        An indented single ``name=value`` line: it belongs to the record above it.
    """

    def __init__(self, key: str):
        self.key = key
        pieces = key.split(SLOT)
        self.n = len(pieces) - 1
        self.names: dict[int, str] = {}
        self.totals: dict[str, int] = {}
        self.continuation = bool(_CONTINUATION.match(key))
        context = []
        prev = None
        for i, piece in enumerate(pieces[:-1]):
            bare = piece.strip()
            if bare == "/" and prev is not None:  # value/total
                self.totals.setdefault(prev, i)
                prev = None
                continue
            name, before = _name(piece)
            if not self.names:
                context.append(before)
            if name is None and bare in ("][", "] [") and C.normalize(prev or "") == "epoch":
                name = "batch"  # mmengine's Epoch(train) [1][200/735]
            if name is None and bare.endswith("|") and \
                    "epoch" in map(C.normalize, self.names.values()):
                name = "batch"  # a progress bar's n/total within an epoch
            if name is not None and name not in self.names.values():
                self.names[i] = name
            prev = name
        self.validation = bool(C.VALIDATION_WORDS & set(C.words(" ".join(context))))
        if self.validation:
            # 'Validation: loss 0.3', 'Epoch(val) ... loss: 0.3': the loss is a validation one
            for i, name in self.names.items():
                ws = set(C.words(name))
                if C.read_loss_name(name) and not ws & (C.VALIDATION_WORDS | C.TRAIN_WORDS):
                    self.names[i] = f"val_{name}"


def _name(piece: str) -> tuple[str | None, str]:
    """The name a piece of text ends with (the text before a value), and the rest."""
    s = piece.rstrip(" \t:='\"")
    if s.endswith(("[", "(", "{")):  # 'Epoch [3/10]', 'Epoch(train) [1]'
        s = s[:-1].rstrip()
    m = _LEFT_END.match(s)
    before, s = (s[: m.end()], s[m.end():]) if m else ("", s)
    qualifier = _QUALIFIER.search(s)
    if qualifier:
        before += " " + qualifier.group(1)
        s = s[: qualifier.start()]
    s = s.strip(" '\"-")
    if not s or not any(ch.isalpha() for ch in s) or len(s) > 60:
        return None, before + s
    words = s.split(" ")
    if len(words) > 3:
        before, words = before + " ".join(words[:-3]), words[-3:]
    phrase = " ".join(words)
    if C.read_loss_name(phrase) is None and len(words) > 1 and \
            C.normalize(words[-1]) in _ROLE_WORDS and C.normalize(phrase) not in _ROLE_WORDS:
        before, phrase = before + " ".join(words[:-1]), words[-1]  # 'at step 100': step
    if C.normalize(phrase) == "ep":
        phrase = "epoch"
    return phrase, before


class Lines:
    """A text's lines grouped by template, and records of lines.

    Lines are first grouped by their shape, the line without its digits (a C pass over the
    bytes): lines printed by one statement share it. Each shape's first line gives the
    template; a line of that shape that does not fit it after all (digits that moved between
    a name and a number) is read on its own when its numbers are needed.
    """

    def __init__(self, text: str, encoded: bytes | None = None,
                 registry: "Registry | None" = None):
        """``encoded``: the text's UTF-8 bytes when the caller has them; ``registry``: the
        templates of the text before this one (a log read piece by piece), else new."""
        self.text = text
        self._lines: list[str] | None = None  # split only when a template needs them
        if encoded is None:
            encoded = text.encode("utf-8", errors="replace")
        reg = self.registry = Registry() if registry is None else registry
        shapes = encoded.translate(None, _DIGIT_BYTES)
        shapes = shapes.split(b"\n")
        # shape ids in order of first appearance (dict and map run in C, not per line in
        # Python); so a shape's first line is where the running maximum of the ids grows
        ids = {t: i for i, t in enumerate(dict.fromkeys(shapes))}
        sid = np.fromiter(map(ids.__getitem__, shapes), dtype=np.int64, count=len(shapes))
        del shapes
        n = self.n = len(sid)
        new = [j for j, t in enumerate(ids) if t not in reg.shapes]
        if new:
            top = np.maximum.accumulate(sid)
            first = np.flatnonzero(np.r_[True, top[1:] > top[:-1]])
            # templates that differ only in padding are one (right-aligned numbers, tabs)
            keys = reg.keys
            shape_list = list(ids)
            for j, line in zip(new, self._some(first[new])):
                key = _key(_NUMBER.sub(SLOT, line))
                k = keys.setdefault(key, len(keys))
                if k == len(reg.templates):
                    reg.templates.append(Template(key))
                reg.shapes[shape_list[j]] = k
        shape_key = np.fromiter(map(reg.shapes.__getitem__, ids), dtype=np.int64,
                                count=len(ids))
        self.key = shape_key[sid]
        self.templates = reg.templates
        cont = np.array([t.continuation for t in self.templates], dtype=bool)[self.key]
        self.has_continuation = bool(cont.any())
        head = np.where(cont, 0, np.arange(n))
        self.record = np.maximum.accumulate(head)
        #: templates of lines with no text
        self.blank = np.array([t.key.strip() == "" for t in self.templates], dtype=bool)
        self.n_blank = int(np.count_nonzero(self.blank[self.key]))

    def stats(self, upto: int | None = None) -> "Stats":
        """The counts the roles are chosen on, of lines ``[:upto]`` (whole records)."""
        n = self.n if upto is None else upto
        key, rec = self.key[:n], self.record[:n]
        t = len(self.templates)
        counts = np.bincount(key, minlength=t)
        nonblank = np.where(self.blank[key], 0, 1)
        if not self.has_continuation:  # every line is a record
            sigs = {(k,): [int(counts[k]), 0 if self.blank[k] else int(counts[k])]
                    for k in np.flatnonzero(counts).tolist()}
            return Stats(counts, sigs)
        pairs = np.unique(rec * t + key)
        r, k = np.divmod(pairs, t)
        bounds = np.flatnonzero(r[1:] != r[:-1]) + 1
        heads = r[np.r_[0, bounds]] if len(r) else r
        ids: dict[tuple, int] = {}
        sid = np.array([ids.setdefault(tuple(g.tolist()), len(ids))
                        for g in np.split(k, bounds)] if len(r) else [], dtype=np.int64)
        of_head = np.full(max(n, 1), -1, dtype=np.int64)
        of_head[heads] = sid
        recs = np.bincount(sid, minlength=len(ids))
        lines = np.bincount(of_head[rec], weights=nonblank, minlength=len(ids))
        return Stats(counts, {sig: [int(recs[i]), int(lines[i])] for sig, i in ids.items()})

    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.text.split("\n")
        return self._lines

    def _some(self, idx: np.ndarray) -> list[str]:
        """Lines ``idx`` (ascending), without splitting the whole text when they are all
        near its start (but the last line)."""
        last = idx[-1] == self.n - 1
        head = idx[:-1] if last else idx
        if self._lines is not None or (len(head) and head[-1] > self.n // 8):
            return [self.lines()[i] for i in idx]
        out, text, pos, at = [], self.text, 0, 0
        for i in head.tolist():
            for _ in range(i - at):
                pos = text.index("\n", pos) + 1
            at = i
            end = text.find("\n", pos)
            out.append(text[pos:] if end < 0 else text[pos:end])
        if last:
            out.append(text[text.rfind("\n") + 1:])  # (rpartition copies the rest)
        return out

    def carries(self, where: list[tuple[int, int]]) -> np.ndarray:
        """Which records hold a name found at these (template, slot) places."""
        mask = np.zeros(self.n, dtype=bool)
        templates = np.zeros(len(self.templates), dtype=bool)
        templates[[k for k, _ in where]] = True
        mask[self.record[templates[self.key]]] = True
        return mask

    def carried_by(self, keep: np.ndarray, index: dict) -> list[str]:
        """The names that the kept records hold, in the index's order."""
        used = np.zeros(len(self.templates), dtype=bool)
        used[np.unique(self.key[keep[self.record]])] = True
        return [n for n, where in index.items() if any(used[k] for k, _ in where)]

    def name_index(self) -> tuple[dict[str, list[tuple[int, int]]], dict[str, int]]:
        """name -> [(template index, slot)], names in order of how many lines carry them;
        and name -> that number of lines."""
        return name_index(self.templates, np.bincount(self.key, minlength=len(self.templates)))

    def values(self, k: int, wanted: dict[int, str]) -> tuple[np.ndarray, dict]:
        """The line numbers of template ``k`` and, by name, the numbers in the wanted slots
        (slot -> name)."""
        where = np.flatnonzero(self.key == k)
        if len(where) + self.n_blank == self.n and not self.blank[k]:
            # this template's lines and blank ones (where no template regex can match):
            # the text itself, not a copy of it
            joined = self.text
        else:
            lines = self.lines()
            joined = "\n".join([lines[i] for i in where])
        out, rest = {}, {}
        for chain in _chains(sorted(wanted)):
            got = _anchored(self.templates[k].key, chain, joined, len(where))
            if got is None:
                rest.update({slot: wanted[slot] for slot in chain})
            else:
                out.update(zip([wanted[slot] for slot in chain], _columns_of(got, len(chain))))
        if not rest:
            return where, out
        slots = sorted(rest)
        rx = _template_regex(self.templates[k].key, slots)
        found = rx.findall(joined)
        if len(slots) == 1:
            found = [(f,) for f in found]
        if len(found) != len(where):  # some lines of this shape have another template
            # the lines are reordered: every wanted slot is read again, not only the rest
            slots = sorted(wanted)
            rx = _template_regex(self.templates[k].key, slots)
            lines = self.lines()
            got = [rx.fullmatch(lines[i]) for i in where]
            odd = [i for i, g in zip(where, got) if g is None]
            where = np.r_[where[[g is not None for g in got]], odd].astype(np.int64)
            found = [g.groups() for g in got if g is not None] + \
                [_own(lines[i], [wanted[s] for s in slots]) for i in odd]
            out = {}
        out.update({wanted[s]: _floats([f[j] for f in found]) for j, s in enumerate(slots)})
        return where, out


def _chains(slots: list[int], gap: int = 3) -> list[list[int]]:
    """Wanted slots close together, read by one regex."""
    out: list[list[int]] = []
    for slot in slots:
        if out and slot - out[-1][-1] <= gap:
            out[-1].append(slot)
        else:
            out.append([slot])
    return out


def _anchored(key: str, chain: list[int], joined: str, n: int) -> list | None:
    """The numbers of some slots on every line (one list per slot), found after the literal
    text before the first of them (a regex that starts with a literal skips at memchr
    speed): the text between that slot and the one before it, or more slots back while
    that text also occurs elsewhere in the line. None when no anchor occurs once per line."""
    pieces = key.split(SLOT)
    start = chain[0]
    for first in range(start, max(start - 3, -1), -1):
        anchor = pieces[first].lstrip(" \t")
        if len(anchor.strip()) < 2:
            continue
        part = SLOT.join([anchor, *pieces[first + 1: chain[-1] + 1]]) + SLOT
        rx = _template_regex(part, [c - first for c in chain], anchored=False)
        found = rx.findall(joined)
        if len(found) == n:
            return found
    return None


def _columns_of(found: list, k: int) -> list[np.ndarray]:
    """Float columns from findall's strings (tuples of ``k`` when ``k`` > 1)."""
    if k == 1:
        return [_floats(found)]
    try:  # the whole table of strings at once, row after row
        flat = map(float, itertools.chain.from_iterable(found))
        table = np.fromiter(flat, dtype=np.float64, count=len(found) * k).reshape(-1, k)
        return [table[:, j] for j in range(k)]
    except ValueError:
        return [_floats([f[j] for f in found]) for j in range(k)]


def _own(line: str, names: list[str]) -> tuple:
    """The numbers of the named slots of one line read with its own template ('nan' for a
    name it does not have)."""
    t = Template(_key(_NUMBER.sub(SLOT, line)))
    slot_of = {name: slot for slot, name in t.names.items()}
    have = sorted(slot_of[n] for n in names if n in slot_of)
    m = _template_regex(t.key, have).fullmatch(line) if have else None
    got = dict(zip(have, m.groups() if m else ()))
    return tuple(got.get(slot_of.get(n, -1), "nan") for n in names)


def _key(template: str) -> str:
    t = re.sub(r"[ \t]*\x00[ \t]*", SLOT, template.strip(" \t")) if SLOT in template \
        else template.strip(" \t")
    lead = template[: len(template) - len(template.lstrip(" \t"))]
    return (" " if lead else "") + _SPACES.sub(lambda m: "\t" if "\t" in m.group() else "  ", t)


#: A number token that is passed over (not captured): cheaper than a full number, and
#: enough, since the lines read with a template all have its shape.
_SKIP = r"[-+]?[\w.%]++(?:(?<=[eE])[-+]\d++)?+(?:,\d{3}(?!\d)[\w.]*+)*+"


def _template_regex(key: str, capture: list[int], anchored: bool = True) -> re.Pattern:
    """The lines of one template, capturing the numbers of the ``capture`` slots (the rest of
    a line after the last of them is not looked at). Spaces around a slot are optional
    (padding), and nothing backtracks into a number (possessive and atomic), so a long
    template (a config dump) costs no more than a short one."""
    out, slot = [r"(?m)^[ \t]*+" if anchored else ""], 0
    parts = [p for p in re.split(r"(\x00|\t|  | )", key.lstrip(" ")) if p]
    last = max(capture, default=-1)
    for i, part in enumerate(parts):
        if part == SLOT:
            if slot in capture:  # a unit (1.86G, 45%) is stripped by _floats
                out.append(rf"[ \t]*+({_SKIP})")
            else:
                out.append(rf"[ \t]*+{_SKIP}")
            if slot == last:
                if not anchored:
                    return re.compile("".join(out))
                out.append(r"[^\n]*+")
                break
            if i + 1 == len(parts) or parts[i + 1] not in ("\t", "  ", " "):
                out.append(r"[ \t]*+")  # padding the template dropped
            slot += 1
        elif part == "\t":
            out.append(r"[ \t]*?\t[ \t]*+")
        elif part == "  ":
            out.append(" {2,}+")
        else:
            out.append(re.escape(part))
    out.append(r"[ \t]*+$")
    return re.compile("".join(out))


_UNIT = re.compile(r"(?<=[\d.])[A-Za-z%]+$")


def _floats(values: list[str]) -> np.ndarray:
    try:
        return np.fromiter(map(float, values), dtype=np.float64, count=len(values))
    except ValueError:  # thousands commas, units, quotes
        try:
            return np.array([_UNIT.sub("", v.replace(",", "")) for v in values],
                            dtype=np.float64)
        except ValueError:
            return np.array([_number(v) for v in values], dtype=np.float64)


def _number(v: str) -> float:
    try:
        return float(_UNIT.sub("", v.replace(",", "")))
    except ValueError:
        return float("nan")


class Registry:
    """The templates of a text read piece by piece: each line's shape (its text without
    digits) -> template index, each template's key -> index, and the templates in order of
    first appearance, as one :class:`Lines` over the whole text numbers them."""

    def __init__(self):
        self.shapes: dict[bytes, int] = {}
        self.keys: dict[str, int] = {}
        self.templates: list[Template] = []


class Stats:
    """What the roles of a text's names are chosen on: the lines of each template
    (``counts``) and, by *signature* (the templates of a record's lines, sorted), how many
    records have it and how many lines with text they hold. Pieces of a text add up."""

    def __init__(self, counts: np.ndarray, sigs: dict):
        self.counts, self.sigs = counts, sigs

    def __add__(self, other: "Stats") -> "Stats":
        n = max(len(self.counts), len(other.counts))
        counts = np.zeros(n, dtype=np.int64)
        counts[: len(self.counts)] += self.counts
        counts[: len(other.counts)] += other.counts
        sigs = {k: list(v) for k, v in self.sigs.items()}
        for k, (r, ln) in other.sigs.items():
            got = sigs.setdefault(k, [0, 0])
            got[0] += r
            got[1] += ln
        return Stats(counts, sigs)


def name_index(templates: list, counts: np.ndarray
               ) -> tuple[dict[str, list[tuple[int, int]]], dict[str, int]]:
    """name -> [(template index, slot)], names in order of how many lines carry them; and
    name -> that number of lines (``counts``: the lines of each template)."""
    out: dict[str, list[tuple[int, int]]] = {}
    weight: dict[str, int] = {}
    for k, t in enumerate(templates):
        for slot, name in t.names.items():
            out.setdefault(name, []).append((k, slot))
            weight[name] = weight.get(name, 0) + (int(counts[k]) if k < len(counts) else 0)
    return {n: out[n] for n in sorted(out, key=lambda n: -weight[n])}, weight


class Plan:
    """The roles chosen for a text's names (:func:`plan`): which records are rows, which
    slots of which templates are read, and for what."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def key(self) -> tuple:
        """What the rows already read depend on: equal keys, equal rows."""
        s = self.sel
        return (s.step, s.loss, tuple(s.parts), s.lr, s.val, s.epoch, s.grad_norm,
                tuple(self.loss_names), self.val_name, tuple(self.steps), self.step_mode)

    def keeps(self, sig: tuple) -> bool:
        """Whether a record with these templates is a row."""
        return self.kept_by_loss(sig) or bool(self.val_tpl & set(sig))

    def kept_by_loss(self, sig: tuple) -> bool:
        return all(t & set(sig) for t in self.loss_tpl)


def plan(templates: list, stats: Stats, src: str, *, step=None, metric=None,
         lr_column=None) -> Plan:
    """The roles of the names of a text with these templates and counts.

    Raises LrDoctorError when no name is a loss (saying which names were seen).
    """
    index, count = name_index(templates, stats.counts)
    names = list(index)
    if not names:
        raise LrDoctorError("no loss found in this text: no line pairs a name with a number",
                            src)
    for given, flag in ((step, "--step"), (metric, "--metric"), (lr_column, "--lr-column")):
        if given is not None and C.find(names, [], given) is None:
            raise LrDoctorError(f"no name {given!r} in this text ({flag}); names seen: "
                                f"{_seen(names)}", src)
    # First the loss (and validation loss): they say which records are rows. A loss-like
    # name written far more rarely than the most frequent one (a config dump's
    # 'aux_loss_weight=0.01', a run's final summary) is not a candidate.
    losses = {n: count[n] for n in names
              if (r := C.read_loss_name(n)) is not None and not r.validation}
    rare = {n for n, k in losses.items() if k < 0.1 * max(losses.values())} if losses else set()
    try:
        first = _table.Selection([n for n in names if n not in rare], step=step,
                                 metric=metric, lr_column=lr_column, source=src)
    except LrDoctorError:
        raise LrDoctorError(f"numbers but no loss in this text; names seen: {_seen(names)}; "
                            "none is a loss; pass --metric NAME", src) from None
    loss_names = first.parts or [first.loss]
    out = Plan(loss_names=loss_names, val_name=first.val,
               loss_tpl=[{k for k, _ in index[n]} for n in loss_names],
               val_tpl={k for k, _ in index[first.val]} if first.val else set())
    kept = [sig for sig in stats.sigs if out.keeps(sig)]
    out.n_loss = sum(stats.sigs[sig][0] for sig in kept if out.kept_by_loss(sig))
    out.skipped = sum(v[1] for sig, v in stats.sigs.items() if not out.keeps(sig))
    # then every role among the names those rows carry (an 'lr' in a config dump is not
    # the LR of the loss lines)
    used = set().union(*kept) if kept else set()
    on_rows = [n for n, where in index.items() if any(k in used for k, _ in where)
               and n not in rare]  # as in the first
    sel = _table.Selection(on_rows, step=step, metric=metric, lr_column=lr_column,
                           source=src)
    steps = _step_names(sel, on_rows, step)
    # which slots are needed, template by template (a total for the step's and epoch's)
    need: dict[int, dict[int, str]] = {}
    for name in dict.fromkeys([*sel.numeric(), *steps]):
        for k, slot in index[name]:
            need.setdefault(k, {})[slot] = name
            total = templates[k].totals.get(name)
            if total is not None and name in (*steps, sel.epoch):
                need[k][total] = f"{name}/total"
    out.sel, out.steps, out.need, out.given_step = sel, steps, need, step
    out.step_mode = _step_mode(sel, step)
    out.notes = ["read as generic 'name: value' lines"]
    if out.skipped:
        out.notes[0] += f"; {out.skipped:,} line(s) without a loss skipped"
    return out


def _step_mode(sel, given) -> str:
    """How :func:`_step` makes the step of each row: ``none`` (line order), ``as_is``,
    ``epoch`` (the epoch, while every one is whole) or ``within_epoch`` (a counter within
    an epoch, made one increasing step: that needs every row)."""
    if sel.step is None:
        return "none"
    if given is not None:
        return "as_is"
    if sel.step == sel.epoch:
        return "epoch"
    if sel.epoch is None or C.normalize(sel.step) not in _WITHIN_EPOCH:
        return "as_is"
    return "within_epoch"


def columns(lines: Lines, p: Plan, upto: int | None = None
            ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """The (values, present) of each needed name, a row per kept record of lines
    ``[:upto]`` (whole records), and the number of rows; the steps of other step names
    fill the step column's gaps."""
    n = lines.n if upto is None else upto
    keep_tpl = np.zeros(len(lines.templates), dtype=bool)
    for k in set().union(p.val_tpl, *p.loss_tpl):
        keep_tpl[k] = True
    if lines.has_continuation:  # a record's lines: its signature
        rec, key = lines.record[:n], lines.key[:n]
        keep = np.zeros(n, dtype=bool)
        t = len(lines.templates)
        pairs = np.unique(rec * t + key)
        r, k = np.divmod(pairs, t)
        bounds = np.flatnonzero(r[1:] != r[:-1]) + 1
        heads = r[np.r_[0, bounds]] if len(r) else r
        for h, g in zip(heads.tolist(), np.split(k, bounds) if len(r) else []):
            keep[h] = p.keeps(tuple(g.tolist()))
    else:
        keep = np.zeros(n, dtype=bool)
        kept = np.array([p.keeps((k,)) for k in range(len(lines.templates))], dtype=bool)
        keep[:] = kept[lines.key[:n]]
    records = np.flatnonzero(keep)
    row_of = np.full(lines.n, -1, dtype=np.int64)
    row_of[records] = np.arange(len(records))
    cols: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k, slots in p.need.items():
        if k >= len(lines.templates) or not (lines.key[:n] == k).any():
            continue
        where, vals = lines.values(k, slots)
        rows = row_of[lines.record[where]]
        ok = (rows >= 0) & (where < n)
        for name, got in vals.items():
            v, pr = cols.setdefault(name, (np.full(len(records), np.nan),
                                           np.zeros(len(records), dtype=bool)))
            v[rows[ok]] = got[ok]
            pr[rows[ok]] = True
    steps = p.steps
    if len(steps) > 1:  # nanoGPT's 'iter N: loss' and 'step N: val loss': one step column
        empty = (np.full(len(records), np.nan), np.zeros(len(records), dtype=bool))
        v, pr = cols.get(steps[0], empty)
        v, pr = v.copy(), pr.copy()
        for other in steps[1:]:
            ov, op = cols.get(other, empty)
            fill = ~pr & op
            v[fill], pr[fill] = ov[fill], True
        cols[steps[0]] = (v, pr)
    return cols, len(records)


def read(text: str, src: str, *, step=None, metric=None, lr_column=None,
         lines: Lines | None = None) -> tuple[list, int]:
    """Histories from generic ``name: value`` lines, and the number of loss rows read.

    Raises LrDoctorError when no name is a loss (saying which names were seen).
    """
    lines = lines or Lines(text)
    p = plan(lines.templates, lines.stats(), src, step=step, metric=metric,
             lr_column=lr_column)
    cols, n_rows = columns(lines, p)
    empty = (np.full(n_rows, np.nan), np.zeros(n_rows, dtype=bool))
    get = (lambda name: cols.get(name, empty))
    sel, notes = p.sel, list(p.notes)
    with np.errstate(over="ignore", invalid="ignore"):  # steps of 400 digits: inf, no warning
        step_values = _step(sel, get, step)
    if step_values is not None:
        cols["\x00step"] = (step_values, np.isfinite(step_values))
        sel.step = "\x00step"
    elif step is None:
        sel.step = None  # line order
        notes.append("no step in the lines: the line order is the step")
    if sel.step is not None and sel.step != sel.epoch:
        # the loss of the rows' own selection (it may differ from the first pass's)
        _keep_last_redraw(cols, get(sel.step)[0], sel.parts or [sel.loss])
    hist = _table.build(sel, get, None, path=src, notes=notes)
    return hist, p.n_loss


def _keep_last_redraw(cols: dict, step: np.ndarray, loss_names: list[str]) -> None:
    """A progress bar redrawn at one step (``\\r``) leaves a loss per redraw: the last one
    written before the step moves on is the step's. Consecutive loss rows at one step lose
    their loss, in place."""
    present = np.logical_and.reduce([cols[n][1] for n in loss_names])
    rows = np.flatnonzero(present)
    if len(rows) < 2:
        return
    s = step[rows]
    redrawn = rows[:-1][s[:-1] == s[1:]]
    for n in loss_names:
        cols[n][1][redrawn] = False
        cols[n][0][redrawn] = np.nan


def _step_names(sel, names: list[str], given) -> list[str]:
    """The step column and, after it, other step names that fill its gaps (rows that print
    their step under another name)."""
    if sel.step is None or given is not None or sel.step == sel.epoch:
        return [sel.step] if sel.step is not None else []
    others = [n for n in names if n != sel.step and C.find([n], C.STEP) is not None
              and C.normalize(n) not in ("batch",)]
    return [sel.step, *others]


def _step(sel, get, given) -> np.ndarray | None:
    """The step of each row: a counter within an epoch made one increasing step; None for
    the line order (no step, or an epoch that is a fraction, as Hugging Face prints it)."""
    if sel.step is None:
        return None
    s, present = get(sel.step)
    if given is not None:
        return s
    if sel.step == sel.epoch:
        whole = s[present]
        return s if len(whole) and np.array_equal(whole, np.round(whole)) else None
    if sel.epoch is None or C.normalize(sel.step) not in _WITHIN_EPOCH:
        return s
    e, e_present = get(sel.epoch)
    both = present & e_present
    if both.sum() < 1 or not np.array_equal(e[both], np.round(e[both])):
        return s
    total, _ = get(f"{sel.step}/total")
    eb, sb = e[both], s[both]
    # the counter restarts while the epoch never goes back (a progress bar may show the new
    # epoch's 0/N under the old epoch's number before it redraws)
    de, ds = np.diff(eb), np.diff(sb)
    resets = ((ds < 0) & (de >= 0)) | ((de > 0) & (ds <= 0))
    known = np.isfinite(total[both]).all()
    one_epoch = len(np.unique(eb)) == 1
    if not resets.any() and not (known and one_epoch and C.normalize(sel.step) == "batch"):
        return s  # a global counter that does not restart with the epoch
    out = np.full(len(s), np.nan)
    if known:
        base = 0 if eb.min() == 0 else 1
        out[both] = (eb - base) * total[both] + sb
        # n = 0 of an epoch is where the one before ended: that step, not a new one
        zero = np.flatnonzero(both)[sb == 0]
        out[zero[zero > 0]] = np.nan
    else:  # the counter restarts: each epoch continues from the last count of the one before
        offset = np.r_[0.0, np.cumsum(np.where(resets, sb[:-1], 0.0))]
        out[both] = sb + offset
    # rows without the counter (a validation line) keep the step of the row before them
    idx = np.where(np.isfinite(out), np.arange(len(out)), -1)
    idx = np.maximum.accumulate(idx)
    filled = np.where(idx >= 0, out[np.maximum(idx, 0)], np.nan)
    return filled


def _seen(names: list[str], most: int = 12) -> str:
    shown = ", ".join(names[:most])
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "")
