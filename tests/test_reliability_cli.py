"""Reliability of the command line: bad configs, bad data files, backends, GPU
out-of-memory and a closed stdout each give one line and a documented exit code.
(tests/test_train.py::test_bad_inputs_give_one_line_and_exit_2 has more config cases.)"""

import gzip
import subprocess
import sys

import numpy as np
import pytest
from data_helpers import synthetic_arrays, write_idx_folder
from reliability_helpers import FAST, TINY, cli, expect_error, fastbp, sets  # noqa: F401 (cli is a fixture)

from fastbp import backend
from fastbp.data.locate import IDX_FILES
from fastbp.nn.network import Network
from fastbp.train import trainer

IMAGES, LABELS = IDX_FILES[:2]


# -- 1. config and command line ------------------------------------------------------------------
BAD_VALUES = [
    (["--set", "optimizer.lr=0"], ["optimizer.lr", "> 0"]),
    (["--set", "optimizer.lr=-0.5"], ["optimizer.lr", "> 0"]),
    (["--set", "optimizer.lr=nan"], ["optimizer.lr", "finite"]),
    (["--set", 'optimizer.lr="fast"'], ["optimizer.lr", "must be float"]),
    (["--set", "train.batch_size=-3"], ["train.batch_size", ">= 1"]),
    (["--set", "train.batch_size=0"], ["train.batch_size", ">= 1"]),
    (["--set", "train.batch_size=2000"], ["train.batch_size", "= 2000 is larger than the training set (1293 rows)"]),
    (["--set", "train.batch_size=1.5"], ["train.batch_size", "must be int"]),
    (["--set", "train.epochs=true"], ["train.epochs", "must be int"]),
    (["--set", "model.sizes=[]"], ["model.sizes", "at least two"]),
    (["--set", "model.sizes=[64]"], ["model.sizes", "at least two"]),
    (["--set", "model.sizes=[64,0,10]"], ["model.sizes", "positive"]),
    (["--set", "model.output=softmaxx"], ["model.output", "did you mean 'softmax'"]),
    (["--set", "model.hidden=softplus"], ["model.hidden", "one of sigmoid, tanh, relu, leaky_relu", "'softplus'"]),
    (["--set", "train.backend=cuda"], ["train.backend", "did you mean 'cupy'"]),
    (["--backend", "tpu"], ["--backend", "invalid choice: 'tpu'"]),
    (["--set", "trian.epochs=2"], ["'trian'", "did you mean 'train'"]),
    (["--set", "train.epoch=2"], ["train.epoch", "did you mean 'epochs'"]),
    (["--set", "train.lr=0.1"], ["unknown config key 'train.lr'", "did you mean 'optimizer.lr'"]),  # another section's key
    (["--set", "lr=0.1"], ["'lr=0.1'", "did you mean 'optimizer.lr'"]),
    (["--set", "data.validation=1.5"], ["data.validation", "fraction"]),
    (["--set", "data.validation=5000"], ["data.validation", "leaves no training data"]),
]


@pytest.mark.parametrize("args,needles", BAD_VALUES, ids=[" ".join(args) for args, _ in BAD_VALUES])
def test_bad_config_values_give_one_line_and_exit_2(cli, tmp_path, args, needles):
    expect_error(cli("train", "--out", tmp_path, *TINY, *args), 2, *needles)


@pytest.mark.parametrize(
    "text,needles",
    [
        ("[trian]\n", ["unknown config section 'trian'", "did you mean 'train'"]),  # even an empty one
        ("[train]\nepoch = 3\n", ["unknown config key 'train.epoch'", "did you mean 'epochs'"]),
        ("[train]\nlr = 0.1\n", ["unknown config key 'train.lr'", "did you mean 'optimizer.lr'"]),
        ("epochs = 3\n", ["'epochs' must be a table", "did you mean 'train.epochs'"]),
        ("[model]\nhidden = 3\n", ["model.hidden", "must be str"]),
        ("[model]\nsizes = []\n", ["model.sizes", "at least two"]),
        ("[optimizer]\nlr = -1\n", ["optimizer.lr", "> 0"]),
        ("[train]\nbackend = 'tpu'\n", ["train.backend", "one of numpy, cupy, auto"]),
    ],
)
def test_bad_config_files_give_one_line_and_exit_2(cli, tmp_path, text, needles):
    (tmp_path / "c.toml").write_text(text)
    expect_error(cli("train", tmp_path / "c.toml", "--out", tmp_path, *TINY), 2, f"fastbp: error: config file {tmp_path / 'c.toml'}: ", *needles)


