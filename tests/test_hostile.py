"""Hostile inputs end in one clear line with bounded work (issue 13): decompression bounds,
the line-length cap of every text reader, the bad row of a large CSV found without reading
the file again as text, walks and globs over symbolic-link loops and unreadable folders,
None/NULL/null cells, files that may not be read or are not regular files. The limits are
made small here (module constants) so small files reach them; benchmarks/hostile.py
replays the real sizes."""
import gzip
import os
import random
import zlib

import numpy as np
import pytest

from lrdoctor import LrDoctorError
from lrdoctor.cli import main
from lrdoctor.readers import _io, delimited, expand, read, walk


def rows(n, start=0):
    return "".join(f"{i},{2.5 * np.exp(-i / 300) + 0.2:.5f},0.001\n"
                   for i in range(start, start + n))


def write_csv(path, n=400, *, gz=False, text=None):
    data = ("step,loss,lr\n" + rows(n) if text is None else text).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


# 1. decompression bounds -------------------------------------------------------------

def bomb(path, unit: bytes, total: int, head: bytes = b""):
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = unit * (total // len(unit))
    path.write_bytes(c.compress(head) + c.compress(block) + c.flush())
    return path


@pytest.mark.parametrize("name,unit,head", [
    ("bomb.csv.gz", b"1,2\n", b"step,loss\n"),
    ("bomb.jsonl.gz", b'{"step": 1, "loss": 2.0}\n', b""),
    ("bomb.log.gz", b"step 1 loss 2.0\n", b""),
])
def test_a_gzip_bomb_of_valid_rows_ends_at_the_ratio_bound(tmp_path, monkeypatch, name,
                                                           unit, head):
    monkeypatch.setattr(_io, "MIN_BOMB_BYTES", 1 << 16)  # a 4 MB bomb is enough here
    p = bomb(tmp_path / name, unit, 4 << 20, head)
    assert p.stat().st_size * _io.MAX_RATIO < 4 << 20
    with pytest.raises(LrDoctorError, match=r"decompresses to over [\d,]+ times its size .*"
                                            r"the limit is 100x.*zcat") as e:
        read(p)
    assert str(p) in str(e.value)


def test_a_real_compressed_log_is_read_whole_and_the_size_bound_holds(tmp_path, monkeypatch):
    monkeypatch.setattr(_io, "MIN_BOMB_BYTES", 1 << 10)
    p = write_csv(tmp_path / "run.csv.gz", 20000, gz=True)  # compresses ~3x: within bounds
    [h] = read(p)
    assert len(h.loss) == 20000
    monkeypatch.setattr(_io, "MAX_DECOMPRESSED_BYTES", 100_000)
    with pytest.raises(LrDoctorError, match=r"decompresses to more than 100 KB"):
        read(p)


def test_a_gzip_file_not_named_gz_is_read_through_the_bounds(tmp_path, monkeypatch):
    p = write_csv(tmp_path / "run.csv", 300)
    p.write_bytes(gzip.compress(p.read_bytes()))  # pyarrow alone would not decompress it
    [h] = read(p, format="csv")
    assert len(h.loss) == 300


# 2. one line-length cap for every text reader ----------------------------------------

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("kind", ["csv", "jsonl", "log", "pattern"])
def test_a_line_longer_than_the_cap_is_one_line_in_every_text_reader(tmp_path, monkeypatch,
                                                                     kind, gz):
    monkeypatch.setattr(_io, "MAX_LINE_BYTES", 2000)
    long = "x" * 5000
    if kind == "csv":
        text = "step,loss,lr\n" + rows(100) + f"100,{long},0.1\n" + rows(100, 101)
        line = 102
    elif kind == "jsonl":
        text = "".join(f'{{"step": {i}, "loss": 1.5}}\n' for i in range(60)) + \
            f'{{"step": 60, "loss": 1.0, "pad": "{long}"}}\n'
        line = 61
    else:
        text = "".join(f"step {i} loss 1.5\n" for i in range(80)) + long + "\n" + \
            "step 81 loss 1.4\n"
        line = 81
    p = tmp_path / (f"run.{'log' if kind == 'pattern' else kind}" + (".gz" if gz else ""))
    data = text.encode()
    p.write_bytes(gzip.compress(data) if gz else data)
    pattern = r"loss (?P<loss>\S+)" if kind == "pattern" else None
    with pytest.raises(LrDoctorError, match=rf"line {line} is longer than 2,000 bytes"):
        read(p, pattern=pattern)


def test_the_line_scan_finds_the_first_long_line_however_the_content_is_cut():
    rng = random.Random(7)
    for _ in range(2000):
        limit = rng.randint(1, 12)
        lines = [b"x" * rng.choice([0, 1, limit - 1, limit, limit + 1, rng.randint(0, 3 * limit)])
                 for _ in range(rng.randint(0, 8))]
        data = b"\n".join(lines)
        truth = next((i + 1 for i, ln in enumerate(data.split(b"\n")) if len(ln) > limit),
                     None)
        cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randint(0, 4))))
        pieces = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
        scan, got = _io.LineScan("f", limit), None
        try:
            for piece in pieces:
                scan.feed(piece)
        except LrDoctorError as exc:
            got = int(exc.message.split()[1])
        assert got == truth, (limit, data, pieces)


