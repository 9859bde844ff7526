"""The cupy backend's fused hooks on numpy arrays, each kernel launch checked
against its C signature and run by its numpy reference (fastbp/kernels.py).

tests/test_kernels.py uses it to check the launches without a GPU. With
FASTBP_EMULATE_GPU=1 (tests/conftest.py) 'cupy' is this backend, so the GPU
tests' own logic can be run anywhere:

    FASTBP_EMULATE_GPU=1 python -m pytest -q tests/test_gpu.py

That proves the tests and the launches' arguments, not the kernels: only a
device runs those.

It also holds the backend to what CuPy allows while a CUDA graph is being
recorded (capture): its `xp` is numpy behind a proxy that raises CuPy's own
NotImplementedError for each call that reaches cuBLAS, cuRAND or cuSOLVER then
(CuPy 13/14 refuse them all in capture: cupy_backends/cuda/libs/*.pyx); its
matrix products go through the cupy backend's direct-cuBLAS argument mapping
(fastbp/cublas.py), evaluated on the flat buffers as cuBLAS would; and a
replay fails when an array the recording touched has been freed since (a real
replay would write memory handed to other arrays). `a @ b` on numpy arrays
cannot be intercepted: the network calls bk.matmul instead.
"""

import re
import weakref
from types import SimpleNamespace

import numpy as np

from fastbp import kernels
from fastbp.backend import Backend, CupyBackend, NumpyBackend
from fastbp.cublas import OP_N, gemm_args



_SIGNATURE = re.compile(r'extern "C" __global__ void (\w+)\(([^)]*)\)')


def _signatures():
    """{kernel name: [C type of each parameter]} parsed from the sources."""
    out = {}
    for body, _ in kernels.sources().values():
        for name, params in _SIGNATURE.findall(body):
            out[name] = [" ".join(p.split()[:-1]) for p in params.split(",")]
    return out


SIGNATURES = _signatures()


def _check_args(name, args, real):
    """Each argument is what the C parameter takes: a contiguous array of `real`
    for a pointer, else a numpy scalar of the parameter's type."""
    types = SIGNATURES[name]
    assert len(args) == len(types), f"{name}: {len(args)} arguments for {len(types)} parameters"
    want = {"real": real, "int": np.int32, "unsigned int": np.uint32, "long long": np.int64,
            "unsigned long long": np.uint64}
    for i, (arg, ctype) in enumerate(zip(args, types)):
        if ctype.endswith("*"):
            assert isinstance(arg, np.ndarray) and arg.dtype == real and arg.flags.c_contiguous, f"{name} argument {i}"
        else:
            assert type(arg) is want[ctype], f"{name} argument {i}: {type(arg).__name__} for {ctype}"


def _emulate(name, args):
    """Run the kernel's numpy reference, writing its outputs in place."""
    CODE_NAMES = {v: k for k, v in kernels.codes().items()}
    if name == "bias_activation":
        z, b, a, act, slope, cols, n = args
        z[...], a[...] = kernels.bias_activation_reference(z.reshape(-1, int(cols)), b, CODE_NAMES[int(act)], slope)
    elif name == "bias_softmax":
        z, b, a, log_norm, rows, cols = args
        z[...], a[...], log_norm[...] = kernels.bias_softmax_reference(z, b)
    elif name == "output_delta":
        z, a, y, delta, act, slope, scale, n = args
        delta[...] = kernels.output_delta_reference(z, a, y, CODE_NAMES[int(act)], scale, slope)
    elif name == "uniform":
        out, key, start, rows, w = args
        assert out.shape == (rows, w) and out.flags.c_contiguous
        Backend.uniform(_REFERENCE, int(key), int(start), out)  # the array code: backend.uniform's reference
    elif name == "activation_grad":
        delta, z, a, act, slope, n = args
        delta[...] = kernels.activation_grad_reference(delta, z, a, CODE_NAMES[int(act)], slope)
    else:
        opt = {v: k for k, v in kernels.OPTIMIZER_KERNELS.items()}[name]
        p, g, n_weights, n, wd, *rest = args
        p[...], *state = kernels.optimizer_reference(opt, p, g, int(n_weights), wd, *rest)
        for buf, value in zip([r for r in rest if isinstance(r, np.ndarray)], state):
            buf[...] = value


_REFERENCE = NumpyBackend()
_REFERENCE.jit = False  # Backend.uniform's array code on plain numpy

REFUSED = "calling {} API during stream capture is currently unsupported"  # CuPy's words, per library


