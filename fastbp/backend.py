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

from .cublas import WORKSPACE_BYTES, gemm_args
from .errors import BackendError
from .extras import not_installed

BACKENDS = ("numpy", "cupy", "auto")
DTYPES = {"float32": np.float32, "float64": np.float64}

# Dropout's draws: SplitMix64 (Steele, Lea & Flood, OOPSLA 2014). Its draw i of
# stream `key` is a pure function of (key, i), so a mask is made without the draws
# before it (a resumed epoch, one rank's rows of a batch), bit for bit the same on
# every backend and in jit.py: (γ, (shift, multiplier), (shift, multiplier), shift).
SPLITMIX = (0x9E3779B97F4A7C15, (30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB), 31)

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
        """Seeded generator living on the device (shuffles, image shifts)."""
        raise NotImplementedError

    def permutation(self, rng, n):
        return rng.permutation(n)

    def uniform(self, key, start, out):
        """Fill the 2-D `out` with uniform [0, 1) draws from SplitMix64's stream
        `key` (a uint64 seed): row r from its outputs start + r·⌈w/2⌉ + 1, + 2, ...
        (w: out's width), each output v giving two draws, the top 24 bits of its
        two 32-bit halves: (v >> 40) / 2²⁴ and ((v >> 8) mod 2²⁴) / 2²⁴, exact in
        float32 and float64. Where the backend has kernels, one launch; else the
        array code below, the reference."""
        if self.fused and out.flags.c_contiguous:
            from .nn import fused

            return fused.uniform(self, key, start, out)
        xp, (rows, w) = self.xp, out.shape
        m = (w + 1) // 2
        cache = vars(self).setdefault("_splitmix", {})
        if (rows, m, out.dtype) not in cache:  # the state advances by γ an output: (1, 2, ...) γ, wrapping
            if len(cache) > 16:
                cache.clear()
            steps = (xp.arange(1, rows * m + 1, dtype=xp.uint64) * xp.uint64(SPLITMIX[0])).reshape(rows, m)
            cache[(rows, m, out.dtype)] = steps, xp.empty_like(steps), xp.empty_like(steps), xp.empty((rows, m, 2), out.dtype)
        steps, x, t, pairs = cache[(rows, m, out.dtype)]
        direct = w % 2 == 0 and out.flags.c_contiguous  # else through `pairs`
        xp.add(steps, xp.uint64((key + start * SPLITMIX[0]) % 2**64), out=x)
        for shift, multiplier in SPLITMIX[1:3]:
            xp.right_shift(x, xp.uint64(shift), out=t)
            xp.bitwise_xor(x, t, out=x)
            xp.multiply(x, xp.uint64(multiplier), out=x)
        xp.right_shift(x, xp.uint64(SPLITMIX[3]), out=t)
        xp.bitwise_xor(x, t, out=x)
        two = out.reshape(rows, m, 2) if direct else pairs
        # 24-bit integers: through int64, whose conversion to floats is vectorised (uint64's is not)
        xp.right_shift(x, xp.uint64(40), out=t)
        xp.copyto(two[..., 0], t.view(xp.int64), casting="unsafe")
        xp.right_shift(x, xp.uint64(8), out=t)
        xp.bitwise_and(t, xp.uint64(2**24 - 1), out=t)
        xp.copyto(two[..., 1], t.view(xp.int64), casting="unsafe")
        if not direct:
            xp.copyto(out, two.reshape(rows, 2 * m)[:, :w])
        return xp.multiply(out, 2.0**-24, out=out)

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

    def gather_scaled(self, X, rows, scale, raw, out):
        """out = X[rows] × scale (raw: the gathered rows as stored, made on the way)."""
        self.xp.take(X, rows, axis=0, out=raw)
        return self.scale(raw, scale, out)

    def device_name(self):
        raise NotImplementedError

    def describe(self):
        """Facts for `fastbp info`, run summaries and benchmark reports."""
        raise NotImplementedError

    # Compiled CUDA kernels (kernels.py), launched by nn/fused.py. False:
    # fastbp runs the unfused array code, the reference.
    fused = False
    # The numba-compiled CPU step and optimiser updates (jit.py), on numpy arrays.
    jit = False

    def function(self, source, name, dtype):
        """Kernel `name` of kernels.sources()[source], compiled for dtype: a
        callable(grid, block, args). Only where `fused` is true."""
        raise NotImplementedError

    def matmul(self, a, b, out):
        """out = a @ b for 2-D arrays (the network's GEMMs); returns out."""
        return self.xp.matmul(a, b, out=out)

    def address(self, a):
        """The data pointer of an array: where a recorded graph reads or writes it."""
        return a.__array_interface__["data"][0]

    tf32 = False  # do float32 matrix products run in TF32 (set_tf32)?

    def capture(self, fn):
        """Run fn() once, then record its device work as a CUDA graph (recording
        runs nothing) and return replay(), which runs that work with one launch;
        None where there are no graphs (numpy). Only the device work is
        recorded: fn's Python is not run again, so every scalar it passed a
        kernel (a learning rate, Adam's step count) and every array it touched
        are fixed, and its inputs must be refilled in place between replays.
        Arrays made while recording live in the graph's own memory, as long
        as replay does, and each replay writes them again; every other array
        fn touched must be kept alive, and not replaced, by the caller for as
        long as it replays (a replay writes where they were)."""
        return None

    def set_tf32(self, on):
        """Let float32 matrix products run on the tensor cores in TF32 (inputs
        rounded to a 10-bit mantissa). Returns whether this backend has such a
        mode: only a GPU does."""
        return False

    # Data parallelism (fastbp.dist.mpi): a device per rank, and the gradient's all-reduce.
    on_host = True  # do the arrays live in host memory, where MPI reads them in place?

    def use_device(self, local_rank):
        """Take the device of the rank numbered local_rank on its node (the CPU: nothing to take)."""

    def device_allreduce(self, comm, rank, size):
        """A callable(buf) summing a device array in place over the ranks of
        the MPI communicator `comm` without a host copy (NCCL), or None."""
        return None


