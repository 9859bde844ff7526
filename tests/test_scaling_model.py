"""The scaling model of benchmarks/scaling.py: its counts and its formula."""

import pytest

from benchmarks import scaling


def test_counts_match_the_benchmark_nets():
    assert scaling.flops_per_step((784, 100, 10), 128) == pytest.approx(40.9e6, rel=1e-3)  # GPU-NOTES.md
    assert scaling.flops_per_step((784, 1024, 1024, 10), 512) == pytest.approx(4.90e9, rel=1e-3)
    assert scaling.n_params((784, 1024, 1024, 10)) == 1_863_690


def test_ring_all_reduce_and_the_step_model():
    assert scaling.ring_seconds(8e6, 1, 1e9, 1e-6) == 0
    # R = 4: each rank moves 2·3/4 of 8 MB at 1 GB/s, in 6 steps of 1 µs
    assert scaling.ring_seconds(8e6, 4, 1e9, 1e-6) == pytest.approx(12e-3 + 6e-6)
    assert scaling.predict(1e-3, 8e-3, 0, 4, 1e9, 0) == pytest.approx(3e-3)


def test_the_report_from_measured_figures(tmp_path):
    measured = {
        "gemm": [{"threads": 1, "flops": 40e9}, {"threads": 2, "flops": 75e9}],
        "allreduce": [{"bytes": 1024, "seconds": 6e-6}, {"bytes": 2 ** 24, "seconds": 8e-3}],
        "steps": {name: {"steps": 10, "one_rank_2_threads": {"step_s": 2e-3, "compute_s": 2e-3},
                         "two_ranks_1_thread": {"step_s": 1.5e-3, "compute_s": 1e-3, "allreduce_s": 4e-4}}
                  for name in scaling.NETS},
    }
    modelled, curves = scaling.model(measured)
    large = next(r for r in modelled["rows"] if r["net"] == "large")
    assert large["nvlink_R"] == 8 and large["ib_R"] == 32
    assert large["nvlink_speedup"] > large["ib_speedup"]  # the same global batch over slower links
    text = scaling.markdown(measured, modelled, "test")
    assert "| 784-1024-1024-10 b512 |" in text and "InfiniBand NDR" in text
    scaling.plot(curves, tmp_path / "scaling.png")
    assert (tmp_path / "scaling.png").stat().st_size > 1000
