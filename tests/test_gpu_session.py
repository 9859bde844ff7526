"""benchmarks/gpu_session.sh on a machine without a GPU: every GPU part says that it did not
run, the script exits 0 inside its budget, and it leaves at most 8 files (the device tool's
limit). Where a GPU is usable this would be the real session: run that by hand."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastbp.backend import cupy_usable

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(cupy_usable(), reason="a GPU is here: run benchmarks/gpu_session.sh itself")


def session(tmp_path, **env):
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_session.sh")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "QUICK": "1", "OUT": str(out), "PYTHON": sys.executable, **env})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, (out / "timing.txt").read_text()


def test_gpu_parts_say_they_did_not_run(tmp_path):
    out, timing = session(tmp_path, PARTS="machine tests breakdown bogus", BUDGET="120")
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and {"machine.txt", "gpu-tests.txt", "breakdown.txt", "cupy-cache.tgz", "timing.txt"} <= set(files)
    assert "gpu tests: NOT RUN, cupy is not usable here" in (out / "gpu-tests.txt").read_text()
    assert "gpu_breakdown: nothing to measure" in (out / "breakdown.txt").read_text()
    assert "machine: exit 0" in timing and "unknown part bogus" in timing and "total: " in timing


def test_a_part_the_budget_cannot_hold_is_skipped(tmp_path):
    _, timing = session(tmp_path, PARTS="machine", BUDGET="20")
    assert "machine: SKIPPED" in timing and "machine: exit" not in timing
