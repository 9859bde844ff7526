"""The command line: bad data files, backends, out-of-memory, bugs, Ctrl-C and
a closed stdout each give one line and a documented exit code. (Bad configs:
test_config.py; checkpoints: test_checkpoint.py; divergence: test_divergence.py.)"""

import gzip
import subprocess
import sys

import numpy as np
import pytest
from cli_helpers import FAST, TINY, cli, expect_error, fastbp, sets  # noqa: F401 (cli is a fixture)
from data_helpers import synthetic_arrays, write_idx_folder

from fastbp import backend
from fastbp import cli as fastbp_cli
from fastbp.data.locate import IDX_FILES
from fastbp.nn.network import Network
from fastbp.train import build

IMAGES, LABELS = IDX_FILES[:2]


def test_unexpected_exception_is_one_line_exit_1_and_debug_raises_it(cli, tmp_path, monkeypatch):
    """A bug (an exception fastbp does not expect): one 'internal error' line, exit 1;
    with --debug the exception itself propagates (its traceback)."""
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(build.Network, "forward", broken)
    expect_error(cli("train", "--out", tmp_path, *TINY), 1, "fastbp: internal error: ZeroDivisionError: a bug", "--debug")
    with pytest.raises(ZeroDivisionError, match="a bug"):
        cli("--debug", "train", "--out", tmp_path, *TINY)


def test_ctrl_c_before_training_starts_exits_130_and_writes_nothing(cli, tmp_path, monkeypatch):
    """Ctrl-C while the data load (no signal handler of fastbp's yet): 'interrupted', 130."""
    def load(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "load_dataset", load)
    expect_error(cli("train", "--out", tmp_path / "runs", *TINY), 130, "fastbp: interrupted")
    assert not (tmp_path / "runs").exists()


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


def _more_classes_than_outputs(tmp_path):
    y = np.arange(20) % 10
    y[3] = 12
    return _npz(tmp_path, np.ones((20, 64)), y, ["has 11 classes (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12)",
                                                 "output layer has 10; make the last of model.sizes 11"])


def _non_finite_npz(tmp_path):
    X = np.ones((20, 64), np.float32)
    X[7, 3] = np.inf
    return _npz(tmp_path, X, np.arange(20) % 10, ["array X_train", "non-finite feature values", "row 7"])


def _empty_npz(tmp_path):
    return _npz(tmp_path, np.zeros((0, 64)), np.zeros(0, np.int64), ["array y_train", "empty data set"])


@pytest.mark.parametrize(
    "make",
    [_wrong_magic, _truncated, _corrupt_gzip, _count_mismatch, _more_classes_than_outputs, _wrong_image_size, _non_finite_npz, _empty_npz],
    ids=lambda f: f.__name__.strip("_"),
)
def test_bad_data_files_name_the_file_and_exit_2(cli, tmp_path, make):
    data, named, needles = make(tmp_path)
    expect_error(cli("train", "--out", tmp_path, *TINY, "--set", f'data.name="{data}"'), 2, str(named), *needles)


@pytest.mark.parametrize("make", [_truncated, _non_finite_npz], ids=lambda f: f.__name__.strip("_"))
def test_bad_data_file_in_a_real_process(tmp_path, make):
    data, named, needles = make(tmp_path)
    expect_error(fastbp("train", "--out", tmp_path, *TINY, "--set", f'data.name="{data}"'), 2, f"fastbp: error: data file {named}", *needles)