class NumpyBackend(Backend):
    name = "numpy"
    matmul = staticmethod(np.matmul)  # the ufunc itself: no method call per GEMM
    memory = "host memory"
    cheap_sync = True
    gather_rows = 256  # about 1 MB of float32 MNIST rows: the chunk stays in the L2 cache

    def __init__(self):
        import scipy.special

        from . import jit

        self.xp = np
        self._expit = scipy.special.expit
        self.jit = jit.wanted()  # FASTBP_JIT, else where numba is installed
        self._zeros = {}  # (shape, dtype): an array of zeros, for relu

    def to_numpy(self, a):
        return np.asarray(a)

    def synchronize(self):
        pass

    def rng(self, seed):
        return np.random.default_rng(seed)

    def uniform(self, key, start, out):
        if self.jit:
            from . import jit

            if jit.uniform(key, start, out) is not None:  # one pass, no uint64 temporaries
                return out
        return super().uniform(key, start, out)

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

    def gather_scaled(self, X, rows, scale, raw, out):
        if self.jit and X.dtype == np.uint8 and X.flags.c_contiguous and out.flags.c_contiguous:
            from . import jit

            if jit.gather_scaled(X, rows, scale, out) is not None:  # one pass, raw not needed
                return out
        return super().gather_scaled(X, rows, scale, raw, out)

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

        info = {"backend": self.name, "device": self.device_name(), **machine.blas()}
        if self.jit:  # the compiled step's GEMMs are another library's
            from importlib.metadata import version

            from . import jit

            info["jit"] = f"numba {version('numba')}"
            info.update({"jit_blas": "numpy's (the blas above)"} if jit.numpy_gemm("float32") else machine.jit_blas())
        else:
            info["jit"] = "off (numpy's calls; pip install 'fastbp[jit]' compiles the step)"
        return info