def _floats(*arrays):
    return all(np.asarray(a).dtype.kind in "fc" for a in arrays)


def _gemm_reached(a, b, *args, axes=None, **kwargs):
    """Does cupy.matmul, dot, inner or tensordot of these reach cuBLAS? With
    float operands, none empty, yes, unless the product is one number: CuPy's
    tensordot_core takes n = m = 1 as a multiply and sum (and integers by a
    kernel of its own)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 0 or b.ndim == 0 or not a.size or not b.size or not _floats(a, b):
        return False
    if axes is None:
        if max(a.ndim, b.ndim) > 2:
            return True  # matmul's batched GEMM
        k = a.shape[-1]
    else:
        k = int(np.prod(a.shape[a.ndim - axes:] if isinstance(axes, int) else [a.shape[i] for i in np.atleast_1d(axes[0])]))
    return not (a.size // k == 1 and b.size // k == 1)


def _tensordot_reached(a, b, axes=2):
    return _gemm_reached(a, b, axes=axes)


def _einsum_reached(subscripts, *operands):
    """cupy.einsum goes through cupy.matmul when two operands share an index
    that the output drops (a contraction); elementwise products and one-operand
    sums do not."""
    if not isinstance(subscripts, str) or len(operands) < 2 or not _floats(*operands):
        return False
    inputs, _, output = subscripts.replace(" ", "").partition("->")
    terms = inputs.split(",")
    letters = [c for c in inputs if c.isalpha()]
    if not _:
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return any(sum(c in t for t in terms) >= 2 and c not in output for c in set(letters))


def _norm_reached(x, ord=None, axis=None, keepdims=False):
    """cupy.linalg.norm takes ord 2, -2 and 'nuc' of a matrix from an SVD (cuSOLVER); the rest are reductions."""
    matrix = (np.ndim(x) == 2 and axis is None) or (isinstance(axis, tuple) and len(axis) == 2)
    return matrix and ord in (2, -2, "nuc")


class _Refusing:
    """A numpy function that raises, while `bk` records, when the arguments are ones CuPy would refuse."""

    def __init__(self, bk, f, library, reached):
        self.bk, self.f, self.library, self.reached = bk, f, library, reached

    def __call__(self, *args, **kwargs):
        if self.bk.capturing and self.reached(*args, **kwargs):
            raise NotImplementedError(REFUSED.format(self.library))
        self.bk.touch(args, kwargs)
        return self.f(*args, **kwargs)

    def __getattr__(self, name):  # a ufunc's reduce, accumulate, ...
        return getattr(self.f, name)


def _always(*args, **kwargs):
    return True


def _never(*args, **kwargs):
    return False


class _Module:
    """numpy (or numpy.linalg, numpy.random) as EmulatedCupy's xp: each function
    traced (bk.touch) and, while bk records, refused where CuPy refuses it:
    `refused` maps a name to (library, reached(*args, **kwargs))."""

    def __init__(self, bk, module, refused, default=("", _never)):
        self._bk, self._module, self._refused, self._default = bk, module, refused, default

    def __getattr__(self, name):
        value = getattr(self._module, name)
        if self._module is np and name == "linalg":  # decompositions go to cuSOLVER; norm is reductions but for the SVD ords
            value = _Module(self._bk, np.linalg, {"norm": ("cuSOLVER", _norm_reached), "matrix_power": ("cuBLAS", _always),
                                                   "multi_dot": ("cuBLAS", _always)}, ("cuSOLVER", _always))
        elif self._module is np and name == "random":  # every draw goes through cuRAND
            value = _Module(self._bk, np.random, {}, ("cuRAND", _always))
        elif callable(value) and not isinstance(value, type):
            value = _Refusing(self._bk, value, *self._refused.get(name, self._default))
        setattr(self, name, value)  # looked up once
        return value


CUBLAS_FUNCTIONS = {"matmul": _gemm_reached, "dot": _gemm_reached, "inner": _gemm_reached,
                    "tensordot": _tensordot_reached, "einsum": _einsum_reached}


def colmajor_gemm(args, a_flat, b_flat, out_flat):
    """What cublas<t>gemm does with gemm_args' arguments, on numpy: each operand
    read column-major from its buffer (here flat arrays starting at its first
    element), out = α op(A) op(B) + 0 with A = b's buffer and B = a's."""
    transa, transb, m, n, k, lda, ldb, ldc = args

    def matrix(flat, rows, cols, ld):  # column-major rows × cols with leading dimension ld
        return np.lib.stride_tricks.as_strided(flat, (rows, cols), (flat.itemsize, ld * flat.itemsize))

    A = matrix(b_flat, *((m, k) if transa == OP_N else (k, m)), lda)
    B = matrix(a_flat, *((k, n) if transb == OP_N else (n, k)), ldb)
    C = matrix(out_flat, m, n, ldc)
    np.matmul(A if transa == OP_N else A.T, B if transb == OP_N else B.T, out=C)


def flat(x):
    """x's buffer as a 1-D array from its first element to its last."""
    if x.size == 0:
        return x.reshape(-1)
    n = 1 + sum((d - 1) * s for d, s in zip(x.shape, x.strides)) // x.itemsize
    return np.lib.stride_tricks.as_strided(x, (n,), (x.itemsize,))