# 3. the bad row of a large CSV, found cheaply ----------------------------------------

@pytest.mark.parametrize("gz", [False, True])
def test_a_bad_cell_is_named_without_reading_the_file_again_as_text(tmp_path, monkeypatch,
                                                                    gz):
    monkeypatch.setattr(_io, "CHUNK", 4096)  # many chunks: the line count crosses them

    def no_text_read(*a, **k):
        raise AssertionError("the columns were read again as text")

    monkeypatch.setattr(delimited, "_raise_bad_cell_by_column", no_text_read)
    text = "step,loss,lr\n" + rows(3000) + "3000,0.5,oops\n" + rows(3000, 3001)
    text = text.replace("\n17,", "\n\n17,")  # an empty line: file lines are counted
    p = write_csv(tmp_path / ("big.csv.gz" if gz else "big.csv"), text=text, gz=gz)
    with pytest.raises(LrDoctorError, match=r"line 3003: column 'lr' holds 'oops', not a "
                                            r"number"):
        read(p)
    # the same word elsewhere (a column not read as a number) is not taken for it
    p2 = tmp_path / "note.csv"
    p2.write_text("step,loss,lr,note\n" + "".join(
        f"{i},{1 + i / 1000},{'oops' if i == 2500 else 0.001},oops\n" for i in range(3000)))
    with pytest.raises(LrDoctorError, match=r"line 2502: column 'lr' holds 'oops'"):
        read(p2)


def test_a_header_repeated_mid_file_is_named_at_its_own_line(tmp_path):
    """``cat run1.csv run2.csv``, or a resumed logger writing its header again: the line
    named is the repeat (line 52), never the real header (line 1), which the old message
    told the user to delete."""
    p = write_csv(tmp_path / "joined.csv", text="step,loss,lr\n" + rows(50) +
                  "step,loss,lr\n" + rows(50, 50))
    with pytest.raises(LrDoctorError, match=r"line 52 repeats the header .*delete that line"):
        read(p)


def test_ragged_and_undecodable_rows_are_named_chunk_by_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(_io, "CHUNK", 4096)
    p = write_csv(tmp_path / "ragged.csv", text="step,loss,lr\n" + rows(2000) + "1,2\n" +
                  rows(10, 2001))
    with pytest.raises(LrDoctorError, match="line 2002 has 2 cells where the header has 3"):
        read(p)
    p = tmp_path / "latin.csv"
    p.write_bytes(("step,loss,lr\n" + rows(2000)).encode() + b"2000,1.\xe92,0.1\n")
    with pytest.raises(LrDoctorError, match="line 2002 holds bytes that are not UTF-8"):
        read(p)


# 4. walks and globs: symbolic-link loops, unreadable folders -------------------------

def loop_tree(tmp_path):
    root = tmp_path / "runs"
    (root / "exp").mkdir(parents=True)
    write_csv(root / "exp" / "run.csv")
    os.symlink("..", root / "exp" / "up")
    os.symlink("..", root / "exp" / "again")  # two links: 2^40 paths for glob.glob
    return root


def test_a_glob_and_a_walk_over_a_symlink_loop_end_with_the_one_log(tmp_path, monkeypatch):
    root = loop_tree(tmp_path)
    files, errors = expand([f"{root}/**/*.csv"])
    assert files == [f"{root}/exp/run.csv"] and not errors
    assert walk(root) == [str(root / "exp" / "run.csv")]
    monkeypatch.chdir(tmp_path)  # a relative pattern keeps its spelling
    assert expand(["runs/**/*.csv"])[0] == ["runs/exp/run.csv"]
    assert expand(["./runs/*/run.csv"])[0] == ["./runs/exp/run.csv"]


