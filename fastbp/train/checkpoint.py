"""Checkpoints: one `.npz` per save, written atomically, read without pickle.

Contents: the flat parameter buffer, the optimiser's state arrays, counters,
and JSON strings (config, network description, history, extra state).
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, FastBPError

FORMAT = "fastbp-checkpoint-1"


class WriteError(FastBPError):
    """Could not write an output file (disk full, read-only directory...)."""


def atomic_write(path, write):
    """Call write(fileobj) on a temporary file beside `path`, fsync it, then
    rename it over `path`: a crash at any moment leaves the old file or the
    new one, never half of one."""
    path = Path(path)
    _remove_stale_temps(path)
    try:  # a read-only or full directory fails here already: name `path`, not the temporary file
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _remove_stale_temps(path):
    """Delete the temporary files of `path` left by writers that were killed (SIGKILL,
    power loss): their names hold the writer's pid, and that process is gone. Loading
    never reads them; this only keeps them from piling up."""
    if os.name != "posix":
        return
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            pid = int(tmp.name[len(path.name) + 2 :].split(".")[0])
            if pid > 0 and pid != os.getpid():
                os.kill(pid, 0)  # raises ProcessLookupError when no such process
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (ValueError, OSError):  # not one of ours, or its writer lives
            pass


def save(path, *, params, optimizer_state, config, network, history, counters, extra=None):
    arrays = {
        "format": np.array(FORMAT),
        "params": np.asarray(params),
        "config": np.array(json.dumps(config)),
        "network": np.array(json.dumps(network)),
        "history": np.array(json.dumps(history)),
        "counters": np.array(json.dumps(counters)),
        "extra": np.array(json.dumps(extra or {})),
    }
    for key, value in optimizer_state.items():
        arrays[f"opt_{key}"] = np.asarray(value)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load(path):
    """Read a checkpoint; CheckpointError for anything that is not one."""
    path = Path(path)
    if path.is_dir():
        for name in ("last.npz", "final.npz"):
            if (path / name).exists():
                path = path / name
                break
        else:
            raise CheckpointError(f"checkpoint {path}: directory holds no last.npz")
    if path.is_file() and not zipfile.is_zipfile(path):  # else np.load tries .npy or pickle
        raise CheckpointError(f"checkpoint {path}: not a readable .npz checkpoint (not a whole zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path}: not found") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path}: not a readable .npz checkpoint ({type(exc).__name__}: {exc})") from None
    if "format" not in data or str(data["format"]) != FORMAT:
        raise CheckpointError(f"checkpoint {path}: not a fastbp checkpoint (expected format {FORMAT})")
    try:
        out = {k: json.loads(str(data[k])) for k in ("config", "network", "history", "counters", "extra")}
        out["params"] = data["params"]
        out["optimizer"] = {k[4:]: data[k] for k in data if k.startswith("opt_")}
        sizes = [int(n) for n in out["network"]["sizes"]]
        n_expected = sum(o * i + o for o, i in zip(sizes[1:], sizes[:-1]))
        missing = {"epoch", "batch", "step", "loss_sum", "correct", "seen"} - set(out["counters"])
        if missing:
            raise KeyError(f"counters lack {', '.join(sorted(missing))}")
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path}: damaged ({type(exc).__name__}: {exc})") from None
    out["path"] = str(path)
    if out["params"].dtype.kind != "f" or not np.isfinite(out["params"]).all():
        raise CheckpointError(f"checkpoint {path}: its parameters are not all finite floating-point numbers (dtype {out['params'].dtype})")
    if out["params"].ndim != 1 or out["params"].size != n_expected:
        raise CheckpointError(
            f"checkpoint {path}: holds {out['params'].size} parameters, but its network "
            f"{out['network']['sizes']} needs {n_expected}"
        )
    return out


def check_compatible(ckpt, network_config):
    """Refuse a checkpoint whose architecture disagrees with the config."""
    saved = ckpt["network"]
    for key in ("sizes", "hidden", "output", "cost"):
        if saved.get(key) != network_config.get(key):
            raise CheckpointError(
                f"checkpoint {ckpt['path']}: model.{key} is {saved.get(key)!r} there "
                f"but {network_config.get(key)!r} in the config"
            )
