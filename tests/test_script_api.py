"""The README's training-loop snippet runs as printed: the public pieces of a
training script (fastbp.load_dataset, to_device, Network, optimizer, schedule,
Batches, evaluate, save_checkpoint, load_checkpoint) work together."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_training_loop_runs_and_learns(tmp_path):
    section = README.read_text().split("## A training loop of your own", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 25  # a script, not a framework
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", out.stdout).group(1))
    assert accuracy >= 95.0

    import fastbp

    ckpt = fastbp.load_checkpoint(tmp_path / "digits.npz")
    net = ckpt.make_network("numpy")
    assert net.sizes == [64, 100, 10] and np.array_equal(net.get_params(), ckpt.params)
    data, _ = fastbp.to_device(fastbp.load_dataset("digits"), "numpy")
    assert round(fastbp.evaluate(net, data["test"])[1] * 100, 2) == accuracy  # the saved weights are the trained ones