def test_debug_shows_the_traceback():
    rc, _, err = fastbp("--debug", "train", "--set", "optimizer.lr=0")
    assert rc != 0 and "Traceback" in err and "ConfigError" in err and "optimizer.lr" in err


def test_unexpected_exception_is_one_line_exit_1_and_debug_raises_it(cli, tmp_path, monkeypatch):
    """A bug (an exception fastbp does not expect): one 'internal error' line, exit 1;
    with --debug the exception itself propagates (its traceback)."""
    def setup(self):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(trainer.Trainer, "setup", setup)
    expect_error(cli("train", "--out", tmp_path, *TINY), 1, "fastbp: internal error: ZeroDivisionError: a bug", "--debug")
    with pytest.raises(ZeroDivisionError):
        cli("--debug", "train", "--out", tmp_path, *TINY)


def test_ctrl_c_before_training_starts_exits_130_and_writes_nothing(cli, tmp_path, monkeypatch):
    """Ctrl-C while the data load (no signal handler of fastbp's yet): 'interrupted', 130."""
    def load(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "load_dataset", load)
    expect_error(cli("train", "--out", tmp_path / "runs", *TINY), 130, "fastbp: interrupted")
    assert not (tmp_path / "runs").exists()


# -- 2. data files through the CLI -------------------------------------------------------------------
def _idx_folder(tmp_path, arrays=None, suffix=".gz"):
    folder = tmp_path / "data"
    write_idx_folder(folder, arrays or synthetic_arrays(n_train=20), suffix=suffix)
    return folder


# Each makes bad data in tmp_path and returns (data.name to train on, the path the
# message must name, the other words it must hold).
def _wrong_magic(tmp_path):
    folder = _idx_folder(tmp_path)
    (folder / f"{IMAGES}.gz").write_bytes(gzip.compress(b"\x08\x03\0\0" + bytes(64)))
    return folder, folder / f"{IMAGES}.gz", ["not an IDX file", "expected 0x0000TTNN"]


def _truncated(tmp_path):
    folder = _idx_folder(tmp_path, suffix="")
    (folder / IMAGES).write_bytes((folder / IMAGES).read_bytes()[:1000])
    return folder, folder / IMAGES, ["truncated", "header says 20x28x28"]


def _corrupt_gzip(tmp_path):
    folder = _idx_folder(tmp_path)
    path = folder / f"{LABELS}.gz"
    path.write_bytes(path.read_bytes()[:-6])
    return folder, path, ["corrupt gzip data"]


def _count_mismatch(tmp_path):
    arrays = synthetic_arrays(n_train=20)
    arrays[LABELS] = arrays[LABELS][:15]
    folder = _idx_folder(tmp_path, arrays)
    return folder, folder / f"{LABELS}.gz", ["20 examples but 15 labels"]


def _wrong_image_size(tmp_path):  # 28x28 images, but the default network takes digits' 8x8
    folder = _idx_folder(tmp_path)
    return folder, folder, ["784 features per image", "input layer has 64"]


def _npz(tmp_path, X_train, y_train, needles):
    path = tmp_path / "data.npz"
    np.savez(path, X_train=X_train, y_train=y_train, X_test=np.ones((4, 64)), y_test=np.arange(4))
    return path, path, needles


def _label_out_of_range(tmp_path):
    y = np.arange(20) % 10
    y[3] = 12
    return _npz(tmp_path, np.ones((20, 64)), y, ["output layer has 10", "training label 12 is outside 0..9"])


