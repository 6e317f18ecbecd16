"""Small file helpers shared by the readers: opening a log (gzip streamed through bounds),
peeking at content, binary checks, and the one line-length cap of every text reader."""
from __future__ import annotations

import contextlib
import gzip
import io
import mmap
import os
import stat
import zlib
from pathlib import Path

from lrdoctor.errors import LrDoctorError

#: A line longer than this is not a training-log line (real ones are well under 64 KiB).
#: Every text reader (CSV, JSON lines, console text, --pattern) checks it before it does
#: any work per line.
MAX_LINE_BYTES = 1 << 20

#: Bounds on what a compressed log may decompress to. Training logs compress 2-10x (the 29
#: real logs of the test corpus: 2-10x with gzip -9; a 1e7-row CSV: 3x); deflate's own
#: ceiling is 1032x, reached only by repeated content: a decompression bomb. So past
#: ``MIN_BOMB_BYTES`` of output (a small file may be anything), output more than
#: ``MAX_RATIO`` times the compressed bytes read so far is refused, which stops a bomb
#: after a few tens of MB instead of gigabytes of rows; and ``MAX_DECOMPRESSED_BYTES``
#: (4 GiB: 1e8 rows of step,loss,lr, ten times the longest log we have seen) bounds any
#: compressed input. A plain file is read as it is: its size is what the user gave.
MAX_RATIO = 100
MIN_BOMB_BYTES = 32 << 20
MAX_DECOMPRESSED_BYTES = 4 << 30

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 16 << 20  # what is read at a time when a log is streamed


def _opened(path: Path):
    """The raw file, opened for reading; a file this user may not read, or that is not a
    regular file (a FIFO, a device, a socket: reading one would block or never end), is
    one clear error."""
    src = str(path)
    try:
        st = os.stat(path)
    except PermissionError:
        raise permission_error(path) from None
    except FileNotFoundError:
        raise LrDoctorError("no such file; check the path", src) from None
    if stat.S_ISDIR(st.st_mode):
        raise LrDoctorError("is a directory, not a log file", src)
    if not stat.S_ISREG(st.st_mode):
        raise not_regular_error(path, st.st_mode)
    try:
        return open(path, "rb")
    except PermissionError:
        raise permission_error(path) from None
    except OSError as exc:
        raise LrDoctorError(f"cannot be opened ({exc.strerror or exc})", src) from None


def permission_error(path) -> LrDoctorError:
    return LrDoctorError("permission denied: this user may not read the file; check its "
                         "permissions (ls -l) or run as a user who may", str(path))


def not_regular_error(path, mode: int) -> LrDoctorError:
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else
            "a character device" if stat.S_ISCHR(mode) else
            "a block device" if stat.S_ISBLK(mode) else
            "a socket" if stat.S_ISSOCK(mode) else "a special file")
    return LrDoctorError(f"not a regular file ({kind}); save the log to a file and pass "
                         "that, or pipe it in: ... | lrdoctor analyze -", str(path))


def check_regular(path: Path) -> None:
    """Refuse, before anything reads it, a path this user may not read or that is not a
    regular file."""
    _opened(path).close()


class Bounded(io.RawIOBase):
    """A gzip file's content, decompressed as it is read, refused (one clear error, with
    the numbers) when it grows past the bounds above: a decompression bomb ends after a
    few tens of MB, never after gigabytes. Also given to pyarrow as a file object."""

    def __init__(self, raw, path: Path, lines: "LineScan | None" = None):
        self._raw, self._path, self._lines = raw, path, lines
        self._gz = gzip.GzipFile(fileobj=raw, mode="rb")
        self.out = 0
        #: When True, a failure ends the stream (read returns b"") and is kept in
        #: ``failure`` instead of being raised: for pyarrow, whose reader threads call
        #: ``read`` (an exception raised through them can leave the process hanging at
        #: exit). The caller raises ``failure`` once pyarrow is done.
        self.quiet = False
        self.failure: LrDoctorError | None = None

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self.readall()
        if self.failure is not None:
            return b""
        try:
            try:
                data = self._gz.read(n)
            except (EOFError, OSError, zlib.error) as exc:
                raise gzip_error(self._path, exc) from None
            self.out += len(data)
            if self.out > MIN_BOMB_BYTES:
                self._check()
            if self._lines is not None:
                self._lines.feed(data)
        except LrDoctorError as exc:
            if not self.quiet:
                raise
            self.failure = exc
            return b""
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        parts = []
        while data := self.read(CHUNK):
            parts.append(data)
        return b"".join(parts)

    def _check(self) -> None:
        read_in = max(1, self._raw.tell())
        if self.out > MAX_DECOMPRESSED_BYTES:
            raise LrDoctorError(
                f"decompresses to more than {_mb(MAX_DECOMPRESSED_BYTES)}, the limit "
                "for a compressed log (a decompression bomb?); if it is really a log, "
                "decompress it yourself (zcat FILE > FILE.csv) and pass that", str(self._path))
        if self.out > MAX_RATIO * read_in:
            raise LrDoctorError(
                f"decompresses to over {self.out / read_in:,.0f} times its size ({_mb(self.out)} "
                f"from the first {_mb(read_in)}; the limit is {MAX_RATIO}x, logs compress "
                "2-10x): a decompression bomb? if it is really a log, decompress it "
                "yourself (zcat FILE > FILE.csv) and pass that", str(self._path))

    def close(self) -> None:
        self._gz.close()
        self._raw.close()
        super().close()


