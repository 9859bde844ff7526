"""The backend seam: the only module that knows numpy from cupy.

Everything above it receives a `Backend` and uses `backend.xp` (the array
module) plus the few helpers below whose best implementation differs between
the CPU and the GPU.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import numpy as np

from .errors import BackendError

BACKENDS = ("numpy", "cupy", "auto")
DTYPES = {"float32": np.float32, "float64": np.float64}

# Below this many elements one call to scipy's expit beats the four calls of
# the tanh form (call overhead dominates); above it numpy's SIMD tanh wins.
_EXPIT_MAX_SIZE = 4096


class Backend:
    """What fastbp needs of an array library: `xp` (the array module) and the
    operations below, whose implementations differ between the CPU and the
    GPU. NumpyBackend and CupyBackend are its two implementations."""

    name = ""
    memory = "memory"  # what runs out, for messages
    graphs = False  # can capture() record CUDA graphs?
    # Is reading a device scalar on the host free? On the CPU a float() per
    # batch is; on the GPU it waits for the queue to drain.
    cheap_sync = False

    def asarray(self, a, dtype=None):
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a):
        raise NotImplementedError

    def synchronize(self):
        raise NotImplementedError

    def rng(self, seed):
        """Seeded generator living on the device (shuffles, dropout masks)."""
        raise NotImplementedError

    def permutation(self, rng, n):
        return rng.permutation(n)

    def random(self, rng, out):
        """Fill `out` with uniform [0, 1) draws, in place."""
        raise NotImplementedError

    def integers(self, rng, high, n):
        """n integers drawn uniformly from [0, high)."""
        raise NotImplementedError

    def limit_threads(self, n):
        """Context manager capping the library's host threads at n (0: leave as is)."""
        return contextlib.nullcontext()

    def is_out_of_memory(self, exc):
        """Is `exc` this device's out-of-memory error?"""
        raise NotImplementedError

    def sparse_rows(self, X, dtype):
        """A scipy sparse matrix as a CSR matrix of `dtype` on the device."""
        raise NotImplementedError

    def sigmoid(self, z, out):
        """σ(z) = 1 / (1 + e^{-z}) into `out`, without overflow for large |z|."""
        raise NotImplementedError

    def device_name(self):
        raise NotImplementedError

    def describe(self):
        """Facts for `fastbp info`, run summaries and benchmark reports."""
        raise NotImplementedError

    # Fused kernels (kernels.py). A network and an optimiser ask once, when they
    # are made; None means: run the unfused code, the reference (numpy's fast path).
    def fused_layers(self, hidden, output, cost):
        """An object doing the network's elementwise stages (bias + σ, BP1's δ^L,
        BP2's ⊙ σ') in one kernel each, or None."""
        return None

    def fused_update(self, name):
        """A callable(p, g, n_weights, weight_decay, *args) doing optimiser
        `name`'s whole update in one kernel (args: kernels.OPTIMIZER's), or None."""
        return None

    def capture(self, fn):
        """Run fn() once, then record its device work as a CUDA graph (recording
        runs nothing) and return replay(), which runs that work with one launch;
        None where there are no graphs (numpy). Only the device work is
        recorded: fn's Python is not run again, so every scalar it passed a
        kernel (a learning rate, Adam's step count) and every array it touched
        are fixed, and its inputs must be refilled in place between replays.
        Arrays made while recording live in the graph's own memory, as long
        as replay does, and each replay writes them again."""
        return None

    def set_tf32(self, on):
        """Let float32 matrix products run on the tensor cores in TF32 (inputs
        rounded to a 10-bit mantissa). Returns whether this backend has such a
        mode: only a GPU does."""
        return False


class NumpyBackend(Backend):
    name = "numpy"
    memory = "host memory"
    cheap_sync = True

    def __init__(self):
        import scipy.special

        self.xp = np
        self._expit = scipy.special.expit

    def to_numpy(self, a):
        return np.asarray(a)

    def synchronize(self):
        pass

    def rng(self, seed):
        return np.random.default_rng(seed)

    def random(self, rng, out):
        rng.random(out=out, dtype=out.dtype)

    def integers(self, rng, high, n):
        return rng.integers(0, high, n)

    def limit_threads(self, n):
        # One thread avoids OpenBLAS's collapse on a machine that is already busy.
        if not n:
            return contextlib.nullcontext()
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=n, user_api="blas")

    def is_out_of_memory(self, exc):
        return isinstance(exc, MemoryError)

    def sparse_rows(self, X, dtype):
        import scipy.sparse

        return scipy.sparse.csr_matrix(X, dtype=dtype)

    def sigmoid(self, z, out):
        if z.size <= _EXPIT_MAX_SIZE:
            return self._expit(z, out=out)
        # σ(z) = ½ tanh(z/2) + ½: no exp overflow, SIMD tanh.
        xp = self.xp
        xp.multiply(z, 0.5, out=out)
        xp.tanh(out, out=out)
        xp.multiply(out, 0.5, out=out)
        return xp.add(out, 0.5, out=out)

    def device_name(self):
        import platform

        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
        except OSError:
            pass
        return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"

    def describe(self):
        return {"backend": self.name, "device": self.device_name(), **numpy_blas()}