def _non_finite_npz(tmp_path):
    X = np.ones((20, 64), np.float32)
    X[7, 3] = np.inf
    return _npz(tmp_path, X, np.arange(20) % 10, ["array X_train", "non-finite feature values", "row 7"])


def _empty_npz(tmp_path):
    return _npz(tmp_path, np.zeros((0, 64)), np.zeros(0, np.int64), ["array y_train", "empty data set"])


@pytest.mark.parametrize(
    "make",
    [_wrong_magic, _truncated, _corrupt_gzip, _count_mismatch, _label_out_of_range, _wrong_image_size, _non_finite_npz, _empty_npz],
    ids=lambda f: f.__name__.strip("_"),
)
def test_bad_data_files_name_the_file_and_exit_2(cli, tmp_path, make):
    data, named, needles = make(tmp_path)
    expect_error(cli("train", "--out", tmp_path, *TINY, "--set", f'data.name="{data}"'), 2, str(named), *needles)


@pytest.mark.parametrize("make", [_truncated, _non_finite_npz], ids=lambda f: f.__name__.strip("_"))
def test_bad_data_file_in_a_real_process(tmp_path, make):
    data, named, needles = make(tmp_path)
    expect_error(fastbp("train", "--out", tmp_path, *TINY, "--set", f'data.name="{data}"'), 2, f"fastbp: error: data file {named}", *needles)


# -- 7. backends and GPU memory --------------------------------------------------------------------
def test_cupy_backend_without_a_gpu_exits_2(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(backend, "cupy_status", lambda: (False, "cupy is not importable (ModuleNotFoundError)"))
    monkeypatch.setattr(backend, "_cache", {})
    expect_error(cli("train", "--backend", "cupy", "--out", tmp_path, *TINY), 2, "backend 'cupy' cannot be used", "not importable", "--backend numpy")


@pytest.mark.parametrize(
    "reason,warns",
    [("cupy found no CUDA device", True), ("cupy is not importable (ModuleNotFoundError)", False)],
    ids=["installed-but-unusable", "absent"],
)
def test_auto_backend_falls_back_to_numpy(tmp_path, reason, warns):
    patch = f"import fastbp.backend; fastbp.backend.cupy_status = lambda: (False, {reason!r})"
    rc, out, err = fastbp("train", "--backend", "auto", "--json", "--out", tmp_path, *TINY, before=patch)
    assert rc == 0 and '"backend": "numpy"' in out.splitlines()[-1], err
    assert err == (f"fastbp: warning: backend auto: {reason}; using numpy\n" if warns else "")


class OutOfMemoryError(MemoryError):
    """cupy.cuda.memory.OutOfMemoryError, as cupy defines it (fastbp knows it only by name)."""

    def __init__(self, size, total):
        super().__init__(f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes).")


@pytest.mark.parametrize("where", ["backward", "forward"])
def test_gpu_out_of_memory_names_the_batch_size_and_the_memory(cli, tmp_path, monkeypatch, where):
    def fail(self, *args, **kwargs):
        raise OutOfMemoryError(1_048_576, 80_000_000_000)

    monkeypatch.setattr(Network, where, fail)
    line = expect_error(cli("train", "--out", tmp_path, *TINY, "--set", "train.batch_size=16"), 1, "out of memory",
                        "train.batch_size = 16", "allocating 1,048,576 bytes", "smaller batch size")
    assert line.startswith("fastbp: error: GPU out of memory")


# -- 9. stdout closed early ---------------------------------------------------------------------------
def test_closed_stdout_exits_141_quietly(tmp_path):
    """`fastbp train --json | head -0`: the reader is gone before the first line. Exit as a
    program killed by SIGPIPE would (128 + 13 = 141, what `set -o pipefail` reports for
    `yes | head -1`): the run did not finish, so 0 would claim too much, and a traceback
    or an 'internal error' would be noise about the reader's choice."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastbp.cli", "train", "--json", "--out", str(tmp_path), *sets(*FAST)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == ""
