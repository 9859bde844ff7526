"""The benchmark suite's smoke case, run as its command line: it must write real figures."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, "-m", "benchmarks", "smoke", "--reps", "2", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (json_file,) = out.glob("bench-*.json")
    return out, json.loads(json_file.read_text()), proc.stdout


def test_json_has_the_machine_the_versions_and_every_timing(run):
    _, report, _ = run
    assert {"machine", "versions", "options", "cases", "targets", "command"} <= set(report)
    assert report["machine"]["cores"] >= 1 and report["machine"]["blas"]["blas_kernel"]
    assert report["versions"]["numpy"] and report["versions"]["scikit-learn"]
    point = report["cases"]["smoke"]["points"][0]
    results = point["results"]
    assert {"fastbp-numpy", "sklearn", "per-example", "gemm-numpy"} <= set(results)
    for name, row in results.items():
        assert row["error"] is None, name
        assert len(row["reps"]) == 2 and all(rep["seconds"] > 0 for rep in row["reps"])
        assert row["warmup"]["seconds"] > 0
        assert row["median_s"] > 0 and row["seconds_per_epoch"] > 0 and row["samples_per_s"] > 0 and row["gflops"] > 0
        assert row["memory"]["peak_mb"] >= 0 and row["memory"]["rss_peak_mb"] > 0


def test_ratios_and_ceiling_fractions_are_computed(run):
    _, report, _ = run
    point = report["cases"]["smoke"]["points"][0]
    results, n = point["results"], point["epoch_samples"]
    fast = results["fastbp-numpy"]
    assert fast["ratio"] == 1.0
    for name in ("sklearn", "per-example"):
        assert results[name]["ratio"] == pytest.approx(results[name]["seconds_per_epoch"] / fast["seconds_per_epoch"])
    assert results["gemm-numpy"]["ceiling_fraction"] == pytest.approx(1.0)
    assert 0 < fast["ceiling_fraction"] == pytest.approx(fast["gflops"] / results["gemm-numpy"]["gflops"])
    per = results["per-example"]  # timed on a subset, scaled to the epoch
    assert per["samples_per_rep"] == 200 < n
    assert per["seconds_per_epoch"] == pytest.approx(per["median_s"] * n / 200)


def test_markdown_has_a_row_per_runner_and_the_targets(run):
    out, report, stdout = run
    (md_file,) = out.glob("bench-*.md")
    md = md_file.read_text()
    for name in report["cases"]["smoke"]["points"][0]["results"]:
        assert any(line.startswith(f"| {name}") for line in md.splitlines()), name
        assert f"| {name}" in stdout
    assert "## Targets" in md and all(t["pass"] is None for t in report["targets"])  # smoke measures none


def test_plots_when_matplotlib_is_there(run):
    pytest.importorskip("matplotlib")
    out, _, _ = run
    (png,) = out.glob("bench-*-smoke.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_breakdown_of_a_time_to_target_case_times_its_recipe():
    from benchmarks import cases
    from benchmarks.breakdown import spec_of

    assert spec_of("time-to-98").sizes == cases.FAST_RECIPE["sizes"] == (784, 192, 10)
    assert spec_of("time-to-99").dropout == 0.3 and spec_of("medium") is cases.CASES["medium"].spec


def test_breakdown_accounts_for_the_whole_step():
    from benchmarks.breakdown import PHASES, breakdown
    from fastbp.backend import get_backend

    for numpy in (True, False):
        r = breakdown("smoke", epochs=1, numpy=numpy)
        us = r["us_per_step"]
        ran = ("forward", "batch_cost", "backward", "step") if r["path"] == "numpy" else ("compiled", "step")
        assert r["path"] == ("numpy" if numpy or not get_backend("numpy").jit else "compiled")
        assert r["steps_per_epoch"] > 1 and all(us[p] > 0 for p in ran) and us["gemms_alone"] > 0
        assert all(us[p] == 0 for p in PHASES if p not in ran)
        assert us["total"] == pytest.approx(sum(us[p] for p in PHASES) + us["loop"])
        assert us["not_gemm"] == pytest.approx(us["total"] - us["gemms_alone"])


def test_a_contender_is_one_class_against_the_interface():
    from benchmarks import contenders as C
    from benchmarks.interface import REGISTRY, Contender

    class Mine(Contender):  # registered by being defined
        name, device, needs = "test-mine", "cpu", ("numpy", "no_such_module_here")  # numpy is there, everywhere

        def __init__(self, spec):
            self.samples = 1

        def epoch(self):
            pass

    try:
        assert REGISTRY["test-mine"] is Mine and Mine.unavailable() == "no_such_module_here is not installed (pip install no_such_module_here)"
        with pytest.raises(TypeError, match="a GPU runner: its needs must name one of cupy, torch, jax"):
            type("Bad", (Contender,), {"name": "test-bad", "device": "gpu", "needs": ()})
        with pytest.raises(TypeError, match="device = 'tpu': choose cpu or gpu"):
            type("Bad", (Contender,), {"name": "test-bad", "device": "tpu"})
        with pytest.raises(NotImplementedError, match="test-mine is timed only"):
            Mine(None).accuracy()
    finally:
        REGISTRY.pop("test-mine", None)
    assert set(C.GPU) == {n for n, c in C.RUNNERS.items() if c.device == "gpu"} >= {"fastbp-cupy", "torch-cuda", "jax-gpu", "gemm-cupy"}
    assert C.fastbp_for("jax-gpu") == "fastbp-cupy" and C.fastbp_for("jax-cpu") == "fastbp-numpy"
    assert C.ceiling_for("torch-cuda") == "gemm-cupy" and C.ceiling_for("sklearn") == "gemm-numpy"
    assert C.unavailable("nope").startswith("unknown contender (choose from fastbp-numpy,")


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_peers_train_the_same_function(optimizer):
    """One batch holding the whole (small) training set: a step does not depend on the
    shuffle, so fastbp, torch and JAX, from fastbp's initial weights, must agree after
    each epoch (constant lr: torch's momentum form equals fastbp's)."""
    from benchmarks import contenders as C

    spec = C.Spec(dataset="digits", sizes=(64, 16, 10), batch=256, rep_samples=256, optimizer=optimizer,
                  lr=0.01 if optimizer == "adam" else 0.5, weight_decay=1e-3, threads=1)
    names = ["fastbp-numpy"] + [n for n in ("torch-cpu", "jax-cpu", "jax-cpu-step") if not C.unavailable(n)]
    runners = {n: C.make(n, spec) for n in names}
    for _ in range(3):
        for r in runners.values():
            r.epoch()
    net = runners["fastbp-numpy"].setup.net
    want = [a for W, b in zip(net.weights, net.biases) for a in (W, b)]
    for name, r in runners.items():
        if name.startswith("jax"):
            got = [np.asarray(a) for W, b in r.state[0] for a in (W.T, b)]
        elif name == "torch-cpu":
            got = [p.detach().numpy() for p in r.net.parameters()]
        else:
            continue
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-5, err_msg=name)
    assert len(names) > 1 or pytest.skip("neither torch nor jax is installed")
