"""Stopping and resuming: a run stopped by a signal (or interrupted by the
caller) saves last.npz, and resuming it ends with exactly the weights of an
uninterrupted run (dropout, shifted images and schedules included)."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import FAST, fastbp, one_line, sets

from fastbp.backend import cupy_usable
from fastbp.errors import Interrupted
from fastbp.nn import optim
from fastbp.train import checkpoint, config, trainer


def small_cfg(tmp_path, *overrides):
    return config.load(None, [*FAST, f'output.dir="{tmp_path}"', *overrides])


def test_resume_is_bit_identical(tmp_path):
    """4 epochs straight == 2 epochs + resume for 2 more."""
    sets_ = ['schedule.name="constant"', "model.dropout=0.2"]
    straight = trainer.Trainer(small_cfg(tmp_path, "train.epochs=4", *sets_), quiet=True)
    straight.run()
    first = trainer.Trainer(small_cfg(tmp_path, "train.epochs=2", *sets_), quiet=True)
    first.run()
    ckpt = checkpoint.load(first.run_dir.path)
    resumed = trainer.Trainer(config.from_dict(ckpt.config.to_dict(), ["train.epochs=4"]), resume=ckpt, quiet=True)
    resumed.run()
    assert np.array_equal(straight.setup.net.get_params(), resumed.setup.net.get_params())
    assert len(resumed.state.history) == 4 and resumed.run_dir.path == first.run_dir.path


GPU = pytest.mark.skipif(not cupy_usable(), reason="no usable CUDA device / cupy")


@pytest.mark.parametrize("backend", ["numpy", pytest.param("cupy", marks=[pytest.mark.gpu, GPU])])
def test_interrupt_mid_epoch_saves_and_resume_matches(tmp_path, monkeypatch, backend):
    """SIGINT in the middle of epoch 2: checkpoint saved, Interrupted raised,
    and resuming ends with exactly the weights of an uninterrupted run: the
    dropout masks and image shifts of the rest of the epoch are the same."""
    sets_ = ["train.epochs=3", 'schedule.name="cosine"', "model.dropout=0.1", "data.shift=1", f'train.backend="{backend}"']
    straight = trainer.Trainer(small_cfg(tmp_path, *sets_), quiet=True)
    straight.run()

    real_step, calls = optim.Momentum.step, {"n": 0}

    def step(self, lr):
        real_step(self, lr)
        calls["n"] += 1
        if calls["n"] == 50:  # in epoch 2 of 41 batches per epoch
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(optim.Momentum, "step", step)
    t = trainer.Trainer(small_cfg(tmp_path, *sets_), quiet=True)
    with pytest.raises(Interrupted, match="SIGINT: stopped at epoch 2, batch 9; checkpoint saved; resume with: fastbp train --resume"):
        t.run()
    monkeypatch.setattr(optim.Momentum, "step", real_step)
    ckpt = checkpoint.load(t.run_dir.path / "last.npz")
    assert ckpt.state.epoch == 1 and ckpt.state.batch == 50 - 41 and ckpt.state.step == 50
    resumed = trainer.Trainer(ckpt.config, resume=ckpt, quiet=True)
    resumed.run()
    assert np.array_equal(straight.setup.net.get_params(), resumed.setup.net.get_params())


@pytest.mark.parametrize("sig,schedule", [(signal.SIGINT, "constant"), (signal.SIGTERM, "cosine")], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_and_resume_equals_an_uninterrupted_run(tmp_path, sig, schedule):
    """The real thing: a `fastbp train` process gets the signal."""
    overrides = ["train.epochs=15", f'schedule.name="{schedule}"', "model.dropout=0.1"]
    args = ["train", "--out", str(tmp_path), *sets(*FAST, *overrides)]
    proc = subprocess.Popen([sys.executable, "-m", "fastbp.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("epoch"):
            break
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    line = one_line(err, sig.name, "checkpoint saved", "resume with: fastbp train --resume ")
    run_dir = line.split("--resume ")[1]
    stopped = checkpoint.load(f"{run_dir}/last.npz").state
    assert 1 <= stopped.epoch < 15 and "test accuracy" not in out

    rc, _, err = fastbp("train", "--resume", run_dir, "--quiet")
    assert rc == 0, err
    resumed = checkpoint.load(run_dir)
    assert resumed.state.epoch == 15 and len(resumed.state.history) == 15
    straight = trainer.Trainer(config.load(None, [*FAST, *overrides]), write=False, quiet=True)
    straight.run()
    assert np.array_equal(resumed.params, straight.setup.net.get_params())


def test_cli_resume_with_more_epochs_then_eval(tmp_path):
    rc, out, err = fastbp("train", "--quiet", "--out", tmp_path, *sets("train.epochs=2", *FAST))
    assert rc == 0, err
    run = Path(out.split("run directory:")[1].strip())
    rc, out, err = fastbp("train", "--resume", run, "--set", "train.epochs=3", "--json", "--quiet")
    assert rc == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["epochs_run"] == 3
    rc, out, err = fastbp("eval", run, "--json")
    assert rc == 0, err
    assert json.loads(out)["test_accuracy"] == pytest.approx(summary["test_accuracy"])


def test_resume_takes_no_config(tmp_path):
    rc, _, err = fastbp("train", "mnist", "--resume", tmp_path)
    assert rc == 2 and one_line(err, "--resume takes its config from the checkpoint; give no CONFIG with it")
