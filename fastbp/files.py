"""The one way fastbp writes a file: complete or not at all."""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path

from .errors import WriteError


def atomic_write(path, data) -> None:
    """Write `data` (bytes, or a function that writes to a binary file object)
    to a temporary file beside `path`, fsync it, then rename it over `path`:
    a crash at any moment leaves the old file or the new one, never half of
    one. Any OSError becomes a WriteError naming `path`, not the temporary file."""
    path = Path(path)
    _remove_stale_temps(path)
    try:  # a read-only or full directory fails here already
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            data(f) if callable(data) else f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from other users
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


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