class CupyBackend(Backend):
    name = "cupy"
    memory = "GPU memory"
    graphs = True
    cheap_sync = False

    def __init__(self):
        import cupy
        import cupyx.scipy.special
        from cupy._core import _routines_linalg
        from cupy_backends.cuda.libs import cublas

        self.xp = cupy
        self._cupy = cupy
        self._expit = cupyx.scipy.special.expit
        # FASTBP_FUSED=0 runs the unfused ufuncs on the GPU too: to measure the
        # kernels' gain, or to rule them out.
        self.fused = os.environ.get("FASTBP_FUSED", "1") != "0"
        self._functions = {}
        self._handles = {}  # device id: (cublas.Cublas, its workspace outside graphs)
        self._graph_workspace = None  # the recording graph's cuBLAS workspace, while capture() records
        self._linalg, self._cublas_lib = _routines_linalg, cublas  # CuPy's GEMM settings and constants

    def to_numpy(self, a):
        return self._cupy.asnumpy(a)

    def synchronize(self):
        self._cupy.cuda.get_current_stream().synchronize()

    def rng(self, seed):
        return self._cupy.random.RandomState(_seed_int(seed))

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

    on_host = False

    def use_device(self, local_rank):
        self._cupy.cuda.Device(local_rank % self._cupy.cuda.runtime.getDeviceCount()).use()

    def device_allreduce(self, comm, rank, size):
        return nccl_allreduce(self._cupy, comm, rank, size)

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

    def matmul(self, a, b, out):
        # cuBLAS called directly (fastbp/cublas.py): CuPy's own matmul cannot be
        # recorded in a CUDA graph, and this is the same GEMM with less Python.
        args = gemm_args(a, b, out, self.address)
        if args is None:
            return self._cupy_matmul(a, b, out)
        blas, workspace = self._cublas()
        if self._graph_workspace is not None:
            workspace = self._graph_workspace
        blas.bind(self._cupy.cuda.get_current_stream().ptr, workspace.data.ptr, WORKSPACE_BYTES)
        blas.gemm(args, a.data.ptr, b.data.ptr, out.data.ptr, a.dtype, self._compute_type(a.dtype))
        return out

    def _cupy_matmul(self, a, b, out):
        """What the direct GEMM does not take; never while recording a graph."""
        if self._graph_workspace is not None:
            raise BackendError(
                f"a CUDA graph cannot record this matrix product ({a.dtype} {a.shape} by {b.dtype} {b.shape} into "
                f"{out.dtype} {out.shape}): CuPy refuses cuBLAS while recording, and fastbp's direct cuBLAS call takes "
                "only float32 or float64 operands that are row-major or .T views of row-major arrays, and a row-major "
                "out that overlaps neither")
        return self._cupy.matmul(a, b, out=out)

    def _cublas(self):
        device = self._cupy.cuda.runtime.getDevice()
        pair = self._handles.get(device)
        if pair is None:
            from .cublas import Cublas

            pair = self._handles[device] = Cublas(), self._cupy.empty(WORKSPACE_BYTES, self._cupy.uint8)
        return pair

    def _compute_type(self, dtype):
        """The cuBLAS compute type cupy.matmul would use (CuPy's compute-type
        switch, which set_tf32 and CUPY_TF32 set): both paths round alike."""
        linalg, cublas = self._linalg, self._cublas_lib
        mode = linalg.get_compute_type(dtype)
        if dtype == np.float32:
            return {linalg.COMPUTE_TYPE_PEDANTIC: cublas.CUBLAS_COMPUTE_32F_PEDANTIC,
                    linalg.COMPUTE_TYPE_TF32: cublas.CUBLAS_COMPUTE_32F_FAST_TF32}.get(mode, cublas.CUBLAS_COMPUTE_32F)
        return cublas.CUBLAS_COMPUTE_64F_PEDANTIC if mode == linalg.COMPUTE_TYPE_PEDANTIC else cublas.CUBLAS_COMPUTE_64F

    def address(self, a):
        return a.data.ptr

    def capture(self, fn):
        cp = self._cupy
        pool, stream = cp.cuda.MemoryPool(), cp.cuda.Stream(non_blocking=True)
        # cuBLAS's scratch memory for the recorded GEMMs, the graph's own: a
        # workspace set on the handle, so that recording allocates none.
        workspace = cp.empty(WORKSPACE_BYTES, cp.uint8)
        cp.cuda.Device().synchronize()  # fn's inputs, written on other streams, land first
        with stream:
            fn()  # compiles every kernel, makes the buffers fn keeps, outside the recording
            stream.synchronize()
            # The handle's stream and workspace are set now: CuPy refuses its cuBLAS
            # binding's setStream during a capture, and none is needed in it.
            self._cublas()[0].bind(stream.ptr, workspace.data.ptr, WORKSPACE_BYTES)
            # The graph writes its temporaries at the addresses they had while it was
            # recorded: a pool of their own keeps other arrays from being put there.
            with cp.cuda.using_allocator(pool.malloc):
                stream.begin_capture()
                self._graph_workspace = workspace
                try:
                    fn()
                except BaseException:
                    with contextlib.suppress(Exception):
                        stream.end_capture()
                    raise
                finally:
                    self._graph_workspace = None
                graph = stream.end_capture()

        def replay():
            graph.launch()  # on the current stream, ordered with the rest of the work

        replay.pool, replay.workspace = pool, workspace  # the graph's memory lives as long as it
        return replay

    @property
    def tf32(self):
        return self._linalg.get_compute_type(np.float32) == self._linalg.COMPUTE_TYPE_TF32

    def set_tf32(self, on):
        # cuBLAS's compute type for float32 products (what CUPY_TF32=1 sets at
        # start), which cupy.matmul and fastbp's direct GEMMs both follow.
        linalg = self._linalg
        linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32 if on else linalg.COMPUTE_TYPE_DEFAULT)
        return True


