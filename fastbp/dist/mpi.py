"""Data-parallel training over MPI: `mpiexec -n 4 fastbp train CONFIG`.

Every rank builds the same network from the same seed and walks the same
seeded permutation; each takes a contiguous share of every global batch
(train.batch_size rows, whatever the rank count), and after `backward` one
in-place all-reduce of the flat `grads` buffer, each rank's mean first scaled
by n_r / N, gives every rank the gradient of the mean cost over the whole
batch: all ranks then take the same optimiser step. A `Reducer` is the one
object the epoch loop and evaluate see (loop.OneProcess is the one-process
version).

Nothing here imports mpi4py unless the process was started by an MPI launcher
(`launched()` reads the launcher's environment variables first).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time

from ..errors import ConfigError, Interrupted
from ..extras import require

# What the launchers set: MPICH / Intel MPI (Hydra: PMI_*), Open MPI, Slurm's PMI2/PMIx.
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
_LOCAL_VARS = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_LOCAL_RANK", "SLURM_LOCALID")
_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")

STOP_EVERY = 4  # batches between two checks whether any rank was asked to stop


def launched():
    """(rank, size, local rank) from the MPI launcher's environment, or None
    when this process was not started by one (or is its only rank)."""
    env = os.environ
    size = next((int(env[k]) for k in _SIZE_VARS if env.get(k, "").isdigit()), None)
    if size is None and any(k in env for k in _RANK_VARS):
        size = 0  # started by a launcher that does not say the size: ask MPI
    if size is None or size == 1:
        return None
    rank = next((int(env[k]) for k in _RANK_VARS if env.get(k, "").isdigit()), 0)
    local = next((int(env[k]) for k in _LOCAL_VARS if env.get(k, "").isdigit()), 0)
    return rank, size, local


class CollectiveError(ConfigError):
    """An error every rank finds at the same point (the ranks disagree on
    the config, more ranks than rows): rank 0 alone says it."""

    collective = True


def config_hash(cfg):
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


class Reducer:
    """Sums over the ranks of one MPI communicator: the flat gradient (through
    NCCL, MPI on a host copy, or MPI on the host buffer itself), the running
    sums, the stop flag. `kind` says which path the gradient takes."""

    def __init__(self, comm, bk, local_rank=0, *, device_allreduce=None):
        from mpi4py import MPI

        self._MPI, self.comm, self.bk = MPI, comm, bk
        self.rank, self.size, self.local_rank = comm.Get_rank(), comm.Get_size(), local_rank
        self.writer = self.rank == 0
        self._stop_calls, self._stopping = 0, False
        self.device_allreduce = device_allreduce
        if device_allreduce is not None:
            self.kind = "nccl"
        elif getattr(bk, "on_host", bk.name == "numpy"):
            self.kind = "mpi"
        else:
            self.kind = "mpi-host"

    def gradient(self, grads, n, total):
        xp = self.bk.xp
        if n != total:  # every rank's share is the mean over its n rows
            xp.multiply(grads, n / total, out=grads)
        if self.kind == "nccl":
            self.device_allreduce(grads)
        elif self.kind == "mpi":
            self.comm.Allreduce(self._MPI.IN_PLACE, grads, op=self._MPI.SUM)
        else:  # a device buffer through MPI: by way of a host copy
            host = self.bk.to_numpy(grads).copy()
            self.comm.Allreduce(self._MPI.IN_PLACE, host, op=self._MPI.SUM)
            grads[...] = xp.asarray(host)

    def sums(self, *values):
        return tuple(self.comm.allreduce(v, op=self._MPI.SUM) for v in values)

    def stop(self, flag):
        self._stopping = self._stopping or bool(flag)
        self._stop_calls += 1
        if self._stop_calls % STOP_EVERY:
            return False
        return bool(self.comm.allreduce(int(self._stopping), op=self._MPI.MAX))

    def describe(self):
        return {"ranks": self.size, "allreduce": self.kind}


def from_env(bk, cfg):
    """The Reducer of this run when it was launched by MPI with more than one
    rank, else None. Takes this rank's GPU by local rank, checks that every
    rank has the same config and that each gets a row of every full batch."""
    where = launched()
    if where is None:
        return None
    MPI = require("mpi4py.MPI", "a run started by an MPI launcher", ConfigError)
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    if size == 1:
        return None
    local = where[2]
    bk.use_device(local)  # one GPU per rank on a node (nothing on the CPU)
    hashes = comm.allgather(config_hash(cfg))
    if len(set(hashes)) > 1:
        odd = [r for r, h in enumerate(hashes) if h != hashes[0]]
        raise CollectiveError(f"the {size} MPI ranks disagree on the config (ranks {', '.join(map(str, odd))} differ "
                              "from rank 0): start every rank with the same config and --set options")
    batch = cfg.train.batch_size
    if size > batch:
        raise CollectiveError(f"{size} MPI ranks but train.batch_size = {batch}: each rank needs at least one row of "
                              f"every batch (use at most {batch} ranks or a larger batch)")
    allreduce = bk.device_allreduce(comm, rank, size)
    return Reducer(comm, bk, local, device_allreduce=allreduce)


# -- failures: one message, and no rank left waiting --------------------------------------------
def fail(exc, line, code):
    """Say `line` (the CLI's message for exc) and end with `code`. Outside
    MPI, only prints. Under MPI with several ranks: an error every rank meets
    at once (CollectiveError, the stop every rank agreed on) is said by rank 0
    alone and every rank returns; any other failure is said by the failing
    rank, which then aborts the whole job: the others would wait for it in
    their next all-reduce forever."""
    where = launched()
    if where is None:
        print(line, file=sys.stderr, flush=True)
        return code
    rank, size, _ = where
    if getattr(exc, "collective", False) or (isinstance(exc, Interrupted) and _initialized()):
        if rank == 0:
            print(line, file=sys.stderr, flush=True)
        return code
    try:
        from mpi4py import MPI  # joins the other ranks' start-up when this rank failed before it
    except ImportError:
        MPI = None
    if rank != 0:
        time.sleep(1.0)  # a failure on every rank (a bad config file): rank 0's abort ends this one first
    elif MPI is not None and isinstance(exc, MPI.Exception):
        time.sleep(2.0)  # most likely another rank died mid-collective: its own message and abort come first
    tag = f"fastbp (rank {rank} of {size}):" if size else "fastbp:"
    print(line.replace("fastbp:", tag, 1), file=sys.stderr, flush=True)
    if MPI is not None:
        MPI.COMM_WORLD.Abort(code or 1)
    return code


def _initialized():
    mpi = sys.modules.get("mpi4py.MPI")
    return mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized()


