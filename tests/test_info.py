"""`fastbp info` names the BLAS numpy's matrix products use, not another library that
scipy or scikit-learn loaded, and warns when the environment forces its kernel."""

import os
import subprocess
import sys

import pytest

from fastbp.machine import BLAS_ENV


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in BLAS_ENV and not k.startswith("MKL_")}
    return {**env, **extra}


def _info(**extra):
    out = subprocess.run([sys.executable, "-m", "fastbp.cli", "info"], env=_env(**extra),
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return dict(line.split(": ", 1) for line in out.splitlines())


def _numpy_alone():
    """The BLAS files loaded by numpy alone, in a fresh interpreter: numpy's own."""
    code = ("import numpy; from threadpoolctl import threadpool_info; "
            "print('\\n'.join(p['filepath'] for p in threadpool_info() if p['user_api'] == 'blas'))")
    run = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60, check=True)
    return run.stdout.split()


def test_info_names_numpys_blas_file_and_its_kernel():
    info = _info()
    assert [info["blas_file"]] == _numpy_alone()  # though scipy's own BLAS is loaded too by then
    assert info["blas"].split()[0] in info["blas_file"] or info["blas"].startswith("mkl")
    assert int(info["blas_threads"]) >= 1
    assert "blas_warning" not in info


def test_a_forced_kernel_is_reported_and_warned_about():
    info = _info(OPENBLAS_CORETYPE="Sandybridge", OMP_NUM_THREADS="1")
    assert info["blas_warning"].startswith("set in the environment: OMP_NUM_THREADS=1, OPENBLAS_CORETYPE=Sandybridge")
    if info["blas"].startswith("openblas"):
        assert info["blas_kernel"] == "Sandybridge"
        native = _info()["blas_kernel"]
        if native != "Sandybridge":
            assert f"(forces the Sandybridge kernel; this CPU's own is {native})" in info["blas_warning"]


def test_info_says_whether_the_step_is_compiled_and_through_which_blas():
    assert _info(FASTBP_JIT="0")["jit"] == "off (numpy's calls; pip install 'fastbp[jit]' compiles the step)"
    pytest.importorskip("numba")  # the test extra installs it; tests/test_jit.py fails without it under CI
    info = _info(FASTBP_JIT="1")
    assert info["jit"].startswith("numba ")
    # numpy's wheels carry an ILP64 OpenBLAS whose cblas the step calls; elsewhere numba's np.dot and scipy's
    if "scipy_openblas64" in info["blas_file"]:
        assert info["jit_blas"] == "numpy's (the blas above)"
    else:
        assert info["jit_blas"] != info["blas"]
