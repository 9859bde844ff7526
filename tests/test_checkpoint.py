"""Checkpoints and the run's files: a save round-trips; damaged, foreign,
mismatched and pickled files are refused with one line; saves are atomic under
SIGKILL; a full or read-only disk is one line and keeps the last good checkpoint."""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import FAST, TINY, cli, expect_error  # noqa: F401 (cli is a fixture)

from fastbp import files
from fastbp.errors import CheckpointError
from fastbp.train import checkpoint, config, trainer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished one-epoch digits run (tests copy its files, never change them)."""
    out = tmp_path_factory.mktemp("runs")
    cfg = config.load(None, ["train.epochs=1", f'output.dir="{out}"', *FAST])
    t = trainer.Trainer(cfg, quiet=True)
    t.run()
    return t.run_dir.path


def _crafted(tmp_path, run_dir, **changes):
    """A copy of run_dir/last.npz with some arrays replaced, in a run directory of its own."""
    with np.load(run_dir / "last.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    folder = tmp_path / "crafted"
    folder.mkdir()
    np.savez(folder / "last.npz", **arrays)
    return folder / "last.npz"


def _truncated(tmp_path, run_dir):
    path = tmp_path / "last.npz"
    data = (run_dir / "last.npz").read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path, ["not a readable .npz checkpoint"]


def _foreign(tmp_path, run_dir):
    path = tmp_path / "last.npz"
    np.savez(path, weights=np.zeros(3))
    return path, ["not a fastbp checkpoint"]


def _npy(tmp_path, run_dir):  # one array, not an archive
    path = tmp_path / "last.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    return path, ["not a readable .npz checkpoint"]


def _text(tmp_path, run_dir):  # numpy would call it pickled data and suggest loading it "unsafely"
    path = tmp_path / "last.npz"
    path.write_bytes((run_dir / "config.toml").read_bytes())
    return path, ["not a readable .npz checkpoint"]


def _network_without_sizes(tmp_path, run_dir):
    return _crafted(tmp_path, run_dir, network=np.array(json.dumps({"hidden": "relu"}))), ["damaged", "sizes"]


def _params_do_not_fit(tmp_path, run_dir):
    with np.load(run_dir / "last.npz") as z:
        params = z["params"][:-5]
    return _crafted(tmp_path, run_dir, params=params), ["parameters", "needs"]


def _nan_params(tmp_path, run_dir):
    with np.load(run_dir / "last.npz") as z:
        params = np.full_like(z["params"], np.nan)
    return _crafted(tmp_path, run_dir, params=params), ["not all finite"]


def _config_disagrees(tmp_path, run_dir):  # the network says one architecture, the config another
    cfg = json.loads(str(np.load(run_dir / "last.npz")["config"]))
    cfg["model"]["sizes"] = [64, 32, 10]
    return _crafted(tmp_path, run_dir, config=np.array(json.dumps(cfg))), ["model.sizes", "[64, 32, 10]"]


def _class_names_do_not_fit(tmp_path, run_dir):
    return _crafted(tmp_path, run_dir, class_names=np.array(["a", "b"])), ["damaged", "class_names must be 10 strings", "shape (2,)"]


def _class_names_not_strings(tmp_path, run_dir):
    return _crafted(tmp_path, run_dir, class_names=np.arange(10)), ["damaged", "class_names must be 10 strings, found int64"]


def _unknown_image_preprocessing(tmp_path, run_dir):
    pre = json.loads(str(np.load(run_dir / "last.npz")["preprocess"]))
    pre["images"] = "sharpen"
    return _crafted(tmp_path, run_dir, preprocess=np.array(json.dumps(pre))), ["damaged", "'sharpen' is not one of digits, none"]


BAD_CHECKPOINTS = [_truncated, _foreign, _npy, _text, _network_without_sizes, _params_do_not_fit, _nan_params, _config_disagrees,
                   _class_names_do_not_fit, _class_names_not_strings, _unknown_image_preprocessing]


@pytest.mark.parametrize("command", ["eval", "resume"])
@pytest.mark.parametrize("make", BAD_CHECKPOINTS, ids=lambda f: f.__name__.strip("_"))
def test_bad_checkpoints_are_refused_with_exit_2(cli, tmp_path, run_dir, make, command):
    path, needles = make(tmp_path, run_dir)
    args = ("eval", path) if command == "eval" else ("train", "--resume", path.parent, *TINY)
    line = expect_error(cli(*args), 2, f"checkpoint {path}", *needles)
    assert "unsafely" not in line and "allow_pickle" not in line


def test_resume_with_another_architecture_is_refused(cli, run_dir):
    expect_error(cli("train", "--resume", run_dir, "--set", "model.sizes=[64,32,10]"), 2, "model.sizes is [64, 256, 10] there but [64, 32, 10]")


class _Payload:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (Path(self.marker),)


@pytest.mark.parametrize("where", ["eval", "resume", "data"])
def test_pickled_arrays_are_refused_without_unpickling(cli, tmp_path, run_dir, where):
    marker = tmp_path / "code-ran"
    evil = np.array([_Payload(marker)], dtype=object)
    if where == "data":
        path = tmp_path / "data.npz"
        np.savez(path, X_train=evil, y_train=np.arange(1), X_test=evil, y_test=np.arange(1))
        args = ("train", "--out", tmp_path, *TINY, "--set", f'data.name="{path}"')
    else:
        path = _crafted(tmp_path, run_dir, opt_v=evil)
        args = ("eval", path) if where == "eval" else ("train", "--resume", path.parent, *TINY)
    with np.load(path, allow_pickle=True) as z:  # the payload is live: a careless load runs it
        z["X_train" if where == "data" else "opt_v"]
    assert marker.exists()
    marker.unlink()
    expect_error(cli(*args), 2, str(path), "allow_pickle=False")
    assert not marker.exists()


SIZES = [1000, 1000, 10]  # 1,011,010 parameters: 4 MB of float32 per save


SAVER = """
import sys
import numpy as np
from fastbp.nn.network import Network
from fastbp.train import checkpoint, config
from fastbp.train.build import Preprocess
from fastbp.train.loop import TrainState

