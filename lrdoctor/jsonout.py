"""The JSON document of many runs, written fast: the text of
``json.dumps(lrdoctor.render._clean(obj), indent=2, allow_nan=False)``, byte for byte.

``json.dumps`` with ``indent`` runs Python's own encoder (its C encoder has no indent), and
the strict-JSON pass before it (NaN and infinities as ``null``) walks every value in Python:
at 10,000 runs (an 11 MB document) the two took 1.2-2 s of the parent's serial time. Here the
C encoder writes the compact text (``separators=(",", ": ")``, the indented form's own, so
the two differ only by the line breaks and indentation after ``[``, ``{`` and ``,`` and
before ``]`` and ``}``), then numpy finds those characters outside strings and writes the
indentation, a megabyte of text at a time; ``NaN``, ``Infinity`` and ``-Infinity`` outside
strings become ``null``. A document with a lone surrogate in a string (the bytes of a file
name that were not UTF-8) goes through the slow path, which writes them as ``\\xNN``.
"""
from __future__ import annotations

import json
import re

import numpy as np

#: The compact text is indented this many characters at a time (cut after a comma, so no
#: token, and no empty ``[]``/``{}``, spans two windows).
WINDOW = 1 << 20

_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPENS, _CLOSES, _COMMA = (ord("["), ord("{")), (ord("]"), ord("}")), ord(",")
#: A UTF-16 surrogate escape as ensure_ascii writes it (a pair for a character beyond the
#: BMP, or a lone one): the slow path decides.
_SURROGATE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def dumps(obj) -> str:
    """``json.dumps(_clean(obj), indent=2, allow_nan=False)``, faster."""
    text = json.dumps(obj, separators=(",", ": "))
    if _SURROGATE.search(text):
        from lrdoctor.render import _clean

        return json.dumps(_clean(obj), indent=2, allow_nan=False)
    if "NaN" in text or "Infinity" in text:
        text = _nulls(text)
    return "".join(_indented(text))


def _windows(text: str):
    """(start, end) of the pieces the text is worked on in: each but the last ends just
    after a comma."""
    start = 0
    while start < len(text):
        end = len(text) if len(text) - start <= WINDOW else \
            text.rfind(",", start, start + WINDOW) + 1
        if end <= start:  # no comma in a whole window (one huge string): take more
            end = text.find(",", start + WINDOW) + 1 or len(text)
        yield start, end
        start = end


class _Strings:
    """Which characters of consecutive pieces of the text lie outside its strings."""

    def __init__(self):
        self.inside = 0  # 1 when a piece starts inside a string
        self.run = 0  # backslashes ending the previous piece

    def outside(self, b: np.ndarray, at: np.ndarray) -> np.ndarray:
        """For the positions ``at`` of piece ``b`` (none of them a quote): outside?"""
        q = np.flatnonzero(b == _QUOTE)
        # a quote after an odd run of backslashes is escaped: only quotes right after a
        # backslash (few: an escaped quote or backslash in a name) are counted back
        slashed = np.flatnonzero(b[np.maximum(q - 1, 0)] == _BACKSLASH)
        if len(q) and q[0] == 0 and self.run:
            slashed = np.r_[0, slashed[slashed > 0]]
        if len(slashed):
            keep = np.ones(len(q), dtype=bool)
            for k in slashed.tolist():
                i = int(q[k]) - 1
                while i >= 0 and b[i] == _BACKSLASH:
                    i -= 1
                keep[k] = (q[k] - 1 - i + (self.run if i < 0 else 0)) % 2 == 0
            real = q[keep]
        else:
            real = q
        out = (self.inside + np.searchsorted(real, at)) % 2 == 0
        self.inside = (self.inside + len(real)) % 2
        tail = len(b) - 1
        while tail >= 0 and b[tail] == _BACKSLASH:
            tail -= 1
        self.run = len(b) - 1 - tail + (self.run if tail < 0 else 0)
        return out


def _nulls(text: str) -> str:
    """``NaN``, ``Infinity`` and ``-Infinity`` outside strings as ``null``."""
    strings, parts, last = _Strings(), [], 0
    for start, end in _windows(text):
        b = np.frombuffer(text[start:end].encode("ascii"), dtype=np.uint8)
        nan = b == ord("N")
        nan[:-1] &= b[1:] == ord("a")  # NaN's first N, not its last
        nan[-1:] = False
        at = np.flatnonzero(nan | (b == ord("I")))
        if not len(at):
            strings.outside(b, at)
            continue
        for i in at[strings.outside(b, at)].tolist():
            s = i - 1 if b[i] == ord("I") and i and b[i - 1] == ord("-") else i
            parts += [text[last:start + s], "null"]
            last = start + i + (3 if b[i] == ord("N") else 8)
    return "".join(parts) + text[last:]


def _indented(text: str):
    """The pieces of the indented text."""
    strings, depth = _Strings(), 0
    for start, end in _windows(text):
        b = np.frombuffer(text[start:end].encode("ascii"), dtype=np.uint8)
        n = len(b)
        at = np.flatnonzero((b == _COMMA) | (b == _OPENS[0]) | (b == _OPENS[1]) |
                            (b == _CLOSES[0]) | (b == _CLOSES[1]))
        at = at[strings.outside(b, at)]
        c = b[at]
        opens = (c == _OPENS[0]) | (c == _OPENS[1])
        closes = (c == _CLOSES[0]) | (c == _CLOSES[1])
        level = depth + np.cumsum(opens.astype(np.int64) - closes)  # depth after each
        depth = int(level[-1]) if len(level) else depth
        nxt = b[np.minimum(at + 1, n - 1)]
        prv = b[np.maximum(at - 1, 0)]
        # '[]' and '{}' stay as they are; a window never ends on an open bracket
        empty_open = opens & ((nxt == _CLOSES[0]) | (nxt == _CLOSES[1])) & (at + 1 < n)
        empty_close = closes & ((prv == _OPENS[0]) | (prv == _OPENS[1])) & (at > 0)
        after = (opens & ~empty_open) | (c == _COMMA)
        before = closes & ~empty_close
        where = np.concatenate([at[after] + 1, at[before]])  # insert before this char
        size = 1 + 2 * np.concatenate([level[after], level[before]])
        add = np.zeros(n + 1, dtype=np.int64)
        add[where] = size
        shift = np.cumsum(add)
        out = np.full(n + int(shift[-1]), ord(" "), dtype=np.uint8)
        out[np.arange(n) + shift[:n]] = b
        out[where + shift[where] - add[where]] = ord("\n")
        yield out.tobytes().decode("ascii")
