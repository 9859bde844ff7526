"""Training on the real MNIST files (found through FASTBP_DATA; fails in CI when missing)."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.mnist


def test_mnist_trains_from_the_cli(real_data_dir, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "fastbp.cli", "train", "mnist", "--data-dir", str(real_data_dir / "mnist"),
         "--out", str(tmp_path), "--json", "--quiet", "--set", "model.sizes=[784,100,10]",
         "--set", "train.epochs=2", "--set", 'optimizer.name="adam"', "--set", "optimizer.lr=0.001", "--set", "train.batch_size=32", "--set", 'schedule.name="constant"', "--set", "data.train_limit=20000", "--set", "data.validation=0", "--set", "output.plots=false"],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout.strip().splitlines()[-1])
    assert s["dataset"]["name"] == "mnist" and "mnist" in s["dataset"]["source"]
    assert s["test_accuracy"] >= 0.93  # scikit-learn's MLPClassifier, same recipe: 94.7%
    assert sum(sum(row) for row in s["confusion_matrix"]) == 10000


def test_nielsen_network_config_learns(real_data_dir, tmp_path):
    """network.py's recipe (784-30-10 sigmoid + quadratic, η = 3.0, batch 10), one epoch."""
    from fastbp.train import config, trainer

    cfg = config.load("configs/nielsen-network.toml", ["train.epochs=1", f'output.dir="{tmp_path}"', 'train.backend="numpy"'])
    s = trainer.Trainer(cfg, quiet=True, write=False).run()
    assert s["test_accuracy"] >= 0.88  # the book: ~90% after the first epoch