# Variables that change the kernel or the threads of the BLAS numpy calls.
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
            "OMP_NUM_THREADS", "BLIS_NUM_THREADS")


def numpy_blas():
    """The BLAS behind numpy's matrix products: library and version, its file,
    threads, the CPU kernel it picked, and a warning naming the variables set in
    the environment that change them. `fastbp info` and the benchmark reports
    both record this dict.

    threadpoolctl lists every BLAS loaded in the process, and scipy, scikit-learn
    and torch wheels carry their own (other versions, other kernels), so the
    first one listed is often not numpy's: numpy's is the one inside numpy's
    folders (numpy.libs, numpy/.dylibs), else the only one, else the one whose
    version numpy was built against (conda's shared library)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

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
        if "OPENBLAS_CORETYPE" in env and info["blas_kernel"]:
            # What this CPU gets without the variable: a fresh interpreter, since
            # OpenBLAS reads it once, when it is loaded.
            clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
            code = "import json, fastbp.backend as b; print(json.dumps(b.numpy_blas()['blas_kernel']))"
            try:
                run = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=60)
                native = json.loads(run.stdout)
            except (OSError, ValueError, subprocess.SubprocessError):
                native = None
            if native and native != info["blas_kernel"]:
                said[sorted(env).index("OPENBLAS_CORETYPE")] += f" (forces the {info['blas_kernel']} kernel; this CPU's own is {native})"
        info["blas_warning"] = "set in the environment: " + ", ".join(said)
    return info


class CupyBackend(Backend):
    name = "cupy"
    memory = "GPU memory"
    graphs = True
    cheap_sync = False

    def __init__(self):
        import cupy
        import cupyx.scipy.special

        self.xp = cupy
        self._cupy = cupy
        self._expit = cupyx.scipy.special.expit
        # FASTBP_FUSED=0 runs the unfused ufuncs on the GPU too: to measure the
        # kernels' gain, or to rule them out.
        self.fused = os.environ.get("FASTBP_FUSED", "1") != "0"
        self._functions = {}

    def to_numpy(self, a):
        return self._cupy.asnumpy(a)

    def synchronize(self):
        self._cupy.cuda.get_current_stream().synchronize()

    def rng(self, seed):
        return self._cupy.random.RandomState(_seed_int(seed))

    def random(self, rng, out):
        out[...] = rng.random_sample(out.shape, dtype=out.dtype)

    def integers(self, rng, high, n):
        return rng.randint(0, high, n)

    def sigmoid(self, z, out):
        return self._expit(z, out=out)  # one fused, stable kernel on the GPU

    def is_out_of_memory(self, exc):
        return isinstance(exc, self._cupy.cuda.memory.OutOfMemoryError)

    def sparse_rows(self, X, dtype):
        import cupyx.scipy.sparse
        import scipy.sparse

        return cupyx.scipy.sparse.csr_matrix(scipy.sparse.csr_matrix(X, dtype=dtype))

    def device_name(self):
        props = self._cupy.cuda.runtime.getDeviceProperties(self._cupy.cuda.Device().id)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else name

    def describe(self):
        info = {"backend": self.name, "device": self.device_name()}
        info["cuda_runtime"] = self._cupy.cuda.runtime.runtimeGetVersion()
        info["cupy"] = self._cupy.__version__
        info["fused_kernels"] = self.fused
        return info

    def function(self, source, name, dtype):
        """Kernel `name` of kernels.SOURCES[source], compiled for dtype once."""
        key = (source, name, np.dtype(dtype).name)
        f = self._functions.get(key)
        if f is None:
            from . import kernels

            module = self._cupy.RawModule(code=kernels.source(kernels.SOURCES[source][0], dtype), options=kernels.OPTIONS)
            f = self._functions[key] = module.get_function(name)
        return f

    def fused_layers(self, hidden, output, cost):
        return _FusedLayers.make(self, hidden, output, cost) if self.fused else None

    def fused_update(self, name):
        from . import kernels

        fname = kernels.OPTIMIZER_KERNELS.get(name) if self.fused else None
        if fname is None:
            return None
        ndarray = self._cupy.ndarray

        def update(p, g, n_weights, weight_decay, *args):
            real = p.dtype.type
            args = [a if isinstance(a, ndarray) else real(a) for a in args]
            f = self.function("optimizer", fname, p.dtype)
            f(_grid(p.size), (kernels.THREADS,), (p, g, np.int64(n_weights), np.int64(p.size), real(weight_decay), *args))

        return update

    def capture(self, fn):
        cp = self._cupy
        pool, stream = cp.cuda.MemoryPool(), cp.cuda.Stream(non_blocking=True)
        cp.cuda.Device().synchronize()  # fn's inputs, written on other streams, land first
        with stream:
            fn()  # compiles every kernel, makes the buffers fn keeps, outside the recording
            stream.synchronize()
            # The graph writes its temporaries at the addresses they had while it was
            # recorded: a pool of their own keeps other arrays from being put there.
            with cp.cuda.using_allocator(pool.malloc):
                stream.begin_capture()
                try:
                    fn()
                except BaseException:
                    with contextlib.suppress(Exception):
                        stream.end_capture()
                    raise
                graph = stream.end_capture()

        def replay():
            graph.launch()  # on the current stream, ordered with the rest of the work

        replay.pool = pool  # the temporaries' memory lives as long as the graph
        return replay

    def set_tf32(self, on):
        # cuBLAS's compute type for float32 products (what CUPY_TF32=1 sets at start).
        from cupy._core import _routines_linalg as linalg

        linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32 if on else linalg.COMPUTE_TYPE_DEFAULT)
        return True


def _grid(n):
    """Blocks for a grid-stride kernel over n elements (at least one: a launch of none fails)."""
    from .kernels import THREADS

    return (max(1, min(-(-n // THREADS), 65535)),)


class _FusedLayers:
    """The network's elementwise stages as one kernel each (kernels.py), on
    cupy. Network.forward and backward call these next to the equations they
    compute; an input a kernel cannot take (a target of another dtype, say)
    goes through the unfused code instead."""

    @classmethod
    def make(cls, bk, hidden, output, cost):
        """None when a kernel lacks one of the three (a new activation, say)."""
        from . import kernels

        codes = kernels.ACTIVATIONS
        softmax = output.name == "softmax"
        if hidden.name not in codes or not (softmax or output.name in codes):
            return None
        if kernels.SIMPLIFIED_COSTS.get(cost.name) == output.name:
            delta_code = codes["identity"]  # σ' cancels: δ^L = a − y
        elif cost.name == "quadratic" and output.name in codes:
            delta_code = codes[output.name]
        else:
            return None
        return cls(bk, hidden, output, cost, softmax, delta_code)

    def __init__(self, bk, hidden, output, cost, softmax, delta_code):
        from . import kernels

        self.bk, self.k = bk, kernels
        self.hidden, self.output, self.cost, self.softmax = hidden, output, cost, softmax
        self.hidden_code = kernels.ACTIVATIONS[hidden.name]
        self.output_code = None if softmax else kernels.ACTIVATIONS[output.name]
        self.delta_code = delta_code
        self.hidden_slope = getattr(hidden, "slope", 0.0)
        self.output_slope = getattr(output, "slope", 0.0)
        self._log_norm = None

    def bias_activation(self, z, b, a, last):
        """z ← z + b, a = σ(z): kernels.BIAS_ACTIVATION, or BIAS_SOFTMAX for a softmax output."""
        real, f = z.dtype.type, self.bk.function
        if last and self.softmax:
            rows, cols = z.shape
            if self._log_norm is None or self._log_norm.shape[0] < rows or self._log_norm.dtype != z.dtype:
                self._log_norm = self.bk.xp.empty((rows, 1), z.dtype)
            log_norm = self._log_norm[:rows]
            blocks = max(1, -(-rows // self.k.ROWS_PER_BLOCK))
            f("bias_softmax", "bias_softmax", z.dtype)((blocks,), (32 * self.k.ROWS_PER_BLOCK,),
                                                       (z, b, a, log_norm, np.int64(rows), np.int64(cols)))
            self.output.log_norm = log_norm  # what activations.Softmax leaves for the cost
            return a
        act = self.output if last else self.hidden
        if z.size >= 2**31:  # past the kernel's 32-bit column arithmetic
            self.bk.xp.add(z, b, out=z)
            return act.forward(self.bk, z, a)
        code, slope = (self.output_code, self.output_slope) if last else (self.hidden_code, self.hidden_slope)
        f("bias_activation", "bias_activation", z.dtype)(
            _grid(z.size), (self.k.THREADS,), (z, b, a, np.int32(code), real(slope), np.uint32(z.shape[1]), np.int64(z.size)))
        return a

    def output_delta(self, z, a, y, delta, work, scale):
        """BP1, δ^L = ∇_a C ⊙ σ'(z^L) · scale: kernels.OUTPUT_DELTA."""
        if y.dtype != z.dtype or y.shape != z.shape or not isinstance(y, self.bk.xp.ndarray) or not y.flags.c_contiguous:
            self.cost.delta(self.bk, z, a, y, delta, self.output, work)
            return self.bk.xp.multiply(delta, scale, out=delta)
        real = z.dtype.type
        self.bk.function("output_delta", "output_delta", z.dtype)(
            _grid(z.size), (self.k.THREADS,),
            (z, a, y, delta, np.int32(self.delta_code), real(self.output_slope), real(scale), np.int64(z.size)))
        return delta

    def activation_grad(self, delta, z, a):
        """BP2's δ ⊙= σ'(z) for a hidden layer: kernels.ACTIVATION_GRAD."""
        real = z.dtype.type
        self.bk.function("activation_grad", "activation_grad", z.dtype)(
            _grid(z.size), (self.k.THREADS,), (delta, z, a, np.int32(self.hidden_code), real(self.hidden_slope), np.int64(z.size)))
        return delta


