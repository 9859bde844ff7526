"""benchmarks/gpu_session.sh on a machine without a GPU: it stops after the machine facts and
says why cupy cannot run (the import error's message too); FORCE_CPU_DRY=1 runs the later
parts' plumbing with the rows that can run; it exits 0 inside its budget and leaves at most
8 files (the device tool's limit). Where a GPU is usable this would be the real session: run
that by hand."""

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
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8, files
    return out, (out / "timing.txt").read_text(), proc.stdout


def test_without_cupy_it_stops_after_the_machine_facts_with_the_import_error(tmp_path):
    fake = tmp_path / "fake" / "cupy"  # a cupy that cannot load its CUDA runtime
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('libcudart.so.13: cannot open shared object file')\n")
    out, timing, stdout = session(tmp_path, PYTHONPATH=str(fake.parent), BUDGET="120")
    said = "STOP: cupy is not usable here, so no GPU row can run: cupy is not importable (ImportError: libcudart.so.13"
    assert said in timing and said in stdout
    assert {p.name for p in out.iterdir()} == {"machine.txt", "timing.txt", "cupy-cache.tgz"}
    machine = (out / "machine.txt").read_text()
    assert "cupy: cupy is not importable (ImportError: libcudart.so.13" in machine and "jax-gpu: " in machine
    assert "machine: exit 0" in timing and "gpu-tests" not in timing and "total: " in timing


@pytest.mark.mnist
def test_force_cpu_dry_runs_the_later_parts_with_the_rows_that_can_run(tmp_path, real_data_dir):
    out, timing, _ = session(tmp_path, FORCE_CPU_DRY="1", PARTS="machine breakdown variants bogus", BUDGET="200",
                             FASTBP_DATA=str(real_data_dir))  # the time-to-98 rows train on MNIST
    assert "FORCE_CPU_DRY=1: going on" in timing
    assert "gpu-breakdown: exit 0" in timing and "time-to-98-unfused: exit 0" in timing and "unknown part bogus" in timing
    assert "gpu_breakdown: nothing to measure" in (out / "breakdown.txt").read_text()
    summary = (out / "summary.md").read_text()
    assert "| fastbp-numpy |" in summary and "## time-to-98" in summary
    assert "- environment: FASTBP_FUSED=0" in summary  # the unfused variant ran with fusion off, and says so


def test_a_part_the_budget_cannot_hold_is_skipped(tmp_path):
    _, timing, _ = session(tmp_path, PARTS="machine", BUDGET="20", FORCE_CPU_DRY="1")
    assert "machine: SKIPPED" in timing and "machine: exit" not in timing


def test_the_first_failure_is_printed_when_it_happens(tmp_path):
    (tmp_path / "test_two.py").write_text("def test_fails():\n    assert 1 == 2, 'boom'\n\ndef test_after():\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-v", "--tb=short", "-p", "benchmarks.first_failure",
                           "-p", "no:cacheprovider", str(tmp_path / "test_two.py")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    text = proc.stdout
    assert proc.returncode == 1 and "FIRST FAILURE (call): " in text and "AssertionError: boom" in text
    assert text.index("AssertionError: boom") < text.index("test_after PASSED")  # before the next test, not at the end