def _root(a):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


class EmulatedCupy(NumpyBackend):
    """numpy arrays, CupyBackend's fused hooks, each kernel run by its reference;
    CuPy's refusals while a graph records, and a check that replays use only memory still alive."""

    name = "cupy"
    graphs = True
    fused = True
    _cupy_matmul = CupyBackend._cupy_matmul  # its refusal while recording, its message

    def __init__(self):
        super().__init__()
        self.jit = False  # a GPU backend: jit.py's CPU step is not its
        self.xp = _Module(self, np, {name: ("cuBLAS", f) for name, f in CUBLAS_FUNCTIONS.items()})
        self._cupy = SimpleNamespace(ndarray=np.ndarray, matmul=np.matmul)
        self.launches = []
        self.gemms = 0  # products that went through the direct-cuBLAS mapping
        self.capturing = False
        self._graph_workspace = None  # CupyBackend's "recording" flag, for _cupy_matmul
        self._trace = None  # while a step runs under capture or replay: the arrays it touched

    def touch(self, args, kwargs=None):
        if self._trace is not None:
            out = (kwargs or {}).get("out")
            for a in (*args, *(out if isinstance(out, tuple) else (out,))):
                if isinstance(a, np.ndarray):
                    self._trace.append(a)

    # cuRAND: CuPy's RandomState draws all go through it.
    def _draw(self, f, *args):
        if self.capturing:
            raise NotImplementedError(REFUSED.format("cuRAND"))
        return f(*args)

    def permutation(self, rng, n):
        return self._draw(super().permutation, rng, n)

    def random(self, rng, out):
        self.touch((out,))
        return self._draw(super().random, rng, out)

    def integers(self, rng, high, n):
        return self._draw(super().integers, rng, high, n)

    def matmul(self, a, b, out):
        """CupyBackend.matmul's choice; the direct GEMM evaluated as cuBLAS would."""
        args = gemm_args(a, b, out, self.address)
        if args is None:
            return self._cupy_matmul(a, b, out)
        self.touch((a, b, out))
        colmajor_gemm(args, flat(a), flat(b), flat(out))
        self.gemms += 1
        return out

    def _run(self, fn):
        """Run fn; the long-lived arrays it touched, as weak references: what a
        graph of it recorded (temporaries, dead once fn returns, are the graph's own)."""
        self._trace = []
        try:
            fn()
            roots = {id(r): r for r in map(_root, self._trace)}
        finally:
            self._trace = None
        refs = [weakref.ref(r) for r in roots.values()]
        del roots
        return [r for r in refs if r() is not None]

    def capture(self, fn):
        """Like CupyBackend.capture: fn runs once, while CuPy's refusals apply (the
        real capture runs it once, then records it). A replay runs fn again (here
        its Python too: a real replay runs only the recorded device work), after
        checking that every array the last run touched is still alive: a real
        replay writes where they were."""
        self.capturing, self._graph_workspace = True, True
        try:
            recorded = [self._run(fn)]
        finally:
            self.capturing, self._graph_workspace = False, None

        def replay():
            freed = sum(r() is None for r in recorded[0])
            if freed:
                raise RuntimeError(f"replay of a recorded CUDA graph: {freed} array(s) it recorded have been freed since; "
                                   "a real replay would write memory handed to other arrays")
            recorded[0] = self._run(fn)

        return replay

    def function(self, source, name, dtype):
        assert name in kernels.sources()[source][1]

        def launch(grid, block, args):
            assert len(grid) == 1 and grid[0] >= 1 and block[0] % 32 == 0
            _check_args(name, args, np.dtype(dtype).type)
            self.touch(args)
            _emulate(name, args)
            self.launches.append(name)

        return launch
