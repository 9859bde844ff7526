"""Facts about this machine that `fastbp info`, run summaries and benchmark
reports record: the CPU, and the BLAS behind numpy's matrix products."""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np


@functools.lru_cache(maxsize=None)
def cpu():
    """The CPU's model name and core count."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


# Variables that change the kernel or the threads of the BLAS numpy calls.
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
            "OMP_NUM_THREADS", "BLIS_NUM_THREADS")


def blas(native=False):
    """numpy's BLAS (see _blas), with its thread count as it is now (a run may cap it)."""
    info = dict(_blas(native))
    try:
        from threadpoolctl import threadpool_info

        info["blas_threads"] = next((p["num_threads"] for p in threadpool_info() if p["filepath"] == info["blas_file"]),
                                    info["blas_threads"])
    except Exception:  # threadpoolctl comes with scikit-learn; without it, what was read first
        pass
    return info


@functools.lru_cache(maxsize=None)
def _blas(native=False):
    """The BLAS behind numpy's matrix products: library and version, its file,
    threads, the CPU kernel it picked, and a warning naming the variables set in
    the environment that change them. `fastbp info` and the benchmark reports
    both record this dict.

    threadpoolctl lists every BLAS loaded in the process, and scipy, scikit-learn
    and torch wheels carry their own (other versions, other kernels), so the
    first one listed is often not numpy's: numpy's is the one inside numpy's
    folders (numpy.libs, numpy/.dylibs), else the only one, else the one whose
    version numpy was built against (conda's shared library).

    Computed once per process. native=True (for `fastbp info`) also names the
    kernel this CPU gets without OPENBLAS_CORETYPE, which takes a fresh
    interpreter: never on a run's path."""

    try:
        from threadpoolctl import threadpool_info

        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    except Exception:  # threadpoolctl comes with scikit-learn; without it, say nothing
        pools = []
    here = Path(np.__file__).parent
    own = [p for p in pools if Path(p["filepath"]).parent.name == "numpy.libs" or here in Path(p["filepath"]).parents]
    if not own and len(pools) > 1:
        try:
            built = np.show_config(mode="dicts")["Build Dependencies"]["blas"].get("version")
        except Exception:  # numpy < 1.26 has no mode="dicts"
            built = None
        own = [p for p in pools if built and p.get("version") == built]
    pool = (own or pools)[0] if own or len(pools) == 1 else {}
    info = {
        "blas": f"{pool['internal_api']} {pool.get('version')}" if pool else f"unknown ({len(pools)} BLAS libraries loaded)",
        "blas_file": pool.get("filepath"),
        "blas_threads": pool.get("num_threads"),
        "blas_kernel": pool.get("architecture"),
        "blas_threading": pool.get("threading_layer"),
    }
    env = {k: v for k, v in os.environ.items() if k in BLAS_ENV or k.startswith("MKL_")}
    if env:
        said = [f"{k}={v}" for k, v in sorted(env.items())]
        if native and "OPENBLAS_CORETYPE" in env and info["blas_kernel"]:
            # What this CPU gets without the variable: a fresh interpreter, since
            # OpenBLAS reads it once, when it is loaded.
            clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
            code = "import json, fastbp.machine as m; print(json.dumps(m.blas()['blas_kernel']))"
            try:
                run = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=60)
                own_kernel = json.loads(run.stdout)
            except (OSError, ValueError, subprocess.SubprocessError):
                own_kernel = None
            if own_kernel and own_kernel != info["blas_kernel"]:
                said[sorted(env).index("OPENBLAS_CORETYPE")] += f" (forces the {info['blas_kernel']} kernel; this CPU's own is {own_kernel})"
        info["blas_warning"] = "set in the environment: " + ", ".join(said)
    return info


def jit_blas():
    """The BLAS under jit.py's compiled step where numpy's own is not reachable
    (jit.numpy_gemm): numba's np.dot calls scipy.linalg.cython_blas, so scipy's
    library (its own OpenBLAS in the wheels: another version, another thread
    pool than numpy's)."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401 (loads it, for threadpoolctl to see)
        from threadpoolctl import threadpool_info

        numpy_file = _blas()["blas_file"]
        pools = [p for p in threadpool_info() if p.get("user_api") == "blas" and p["filepath"] != numpy_file
                 and "scipy" in Path(p["filepath"]).name + str(Path(p["filepath"]).parent)]
    except Exception:
        pools = []
    if not pools:
        return {"jit_blas": "numpy's (scipy shares it)"}
    p = pools[0]
    return {"jit_blas": f"{p['internal_api']} {p.get('version')}", "jit_blas_kernel": p.get("architecture"),
            "jit_blas_threads": p.get("num_threads")}