def _mb(n: int) -> str:
    return f"{n / 1e3:,.0f} KB" if n < 1e6 else f"{n / 1e6:,.1f} MB" if n < 1e9 else \
        f"{n / 1e9:,.2f} GB"


def open_log(path: Path, limit: int | None = None):
    """The log's content as a binary stream: the file itself, or its gzip content through
    :class:`Bounded`. Permission, not-a-file and damaged-gzip errors are clear lines. With
    ``limit``, the line-length cap is checked before anything reads the content: a plain
    file through a memory map at once, a gzip file piece by piece as it is read."""
    raw = _opened(path)
    try:
        magic = raw.read(2)
        raw.seek(0)
        if magic == GZIP_MAGIC:
            return Bounded(raw, path, None if limit is None else LineScan(path, limit))
        if limit is not None:
            check_lines_of_file(raw, path, limit)
    except OSError as exc:
        raw.close()
        raise LrDoctorError(f"cannot be read ({exc.strerror or exc})", str(path)) from None
    except LrDoctorError:
        raw.close()
        raise
    return raw


@contextlib.contextmanager
def for_arrow(path: Path, limit: int | None = None):
    """:func:`open_log` for pyarrow to read. A gzip file's :class:`Bounded` stream is
    quiet: a bound reached or damage ends it (an exception raised through pyarrow's reader
    threads can leave the process hanging at exit), and its error is raised once pyarrow is
    done, in place of whatever pyarrow then said of the cut content."""
    with open_log(path, limit) as fh:
        if isinstance(fh, Bounded):
            fh.quiet = True
        try:
            yield fh
        finally:
            if getattr(fh, "failure", None) is not None:
                raise fh.failure


def is_gzip(path: Path) -> bool:
    with _opened(path) as fh:
        return fh.read(2) == GZIP_MAGIC


def gzip_error(path, exc: BaseException) -> LrDoctorError:
    """The one error for a gzip file cut short or damaged."""
    if isinstance(exc, PermissionError):
        return permission_error(path)
    return LrDoctorError(f"the gzip stream is truncated or corrupt ({exc}); "
                         "copy the file again or decompress what is left with zcat", str(path))


def head(path: Path, nbytes: int = 1 << 16) -> bytes:
    """The first ``nbytes`` of the file's content (decompressed when it is gzip; all of it
    when ``nbytes`` is -1); a truncated gzip is a clear error."""
    with open_log(path) as fh:
        try:
            return fh.read(nbytes)
        except OSError as exc:  # a read error of the plain file
            raise LrDoctorError(f"cannot be read ({exc.strerror or exc})", str(path)) from None


#: A plain file up to this size is read whole by the one open that sniffs it; the parser
#: then reads it from memory (one open per small log instead of four).
WHOLE = 1 << 20


class Peek:
    """What the first open of a log gives: ``sample``, its first bytes of content
    (decompressed when gzip, as :func:`head` gives them); ``data``, all of a plain file of
    up to ``WHOLE`` bytes (else None); ``gzip``; ``size``, the file's size on disk."""

    __slots__ = ("sample", "data", "gzip", "size")

    def __init__(self, sample: bytes, data: bytes | None, gzip: bool, size: int):
        self.sample, self.data, self.gzip, self.size = sample, data, gzip, size


def peek(path: Path, nbytes: int = 1 << 16) -> Peek:
    """Stat, open and read the log once: a small plain file whole, else its head (a gzip
    file's head through :func:`head`). Same errors as :func:`head`."""
    with _opened(path) as raw:
        try:
            size = os.fstat(raw.fileno()).st_size
            data = raw.read(size + 1 if size <= WHOLE else nbytes)
        except OSError as exc:
            raise LrDoctorError(f"cannot be read ({exc.strerror or exc})", str(path)) from None
    if data[:2] == GZIP_MAGIC:
        return Peek(head(path, nbytes), None, True, size)
    whole = data if size <= WHOLE and len(data) <= size else None  # not while it grows
    return Peek(data[:nbytes] if len(data) > nbytes else data, whole, False, size)


def check_lines(data: bytes, path: Path, limit: int | None = None) -> None:
    """The line-length cap over content already in memory."""
    limit = MAX_LINE_BYTES if limit is None else limit
    if len(data) > limit:
        LineScan(path, limit).feed(data, last=True)


def read_bytes(path: Path) -> bytes:
    """The whole content, decompressed (within the bounds) when gzip."""
    return head(path, -1)


def read_text(path: Path, limit: int | None = None) -> bytes:
    """The whole content of a text log, with the line-length cap (``MAX_LINE_BYTES``
    unless given) checked first (see :func:`open_log`): a 500 MB line is refused after
    reading 1 MiB of it."""
    with open_log(path, MAX_LINE_BYTES if limit is None else limit) as fh:
        try:
            return fh.read()
        except OSError as exc:
            raise LrDoctorError(f"cannot be read ({exc.strerror or exc})", str(path)) from None


