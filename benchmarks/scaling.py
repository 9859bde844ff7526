"""Data-parallel scaling: measured on this machine, modelled beyond it.

    python -m benchmarks.scaling [--rounds 3] [--steps 300] [--quick] [--out DIR]

Measured (numpy, float32, synthetic batches of the benchmark nets; training
steps of fastbp's own loop: forward, backward, the Reducer's all-reduce,
momentum step):
  * one process with 2 BLAS threads against 2 MPI ranks with 1 thread each
    (`mpiexec -n 2`), same global batch, interleaved rounds, medians;
  * the MPI all-reduce of a float32 buffer against its size (2 ranks);
  * the GEMM rate with 1 and 2 threads (the compute input of the model).

Modelled: the time of a step with R ranks,

    t(R) = t_fixed + t_compute / R + 2 (R − 1) / R × bytes / bandwidth + 2 (R − 1) × α

(ring all-reduce of the flat gradient: each rank sends and receives
2 (R − 1) / R of the buffer, in 2 (R − 1) steps of latency α), with the inputs
written into the report: the rates measured here, and for GPUs the published
H200 FP32 rate, NVLink 4 and InfiniBand NDR bandwidths. Writes
scaling.json, scaling.md and scaling.png under
benchmarks/results/scaling-<date>/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

NETS = {"medium": ((784, 100, 10), 128), "large": ((784, 1024, 1024, 10), 512)}
RESULTS = Path(__file__).parent / "results"

# -- published figures (inputs of the GPU model) --------------------------------------------------
GPU = {
    "name": "H200 SXM",
    "fp32_flops": 67e12,  # NVIDIA's H100/H200 SXM datasheet, FP32 (non-tensor)
    "efficiency": 0.5,  # assumed share of that peak the net's GEMMs reach (small, skinny GEMMs)
    # host and launch time per step that does not shrink with R: ~25 kernel launches (GPU-NOTES.md)
    # at ~5 µs each, an estimate until a device measures it
    "fixed_s": 25 * 5e-6,
}
LINKS = {
    # NVLink 4 on H200: 900 GB/s total per GPU, 450 GB/s each direction (NVIDIA datasheet)
    "nvlink": {"bandwidth": 450e9, "alpha": 3e-6, "label": "8 GPUs, one node (NVLink 4, 450 GB/s per direction)"},
    # InfiniBand NDR: 400 Gb/s = 50 GB/s per port and direction, one port per GPU (as in DGX H200)
    "ib": {"bandwidth": 50e9, "alpha": 6e-6, "label": "4 nodes × 8 GPUs (ring bound by InfiniBand NDR, 50 GB/s per GPU)"},
}


def flops_per_step(sizes, batch):
    """Forward, BP2 and BP4 GEMMs: 2 × (1 + 2) × batch × Σ n_in × n_out, less BP2 of layer 1."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    return 2 * batch * (3 * sum(i * o for i, o in pairs) - pairs[0][0] * pairs[0][1])


def n_params(sizes):
    return sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))


def ring_seconds(nbytes, ranks, bandwidth, alpha):
    if ranks <= 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * nbytes / bandwidth + 2 * (ranks - 1) * alpha


def predict(t_fixed, t_compute, nbytes, ranks, bandwidth, alpha):
    return t_fixed + t_compute / ranks + ring_seconds(nbytes, ranks, bandwidth, alpha)


