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

    def relu(self, z, out):
        """max(z, 0) into `out` (a NaN z stays NaN)."""
        return self.xp.maximum(z, 0, out=out)

    # How many rows loop.Batches gathers with one call: several batches at
    # once where per-call overhead counts; 0 gathers each batch alone (the
    # buffers a CUDA graph replays must stay the same arrays).
    gather_rows = 0

    def scale(self, raw, scale, out):
        """out = raw × scale, raw as stored (uint8 images), out in the network's dtype."""
        return self.xp.multiply(raw, scale, out=out)

    def device_name(self):
        raise NotImplementedError

    def describe(self):
        """Facts for `fastbp info`, run summaries and benchmark reports."""
        raise NotImplementedError

    # Compiled CUDA kernels (kernels.py), launched by nn/fused.py. False:
    # fastbp runs the unfused array code, the reference (numpy's fast path).
    fused = False

    def function(self, source, name, dtype):
        """Kernel `name` of kernels.sources()[source], compiled for dtype: a
        callable(grid, block, args). Only where `fused` is true."""
        raise NotImplementedError

    def matmul(self, a, b, out):
        """out = a @ b for 2-D arrays (out C-contiguous): every GEMM of a training step."""
        return self.xp.matmul(a, b, out=out)

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
    gather_rows = 256  # about 1 MB of float32 MNIST rows: the chunk stays in the L2 cache

    def __init__(self):
        import scipy.special

        self.xp = np
        self.matmul = np.matmul  # the ufunc itself: no method call per GEMM
        self._expit = scipy.special.expit
        self._zeros = {}  # (shape, dtype): an array of zeros, for relu

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

    def scale(self, raw, scale, out):
        if raw.dtype.kind in "ui" and np.can_cast(raw.dtype, out.dtype):
            # The exact cast and then a same-type multiply: the values of the
            # mixed-type multiply (it casts first too), without its slow loop.
            np.copyto(out, raw)
            return np.multiply(out, scale, out=out)
        return np.multiply(raw, scale, out=out)

    def relu(self, z, out):
        # numpy's maximum against a 0-d zero takes a scalar loop; against an
        # array of zeros, its SIMD one: the same values, several times faster.
        key = (z.shape, z.dtype)
        zeros = self._zeros.get(key)
        if zeros is None:
            if len(self._zeros) > 16:  # a caller cycling through many shapes: don't hoard
                self._zeros.clear()
            zeros = self._zeros[key] = np.zeros(z.shape, z.dtype)
        return np.maximum(z, zeros, out=out)

    def device_name(self):
        from . import machine

        return machine.cpu()

    def describe(self):
        from . import machine

        return {"backend": self.name, "device": self.device_name(), **machine.blas()}


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
        from . import kernels

        text = kernels.source(kernels.sources()[source][0], dtype)
        key = (text, name)  # the source as the records make it now
        f = self._functions.get(key)
        if f is None:
            module = self._cupy.RawModule(code=text, options=kernels.OPTIONS)
            f = self._functions[key] = module.get_function(name)
        return f

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


def _seed_int(seed):
    """cupy's RandomState takes one int; fold numpy-style seed sequences into one."""
    if seed is None or isinstance(seed, int):
        return seed
    return int(np.random.SeedSequence(seed).generate_state(1)[0])


def cupy_status():
    """(usable, reason): can cupy run on a CUDA device here? Never raises."""
    try:
        import cupy
    except Exception as exc:  # not installed, or broken install
        return False, f"cupy is not importable ({type(exc).__name__})"
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
