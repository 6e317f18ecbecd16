"""Logs written by the real libraries for the reader tests (tensorboard's event writer,
mlflow's file-store client) and the fixtures other libraries wrote (tests/fixtures/)."""
import os
import struct
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def tb_write(folder: Path, scalars, *, style="simple", suffix=""):
    """Write scalars [(step, tag, value)] with TensorBoard's own event writer."""
    from tensorboard.compat.proto import summary_pb2, tensor_pb2, types_pb2
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    w = EventFileWriter(str(folder), filename_suffix=suffix)
    seen = set()
    for step, tag, value in scalars:
        if style == "simple":
            v = summary_pb2.Summary.Value(tag=tag, simple_value=value)
        else:  # TF2 tf.summary.scalar: a float tensor with the scalars plugin's metadata
            if style == "tensor":
                t = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[value])
            else:  # "content": a double in tensor_content
                t = tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE,
                                           tensor_content=struct.pack("<d", value))
            v = summary_pb2.Summary.Value(tag=tag, tensor=t)
            if tag not in seen:
                v.metadata.plugin_data.plugin_name = "scalars"
                seen.add(tag)
        w.add_event(Event(step=step, wall_time=1.7e9 + step,
                          summary=summary_pb2.Summary(value=[v])))
    w.close()
    return sorted(folder.glob("events.out.tfevents.*"))[-1]


def curve(n=300, lr=1e-3):
    t = np.arange(n)
    return [(int(s), "train/loss", float(2.3 * np.exp(-s / 40) + 0.2)) for s in t] + \
           [(int(s), "lr", lr) for s in t] + \
           [(int(s), "val/loss", float(2.4 * np.exp(-s / 40) + 0.25)) for s in t[::50]]


def mlflow_store(root: Path, runs: dict):
    mlflow = pytest.importorskip("mlflow")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(root / "mlruns").as_uri())
    exp = client.create_experiment("sweep")
    ids = {}
    for name, (lr, losses) in runs.items():
        run = client.create_run(exp, run_name=name)
        for s, v in enumerate(losses):
            client.log_metric(run.info.run_id, "train_loss", v, step=s)
            client.log_metric(run.info.run_id, "learning_rate", lr, step=s)
        client.set_terminated(run.info.run_id)
        ids[name] = run.info.run_id
    del mlflow
    return root / "mlruns", exp, ids


# ------------------------------------------------------------------ W&B run files
def _pb_varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | 0x80 if v else b)
        if not v:
            return bytes(out)


def _pb(num: int, payload) -> bytes:
    """One protobuf field: a varint (int payload) or bytes (length-delimited)."""
    if isinstance(payload, int):
        return _pb_varint(num << 3) + _pb_varint(payload)
    return _pb_varint(num << 3 | 2) + _pb_varint(len(payload)) + payload


def wandb_write(path: Path, rows, *, name="run", key_field=2, block=32 * 1024):
    """A W&B data store as wandb 0.31 writes it (the layout of tests/fixtures/
    wandb_offline.wandb): the run record, then for each row {key: json text} a summary
    record and a history record (items of nested_key (2), or key (1) as older wandb wrote,
    and value_json; the step in HistoryRecord.step, empty for step 0), in LevelDB log
    blocks with records split across block ends. A key given as a tuple is a nested key of
    several parts."""
    def item(k, v):
        parts = k if isinstance(k, tuple) else (k,)
        keys = b"".join(_pb(key_field if len(parts) == 1 else 2, p.encode()) for p in parts)
        return _pb(1, keys + _pb(16, v.encode()))

    records = [_pb(1, 1) + _pb(17, _pb(8, name.encode()))]  # RunRecord.display_name
    for i, (step, row) in enumerate(rows):
        items = b"".join(item(k, v) for k, v in row.items()) + item("_step", str(step))
        records.append(_pb(1, 2 * i + 2) + _pb(3, items))  # the summary: same items
        records.append(_pb(1, 2 * i + 3) + _pb(2, items + _pb(2, _pb(1, step) if step
                                                              else b"")))
    out = bytearray(b":W&B\xe1\xbe\x00")
    for rec in records:
        first = True
        while True:
            room = block - len(out) % block
            if room < 7:  # a block's tail too short for a header: zero padding
                out += bytes(room)
                continue
            take = min(len(rec), room - 7)
            last = take == len(rec)
            kind = (1 if last else 2) if first else (4 if last else 3)
            out += struct.pack("<IHB", 0, take, kind) + rec[:take]
            rec, first = rec[take:], False
            if last:
                break
    path.write_bytes(bytes(out))
    return path


def read_damaged_copies(data: bytes, path: Path, *, seed=0, copies=100, first=0):
    """Write ``copies`` copies of ``data`` to ``path``, each with 4 random bytes (from
    offset ``first`` on) replaced, and read each: it must give a history with points or one
    LrDoctorError, nothing else."""
    from lrdoctor import LrDoctorError
    from lrdoctor.readers import read

    rng = np.random.default_rng(seed)
    for _ in range(copies):  # lengths and tags that lie
        b = bytearray(data)
        for at in rng.integers(first, len(b), 4):
            b[at] = int(rng.integers(256))
        path.write_bytes(bytes(b))
        try:
            [h] = read(path)
        except LrDoctorError:
            continue
        assert len(h.loss) > 0