# -- workers (run in their own processes, under mpiexec or not) ------------------------------------
def _worker_steps(name, steps, threads):
    import numpy as np
    from threadpoolctl import threadpool_limits

    from fastbp.dist import mpi
    from fastbp.nn import optim
    from fastbp.nn.network import Network
    from fastbp.train.loop import part

    sizes, batch = NETS[name]
    comm, reducer = None, None
    if mpi.launched():
        from mpi4py import MPI

        from fastbp.backend import get_backend

        comm = MPI.COMM_WORLD
        reducer = mpi.Reducer(comm, get_backend("numpy"))
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm else (0, 1)
    lo, hi = part(batch, rank, size)
    rng = np.random.default_rng(rank)
    X = rng.random((hi - lo, sizes[0]), dtype=np.float32)
    Y = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], hi - lo)]
    net = Network(sizes, "relu", "softmax", "log_likelihood", "he", backend="numpy", seed=0)
    opt = optim.make("momentum", net, momentum=0.9)
    compute, reduce, total = [], [], []
    with threadpool_limits(threads):
        for k in range(steps + 10):
            if comm:
                comm.Barrier()
            t0 = time.perf_counter()
            net.forward(X, train=True)
            net.backward(X, Y)
            t1 = time.perf_counter()
            if reducer:
                reducer.gradient(net.grads, hi - lo, batch)
            t2 = time.perf_counter()
            opt.step(0.01)
            t3 = time.perf_counter()
            if k >= 10:  # 10 warm-up steps
                compute.append(t1 - t0 + t3 - t2)
                reduce.append(t2 - t1)
                total.append(t3 - t0)
    out = {"step_s": statistics.median(total), "compute_s": statistics.median(compute),
           "allreduce_s": statistics.median(reduce), "ranks": size, "threads": threads}
    if comm:  # the slowest rank sets the pace
        out = comm.gather(out)
        if rank:
            return
        out = {k: max(o[k] for o in out) for k in out[0]}
    print(json.dumps(out))


def _worker_allreduce(reps):
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rows = []
    for p in range(8, 23, 2):  # 256 floats (1 KB) .. 4 M floats (16 MB)
        buf = np.ones(2 ** p, np.float32)
        times = []
        for _ in range(reps):
            comm.Barrier()
            t0 = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            times.append(time.perf_counter() - t0)
        rows.append({"bytes": buf.nbytes, "seconds": statistics.median(times)})
    if comm.Get_rank() == 0:
        print(json.dumps(rows))


def _worker_gemm(threads):
    import numpy as np
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).random((512, 1024), dtype=np.float32)
    b = np.random.default_rng(1).random((1024, 1024), dtype=np.float32)
    out = np.empty((512, 1024), np.float32)
    with threadpool_limits(threads):
        for _ in range(3):
            np.matmul(a, b, out=out)
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            times.append(time.perf_counter() - t0)
    print(json.dumps({"threads": threads, "flops": 2 * 512 * 1024 * 1024 / statistics.median(times)}))


