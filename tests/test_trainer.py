"""A training run end to end on digits: the run directory and its files,
early stopping, augmentation, and data that does not fit."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastbp.data import datasets
from fastbp.errors import ConfigError, DataError
from fastbp.train import config, trainer


def fastbp(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fastbp.cli", *args], capture_output=True, text=True, cwd=cwd)


def small_cfg(tmp_path, **sections):
    cfg = config.load(None, ['train.backend="numpy"', f'output.dir="{tmp_path}"', "output.plots=false"])
    return config.validate(config.merge(cfg, sections))


def test_default_train_reaches_97_percent_on_digits(tmp_path):
    out = fastbp("train", "--json", "--quiet", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["test_accuracy"] >= 0.97
    assert summary["dataset"]["name"] == "digits" and summary["backend"]["backend"] == "numpy"
    assert len(summary["epoch_seconds"]) == 60
    run = Path(summary["run_dir"])
    for name in ("summary.json", "history.jsonl", "last.npz", "best.npz", "config.toml"):
        assert (run / name).exists(), name
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert len(history) == 60 and history[-1]["train_loss"] < history[0]["train_loss"]
    assert len(history[0]["grad_norm_w"]) == 2
    cm = np.array(summary["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 360 and np.trace(cm) / 360 == pytest.approx(summary["test_accuracy"])
    assert len(summary["precision"]) == 10 and len(summary["recall"]) == 10


def test_early_stopping_stops_and_restores_best(tmp_path):
    cfg = small_cfg(tmp_path, train={"epochs": 200, "early_stopping": True, "patience": 3, "monitor": "val_accuracy"})
    t = trainer.Trainer(cfg, quiet=True)
    summary = t.run()
    assert summary["stopped_early"] and summary["epochs_run"] < 200
    assert summary["epochs_run"] - summary["best_epoch"] == 3
    best = t.state.history[summary["best_epoch"] - 1]["val_accuracy"]
    assert summary["val_accuracy"] <= best  # the last epoch's figure; the weights are the best epoch's
    from fastbp.train import loop

    assert loop.evaluate(t.setup.net, t.setup.data["val"])[1] == pytest.approx(best)


def test_data_errors_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="missing.npz: not found"):
        trainer.Trainer(small_cfg(tmp_path, data={"name": str(tmp_path / "missing.npz")}), quiet=True).run()


def test_random_shift_moves_each_image_inside_its_zero_border():
    """data.shift: every image is its original moved by (dy, dx) in [-s, s]²,
    the uncovered border 0; the shifts differ between images and epochs."""
    from fastbp.backend import get_backend
    from fastbp.train.augment import RandomShift

    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, (64, 5 * 4)).astype(np.uint8)  # 5x4 images without a 0 pixel
    shift = RandomShift(get_backend("numpy"), (5, 4), 2, 64, np.uint8)
    seen, offsets = set(), []
    for epoch in range(2):
        shift.new_epoch(0, epoch, 64)
        offsets.append(shift.offsets.copy())
        out = images[10:40].copy()
        shift(out, 10)
        for k, img in enumerate(out):
            dy, dx = divmod(int(shift.offsets[10 + k]), shift.W)
            canvas = np.zeros((9, 8), np.uint8)
            canvas[2:7, 2:6] = images[10 + k].reshape(5, 4)
            assert np.array_equal(img.reshape(5, 4), canvas[dy : dy + 5, dx : dx + 4]), (k, dy, dx)
            seen.add((epoch, k, dy - 2, dx - 2))
    moves = {(dy, dx) for _, _, dy, dx in seen}
    assert moves <= {(y, x) for y in range(-2, 3) for x in range(-2, 3)} and len(moves) > 10
    assert not np.array_equal(offsets[0], offsets[1])  # new shifts each epoch


def test_shift_needs_images(tmp_path):
    ds = datasets.Dataset("flat", np.zeros((40, 6), np.float32), np.arange(40) % 2, np.zeros((10, 6), np.float32),
                          np.arange(10) % 2, scale=1.0, image_shape=None, n_classes=2)
    cfg = small_cfg(tmp_path, data={"shift": 1, "validation": 0}, model={"sizes": [6, 4, 2]}, train={"batch_size": 8})
    with pytest.raises(ConfigError, match="config key 'data.shift' = 1: shift = 1 needs 2-D images"):
        trainer.Trainer(cfg, dataset=ds, write=False, quiet=True).run()


