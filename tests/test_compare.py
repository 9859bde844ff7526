"""`fastbp compare`: one config on each backend, side by side; a backend that
cannot run here is shown with the reason."""

import json

import pytest
from cli_helpers import cli, expect_error  # noqa: F401 (cli is a fixture)

from fastbp.train import compare


def test_compare_shows_the_cpu_row_and_why_there_is_no_gpu_row(cli, monkeypatch):
    monkeypatch.setattr(compare, "cupy_status", lambda: (False, "cupy found no CUDA device"))
    rc, out, err = cli("compare", "--epochs", "2", "--json", "--set", "output.grad_norms=false")
    assert rc == 0, err
    cpu, gpu = json.loads(out)
    assert cpu["backend"] == "numpy" and cpu["speedup"] == 1.0 and cpu["test_accuracy"] > 0.8
    assert cpu["samples_per_s"] == pytest.approx(1293 / cpu["seconds_per_epoch"])
    assert gpu == {"backend": "cupy", "skipped": "cupy found no CUDA device"}
    rc, out, err = cli("compare", "--epochs", "1")
    lines = out.splitlines()
    assert lines[-3].split()[:2] == ["backend", "s/epoch"] and lines[-2].startswith("numpy")
    assert lines[-1].startswith("cupy") and "not run: cupy found no CUDA device" in lines[-1]


def test_compare_refuses_bad_arguments(cli):
    expect_error(cli("compare", "--epochs", "0"), 2, "--epochs: expected a whole number >= 1, got '0'")
    expect_error(cli("compare", "nope"), 2, "config 'nope': no such file")