def nccl_allreduce(cupy, comm, rank, size, nccl=None):
    """An in-place NCCL sum over the ranks of MPI communicator `comm`, as a
    callable(buf) on cupy arrays; None, the same on every rank, where NCCL
    cannot serve (not installed, FASTBP_NCCL=0, two ranks on one device):
    then the caller sums a host copy through MPI. `nccl`: the module to use
    (cupy.cuda.nccl; the tests pass a stand-in)."""
    import platform

    ok = os.environ.get("FASTBP_NCCL", "1") != "0"
    if ok and nccl is None:
        try:
            from cupy.cuda import nccl
        except Exception:  # ImportError, or a missing libnccl found on import
            ok = False
    device = (platform.node(), cupy.cuda.Device().id)
    devices = comm.allgather(device)
    ok = ok and len(set(devices)) == len(devices)  # NCCL needs a device of its own per rank
    if not comm.allreduce(int(ok), op=_mpi_min()):
        return None
    uid = comm.bcast(nccl.get_unique_id() if rank == 0 else None, root=0)
    nc = nccl.NcclCommunicator(size, uid, rank)
    kinds = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}

    def allreduce(buf):
        ptr = buf.data.ptr
        nc.allReduce(ptr, ptr, buf.size, kinds[np.dtype(buf.dtype)], nccl.NCCL_SUM, cupy.cuda.get_current_stream().ptr)

    return allreduce


def _mpi_min():
    from mpi4py import MPI

    return MPI.MIN


def _seed_int(seed):
    """cupy's RandomState takes one int; fold numpy-style seed sequences into one."""
    if seed is None or isinstance(seed, int):
        return seed
    return int(np.random.SeedSequence(seed).generate_state(1)[0])


def cupy_status():
    """(usable, reason): can cupy run on a CUDA device here? Never raises."""
    try:
        import cupy
    except Exception as exc:  # not installed, or an install that does not load: its message says which
        if not_installed(exc, "cupy"):
            return False, "cupy is not installed"
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
            if not usable and reason != "cupy is not installed":
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
