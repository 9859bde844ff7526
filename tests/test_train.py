"""The trainer end to end on digits: CLI, run directory, checkpoints, resume."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastbp.errors import CheckpointError, ConfigError, DataError
from fastbp.nn import optim
from fastbp.data import datasets
from fastbp.train import checkpoint, config, trainer

ROOT = Path(__file__).resolve().parent.parent


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


def test_digits_toml_is_the_default():
    assert config.load(ROOT / "configs" / "digits.toml") == config.load(None)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_config_is_valid(path):
    cfg = config.load(path)
    assert cfg["model"]["sizes"][-1] == 10


def test_resume_is_bit_identical(tmp_path):
    """4 epochs straight == 2 epochs + resume for 2 more (CPU)."""
    sec = {"train": {"epochs": 4}, "schedule": {"name": "constant"}, "model": {"dropout": 0.2}}
    straight = trainer.Trainer(small_cfg(tmp_path, **sec), quiet=True)
    straight.run()
    first = trainer.Trainer(small_cfg(tmp_path, train={"epochs": 2}, schedule={"name": "constant"}, model={"dropout": 0.2}), quiet=True)
    first.run()
    ckpt = checkpoint.load(first.run_dir)
    cfg = config.merge(config.from_json(json.dumps(ckpt["config"])), {"train": {"epochs": 4}})
    resumed = trainer.Trainer(cfg, run_dir=first.run_dir, resume=ckpt, quiet=True)
    resumed.run()
    assert np.array_equal(straight.net.get_params(), resumed.net.get_params())
    assert len(resumed.history) == 4


def test_interrupt_mid_epoch_saves_and_resume_matches(tmp_path, monkeypatch):
    """SIGINT in the middle of epoch 2: checkpoint saved, Interrupted raised,
    and resuming ends with exactly the weights of an uninterrupted run."""
    sec = {"train": {"epochs": 3}, "schedule": {"name": "cosine"}, "model": {"dropout": 0.1}, "data": {"shift": 1}}
    straight = trainer.Trainer(small_cfg(tmp_path, **sec), quiet=True)
    straight.run()

    real_step, calls = optim.Momentum.step, {"n": 0}

    def step(self, lr):
        real_step(self, lr)
        calls["n"] += 1
        if calls["n"] == 50:  # epoch 2 of 41 batches per epoch
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(optim.Momentum, "step", step)
    t = trainer.Trainer(small_cfg(tmp_path, **sec), quiet=True)
    with pytest.raises(trainer.Interrupted, match="resume with: fastbp train --resume"):
        t.run()
    monkeypatch.setattr(optim.Momentum, "step", real_step)
    ckpt = checkpoint.load(t.run_dir / "last.npz")
    assert ckpt["counters"]["epoch"] == 1 and ckpt["counters"]["batch"] == 50 - 41
    resumed = trainer.Trainer(config.from_json(json.dumps(ckpt["config"])), run_dir=t.run_dir, resume=ckpt, quiet=True)
    resumed.run()
    assert np.array_equal(straight.net.get_params(), resumed.net.get_params())


def test_cli_resume_and_eval(tmp_path):
    out = fastbp("train", "--quiet", "--out", str(tmp_path), "--set", "train.epochs=2", "--set", "output.plots=false")
    assert out.returncode == 0, out.stderr
    run = Path(out.stdout.split("run directory:")[1].strip())
    out = fastbp("train", "--resume", str(run), "--set", "train.epochs=3", "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["epochs_run"] == 3
    out = fastbp("eval", str(run), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["test_accuracy"] == pytest.approx(summary["test_accuracy"])


def test_early_stopping_stops_and_restores_best(tmp_path):
    cfg = small_cfg(tmp_path, train={"epochs": 200, "early_stopping": True, "patience": 3, "monitor": "val_accuracy"})
    t = trainer.Trainer(cfg, quiet=True)
    summary = t.run()
    assert summary["stopped_early"] and summary["epochs_run"] < 200
    assert summary["epochs_run"] - summary["best_epoch"] == 3


def test_divergence_is_reported_with_epoch_and_batch(tmp_path):
    cfg = small_cfg(tmp_path, optimizer={"name": "sgd", "lr": 1e6}, model={"hidden": "relu"}, train={"epochs": 3})
    t = trainer.Trainer(cfg, quiet=True)
    with pytest.raises(Exception) as info:
        t.run()
    msg = str(info.value)
    assert "non-finite loss at epoch 1, batch" in msg and "lower learning rate" in msg
    assert info.value.exit_code == 1


def test_bad_inputs_give_one_line_and_exit_2(tmp_path):
    cases = [
        (["train", "--set", "optimizer.lrr=0.1"], "did you mean 'lr'"),
        (["train", "--set", "train.batch_size=0"], "train.batch_size"),
        (["train", "--set", "train.batch_size=100000"], "larger than the training set"),
        (["train", "--set", "model.sizes=[]"], "model.sizes"),
        (["train", "--set", "model.hidden=softplus"], "model.hidden"),
        (["train", "--set", "model.sizes=[784,10]"], "64 features"),
        (["train", "--set", "train.backend=tpu"], "train.backend"),
        (["train", "--set", "train.epochs=ten"], "train.epochs"),
        (["train", "nonexistent-config"], "no such file"),
        (["train", "--resume", str(tmp_path)], "no last.npz"),
        (["eval", str(tmp_path / "nothing.npz")], "not found"),
    ]
    for args, needle in cases:
        out = fastbp(*args, "--out", str(tmp_path)) if args[0] == "train" and "--resume" not in args else fastbp(*args)
        assert out.returncode == 2, (args, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in out.stderr, (args, out.stderr)


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[optimizer]\nlr = 'fast'\n")
    with pytest.raises(ConfigError, match="optimizer.lr"):
        config.load(bad)
    bad.write_text("[optimiser]\nlr = 0.1\n")
    with pytest.raises(ConfigError, match="did you mean 'optimizer'"):
        config.load(bad)
    bad.write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(bad)
    with pytest.raises(ConfigError, match="does not pair"):
        config.load(None, ['model.cost="cross_entropy"'])


def test_checkpoint_refuses_foreign_and_mismatched_files(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, params=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a fastbp checkpoint"):
        checkpoint.load(foreign)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable"):
        checkpoint.load(text)
    t = trainer.Trainer(small_cfg(tmp_path, train={"epochs": 1}), quiet=True)
    t.run()
    good = t.run_dir / "last.npz"
    data = good.read_bytes()
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        checkpoint.load(trunc)
    ckpt = checkpoint.load(good)
    other = config.load(None, ["model.sizes=[64,32,10]"])
    t2 = trainer.Trainer(other, write=False, quiet=True).setup()
    with pytest.raises(CheckpointError, match="model.sizes"):
        checkpoint.check_compatible(ckpt, t2.net.config())


def test_data_errors_are_data_errors(tmp_path):
    with pytest.raises(DataError):
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
    with pytest.raises(ConfigError, match="data.shift"):
        trainer.Trainer(cfg, dataset=ds, write=False, quiet=True).setup()
