"""Small file helpers shared by the readers: peeking at content, gzip, binary checks."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from lrdoctor.errors import LrDoctorError

#: A line longer than this is not a training-log line (real ones are well under 64 KiB).
MAX_LINE_BYTES = 1 << 20


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def gzip_error(path, exc: BaseException) -> LrDoctorError:
    """The one error for a gzip file cut short or damaged."""
    return LrDoctorError(f"the gzip stream is truncated or corrupt ({exc}); "
                         "copy the file again or decompress what is left with zcat", str(path))


def head(path: Path, nbytes: int = 1 << 16) -> bytes:
    """The first ``nbytes`` of the file's content (decompressed when it is gzip; all of it
    when ``nbytes`` is -1); a truncated gzip is a clear error."""
    try:
        opener = gzip.open if is_gzip(path) else open
        with opener(path, "rb") as fh:
            return fh.read(nbytes)
    except (EOFError, OSError, zlib.error) as exc:
        raise gzip_error(path, exc) from None


def read_bytes(path: Path) -> bytes:
    """The whole content, decompressed when gzip."""
    return head(path, -1)


def check_text(path: Path, sample: bytes, max_bad: float = 0.02) -> None:
    """Refuse binary content with a line that says where it starts: a NUL byte, or more
    than ``max_bad`` of the sample (and 16 bytes) not decoding as UTF-8. A few bad bytes in
    a text log (a damaged line, a Latin-1 character in a note) are left to the reader, which
    reads them as U+FFFD and names the line where a number is damaged."""
    if _utf16(sample):
        raise LrDoctorError("UTF-16 text (as Windows PowerShell's '>' writes it), not UTF-8; "
                            "convert it: iconv -f UTF-16 -t UTF-8 FILE > FILE.utf8 (or "
                            "Out-File -Encoding utf8 in PowerShell)", str(path))
    nul = sample.find(b"\x00")
    if nul >= 0:
        raise LrDoctorError(f"binary content (a NUL byte at offset {nul}), not a text log; "
                            "pass a CSV, TSV or JSON-lines loss log", str(path))
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = sample.decode("utf-8", errors="replace").count("\ufffd")
        if exc.start < len(sample) - 4 and bad > max(16, max_bad * len(sample)):
            raise LrDoctorError(f"binary content (invalid UTF-8 from byte {exc.start}), not "
                                "a text log; pass a CSV, TSV or JSON-lines loss log",
                                str(path)) from None


def _utf16(sample: bytes) -> bool:
    """A UTF-16 byte-order mark, or ASCII text written as UTF-16 without one (a NUL in
    every other byte)."""
    if sample[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return True
    head = sample[:512]
    if len(head) < 16:
        return False
    lo, hi = head[1::2], head[0::2]
    return lo.count(0) > 0.9 * len(lo) or hi.count(0) > 0.9 * len(hi)


def first_long_line(path: Path, limit: int = MAX_LINE_BYTES) -> tuple[int, int] | None:
    """(line number, length) of the first line longer than ``limit`` bytes, else None."""
    opener = gzip.open if is_gzip(path) else open
    with opener(path, "rb") as fh:
        lineno, length = 1, 0
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                return (lineno, length) if length > limit else None
            start = 0
            while True:
                nl = chunk.find(b"\n", start)
                if nl < 0:
                    length += len(chunk) - start
                    break
                length += nl - start
                if length > limit:
                    return lineno, length
                lineno, length, start = lineno + 1, 0, nl + 1
            if length > limit:
                return lineno, length


def last_line_unterminated(path: Path) -> str | None:
    """The file's last line when it does not end in a newline (a log cut off mid-write),
    else None."""
    if is_gzip(path):
        data = read_bytes(path)[-(1 << 16):]
    else:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - (1 << 16)))
            data = f.read()
    if not data or data.endswith(b"\n"):
        return None
    return data.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace").rstrip("\r")
