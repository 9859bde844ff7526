"""Data-parallel training over MPI (fastbp.dist.mpi): `mpiexec -n R` gives the
parameters one process gives, failures end every rank, and nothing MPI is
imported outside mpiexec.

The mpiexec runs use the mpich wheel's launcher (the `mpi` extra, in the
`test` extra): missing, these tests fail under CI and are skipped elsewhere.
Each mpiexec start costs a second or two, so the runs are few, small (the
built-in digits, tiny nets) and gathered: one start trains every optimiser.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fastbp.train import loop
from optional_helpers import require

HELPER = str(Path(__file__).with_name("mpi_helper.py"))
ROOT = Path(__file__).resolve().parents[1]

# tiny float64 runs of the digits: 231 training rows in batches of 50, so the last batch has 31
# rows (16 and 15 on two ranks); dropout and data.shift on, to show they don't depend on the ranks
SMALL = {"train.dtype": '"float64"', "train.backend": '"numpy"', "train.epochs": "2", "train.batch_size": "50",
         "data.train_limit": "231", "model.sizes": "[64,24,10]", "model.dropout": "0.25", "data.shift": "1",
         "train.threads": "1", "output.plots": "false", "output.grad_norms": "false", "schedule.name": '"constant"'}
OPTIMIZERS = {"sgd": {}, "momentum": {"optimizer.momentum": "0.9"}, "nesterov": {"optimizer.momentum": "0.9"},
              "adam": {"optimizer.lr": "0.01"}}
TIMEOUT = 120  # no test may hang: every mpiexec has this limit


def _need(what):
    why = f"{what} is missing (pip install 'fastbp[mpi]')"
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="module")
def mpiexec():
    """The mpiexec beside this Python (the mpich wheel's), else one on PATH."""
    require("mpi4py", "mpi")
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if not found:
        _need("mpiexec")
    return found


def _sets(values):
    return [a for k, v in values.items() for a in ("--set", f"{k}={v}")]


def _train_args(out, **extra):
    return ["train", "--quiet", "--out", str(out), *_sets({**SMALL, **extra})]


def _mpirun(mpiexec, *args, timeout=TIMEOUT):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([mpiexec, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def _one_process(overrides, resume=None):
    """The same run in this process: its flat parameters."""
    from fastbp.train import checkpoint, config, trainer

    sets = [f"{k}={v}" for k, v in overrides.items()]
    if resume is None:
        cfg = config.load(config.find("digits"), sets)
        ckpt = None
    else:
        ckpt = checkpoint.load(resume)
        cfg = config.from_dict(ckpt.config.to_dict(), sets)
    t = trainer.Trainer(cfg, resume=ckpt, quiet=True, write=False)
    t.run()
    return t.setup.net.get_params().astype(np.float64)


def _opt_sets(name):
    return {"optimizer.name": f'"{name}"', **OPTIMIZERS[name]}


# -- no MPI -------------------------------------------------------------------------------------
def test_parts_cover_every_row_once_and_differ_by_at_most_one():
    for n in (0, 1, 5, 31, 50):
        for ranks in (1, 2, 3, 7):
            parts = [loop.part(n, r, ranks) for r in range(ranks)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
            sizes = [hi - lo for lo, hi in parts]
            assert max(sizes) - min(sizes) <= 1


def test_launched_reads_the_launchers_environment(monkeypatch):
    from fastbp.dist import mpi

    for k in (*mpi._SIZE_VARS, *mpi._RANK_VARS, *mpi._LOCAL_VARS):
        monkeypatch.delenv(k, raising=False)
    assert mpi.launched() is None
    monkeypatch.setenv("PMI_SIZE", "1")
    monkeypatch.setenv("PMI_RANK", "0")
    assert mpi.launched() is None  # one rank: a plain run
    monkeypatch.setenv("PMI_SIZE", "4")
    monkeypatch.setenv("PMI_RANK", "3")
    monkeypatch.setenv("MPI_LOCALRANKID", "1")
    assert mpi.launched() == (3, 4, 1)


def test_a_plain_run_imports_nothing_mpi(tmp_path):
    code = ("import sys; from fastbp import cli; "
            f"assert cli.main(['train', '--quiet', '--out', {str(tmp_path)!r}, '--set', 'train.epochs=1', "
            "'--set', 'output.plots=false', '--set', 'train.backend=\"numpy\"']) == 0; "
            "assert not [m for m in sys.modules if m.startswith('mpi4py')], 'mpi4py was imported'")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "MPI_", "PMIX_"))}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr


class _FakeComm:
    """A communicator of `size` ranks whose other ranks hold `others` (for allreduce sums)."""

    def __init__(self, rank=0, size=2, others=None):
        self.rank, self.size, self.others, self.calls = rank, size, others, []

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def Allreduce(self, flag, buf, op=None):
        self.calls.append(("Allreduce", buf.copy()))
        buf += self.others

    def allreduce(self, v, op=None):
        self.calls.append(("allreduce", v))
        return v

    def allgather(self, v):
        return [v] + [(f"node{r}", 0) for r in range(1, self.size)]

    def bcast(self, v, root=0):
        self.calls.append(("bcast", v))
        return v


def test_the_reducer_scales_each_share_by_its_rows():
    """Rank 0 with 3 of 8 rows: its mean × 3/8, plus what the other ranks sent."""
    from fastbp.backend import get_backend
    from fastbp.dist.mpi import Reducer

    others = np.array([1.0, 2.0])
    comm = _FakeComm(others=others)
    r = Reducer(comm, get_backend("numpy"))
    assert r.kind == "mpi" and r.describe() == {"ranks": 2, "allreduce": "mpi"}
    g = np.array([8.0, 16.0])
    r.gradient(g, 3, 8)
    np.testing.assert_allclose(comm.calls[0][1], [3.0, 6.0])
    np.testing.assert_allclose(g, [4.0, 8.0])


class _DeviceBackend:
    """A backend whose arrays are not host memory: the gradient goes through a host copy."""

    name, on_host = "fake-gpu", False

    def __init__(self):
        from fastbp.backend import get_backend

        self.xp, self.copies = np, 0
        self._np = get_backend("numpy")

    def to_numpy(self, a):
        self.copies += 1
        return np.array(a)


def test_a_device_gradient_goes_through_nccl_or_a_host_copy():
    from fastbp.dist.mpi import Reducer

    bk = _DeviceBackend()
    host = Reducer(_FakeComm(others=np.ones(3)), bk)
    g = np.zeros(3)
    host.gradient(g, 1, 1)
    assert host.kind == "mpi-host" and bk.copies == 1
    np.testing.assert_allclose(g, 1.0)

    summed = []
    nccl = Reducer(_FakeComm(others=np.ones(3)), bk, device_allreduce=summed.append)
    g = np.full(3, 2.0)
    nccl.gradient(g, 1, 2)
    assert nccl.kind == "nccl" and summed == [g] and bk.copies == 1  # no host copy
    np.testing.assert_allclose(g, 1.0)


class _FakeNccl:
    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = "f32", "f64", "sum"

    def __init__(self):
        self.made, self.reduced = [], []

    def get_unique_id(self):
        return "uid-0"

    def NcclCommunicator(self, size, uid, rank):  # noqa: N802 (cupy's name)
        self.made.append((size, uid, rank))
        outer = self

        class Comm:
            def allReduce(self, send, recv, count, dtype, op, stream):  # noqa: N802
                outer.reduced.append((send, recv, count, dtype, op, stream))

        return Comm()


class _FakeCupy:
    class cuda:  # noqa: N801
        class Device:
            id = 0

        @staticmethod
        def get_current_stream():
            class Stream:
                ptr = 77

            return Stream()


class _FakeArray:
    dtype, size = np.dtype(np.float32), 10

    class data:  # noqa: N801
        ptr = 1234


def test_nccl_allreduce_makes_one_communicator_and_sums_in_place(monkeypatch):
    from fastbp import backend

    monkeypatch.setattr(backend, "_mpi_min", lambda: "min")
    monkeypatch.delenv("FASTBP_NCCL", raising=False)
    nccl = _FakeNccl()
    comm = _FakeComm(rank=0, size=2)
    allreduce = backend.nccl_allreduce(_FakeCupy, comm, 0, 2, nccl=nccl)
    assert ("bcast", "uid-0") in comm.calls and nccl.made == [(2, "uid-0", 0)]
    allreduce(_FakeArray())
    assert nccl.reduced == [(1234, 1234, 10, "f32", "sum", 77)]  # in place, on the current stream

    class SameDevice(_FakeComm):
        def allgather(self, v):
            return [v] * self.size  # two ranks on one GPU: NCCL cannot

    assert backend.nccl_allreduce(_FakeCupy, SameDevice(), 0, 2, nccl=_FakeNccl()) is None
    monkeypatch.setenv("FASTBP_NCCL", "0")
    assert backend.nccl_allreduce(_FakeCupy, _FakeComm(), 0, 2, nccl=_FakeNccl()) is None


# -- under mpiexec ------------------------------------------------------------------------------
def test_two_ranks_give_one_process_parameters_for_every_optimizer(mpiexec, tmp_path):
    """Global batch 50 over 2 ranks (the last batch 31 rows: 16 + 15) = batch 50 in one process,
    to float64 rounding, after 10 steps of sgd, momentum, nesterov and adam, dropout and shifts on."""
    commands = []
    for name in OPTIMIZERS:
        commands += [*(["++"] if commands else []), *_train_args(tmp_path / name, **_opt_sets(name))]
    r = _mpirun(mpiexec, "-n", "2", sys.executable, HELPER, "--params", str(tmp_path / "{i}.npy"), "--", *commands)
    assert r.returncode == 0, r.stderr
    for i, name in enumerate(OPTIMIZERS):
        two = np.load(tmp_path / f"{i}.npy")
        one = _one_process({**SMALL, **_opt_sets(name)})
        np.testing.assert_allclose(two, one, rtol=0, atol=1e-12, err_msg=name)
        (run,) = (tmp_path / name).iterdir()  # rank 0 alone wrote a run directory
        summary = (run / "summary.json").read_text()
        assert '"ranks": 2' in summary and '"allreduce": "mpi"' in summary


def test_three_ranks_with_unequal_and_empty_shares(mpiexec, tmp_path):
    """201 rows in batches of 50 over 3 ranks: 17 + 17 + 16 rows, and a last batch of one row,
    which two ranks have no part of."""
    sets = {"data.train_limit": "201", **_opt_sets("adam")}
    r = _mpirun(mpiexec, "-n", "3", sys.executable, HELPER, "--params", str(tmp_path / "p.npy"), "--",
                *_train_args(tmp_path / "run", **sets))
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), _one_process({**SMALL, **sets}), rtol=0, atol=1e-12)