path, k, sizes = sys.argv[1], int(sys.argv[2]), {sizes}
cfg = config.merge(config.defaults(), {{"model": {{"sizes": sizes}}}})
net = Network(sizes, cfg.model.hidden, cfg.model.output, cfg.model.cost)

class Opt:
    def state(self):
        return {{"v": np.full(1000, k)}}

print("ready", flush=True)
while True:  # save k = k0+1, k0+2, ... until killed; every array of save k holds k
    k += 1
    net.params[...] = k
    checkpoint.save(path, net=net, opt=Opt(), cfg=cfg, state=TrainState(step=k, history=[k]), preprocess=Preprocess("uint8", 1.0))
""".format(sizes=SIZES)


def _saved_k(path):
    """The k of the complete save at `path`, checking that every array holds that same k."""
    ckpt = checkpoint.load(path)
    k = ckpt.state.step
    assert ckpt.state.history == [k] and (ckpt.params == k).all() and (ckpt.optimizer["v"] == k).all()
    return k


def _inode(path):
    return path.stat().st_ino if path.exists() else None


def test_sigkill_during_saves_leaves_old_or_new_never_half(tmp_path):
    path = tmp_path / "last.npz"
    rng = random.Random(0)
    k, stray_seen, kills = 0, 0, 0
    while kills < 6 or not stray_seen and kills < 40:  # until a kill has landed mid-write (nearly always the first)
        kills += 1
        before = _inode(path)
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path), str(k)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "ready\n"
        while _inode(path) == before:  # wait for this writer's first save (a rename: a new inode)
            assert proc.poll() is None
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.stdout.close()
        assert proc.wait(timeout=30) == -signal.SIGKILL
        new_k = _saved_k(tmp_path)  # the directory loads (a stray temp file is ignored): an old or newer save, whole
        assert new_k > k
        k = new_k
        stray = [p.name for p in tmp_path.iterdir() if p != path]
        # The file being written when the kill came may stay; the next writer removes it.
        assert len(stray) <= 1 and all(name.startswith(".last.npz.") and name.endswith(".tmp") for name in stray), stray
        stray_seen += len(stray)
    assert stray_seen >= 1  # most kills land in the middle of a write: the test saw the case it is about


@pytest.mark.parametrize("code,target", [(errno.ENOSPC, "last.npz"), (errno.EROFS, "history.jsonl")])
def test_write_failure_is_one_line_and_keeps_the_last_checkpoint(cli, tmp_path, monkeypatch, code, target):
    """The first write of `target` works, the second fails with `code` (an OSError
    raised when the temporary file is renamed into place)."""
    real_replace, done = os.replace, []

    def replace(src, dst):
        if Path(dst).name == target:
            done.append(dst)
            if len(done) > 1:
                raise OSError(code, os.strerror(code))
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    result = cli("train", "--out", tmp_path, *TINY, "--set", "train.epochs=3", "--set", 'output.name="r"')
    run = tmp_path / "r"
    expect_error(result, 1, f"cannot write {run / target}: {os.strerror(code)}")
    monkeypatch.undo()
    assert checkpoint.load(run / "last.npz").state.epoch == 1
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


class _FullDisk:
    """A file that takes the first 100 bytes written to it, then fails with ENOSPC (as a
    full disk does part-way through a write); everything else goes to the real file."""

    def __init__(self, f):
        self._f, self._room = f, 100

    def write(self, data):
        if len(data) > self._room:
            self._f.write(bytes(data[: self._room]))
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


@pytest.mark.parametrize("target", ["last.npz", "history.jsonl", "history.csv"])
def test_disk_full_part_way_through_a_write_keeps_the_last_checkpoint(cli, tmp_path, monkeypatch, target):
    """ENOSPC in the middle of the second write of `target` (epoch 2): one line naming
    the file, exit 1; last.npz still holds epoch 1 and no temporary file is left."""
    real_fdopen, seen = os.fdopen, []

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(f".{target}."):
            seen.append(fd)
            if len(seen) > 1:
                return _FullDisk(f)
        return f

    if not os.path.exists("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    monkeypatch.setattr(files.os, "fdopen", fdopen)
    fmt = target.split(".")[1] if target.startswith("history") else "jsonl"
    result = cli("train", "--out", tmp_path, *TINY, "--set", "train.epochs=3", "--set", 'output.name="r"',
                 "--set", f'output.history="{fmt}"')
    run = tmp_path / "r"
    expect_error(result, 1, f"fastbp: error: cannot write {run / target}: {os.strerror(errno.ENOSPC)}")
    monkeypatch.undo()
    assert len(seen) == 2
    assert checkpoint.load(run / "last.npz").state.epoch == 1
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    if target.startswith("history"):  # the first epoch's history, whole
        assert len((run / target).read_text().splitlines()) == (2 if fmt == "csv" else 1)


@pytest.mark.parametrize("target", ["last.npz", "history.jsonl"])
def test_read_only_file_system_names_the_file_not_the_temporary_one(cli, tmp_path, monkeypatch, target):
    """On a read-only (or full) file system, creating the temporary file fails first: the
    line names `target`, exit 1, and the first epoch's checkpoint stays."""
    real_mkstemp, calls = files.tempfile.mkstemp, []

    def mkstemp(*args, prefix="", suffix="", dir=None, **kwargs):
        if prefix.startswith(f".{target}."):
            calls.append(dir)
            if len(calls) > 1:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.path.join(dir, f"{prefix}x{suffix}"))
        return real_mkstemp(*args, prefix=prefix, suffix=suffix, dir=dir, **kwargs)

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
    result = cli("train", "--out", tmp_path, *TINY, "--set", "train.epochs=3", "--set", 'output.name="r"')
    run = tmp_path / "r"
    line = expect_error(result, 1, f"fastbp: error: cannot write {run / target}: {os.strerror(errno.EROFS)}")
    assert ".tmp" not in line
    monkeypatch.undo()
    assert checkpoint.load(run / "last.npz").state.epoch == 1


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_run_directory_keeps_the_last_checkpoint(cli, tmp_path):
    """A real read-only run directory (chmod 555) when resuming: one line, exit 1, nothing changed."""
    assert cli("train", "--out", tmp_path, *TINY, "--set", 'output.name="r"')[0] == 0
    run = tmp_path / "r"
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    run.chmod(0o555)
    try:
        result = cli("train", "--resume", run, "--quiet", "--set", "train.epochs=2")
    finally:
        run.chmod(0o755)
    expect_error(result, 1, f"fastbp: error: cannot write {run / 'history.jsonl'}: {os.strerror(errno.EACCES)}")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_disk_full_while_plotting_is_one_line_not_an_internal_error(cli, tmp_path, monkeypatch):
    figure = pytest.importorskip("matplotlib.figure")

    def savefig(self, fname, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fname))

    monkeypatch.setattr(figure.Figure, "savefig", savefig)
    result = cli("train", "--out", tmp_path, *TINY, "--set", "output.plots=true", "--set", 'output.name="r"')
    expect_error(result, 1, f"fastbp: error: {tmp_path / 'r' / 'learning_curves.png'}: {os.strerror(errno.ENOSPC)}")
    assert checkpoint.load(tmp_path / "r").state.epoch == 1


