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
