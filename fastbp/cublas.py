"""Matrix products through cuBLAS directly, for the cupy backend.

CuPy refuses every cuBLAS call while a stream is being captured into a CUDA
graph: each of its cuBLAS bindings (cupy_backends.cuda.libs.cublas: sgemm,
dgemm, gemmEx, ...) first calls its setStream, which raises NotImplementedError
when the stream is capturing, so cupy.matmul, dot, tensordot and einsum cannot
be recorded (CuPy 13 and 14). cuBLAS itself records GEMMs in graphs (this is
how PyTorch captures them): `Cublas` owns a handle, bound to a stream and an
explicit workspace before a capture begins, and calls cublasGemmEx through
ctypes on the libcublas CuPy loaded, so nothing checks or resets the stream
while recording.

`gemm_args` is the layout arithmetic, pure Python: which cuBLAS arguments
compute a row-major product; tests check it against numpy without a GPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import numpy as np

OP_N, OP_T = 0, 1  # cublasOperation_t
ROW, COL = "row", "col"
# What cuBLAS's documentation recommends for Hopper (sm90); older GPUs need less.
WORKSPACE_BYTES = 32 << 20
_INT_MAX = 2**31 - 1


def _layout(shape, strides, size):
    """(ROW or COL, leading dimension in elements) of a 2-D array whose rows
    (ROW) or columns (COL) are contiguous and evenly spaced, else None.
    A ROW array is read by cuBLAS (column-major) as its transpose."""
    (rows, cols), (s0, s1) = shape, strides
    if s1 == size and s0 % size == 0 and (s0 >= cols * size or rows == 1):
        return ROW, max(s0 // size, cols)
    if s0 == size and s1 % size == 0 and (s1 >= rows * size or cols == 1):
        return COL, max(s1 // size, rows)
    return None


def gemm_args(a, b, out, address):
    """cuBLAS arguments (transa, transb, m, n, k, lda, ldb, ldc) computing
    out = a @ b for 2-D arrays of one float dtype, each row-major or the
    transpose of a row-major array (a `.T` view), `out` row-major; None for
    anything else (other dtypes, strided or empty arrays, `out` overlapping an
    operand). `address(x)` is x's data pointer.

    cuBLAS is column-major: it reads a row-major M×N array as its N×M
    transpose. So it is asked for outᵀ = bᵀ aᵀ: its A is b, its B is a:
        cublasGemmEx(transa, transb, m, n, k, 1, b, lda, a, ldb, 0, out, ldc).
    """
    if a.ndim != 2 or b.ndim != 2 or out.ndim != 2:
        return None
    dtype = a.dtype
    if dtype != b.dtype or dtype != out.dtype or dtype.char not in "fd":
        return None
    (M, K), (K2, N), shape = a.shape, b.shape, out.shape
    if K != K2 or shape[0] != M or shape[1] != N or not M or not N or not K:
        return None
    size, strides = dtype.itemsize, (a.strides, b.strides, out.strides)
    la, lb, lc = _layout(a.shape, strides[0], size), _layout(b.shape, strides[1], size), _layout(shape, strides[2], size)
    if la is None or lb is None or lc is None or lc[0] != ROW:
        return None
    if max(M, N, K, la[1], lb[1], lc[1]) > _INT_MAX:  # cuBLAS's int arguments
        return None
    # [first, last] byte of each (non-negative strides): out must overlap neither operand
    (first_a, first_b, first_o), shapes = (address(a), address(b), address(out)), ((M, K), (K, N), (M, N))
    last_a, last_b, last_o = (p + (r - 1) * s0 + (c - 1) * s1 + size - 1
                              for p, (r, c), (s0, s1) in zip((first_a, first_b, first_o), shapes, strides))
    if first_a <= last_o and first_o <= last_a or first_b <= last_o and first_o <= last_b:
        return None
    transa = OP_N if lb[0] == ROW else OP_T  # a ROW b is read as bᵀ, which the product wants
    transb = OP_N if la[0] == ROW else OP_T
    return transa, transb, N, M, K, lb[1], la[1], lc[1]


def _library():
    """The libcublas CuPy loaded (one copy in the process), else the system's."""
    # This form, not `import cupy_backends.cuda.libs.cublas`: the package's
    # __getattr__ loads libcublas (CuPy 14: cuda-pathfinder) before the binding.
    from cupy_backends.cuda.libs import cublas  # noqa: F401

    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rsplit(" ", 1)[-1].strip()
                if os.path.basename(path).startswith("libcublas.so"):
                    return ctypes.CDLL(path)
    except OSError:  # not Linux
        pass
    name = ctypes.util.find_library("cublas")
    if name is None:
        raise OSError("cannot find the cuBLAS library that CuPy loaded")
    return ctypes.CDLL(name)


class CublasError(RuntimeError):
    pass


class Cublas:
    """A cuBLAS handle of our own on the current device, called through ctypes."""

    def __init__(self):
        import cupy
        from cupy_backends.cuda.libs import cublas

        lib = self.lib = _library()
        vp, i = ctypes.c_void_p, ctypes.c_int
        lib.cublasGetStatusName.restype = ctypes.c_char_p
        lib.cublasGetStatusName.argtypes = [i]
        lib.cublasCreate_v2.argtypes = [ctypes.POINTER(vp)]
        lib.cublasSetStream_v2.argtypes = [vp, vp]
        lib.cublasSetWorkspace_v2.argtypes = [vp, vp, ctypes.c_size_t]
        lib.cublasGemmEx.argtypes = [vp, i, i, i, i, i, vp, vp, i, i, vp, i, i, vp, vp, i, i, i, i]
        self.dtypes = {np.dtype(np.float32): cupy.cuda.runtime.CUDA_R_32F, np.dtype(np.float64): cupy.cuda.runtime.CUDA_R_64F}
        # α = 1, β = 0 read from the host (the handle's default pointer mode):
        # a graph records their values.
        self.scalars = {np.dtype(np.float32): (ctypes.c_float(1), ctypes.c_float(0)),
                        np.dtype(np.float64): (ctypes.c_double(1), ctypes.c_double(0))}
        self.algo = cublas.CUBLAS_GEMM_DEFAULT
        self.handle = vp()
        self._check(lib.cublasCreate_v2(ctypes.byref(self.handle)), "cublasCreate")
        self.bound = None

    def _check(self, status, what):
        if status != 0:
            raise CublasError(f"{what} failed: {self.lib.cublasGetStatusName(status).decode()}")

    def bind(self, stream, workspace, size):
        """Run on `stream` (a pointer) with `size` bytes of workspace at
        `workspace`: set outside a capture, so that recording sets nothing."""
        if self.bound != (stream, workspace, size):
            self._check(self.lib.cublasSetStream_v2(self.handle, stream), "cublasSetStream")
            # after setStream, which puts the handle back on cuBLAS's own workspace pool
            self._check(self.lib.cublasSetWorkspace_v2(self.handle, workspace, size), "cublasSetWorkspace")
            self.bound = (stream, workspace, size)

    def gemm(self, args, a, b, out, dtype, compute_type):
        """out = a @ b, given gemm_args' `args` and the three data pointers."""
        transa, transb, m, n, k, lda, ldb, ldc = args
        dt = self.dtypes[dtype]
        one, zero = self.scalars[dtype]
        self._check(self.lib.cublasGemmEx(self.handle, transa, transb, m, n, k, ctypes.byref(one), b, dt, lda, a, dt, ldb,
                                          ctypes.byref(zero), out, dt, ldc, compute_type, self.algo), "cublasGemmEx")