def _seed_int(seed):
    """cupy's RandomState takes one int; fold numpy-style seed sequences into one."""
    if seed is None or isinstance(seed, int):
        return seed
    return int(np.random.SeedSequence(seed).generate_state(1)[0])


def cupy_status():
    """(usable, reason): can cupy run on a CUDA device here? Never raises."""
    try:
        import cupy
    except Exception as exc:  # not installed, or broken install: its message says which
        message = (str(exc).splitlines() or [""])[0][:200]
        return False, f"cupy is not importable ({type(exc).__name__}{': ' + message if message else ''})"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return False, "cupy found no CUDA device"
        cupy.arange(2).sum().item()
        return True, "ok"
    except Exception as exc:
        return False, f"cupy found no usable CUDA device ({str(exc).splitlines()[0][:120]})"


def cupy_usable():
    return cupy_status()[0]


_cache: dict[str, Backend] = {}


def get_backend(name="auto"):
    """Return the backend called `name` ('numpy', 'cupy' or 'auto').

    'auto' picks cupy when a usable CUDA device exists and numpy otherwise;
    set FASTBP_BACKEND to change what 'auto' means.
    """
    if isinstance(name, Backend):
        return name
    if name == "auto":
        name = os.environ.get("FASTBP_BACKEND", "auto")
        if name == "auto":
            usable, reason = cupy_status()
            name = "cupy" if usable else "numpy"
            if not usable and "not importable" not in reason:
                # cupy is installed, so a GPU was expected: say why it is not used.
                warnings.warn(f"backend auto: {reason}; using numpy", RuntimeWarning, stacklevel=2)
    if name not in ("numpy", "cupy"):
        raise BackendError(f"unknown backend {name!r}: choose one of numpy, cupy, auto")
    if name not in _cache:
        if name == "cupy":
            usable, reason = cupy_status()
            if not usable:
                raise BackendError(
                    f"backend 'cupy' cannot be used: {reason} "
                    "(pip install 'fastbp[gpu]' on a machine with an NVIDIA GPU, or use --backend numpy)"
                )
            _cache[name] = CupyBackend()
        else:
            _cache[name] = NumpyBackend()
    return _cache[name]


def is_out_of_memory(exc):
    """Is `exc` the out-of-memory error of a backend in use?"""
    return any(bk.is_out_of_memory(exc) for bk in _cache.values())


def resolve_dtype(dtype):
    key = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if key not in DTYPES:
        raise BackendError(f"unsupported dtype {dtype!r}: choose float32 or float64")
    return DTYPES[key]
