"""The TensorBoard log, read back from its event files (TFRecord framing around
tensorboardX's Event protobufs) and compared with the run's history.jsonl."""

import json
import struct
import subprocess
import sys

import numpy as np
import pytest

from fastbp.train import tensorboard


def read_events(run_dir):
    """Every Event in the run directory's event files, in order."""
    from tensorboardX.proto.event_pb2 import Event

    events = []
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i < len(data):  # record: u64 length, u32 crc, payload, u32 crc
            (n,) = struct.unpack_from("<Q", data, i)
            events.append(Event.FromString(data[i + 12 : i + 12 + n]))
            i += 12 + n + 4
    return events


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """history.jsonl of a real 4-epoch digits run: the rows the trainer writes."""
    out = tmp_path_factory.mktemp("runs")
    cmd = [sys.executable, "-m", "fastbp.cli", "train", "--quiet", "--out", str(out),
           "--set", "train.epochs=4", "--set", "output.plots=false", "--set", "train.threads=1"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    (path,) = out.glob("*/history.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_event_files_hold_the_history_and_the_histograms(history, tmp_path):
    pytest.importorskip("tensorboardX")
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((256, 64)).astype(np.float32), rng.standard_normal((10, 256)).astype(np.float32)]
    biases = [rng.standard_normal(256).astype(np.float32), rng.standard_normal(10).astype(np.float32)]
    log = tensorboard.open_log(tmp_path, histogram_every=2)
    for row in history:
        log.epoch(row, weights, biases)
    log.close()

    scalars, histos = {}, {}
    for event in read_events(tmp_path):
        for v in event.summary.value:
            if v.HasField("histo"):
                histos[v.tag, event.step] = v.histo
            else:
                scalars[v.tag, event.step] = v.simple_value
    expected = {}
    for row in history:
        for key, tag in tensorboard.SCALARS.items():
            if row.get(key) is not None:
                expected[tag, row["epoch"]] = row[key]
        for layer, (gw, gb) in enumerate(zip(row["grad_norm_w"], row["grad_norm_b"]), start=1):
            expected[f"grad_norm/W{layer}", row["epoch"]] = gw
            expected[f"grad_norm/b{layer}", row["epoch"]] = gb
        for key, value in row["health"].items():
            if value is not None:
                expected[f"health/{key}", row["epoch"]] = value
    assert {"loss/val", "accuracy/test", "lr", "grad_norm/W2", "health/dead_units_1"} <= {tag for tag, _ in expected}
    assert scalars.keys() == expected.keys()
    for key, value in expected.items():
        assert scalars[key] == pytest.approx(value, rel=1e-6), key  # stored as float32

    assert {step for _, step in histos} == {1, 2, 4}
    for step in (1, 2, 4):
        for tag, a in [("weights/W1", weights[0]), ("weights/W2", weights[1]), ("biases/b1", biases[0]), ("biases/b2", biases[1])]:
            h = histos[tag, step]
            assert (h.num, h.min, h.max) == (a.size, pytest.approx(a.min()), pytest.approx(a.max()))
            assert h.sum == pytest.approx(a.sum(), rel=1e-4, abs=1e-3)
            assert sum(h.bucket) == a.size


def test_a_resumed_log_tells_tensorboard_to_drop_the_epochs_logged_again(tmp_path):
    pytest.importorskip("tensorboardX")
    from tensorboardX.proto.event_pb2 import SessionLog

    tensorboard.open_log(tmp_path, first_epoch=3).close()
    sessions = [(e.step, e.session_log.status) for e in read_events(tmp_path) if e.HasField("session_log")]
    assert sessions == [(3, SessionLog.START)]  # TensorBoard drops earlier files' events from step 3 on


def test_without_tensorboardx_one_warning_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails as if not installed
    with pytest.warns(UserWarning, match=r"pip install 'fastbp\[tensorboard\]'.*history\.jsonl only") as caught:
        assert tensorboard.open_log(tmp_path) is None
    assert len(caught) == 1 and list(tmp_path.iterdir()) == []


def test_fastbp_train_tensorboard_writes_what_history_holds(tmp_path):
    pytest.importorskip("tensorboardX")
    from fastbp import cli

    assert cli.main(["train", "--tensorboard", "--quiet", "--out", str(tmp_path), "--set", "train.epochs=3",
                     "--set", "output.plots=false", "--set", "output.histogram_every=2", "--set", 'train.backend="numpy"']) == 0
    (run,) = tmp_path.iterdir()
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    scalars, histos = {}, set()
    for event in read_events(run):
        for v in event.summary.value:
            if v.HasField("histo"):
                histos.add((v.tag, event.step))
            else:
                scalars[v.tag, event.step] = v.simple_value
    for row in history:
        assert scalars["loss/train", row["epoch"]] == pytest.approx(row["train_loss"], rel=1e-6)
        assert scalars["accuracy/val", row["epoch"]] == pytest.approx(row["val_accuracy"], rel=1e-6)
        assert scalars["grad_norm/W2", row["epoch"]] == pytest.approx(row["grad_norm_w"][1], rel=1e-6)
    assert {step for tag, step in histos if tag == "weights/W1"} == {1, 2}