# -- the driver -----------------------------------------------------------------------------------
def _mpiexec():
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def _run(cmd, ranks=1):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(k, None)
    base = [sys.executable, "-m", "benchmarks.scaling", "--worker", *cmd]
    if ranks > 1:
        base = [_mpiexec(), "-n", str(ranks), *base]
    r = subprocess.run(base, capture_output=True, text=True, env=env, timeout=1800)
    if r.returncode:
        raise RuntimeError(f"{' '.join(base)} failed: {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure(rounds, steps, log=print):
    out = {"gemm": [_run(["gemm", "1"]), _run(["gemm", "2"])], "steps": {}}
    for name in NETS:
        n = steps if name == "medium" else max(20, steps // 3)
        single, double = [], []
        for k in range(rounds):  # interleaved: A B A B ...
            single.append(_run(["steps", name, str(n), "2"]))
            double.append(_run(["steps", name, str(n), "1"], ranks=2))
            log(f"{name} round {k + 1}: 1 rank × 2 threads {1e3 * single[-1]['step_s']:.2f} ms/step, "
                f"2 ranks × 1 thread {1e3 * double[-1]['step_s']:.2f} ms/step")
        med = lambda rows, k: statistics.median(r[k] for r in rows)  # noqa: E731
        out["steps"][name] = {
            "steps": n,
            "one_rank_2_threads": {k: med(single, k) for k in ("step_s", "compute_s")},
            "two_ranks_1_thread": {k: med(double, k) for k in ("step_s", "compute_s", "allreduce_s")},
        }
    out["allreduce"] = _run(["allreduce", "50"], ranks=2)
    return out


def model(measured):
    """Predicted step times and speed-ups: here (CPU ranks, measured rates) and on H200s."""
    gemm1 = measured["gemm"][0]["flops"]
    ar = measured["allreduce"]
    big = ar[-1]
    cpu_bw = big["bytes"] / big["seconds"]  # at R = 2, 2(R−1)/R = 1: t = bytes / bandwidth
    cpu_alpha = ar[0]["seconds"] / 2  # the smallest all-reduce, 2 ring steps at R = 2
    rows, curves = [], {}
    for name, (sizes, batch) in NETS.items():
        f, nbytes = flops_per_step(sizes, batch), 4 * n_params(sizes)
        m = measured["steps"][name]
        # here: compute at the 1-thread rate, the fixed part what one process measured beyond it
        t1 = m["one_rank_2_threads"]["step_s"]
        t_compute_cpu = f / gemm1
        pred2 = predict(0.0, t_compute_cpu, nbytes, 2, cpu_bw, cpu_alpha)
        gpu_compute = f / (GPU["fp32_flops"] * GPU["efficiency"])
        row = {"net": name, "sizes": list(sizes), "batch": batch, "flops_per_step": f, "grad_bytes": nbytes,
               "cpu_measured_1x2_s": t1, "cpu_measured_2x1_s": m["two_ranks_1_thread"]["step_s"],
               "cpu_predicted_2x1_s": pred2, "gpu_compute_s": gpu_compute, "gpu_fixed_s": GPU["fixed_s"]}
        t_gpu1 = GPU["fixed_s"] + gpu_compute
        for link, p in LINKS.items():
            ranks = 8 if link == "nvlink" else 32
            t = predict(GPU["fixed_s"], gpu_compute, nbytes, ranks, p["bandwidth"], p["alpha"])
            row[f"{link}_R"] = ranks
            row[f"{link}_step_s"] = t
            row[f"{link}_allreduce_s"] = ring_seconds(nbytes, ranks, p["bandwidth"], p["alpha"])
            row[f"{link}_speedup"] = t_gpu1 / t
            # weak scaling: each GPU keeps the batch (the global batch grows R times): samples/s gained
            row[f"{link}_weak_speedup"] = ranks * t_gpu1 / predict(GPU["fixed_s"], gpu_compute * ranks, nbytes, ranks,
                                                                   p["bandwidth"], p["alpha"])
            curves[(name, link)] = [(R, t_gpu1 / predict(GPU["fixed_s"], gpu_compute, nbytes, R, p["bandwidth"],
                                                          p["alpha"])) for R in range(1, 9 if link == "nvlink" else 33)]
        row["gpu_1_step_s"] = t_gpu1
        rows.append(row)
    inputs = {"cpu_gemm_flops_1_thread": gemm1, "cpu_gemm_flops_2_threads": measured["gemm"][1]["flops"],
              "cpu_allreduce_bandwidth": cpu_bw, "cpu_allreduce_alpha_s": cpu_alpha, "gpu": GPU, "links": LINKS}
    return {"inputs": inputs, "rows": rows}, curves


def plot(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for (name, link), pts in curves.items():
        sizes, batch = NETS[name]
        ax.plot([r for r, _ in pts], [s for _, s in pts], marker=".", linestyle="-" if link == "nvlink" else "--",
                label=f"{'-'.join(map(str, sizes))} b{batch}, "
                + ("NVLink (one node)" if link == "nvlink" else "InfiniBand (ring across nodes)"))
    ax.plot([1, 32], [1, 32], color="grey", linewidth=0.5, label="ideal")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("ranks R (H200 GPUs)")
    ax.set_ylabel("predicted speed-up per step")
    ax.set_title("Data-parallel speed-up, modelled (fixed global batch)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(measured, modelled, stamp):
    inp, rows = modelled["inputs"], modelled["rows"]
    ms = lambda s: f"{1e3 * s:.3g} ms"  # noqa: E731
    us = lambda s: f"{1e6 * s:.3g} µs"  # noqa: E731
    lines = [f"# Data-parallel scaling ({stamp}; provisional: measured on a shared 2-core machine)", "",
             "## Measured here: 1 rank × 2 BLAS threads against 2 MPI ranks × 1 thread (same global batch)", "",
             "| net | batch | 1 × 2 threads | 2 ranks × 1 | of which all-reduce | model, 2 ranks (GEMMs + all-reduce) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = measured["steps"][r["net"]]["two_ranks_1_thread"]
        lines.append(f"| {'-'.join(map(str, r['sizes']))} | {r['batch']} | {ms(r['cpu_measured_1x2_s'])} | "
                     f"{ms(r['cpu_measured_2x1_s'])} | {ms(m['allreduce_s'])} | {ms(r['cpu_predicted_2x1_s'])} |")
    lines += ["", "## MPI all-reduce of a float32 buffer, 2 ranks (shared memory)", "", "| bytes | time | GB/s |",
              "|---:|---:|---:|"]
    for a in measured["allreduce"]:
        lines.append(f"| {a['bytes']:,} | {us(a['seconds'])} | {a['bytes'] / a['seconds'] / 1e9:.2f} |")
    lines += ["", "## Model inputs", "",
              f"- GEMM rate here (512×1024 @ 1024×1024, float32): {inp['cpu_gemm_flops_1_thread'] / 1e9:.1f} GFLOP/s "
              f"on 1 thread, {inp['cpu_gemm_flops_2_threads'] / 1e9:.1f} on 2",
              f"- all-reduce here: {inp['cpu_allreduce_bandwidth'] / 1e9:.2f} GB/s, α = {us(inp['cpu_allreduce_alpha_s'])}",
              f"- GPU: {GPU['name']}, FP32 {GPU['fp32_flops'] / 1e12:.0f} TFLOP/s (datasheet) at an assumed "
              f"{GPU['efficiency']:.0%}; a fixed {us(GPU['fixed_s'])} of launches and host time per step (an "
              "estimate: ~25 launches at ~5 µs; no GPU has measured it)",
              *(f"- {p['label']}; α = {us(p['alpha'])} per ring step (assumed)" for p in LINKS.values()),
              "", "t(R) = t_fixed + t_compute / R + 2(R−1)/R × bytes / bandwidth + 2(R−1) α", "",
              "## Predicted on H200s", "",
              "Same global batch (strong scaling: what `mpiexec -n R fastbp train` does with a config), and, in",
              "the last two columns, R times the batch (weak scaling: each GPU keeps the batch; samples per second gained).", "",
              "| net | FLOPs/step | gradient | 1 GPU | 8 GPUs NVLink | speed-up | 32 GPUs (4 nodes) | speed-up "
              "| weak, 8 | weak, 32 |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {'-'.join(map(str, r['sizes']))} b{r['batch']} | {r['flops_per_step'] / 1e9:.3g} G | "
                     f"{r['grad_bytes'] / 1e6:.2f} MB | {us(r['gpu_1_step_s'])} | {us(r['nvlink_step_s'])} | "
                     f"{r['nvlink_speedup']:.2f}× | {us(r['ib_step_s'])} | {r['ib_speedup']:.2f}× | "
                     f"{r['nvlink_weak_speedup']:.1f}× | {r['ib_weak_speedup']:.1f}× |")
    lines += ["", "![predicted speed-up](scaling.png)", ""]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=300, help="timed steps of the medium net (the large one: a third)")
    p.add_argument("--quick", action="store_true", help="1 round of 20 steps: proves the script runs")
    p.add_argument("--out", type=Path)
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        if kind == "steps":
            return _worker_steps(rest[0], int(rest[1]), int(rest[2]))
        if kind == "allreduce":
            return _worker_allreduce(int(rest[0]))
        return _worker_gemm(int(rest[0]))
    if not _mpiexec():
        sys.exit("benchmarks.scaling: no mpiexec (pip install 'fastbp[mpi]')")
    rounds, steps = (1, 20) if args.quick else (args.rounds, args.steps)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out or RESULTS / f"scaling-{stamp[:8]}"
    out.mkdir(parents=True, exist_ok=True)
    measured = measure(rounds, steps)
    modelled, curves = model(measured)
    report = {"stamp": stamp, "provisional": True, "measured": measured, "model": modelled}
    (out / "scaling.json").write_text(json.dumps(report, indent=1))
    (out / "scaling.md").write_text(markdown(measured, modelled, stamp))
    plot(curves, out / "scaling.png")
    print(f"wrote {out}/scaling.json, scaling.md, scaling.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