def test_a_checkpoint_round_trips_config_state_preprocess_and_optimizer(tmp_path):
    cfg = config.load(None, ["train.epochs=2", f'output.dir="{tmp_path}"', "data.standardize=true", *FAST])
    t = trainer.Trainer(cfg, quiet=True)
    t.run()
    ckpt = checkpoint.load(t.run_dir.path)
    assert ckpt.config == cfg and ckpt.state == t.state
    assert np.array_equal(ckpt.params, t.setup.net.get_params())
    assert np.array_equal(ckpt.optimizer["v"], t.setup.opt.v)
    pre = t.setup.preprocess
    assert ckpt.preprocess.input_dtype == "uint8" and ckpt.preprocess.scale == pre.scale
    assert np.array_equal(ckpt.preprocess.mean, pre.mean) and np.array_equal(ckpt.preprocess.std, pre.std)
    assert ckpt.preprocess.images == "digits" and ckpt.class_names == tuple("0123456789")
    best = checkpoint.load(t.run_dir.path, prefer=("best.npz",))
    assert best.path.name == "best.npz"


@pytest.mark.parametrize("old", ["fastbp-checkpoint-1", "fastbp-checkpoint-2"])
def test_a_checkpoint_of_an_older_format_is_refused_by_name(tmp_path, old):
    np.savez(tmp_path / "old.npz", format=np.array(old), params=np.zeros(3))
    with pytest.raises(CheckpointError, match=f"expected format fastbp-checkpoint-3\\) \\(it is {old}: written by an older fastbp"):
        checkpoint.load(tmp_path / "old.npz")