def check_lines_of_file(fh, path: Path, limit: int | None = None) -> None:
    """The line-length cap over a plain file, through a memory map (no copy)."""
    limit = MAX_LINE_BYTES if limit is None else limit
    size = os.fstat(fh.fileno()).st_size
    if size <= limit:
        return
    with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
        LineScan(path, limit).feed(m, last=True)


class LineScan:
    """The line-length cap over content given piece by piece: each piece is crossed in
    jumps of ``limit`` bytes (a line's start, then the last newline before ``limit`` bytes
    on: at ``memrchr`` speed, and a normal log touches only a few bytes per jump). A line
    longer than ``limit`` is one clear error naming it; lines are counted only then."""

    def __init__(self, path: Path, limit: int | None = None):
        self.path, self.limit = path, MAX_LINE_BYTES if limit is None else limit
        self.run = 0  # bytes of the line still open at the end of the pieces seen
        self.lines = 0  # newlines in the pieces before the current one

    def feed(self, piece, last: bool = False) -> None:
        """Check one more piece (bytes, or a memory map); ``last``: no count is kept."""
        start, n = -self.run, len(piece)
        while n - start > self.limit:
            nl = piece.rfind(b"\n", max(start, 0), start + self.limit + 1)
            if nl < 0:
                line = self.lines + _newlines(piece, max(start, 0)) + 1
                raise long_line_error(self.path, line, self.limit)
            start = nl + 1
        nl = piece.rfind(b"\n", max(start, 0))  # the last line's start (a short scan back)
        self.run = n - (nl + 1 if nl >= 0 else start)
        if not last:
            self.lines += _newlines(piece, n)


def _newlines(piece, end: int) -> int:
    """Newlines in ``piece[:end]`` (a memory map is counted a slice at a time)."""
    if isinstance(piece, bytes):
        return piece.count(b"\n", 0, end)
    return sum(piece[i:min(i + CHUNK, end)].count(b"\n") for i in range(0, end, CHUNK))


def long_line_error(path, line: int, limit: int | None = None) -> LrDoctorError:
    limit = MAX_LINE_BYTES if limit is None else limit
    return LrDoctorError(f"line {line} is longer than {limit:,} bytes (the limit of a line), "
                         "far longer than any training-log line; this does not look like a "
                         "loss log", str(path))


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
        if exc.start < len(sample) - 4 and bad > max(16, max_bad * len(sample)) and \
                not _legacy_text(sample):
            raise LrDoctorError(f"binary content (invalid UTF-8 from byte {exc.start}), not "
                                "a text log; pass a CSV, TSV or JSON-lines loss log",
                                str(path)) from None


#: The control bytes that text never holds (all of C0 but tab, newline, form feed,
#: carriage return and escape, which colours a console log).
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13, 27))
_HIGH = bytes(range(128, 256))


def _legacy_text(sample: bytes) -> bool:
    """Text in an 8-bit encoding (Latin-1, cp1252: a Windows console's 'µs', '±', 'café'):
    mostly printable ASCII (the numbers, the words) and no control bytes, where binary
    content (compressed, packed floats) has about half its bytes above 127 and one in eight
    a control byte. Its non-ASCII characters are read as U+FFFD; the numbers are ASCII."""
    n = len(sample)
    control = n - len(sample.translate(None, _CONTROL))
    high = n - len(sample.translate(None, _HIGH))
    return control <= 0.001 * n and high <= 0.3 * n


def _utf16(sample: bytes) -> bool:
    """A UTF-16 byte-order mark, or ASCII text written as UTF-16 without one (a NUL in
    every other byte)."""
    if sample[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return True
    head = sample[:512]
    if len(head) < 16:
        return False
    lo, hi = head[1::2], head[0::2]
    # one half of the bytes NUL, the other half text (NUL everywhere is binary)
    return (lo.count(0) > 0.9 * len(lo) and hi.count(0) < 0.5 * len(hi)) or \
        (hi.count(0) > 0.9 * len(hi) and lo.count(0) < 0.5 * len(lo))


def first_long_line(path: Path, limit: int | None = None) -> int | None:
    """The number of the first line longer than ``limit`` bytes, else None."""
    scan = LineScan(path, limit)
    try:
        with open_log(path) as fh:
            while chunk := fh.read(CHUNK):
                scan.feed(chunk)
    except LrDoctorError as exc:
        if "is longer than" not in exc.message:
            raise
        return int(exc.message.split()[1])
    return None


def last_line_unterminated(path: Path) -> str | None:
    """The file's last line when it does not end in a newline (a log cut off mid-write),
    else None."""
    with open_log(path) as fh:
        if isinstance(fh, Bounded):
            data = b""
            while chunk := fh.read(CHUNK):
                data = (data + chunk)[-(1 << 16):]
        else:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - (1 << 16)))
            data = fh.read()
    if not data or data.endswith(b"\n"):
        return None
    return data.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace").rstrip("\r")
