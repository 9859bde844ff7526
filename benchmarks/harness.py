"""The harness: side-by-side runs, medians, the machine, JSON and Markdown.

Each runner of a comparison lives in its own process (multiprocessing,
spawn), so that libraries, threads and memory never mix. All are set up
first; then each does one untimed warm-up repetition; then `reps` rounds in
turn, A B C A B C ..., so that a slow spell of a shared machine hits every
runner alike. A process times its own repetitions (time.perf_counter).
Before each one the harness waits SETTLE seconds, so that the BLAS and
OpenMP threads of the runner before it stop spinning and go to sleep.

Peak memory: after the process has imported its libraries and loaded the raw
data set, it resets the kernel's RSS high-water mark (`5` into
/proc/self/clear_refs, Linux >= 4.0) and notes its RSS; at the end it reads
the high-water mark (VmHWM). Peak − base is what the runner itself added at
its worst: its copy of the data in the form it wants, the network, work
buffers, BLAS buffers, everything (tracemalloc would miss BLAS and torch).
Where the reset is not allowed, ru_maxrss stands in for VmHWM (which then
also counts anything before the base).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path


SETTLE = float(os.environ.get("FASTBP_BENCH_SETTLE", "0.2"))  # gpu_session.sh shortens it: no BLAS threads spin on a GPU


class WorkerError(RuntimeError):
    pass


def _status_kb(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kb("VmHWM") is not None
    except OSError:
        return False


def _serve(conn, task):
    """Worker process: prepare, set up, then answer warmup / rep / done."""
    try:
        task.prepare()
        reset = _reset_peak()
        base = _status_kb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        task.setup()
        conn.send(("ok", None))
        while True:
            cmd = conn.recv()
            if cmd in ("warmup", "rep"):
                conn.send(("ok", getattr(task, cmd)()))
                continue
            peak = _status_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            memory = {
                "rss_base_mb": base / 1024,
                "rss_peak_mb": peak / 1024,
                "peak_mb": (peak - base) / 1024,
                "method": "VmHWM after clear_refs" if reset else "ru_maxrss",
                "gpu_peak_mb": task.gpu_peak_mb(),
            }
            conn.send(("ok", memory))
            return
    except BaseException as exc:  # reported to the parent, which goes on without this runner
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


class Worker:
    def __init__(self, ctx, task):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, task), daemon=True)
        self.proc.start()
        child.close()

    def ask(self, cmd=None):
        if cmd is not None:
            time.sleep(SETTLE)
            self.conn.send(cmd)
        try:
            status, value = self.conn.recv()
        except EOFError:
            self.proc.join(5)
            status, value = "error", f"worker died (exit code {self.proc.exitcode})"
        if status == "error":
            raise WorkerError(value)
        return value

    def close(self):
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.terminate()


def interleave(tasks, reps, log=print):
    """{name: task} -> {name: {"warmup": {...}, "reps": [{...}, ...], "memory": {...}}}
    with "error" instead where a runner failed. A task has prepare(), setup(),
    warmup() and rep() (each returning a dict with "seconds"), gpu_peak_mb()."""
    ctx = mp.get_context("spawn")
    workers = {name: Worker(ctx, task) for name, task in tasks.items()}
    out = {name: {"reps": []} for name in tasks}

    def each(cmd, keep):
        for name, worker in list(workers.items()):
            try:
                keep(out[name], worker.ask(cmd))
            except WorkerError as exc:
                log(f"  {name}: {exc}")
                out[name]["error"] = str(exc)
                workers.pop(name).close()

    each(None, lambda o, v: None)  # all set up before anything is timed
    each("warmup", lambda o, v: o.update(warmup=v))
    for r in range(reps):
        each("rep", lambda o, v: o["reps"].append(v))
        log(f"  round {r + 1}/{reps}: " + ", ".join(f"{n} {out[n]['reps'][-1]['seconds']:.3f}s" for n in workers))
    each("done", lambda o, v: o.update(memory=v))
    for worker in workers.values():
        worker.close()
    return out


def median(values):
    return statistics.median(values) if values else None


# -- the machine --------------------------------------------------------------
def machine():
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu": platform.processor()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info["cores"] = os.cpu_count()
    info["cores_usable"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info["blas"] = blas()
    info["gpu"] = gpu_name()
    info["environment"] = environment()
    return info


ENV = ("FASTBP_FUSED", "FASTBP_BACKEND", "FASTBP_EMULATE_GPU", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
       "OMP_NUM_THREADS", "XLA_FLAGS", "JAX_PLATFORMS")  # the variables that change what a row runs


def environment():
    return {k: os.environ[k] for k in ENV if k in os.environ}


def blas():
    """numpy's BLAS as `fastbp info` reports it: library, version, file, threads, kernel,
    and the environment variables that force a kernel or a thread count."""
    from fastbp import machine

    return machine.blas()


def blas_threads():
    return blas()["blas_threads"] or os.cpu_count()


def gpu_name():
    from fastbp.backend import cupy_usable, get_backend

    if cupy_usable():
        return get_backend("cupy").device_name()
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return None


def versions():
    out = {}
    for dist in ("fastbp", "numpy", "scipy", "scikit-learn", "threadpoolctl", "torch", "jax", "jaxlib", "matplotlib", "numba"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    try:  # its distribution is named for its CUDA version (cupy-cuda13x): ask the module
        import cupy

        out["cupy"] = cupy.__version__
    except Exception:
        out["cupy"] = None
    try:
        git = ["git", "-C", str(Path(__file__).parent), "describe", "--always", "--dirty"]
        out["fastbp_git"] = subprocess.run(git, capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["fastbp_git"] = None
    return out


# -- output -------------------------------------------------------------------
def fmt(value, spec=".3g"):
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return format(value, spec)


def table(rows, columns):
    """Markdown table: columns is [(header, key, format spec or callable)]."""
    lines = ["| " + " | ".join(h for h, _, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f(row) if callable(f) else fmt(row.get(key), f) for _, key, f in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write(report, markdown, out_dir, prefix="bench"):
    """Write <out>/<prefix>-<stamp>.json and .md; returns the path stem."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{prefix}-{datetime.now():%Y%m%d-%H%M%S}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    stem.with_suffix(".md").write_text(markdown + "\n")
    return stem


def header(report):
    m, v = report["machine"], report["versions"]
    b = m["blas"]
    pools = f"{b['blas']}, kernel {b['blas_kernel']}, {b['blas_threads']} threads ({b['blas_file']})"
    pools += f"; {b['blas_warning']}" if "blas_warning" in b else ""
    libs = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    return (
        f"# fastbp benchmarks, {report['created']}\n\n"
        f"- machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), GPU: {m['gpu'] or 'none'}\n"
        f"- BLAS (numpy): {pools}\n- versions: {libs}\n"
        f"- environment: {' '.join(f'{k}={v}' for k, v in m.get('environment', {}).items()) or 'none set'}\n"
        f"- command: `{' '.join(report['command'])}`; {report['options']['reps']} timed repetitions "
        f"after 1 warm-up, interleaved, medians shown\n"
    )


def run_stamp():
    return datetime.now().isoformat(timespec="seconds")


def argv(module="benchmarks"):
    return [os.path.basename(sys.executable), "-m", module, *sys.argv[1:]]
