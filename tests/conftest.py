import json
import os
from pathlib import Path

import pytest

REAL_DATASETS = ("mnist", "fashion-mnist")

if os.environ.get("FASTBP_EMULATE_GPU") == "1":  # the GPU tests' logic on numpy (tests/gpu_emulation.py)
    import fastbp.backend
    from gpu_emulation import EmulatedCupy

    fastbp.backend._cache["cupy"] = EmulatedCupy()
    fastbp.backend.cupy_usable = lambda: True


@pytest.fixture
def numpy_reference(monkeypatch):
    """The numpy backend without jit.py's compiled step and updates: the readable
    reference, for tests of what it computes bit for bit or of the calls it makes."""
    from fastbp.backend import get_backend

    monkeypatch.setattr(get_backend("numpy"), "jit", False)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The root ($FASTBP_DATA) holding the real MNIST and Fashion-MNIST. Skips the test when they are
    missing, but fails it under CI (CI set and not 'false'/'0'), where they must be there."""
    from fastbp.data.locate import idx_files

    root = os.environ.get("FASTBP_DATA")
    if root and all(idx_files(Path(root) / name) for name in REAL_DATASETS):
        return Path(root)
    why = f"real data missing: FASTBP_DATA={root!r} does not hold {' and '.join(REAL_DATASETS)}"
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(why)
    pytest.skip(why)


# -- trained runs shared by tests/test_export.py and tests/test_predict.py ---------------------------
RUN_FAST = ["--quiet", "--set", "output.plots=false", "--set", "output.grad_norms=false",
            "--set", "train.threads=1", "--set", 'train.backend="numpy"']


def _train_run(out, *args):
    """Train through the CLI, in this process; the run directory it made."""
    from fastbp import cli

    assert cli.main(["train", *args, "--out", str(out), *RUN_FAST]) == 0
    (run,) = Path(out).iterdir()
    return run


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A run directory of the built-in digits config (64-256-10 relu, softmax), 10 epochs: about 1 s."""
    return _train_run(tmp_path_factory.mktemp("digits-run"), "--set", "train.epochs=10")


@pytest.fixture(scope="session")
def pixels_run(tmp_path_factory):
    """A run on random 28x28 uint8 images (an MNIST-shaped net, 784-16-10, that learnt nothing):
    for what needs MNIST's input shape but not a trained digit recogniser. Well under a second."""
    from data_helpers import synthetic_arrays, write_idx_folder

    folder = tmp_path_factory.mktemp("pixels-data")
    arrays = write_idx_folder(folder, synthetic_arrays(n_train=80, n_test=10))
    assert max(a.max() for stem, a in arrays.items() if "labels" in stem) == 9  # 10 classes, as the output layer
    return _train_run(tmp_path_factory.mktemp("pixels-run"), "--set", f"data.name={json.dumps(str(folder))}",
                      "--set", "model.sizes=[784,16,10]", "--set", "train.epochs=1", "--set", "train.batch_size=8")


@pytest.fixture(scope="session")
def mnist_run(tmp_path_factory, real_data_dir):
    """A small MNIST run (784-128-10 relu, softmax; 3 epochs on 9,000 images, about 94.5%): a few seconds."""
    return _train_run(tmp_path_factory.mktemp("mnist-run"), "mnist", "--data-dir", str(real_data_dir / "mnist"),
                      "--set", "model.sizes=[784,128,10]", "--set", "model.dropout=0.0",
                      "--set", "train.epochs=3", "--set", "train.batch_size=32", "--set", "data.train_limit=10000", "--set", "data.validation=1000")