def test_ctrl_c_on_rank_0_stops_every_rank_and_the_run_resumes_on_another_rank_count(mpiexec, tmp_path):
    """SIGINT on rank 0 in its 3rd batch: every rank stops at the same batch (within a few), rank 0
    saves a whole checkpoint, exit 130 with one line; resumed in one process, the run ends
    where an uninterrupted one does."""
    sets = {"train.epochs": "3", **_opt_sets("momentum")}
    start = time.monotonic()
    r = _mpirun(mpiexec, "-n", "1", sys.executable, HELPER, "--signal-after", "3", "--", *_train_args(tmp_path, **sets),
                ":", "-n", "1", sys.executable, HELPER, "--", *_train_args(tmp_path, **sets))
    assert r.returncode == 130, r.stderr
    assert time.monotonic() - start < 60
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("fastbp")]
    assert len(lines) == 1 and "SIGINT: stopped at epoch 1" in lines[0], r.stderr
    (run,) = tmp_path.iterdir()
    resumed = _one_process({}, resume=run)
    np.testing.assert_allclose(resumed, _one_process({**SMALL, **sets}), rtol=0, atol=1e-12)


def test_one_rank_failing_ends_the_job_with_one_message(mpiexec, tmp_path):
    args = _train_args(tmp_path, **{"train.epochs": "50"})
    start = time.monotonic()
    r = _mpirun(mpiexec, "-n", "1", sys.executable, HELPER, "--", *args,
                ":", "-n", "1", sys.executable, HELPER, "--fail-after", "3", "--", *args, timeout=60)
    assert r.returncode != 0
    assert time.monotonic() - start < 30
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("fastbp")]
    assert lines == ["fastbp (rank 1 of 2): internal error: RuntimeError: injected failure in backward pass 3 "
                     "(run with --debug for the traceback)"], r.stderr


@pytest.mark.parametrize("case", ["disagree", "too-many-ranks"])
def test_bad_launches_get_one_line(mpiexec, tmp_path, case):
    args = _train_args(tmp_path)
    if case == "disagree":
        r = _mpirun(mpiexec, "-n", "1", sys.executable, HELPER, "--", *args,
                    ":", "-n", "1", sys.executable, HELPER, "--", *args, "--set", "optimizer.lr=0.2")
        want = "fastbp: error: the 2 MPI ranks disagree on the config"
    else:
        r = _mpirun(mpiexec, "-n", "3", sys.executable, HELPER, "--", *args, "--set", "train.batch_size=2")
        want = "fastbp: error: 3 MPI ranks but train.batch_size = 2"
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(want), r.stderr
    assert not list(tmp_path.iterdir())  # no run directory
