"""lrdoctor/readers/tensorboard.py: event files written by TensorBoard's own writer."""
import numpy as np
import pytest

from lrdoctor import LrDoctorError, analyze
from lrdoctor.cli import main
from lrdoctor.readers import expand, read, sniff

from logs import curve, read_damaged_copies, tb_write


@pytest.mark.parametrize("style", ["simple", "tensor", "content"])
def test_tensorboard_scalars_from_the_real_writer(tmp_path, style):
    pytest.importorskip("tensorboard")
    f = tb_write(tmp_path, curve(), style=style)
    assert sniff(f) == "tensorboard"
    [h] = read(f)
    assert h.metric == "train/loss" and len(h.loss) == 300
    assert h.loss.iloc[0] == pytest.approx(2.5, rel=1e-6)
    assert h.lr.dropna().eq(1e-3).all()
    assert h.val_loss.index.tolist() == list(range(0, 300, 50))
    assert "val/loss" in h.available
    [d] = analyze(f)
    assert d.verdict == "ok" and d.current_lr == pytest.approx(1e-3)


def test_tensorboard_folder_of_files_is_one_run_and_last_write_wins(tmp_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "exp1"
    run.mkdir()
    tb_write(run, [(s, "loss", 3.0) for s in range(0, 120)], suffix=".a")
    # resumed from step 100: the second file rewrites steps 100..199
    tb_write(run, [(s, "loss", 1.0) for s in range(100, 200)], suffix=".b")
    [h] = read(run)
    assert len(h.loss) == 200 and h.loss.loc[99] == 3.0 and h.loss.loc[100] == 1.0
    assert h.run == "exp1" and any("2 event files" in n for n in h.notes)


def test_tensorboard_truncated_tail_is_read_up_to_the_damage(tmp_path):
    pytest.importorskip("tensorboard")
    f = tb_write(tmp_path, curve())
    data = f.read_bytes()
    f.write_bytes(data[:-7])
    [h] = read(f)
    assert len(h.loss) == 300 or len(h.val_loss) == 5  # the last record was cut
    assert any("incomplete record" in n for n in h.notes)


def test_tensorboard_corrupt_record_in_the_middle(tmp_path):
    pytest.importorskip("tensorboard")
    f = tb_write(tmp_path, curve(60))
    data = bytearray(f.read_bytes())
    data[len(data) // 2: len(data) // 2 + 8] = b"\xff" * 8  # garbage inside the records
    f.write_bytes(bytes(data))
    try:
        [h] = read(f)
    except LrDoctorError as exc:  # a clear error is acceptable; a traceback is not
        assert str(f) in str(exc)
    else:
        assert 0 < len(h.loss) <= 60 and h.notes


def test_tensorboard_without_scalars_or_records(tmp_path):
    f = tmp_path / "events.out.tfevents.1.host"
    f.write_bytes(b"\x00" * 5)
    with pytest.raises(LrDoctorError, match="too short"):
        read(f)


def test_tensorboard_real_log_decodes_as_tensorboard_does(shared):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    from lrdoctor.readers.tensorboard import scalars

    files = sorted((shared / "real_logs/tensorboard").glob("*tfevents*"))
    ours, _ = scalars(files[0])
    ref: dict = {}
    for e in EventFileLoader(str(files[0])).Load():
        for v in e.summary.value:
            ref.setdefault(v.tag, []).append((e.step, float(np.asarray(
                v.tensor.float_val or [v.simple_value])[0])))
    assert set(ours) == set(ref)
    for tag, (steps, values) in ours.items():
        want = np.array(ref[tag])
        np.testing.assert_array_equal(steps, want[:, 0])
        np.testing.assert_allclose(values, want[:, 1], rtol=1e-6)


def test_tensorboard_keras_layout_pairs_train_and_validation(tmp_path, capsys):
    # Keras' TensorBoard callback: <run>/train/ and <run>/validation/, both with epoch_loss
    pytest.importorskip("tensorboard")
    run = tmp_path / "logs" / "fit-1"
    (run / "train").mkdir(parents=True)
    (run / "validation").mkdir()
    tb_write(run / "train", [(e, "epoch_loss", float(2.3 * 0.8 ** e)) for e in range(30)] +
             [(e, "epoch_learning_rate", 1e-3) for e in range(30)], style="tensor")
    tb_write(run / "validation", [(e, "epoch_loss", float(2.4 * 0.8 ** e)) for e in range(30)],
             style="tensor")
    found, errors = expand([str(tmp_path)])
    assert found == [str(run)] and not errors
    [h] = read(run)
    assert h.metric == "epoch_loss" and len(h.loss) == 30 and h.lr.iloc[0] == 1e-3
    assert h.val_loss.notna().sum() == 30 and h.val_loss.iloc[0] == pytest.approx(2.4)
    assert main(["analyze", str(tmp_path)]) == 0
    assert "run 'logs/fit-1'" in capsys.readouterr().out


def test_events_of_both_layouts_keep_file_order(tmp_path):
    # one event with two values goes through the general decoder, the others through the
    # vectorized one; the tag's values must still come out in the order they were written
    pytest.importorskip("tensorboard")
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from lrdoctor.readers.tensorboard import scalars

    w = EventFileWriter(str(tmp_path))
    Value = summary_pb2.Summary.Value
    for s, vals in [(0, [("loss", 3.0)]), (1, [("loss", 2.0), ("lr", 1e-3)]),
                    (2, [("loss", 1.0)])]:
        w.add_event(Event(step=s, wall_time=1.7e9 + s, summary=summary_pb2.Summary(
            value=[Value(tag=t, simple_value=v) for t, v in vals])))
    w.close()
    got, _ = scalars(next(tmp_path.glob("events.out.tfevents.*")))
    assert got["loss"][0].tolist() == [0, 1, 2] and got["loss"][1].tolist() == [3, 2, 1]
    assert got["lr"][0].tolist() == [1]


@pytest.mark.parametrize("style", ["simple", "tensor"])
def test_damaged_bytes_anywhere_give_scalars_or_one_clear_error(tmp_path, style):
    pytest.importorskip("tensorboard")
    data = tb_write(tmp_path, curve(), style=style).read_bytes()
    p = tmp_path / "x" / "events.out.tfevents.1.damaged"
    p.parent.mkdir()
    read_damaged_copies(data, p, seed=1)
    # a tag's length turned into a 10-byte varint of 2**63 (negative as an int64)
    import struct

    def skip_varint(buf, q):
        while buf[q] & 0x80:
            q += 1
        return q + 1

    b, pos, hit = bytearray(data), 0, 0
    while pos + 12 <= len(b) and hit < 5:
        (n,) = struct.unpack_from("<Q", b, pos)
        q = pos + 12 + 9  # event: wall_time (0x09 + 8 bytes), step, summary
        if b[pos + 12] == 0x09 and b[q] == 0x10:
            q = skip_varint(b, q + 1)
        if b[q] == 0x2A and b[skip_varint(b, q + 1)] == 0x0A:  # summary, its value
            q = skip_varint(b, skip_varint(b, q + 1) + 1)
            if b[q] == 0x0A and q + 11 <= pos + 12 + n:  # the value's tag
                b[q + 1:q + 11] = b"\x80" * 9 + b"\x01"
                hit += 1
        pos += 12 + n + 4
    assert hit == 5
    p.write_bytes(bytes(b))
    [h] = read(p)  # the damaged records are skipped with a note, the rest is read
    assert len(h.loss) > 250 and any("damaged" in n for n in h.notes)


def _event_file(tmp_path, n=300):
    pytest.importorskip("tensorboard")
    return tb_write(tmp_path, curve(n)).read_bytes()


def _damaged(tmp_path, data: bytes):
    p = tmp_path / "damaged" / "events.out.tfevents.1.host"
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(data)
    return p


def test_crc32c_matches_tensorboards_own(tmp_path):
    pytest.importorskip("tensorboard")
    import struct

    from tensorboard.summary.writer.record_writer import masked_crc32c

    from lrdoctor.readers.tensorboard import _data_crc_ok, _header_crc_ok, _masked, _walk

    data = _event_file(tmp_path)
    starts, lengths, stop = _walk(data)
    assert stop == len(data)
    arr = np.frombuffer(data, np.uint8)
    # every length's CRC, by the lookup of small lengths and by the general computation
    assert _header_crc_ok(arr, starts - 12, lengths).all()
    assert _header_crc_ok(arr, starts - 12).all()
    assert all(_data_crc_ok(data, int(s), int(n)) for s, n in zip(starts, lengths))
    for blob in (b"", b"a", b"123456789", bytes(range(256))):
        crc = struct.unpack("<I", struct.pack("<I", masked_crc32c(blob)))[0]
        ok = bytearray(struct.pack("<Q", len(blob)) + struct.pack("<I", masked_crc32c(
            struct.pack("<Q", len(blob)))) + blob + struct.pack("<I", crc))
        assert _data_crc_ok(bytes(ok), 12, len(blob))
        ok[-1] ^= 1
        assert not _data_crc_ok(bytes(ok), 12, len(blob))
    assert _masked(0) == 0xA282EAD8


@pytest.mark.parametrize("garbage", [b"\xff" * 4096, bytes(4096), "random"])
def test_garbage_inserted_mid_file_is_skipped_to_the_next_valid_record(tmp_path, garbage):
    data = _event_file(tmp_path)
    if garbage == "random":
        garbage = np.random.default_rng(3).bytes(4096)
    mid = len(data) // 2
    p = _damaged(tmp_path, data[:mid] + garbage + data[mid:])
    [h] = read(p)
    # before: the whole second half was lost (the garbage read as a length past the end)
    # with an 'incomplete record' note; now only the record the garbage split is lost
    assert len(h.loss) >= 299 and len(h.val_loss) == 6
    [note] = h.notes
    assert "incomplete" not in note
    import re

    first, last, size = map(int, re.search(r"bytes (\d+)-(\d+) \((\d+) bytes", note).groups())
    assert first <= mid < mid + len(garbage) <= last + 1 and size == last - first + 1
    assert size < len(garbage) + 200  # the garbage and the one record it split
    assert "at least 1 record(s) lost" in note and "read on from the next valid record" in note


def test_overwritten_records_mid_file_and_garbage_after_the_last(tmp_path):
    data = _event_file(tmp_path)
    rng = np.random.default_rng(5)
    mid = len(data) // 2
    p = _damaged(tmp_path, data[:mid] + rng.bytes(2000) + data[mid + 2000:] + rng.bytes(100))
    [h] = read(p)
    assert 250 < len(h.loss) < 300 and len(h.val_loss) == 6
    mid_note, tail_note = h.notes
    assert "damaged and were skipped" in mid_note and "read on from" in mid_note
    assert f"bytes {len(data)}-{len(data) + 99} (100 bytes" in tail_note
    assert "no valid record after them" in tail_note


def test_a_length_that_lies_in_mid_file_no_longer_ends_the_read(tmp_path):
    import struct

    data = bytearray(_event_file(tmp_path))
    from lrdoctor.readers.tensorboard import _walk

    starts, _, _ = _walk(bytes(data))
    at = int(starts[len(starts) // 2]) - 12
    data[at:at + 8] = struct.pack("<Q", 1 << 40)  # a length far past the end of the file
    [h] = read(_damaged(tmp_path, bytes(data)))
    assert len(h.loss) + len(h.lr) >= 599 - 1
    [note] = h.notes
    assert f"bytes {at}-" in note and "incomplete" not in note


def test_a_writer_that_leaves_crcs_zero_is_read_by_the_lengths(tmp_path):
    import struct

    from lrdoctor.readers.tensorboard import _walk

    data = bytearray(_event_file(tmp_path))
    starts, lengths, _ = _walk(bytes(data))
    for s, n in zip(starts.tolist(), lengths.tolist()):
        data[s - 4:s] = b"\0\0\0\0"
        data[s + n:s + n + 4] = b"\0\0\0\0"
    [h] = read(_damaged(tmp_path, bytes(data)))
    assert len(h.loss) == 300 and h.notes == []
    assert struct.unpack_from("<I", data, 8)[0] == 0
    # cut short, the CRCs are looked at: none checks out, so none is held against it
    [h] = read(_damaged(tmp_path, bytes(data[:-7])))
    [note] = h.notes
    assert "incomplete record" in note and len(h.loss) == 300