def test_cupy_backend_without_a_gpu_exits_2(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(backend, "cupy_status", lambda: (False, "cupy is not installed"))
    monkeypatch.setattr(backend, "_cache", {})
    expect_error(cli("train", "--backend", "cupy", "--out", tmp_path, *TINY), 2, "backend 'cupy' cannot be used: cupy is not installed",
                 "--backend numpy")


def test_cupy_status_tells_a_missing_cupy_from_one_that_does_not_load(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    monkeypatch.setitem(sys.modules, "cupy", None)  # as if not installed
    assert backend.cupy_status() == (False, "cupy is not installed")
    (tmp_path / "cupy").mkdir()  # a cupy that cannot load its CUDA runtime
    (tmp_path / "cupy" / "__init__.py").write_text("raise ImportError('libcudart.so.13: cannot open shared object file')\n")
    monkeypatch.delitem(sys.modules, "cupy")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert backend.cupy_status() == (False, "cupy is not importable (ImportError: libcudart.so.13: cannot open shared object file)")


@pytest.mark.parametrize(
    "reason,warns",
    [("cupy found no CUDA device", True), ("cupy is not importable (ImportError: libcudart.so.13: cannot open shared "
                                           "object file)", True), ("cupy is not installed", False)],
    ids=["installed-but-unusable", "installed-but-broken", "absent"],
)
def test_auto_backend_falls_back_to_numpy(tmp_path, reason, warns):
    patch = f"import fastbp.backend; fastbp.backend.cupy_status = lambda: (False, {reason!r})"
    rc, out, err = fastbp("train", "--backend", "auto", "--json", "--out", tmp_path, *TINY, before=patch)
    assert rc == 0 and '"backend": "numpy"' in out.splitlines()[-1], err
    assert err == (f"fastbp: warning: backend auto: {reason}; using numpy\n" if warns else "")


class OutOfMemoryError(MemoryError):
    """Like cupy.cuda.memory.OutOfMemoryError; a MemoryError is the numpy backend's own."""

    def __init__(self, size, total):
        super().__init__(f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes).")


@pytest.mark.usefixtures("numpy_reference")  # it makes Network.forward/backward fail: no compiled step
@pytest.mark.parametrize("where", ["backward", "forward"])
def test_out_of_memory_names_the_batch_size_and_the_memory(cli, tmp_path, monkeypatch, where):
    def fail(self, *args, **kwargs):
        raise OutOfMemoryError(1_048_576, 80_000_000_000)

    monkeypatch.setattr(Network, where, fail)
    line = expect_error(cli("train", "--out", tmp_path, *TINY, "--set", "train.batch_size=16"), 1, "out of host memory",
                        "train.batch_size = 16", "allocating 1,048,576 bytes", "smaller batch size")
    assert line.startswith("fastbp: error: out of host memory")


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




# -- one way to apply an option, one default checkpoint ------------------------------------------------
def test_every_flag_is_a_config_override_applied_after_set():
    """train, compare and eval turn their flags into config overrides by one function; a flag wins
    over a --set of the same key."""
    from fastbp.train import config

    parse = fastbp_cli.build_parser().parse_args
    args = parse(["train", "--set", 'train.backend="cupy"', "--backend", "numpy", "--data-dir", "d d",
                  "--out", "o", "--tensorboard"])
    assert fastbp_cli.overrides(args) == ['train.backend="cupy"', 'train.backend="numpy"', 'data.data_dir="d d"',
                                         'output.dir="o"', "output.tensorboard=true"]
    cfg = config.load(None, fastbp_cli.overrides(args))
    assert (cfg.train.backend, cfg.data.data_dir, cfg.output.dir, cfg.output.tensorboard) == ("numpy", "d d", "o", True)
    assert fastbp_cli.overrides(parse(["train"])) == []
    assert fastbp_cli.overrides(parse(["compare", "--data-dir", "x"])) == ['data.data_dir="x"']
    assert fastbp_cli.overrides(parse(["eval", "RUN", "--backend", "numpy", "--data-dir", "x"])) == [
        'train.backend="numpy"', 'data.data_dir="x"']


@pytest.mark.parametrize("command", ["eval", "export", "predict"])
def test_eval_export_and_predict_share_one_documented_default_checkpoint(cli, command):
    rc, out, _ = cli(command, "--help")
    assert rc == 0
    assert "best.npz, the best epoch's weights (the default; last.npz when the run kept none)" in " ".join(out.split())
    args = {"eval": ["eval", "R"], "export": ["export", "R", "-o", "x.onnx"], "predict": ["predict", "R", "f.npy"]}[command]
    assert fastbp_cli.build_parser().parse_args(args).checkpoint == "best"


def test_eval_reads_best_by_default_last_on_request_and_last_when_there_is_no_best(cli, digits_run, tmp_path):
    import json
    import shutil

    def evaluated(target, *args):
        rc, out, err = cli("eval", target, "--json", *args)
        assert rc == 0, err
        return json.loads(out)

    best = evaluated(digits_run)
    assert best["checkpoint"] == str(digits_run / "best.npz") and 0.5 < best["test_accuracy"] <= 1
    assert evaluated(digits_run, "--checkpoint", "last")["checkpoint"] == str(digits_run / "last.npz")
    shutil.copy(digits_run / "last.npz", tmp_path / "last.npz")  # a run stopped before it kept a best
    assert evaluated(tmp_path)["checkpoint"] == str(tmp_path / "last.npz")


# -- where the data are: a path that points nowhere is said, not passed over ---------------------------
@pytest.mark.parametrize("kind", ["missing", "file"])
def test_data_dir_that_is_not_a_folder_is_one_line(cli, tmp_path, digits_run, kind):
    where = tmp_path / "data"
    if kind == "file":
        where.write_text("not a folder")
    problem = "is a file, not a folder" if kind == "file" else "no such folder"
    needles = (f"data directory {where} (--data-dir or data.data_dir): {problem}; give the folder that holds the data",)
    expect_error(cli("train", "mnist", "--data-dir", where, "--out", tmp_path / "r", *TINY), 2, *needles)
    expect_error(cli("train", "--data-dir", where, "--out", tmp_path / "r", *TINY), 2, *needles)  # digits: unused, still said
    expect_error(cli("train", "--set", f'data.data_dir="{where}"', "--out", tmp_path / "r", *TINY), 2, *needles)
    expect_error(cli("eval", digits_run, "--data-dir", where), 2, *needles)
    expect_error(cli("data", "list", "--data-dir", where), 2, *needles)
    assert not (tmp_path / "r").exists()


def test_fastbp_data_that_is_not_a_folder_is_said_where_it_is_used(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "nowhere"))
    line = f"$FASTBP_DATA={tmp_path / 'nowhere'}: no such folder; point it at a folder holding mnist/ or fashion-mnist/, or unset it"
    expect_error(cli("train", "mnist", "--out", tmp_path / "r", *TINY), 2, line)
    expect_error(cli("data", "list"), 2, line)
    rc, _, err = cli("train", "--out", tmp_path / "r", *TINY)  # digits is built in: $FASTBP_DATA is not used
    assert rc == 0, err