def test_an_unreadable_sub_folder_is_a_note_and_the_rest_is_read(tmp_path, monkeypatch,
                                                                 capsys):
    root = tmp_path / "runs"
    for name in ("a", "secret"):
        (root / name).mkdir(parents=True)
        write_csv(root / name / "run.csv")
    real = os.scandir

    def scandir(path="."):  # as listing a folder of mode 000 fails for a user
        if isinstance(path, str) and path.endswith("secret"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    skipped: list = []
    files, errors = expand([str(root)], skipped=skipped)
    assert files == [str(root / "a" / "run.csv")] and not errors
    [(folder, why)] = skipped
    assert folder == str(root / "secret") and why.startswith("permission denied")
    assert main(["analyze", str(root)]) == 0
    err = capsys.readouterr().err
    assert f"{root / 'secret'}: skipped, permission denied" in err
    assert "not a loss log" not in err


def test_a_link_to_nothing_in_a_walk_or_a_glob_is_a_note(tmp_path, capsys):
    """A run folder moved away leaves links to nothing: said once each (skipped), the other
    logs read, exit 0; before, a walk and a glob lost them without a word."""
    root = tmp_path / "runs"
    root.mkdir()
    write_csv(root / "a.csv")
    (root / "gone.csv").symlink_to(tmp_path / "moved" / "gone.csv")
    for given in (str(root), f"{root}/*.csv"):
        skipped: list = []
        files, errors = expand([given], skipped=skipped)
        assert files == [str(root / "a.csv")] and not errors
        [(link, why)] = skipped
        assert link == str(root / "gone.csv") and "symbolic link to nothing" in why
        assert main(["analyze", given]) == 0
        assert f"{root / 'gone.csv'}: skipped, a symbolic link to nothing" in \
            capsys.readouterr().err


# 5. None/NULL/null cells are missing values ------------------------------------------

def test_null_words_are_missing_values_counted_in_a_note(tmp_path):
    lines = ("step,loss,lr,val_loss\n" + "".join(
        f"{i},{2 - i / 5000:.4f},0.001,\n" for i in range(6000))).splitlines()
    lines[6] = "5,None,0.001,"
    lines[10] = "9,NULL,0.001,"
    lines[5001] = "5000,nUlL,null,"  # past the head the reader looks at first
    p = tmp_path / "nulls.csv"
    p.write_text("\n".join(lines) + "\n")
    [h] = read(p)
    note = next(n for n in h.notes if "None/NULL/null" in n)
    assert note.startswith("4 cells hold None/NULL/null") and "'loss': 3" in note and \
        "'lr': 1" in note
    assert len(h.loss) == 6000 - 3 or np.isnan(h.loss.iloc[5])
    p.write_text("step,loss\n0,2.0\n1,None\n2,1.8\n3,nothing\n")  # a real word still is not
    with pytest.raises(LrDoctorError, match=r"line 5: column 'loss' holds 'nothing'"):
        read(p)


# 6. files that may not be read, files that are not regular ---------------------------

def test_a_file_that_may_not_be_read_is_permission_denied(tmp_path, monkeypatch):
    p = write_csv(tmp_path / "secret.csv")
    if os.geteuid() == 0:  # root reads any file: refuse as the kernel would
        real = open

        def deny(file, *a, **k):
            if os.fspath(file) == str(p):
                raise PermissionError(13, "Permission denied", str(p))
            return real(file, *a, **k)

        monkeypatch.setattr(_io, "open", deny, raising=False)
    else:
        p.chmod(0)
    with pytest.raises(LrDoctorError, match="permission denied: this user may not read") as e:
        read(p)
    assert "gzip" not in str(e.value)


def test_a_fifo_is_not_a_regular_file_and_is_never_opened(tmp_path, capsys):
    f = tmp_path / "pipe.csv"
    os.mkfifo(f)  # no writer: opening it would block
    with pytest.raises(LrDoctorError, match=r"not a regular file \(a FIFO"):
        read(f)
    assert main(["analyze", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a regular file" in err[0] and "empty" not in err[0]


def test_json_lines_nested_too_deep_is_one_line(tmp_path):
    p = tmp_path / "deep.jsonl"
    p.write_text('{"step": 0, "loss": 1.0}\n{"step": 1, "loss": ' + "[" * 5000 +
                 "]" * 5000 + "}\n")
    with pytest.raises(LrDoctorError, match="line 2: JSON nested too deep"):
        read(p)
