"""The CPU twin of kernels.py: a training step and the optimiser updates
compiled by numba (the `jit` extra), for the numpy backend.

At small batches a step of numpy calls is bound by the calls, not the
arithmetic: some 25 of them, each a microsecond or more, around GEMMs of a few
microseconds. `train_step` does a whole batch's forward pass, cost, hits,
BP1-BP4 in one compiled call (the GEMMs are BLAS calls from inside it), and
`update` an optimiser's whole step in one pass over the flat buffers. Both
compute what network.py and optim.py compute, which stay the reference they
are tested against (tests/test_jit.py).

The source is Python, generated from the records (each activation's
`cpu_sigma`/`cpu_prime`, each cost's `cpu_term`) as kernels.py generates
CUDA C from `cuda_sigma`/`cuda_prime`, and written to a file in the user's
cache, named by its hash, so that numba's own cache keeps the machine code
between runs: a run compiles a (hidden, output, cost) triple once per machine.
A record without CPU forms runs the numpy code.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from . import kernels
from .backend import SPLITMIX
from .errors import BackendError
from .nn.activations import Softmax

try:  # numba is the jit extra: without it, nothing here is called (backend.jit is False)
    from llvmlite import ir
    from numba import types
    from numba.core.extending import intrinsic
except ImportError:
    def intrinsic(f):
        return f

_HEAD = """\
import math
from math import exp, log, log1p, tanh

import numpy as np
from numba import njit
"""

# σ, σ' and the cost's term, each a one-line function numba inlines
_ACTIVATIONS = "".join(f"""
@njit(cache=True, inline="always")
def {name}({args}):
    return {{{name}}}

""" for name, args in (("hidden_sigma", "z, slope"), ("hidden_prime", "z, a, slope"), ("output_sigma", "z, slope"),
                       ("output_prime", "z, a, slope"), ("cost_term", "z, a, y, log_norm"))) + """
SOFTMAX = {softmax}  # the output is a softmax: a row at a time, its ln Σ e^z kept for the cost
DELTA_PRIME = {delta_prime}  # BP1 keeps σ'(z^L) (the quadratic cost); else it cancels: δ^L = a − y
"""

# The step's three GEMM forms (row-major, C-contiguous): through numpy's own BLAS
# where jit.numpy_gemm found it, so that one OpenBLAS thread pool serves the whole
# run (a second one, scipy's, which numba's np.dot calls, spins against the first
# whenever they take turns: an evaluation after a compiled epoch ran 3.5x slower).
_GEMMS = """
from fastbp.jit import cblas_gemm


@njit(cache=True, inline="always")
def gemm_nt(gemm, a, b, out):  # out = a bᵀ
    if gemm:
        cblas_gemm(gemm, 111, 112, out.shape[0], out.shape[1], a.shape[1], a, a.shape[1], b, b.shape[1], out, out.shape[1])
    else:
        np.dot(a, b.T, out)


@njit(cache=True, inline="always")
def gemm_tn(gemm, a, b, out):  # out = aᵀ b
    if gemm:
        cblas_gemm(gemm, 112, 111, out.shape[0], out.shape[1], a.shape[0], a, a.shape[1], b, b.shape[1], out, out.shape[1])
    else:
        np.dot(a.T, b, out)


@njit(cache=True, inline="always")
def gemm_nn(gemm, a, b, out):  # out = a b
    if gemm:
        cblas_gemm(gemm, 111, 111, out.shape[0], out.shape[1], a.shape[1], a, a.shape[1], b, b.shape[1], out, out.shape[1])
    else:
        np.dot(a, b, out)
"""


# The step, as network.py's forward, batch_cost, the loop's hits and backward
# compute it, over the same buffers (rows: samples; W^l is (n_out, n_in)).
_STEP = '''
@njit(cache=True)
def train_step(x, y, labels, hits, params, grads, layers, Z, A, D, M, F, drop, keep, hidden_slope, output_slope, inv_n, gemm):
    """One batch: forward, summed cost (returned), hits[r] = argmax a^L_r == labels[r],
    and grads = ∂C/∂params of the mean cost. layers[l] = (w_at, n_out, n_in, b_at);
    gemm: the address of numpy's own cblas GEMM for this dtype (0: numba's np.dot).
    drop > 0: inverted dropout; M[l] holds uniform draws for hidden layer l, made
    its mask (0, or keep = 1/(1 − drop)), and F[l] = A[l] ⊙ M[l] is what the layer feeds."""
    n, L = x.shape[0], layers.shape[0]
    cost = 0.0
    a_prev = x
    for l in range(L):
        w_at, n_out, n_in, b_at = layers[l, 0], layers[l, 1], layers[l, 2], layers[l, 3]
        W, b = params[w_at : w_at + n_out * n_in].reshape((n_out, n_in)), params[b_at : b_at + n_out]
        z, a = Z[l], A[l]
        gemm_nt(gemm, a_prev, W, z)  # z^l = a^{l−1} (W^l)ᵀ + b^l, a^l = σ(z^l)
        if l < L - 1:
            for r in range(n):
                for j in range(n_out):
                    t = z[r, j] + b[j]
                    z[r, j] = t
                    a[r, j] = hidden_sigma(t, hidden_slope)
            if drop > 0:
                mask, fed = M[l], F[l]
                for r in range(n):
                    for j in range(n_out):
                        mask[r, j] = keep if mask[r, j] >= drop else 0.0
                        fed[r, j] = a[r, j] * mask[r, j]
                a = fed
        else:
            d = D[l]
            for r in range(n):
                top = 0
                if SOFTMAX:
                    m = z[r, 0] + b[0]
                    for j in range(n_out):
                        t = z[r, j] + b[j]
                        z[r, j] = t
                        m = max(m, t)
                    s = 0.0
                    for j in range(n_out):
                        e = exp(z[r, j] - m)  # cannot overflow
                        a[r, j] = e
                        s += e
                    for j in range(n_out):
                        a[r, j] /= s
                    log_norm = m + log(s)  # ln Σ e^z of the row, for the cost
                else:
                    log_norm = 0.0
                    for j in range(n_out):
                        t = z[r, j] + b[j]
                        z[r, j] = t
                        a[r, j] = output_sigma(t, output_slope)
                for j in range(n_out):
                    cost += cost_term(z[r, j], a[r, j], y[r, j], log_norm)
                    if a[r, j] > a[r, top]:
                        top = j
                    # BP1: δ^L = ∇_a C ⊙ σ'(z^L), with 1/n: C is the batch mean
                    if DELTA_PRIME:
                        d[r, j] = (a[r, j] - y[r, j]) * output_prime(z[r, j], a[r, j], output_slope) * inv_n
                    else:
                        d[r, j] = (a[r, j] - y[r, j]) * inv_n
                hits[r] = top == labels[r]
        a_prev = a

    d = D[L - 1]
    for l in range(L - 1, -1, -1):
        w_at, n_out, n_in, b_at = layers[l, 0], layers[l, 1], layers[l, 2], layers[l, 3]
        # BP3: ∂C/∂b^l = Σ_batch δ^l
        gb = grads[b_at : b_at + n_out]
        gb[:] = 0
        for r in range(n):
            for j in range(n_out):
                gb[j] += d[r, j]
        # BP4: ∂C/∂W^l = δ^l (a^{l−1})ᵀ, summed over the batch as one GEMM
        gW = grads[w_at : w_at + n_out * n_in].reshape((n_out, n_in))
        if l == 0:
            gemm_tn(gemm, d, x, gW)
            break
        gemm_tn(gemm, d, F[l - 1] if drop > 0 else A[l - 1], gW)
        # BP2: δ^{l−1} = ((W^l)ᵀ δ^l) ⊙ σ'(z^{l−1})
        W = params[w_at : w_at + n_out * n_in].reshape((n_out, n_in))
        below, z, a = D[l - 1], Z[l - 1], A[l - 1]
        gemm_nn(gemm, d, W, below)
        if drop > 0:
            mask = M[l - 1]
            for r in range(n):
                for j in range(n_in):
                    below[r, j] *= mask[r, j]
        for r in range(n):
            for j in range(n_in):
                below[r, j] *= hidden_prime(z[r, j], a[r, j], hidden_slope)
        d = below
    return cost
'''

# Dropout's draws (backend.uniform), as backend.SPLITMIX defines them.
_GAMMA, (_S1, _M1), (_S2, _M2), _S3 = SPLITMIX
_UNIFORM = f'''
@njit(cache=True)
def uniform(start, out):
    rows, w = out.shape
    m = (w + 1) // 2
    for r in range(rows):
        for k in range(m):
            x = start + np.uint64(r * m + k + 1) * np.uint64({_GAMMA})
            x ^= x >> np.uint64({_S1})
            x *= np.uint64({_M1})
            x ^= x >> np.uint64({_S2})
            x *= np.uint64({_M2})
            x ^= x >> np.uint64({_S3})
            out[r, 2 * k] = (x >> np.uint64(40)) * 2.0**-24
            if 2 * k + 1 < w:
                out[r, 2 * k + 1] = ((x >> np.uint64(8)) & np.uint64(0xFFFFFF)) * 2.0**-24

'''

# kernels.OPTIMIZER's updates, one pass over the flat buffers each (two loops: the
# weights, decayed, then the biases; a branch per element keeps LLVM from using SIMD).
# And the batch's rows gathered and scaled in one pass (backend.gather_scaled).
_OPTIMIZERS = _UNIFORM + '''
from fastbp.jit import prefetch

AHEAD = 4  # rows: each row's cache lines are asked for while the rows before it are copied


@njit(cache=True)
def gather_scaled(X, rows, scale, out):
    n, width = rows.shape[0], X.shape[1]
    flat = X.reshape(-1)
    for r in range(-AHEAD, n):
        if r + AHEAD < n:  # a shuffled row is a cache miss: overlap them
            for c in range(0, width, 64):
                prefetch(flat, rows[r + AHEAD] * width + c)
        if r >= 0:
            src, dst = X[rows[r]], out[r]
            for j in range(width):
                dst[j] = src[j]  # the exact cast, then the multiply in out's dtype: numpy's values
                dst[j] *= scale


@njit(cache=True, inline="always")
def sgd_at(p, i, gi, lr):
    p[i] -= lr * gi


@njit(cache=True, inline="always")
def momentum_at(p, i, gi, lr, v, mu):
    vi = mu * v[i] - lr * gi
    v[i] = vi
    p[i] += vi


@njit(cache=True, inline="always")
def nesterov_at(p, i, gi, lr, v, mu):
    step = lr * gi
    vi = mu * v[i] - step
    v[i] = vi
    p[i] += mu * vi - step


@njit(cache=True, inline="always")
def adam_at(p, i, gi, lr_t, m, v, beta1, beta2, eps, inv_sqrt_bc2):
    mi = beta1 * m[i] + (1 - beta1) * gi
    vi = beta2 * v[i] + (1 - beta2) * gi * gi
    m[i] = mi
    v[i] = vi
    p[i] -= lr_t * mi / (math.sqrt(vi) * inv_sqrt_bc2 + eps)
''' + "".join(f"""

@njit(cache=True)
def {name}_step(p, g, n_weights, weight_decay, {args}):
    for i in range(n_weights):  # the weights, decayed
        {name}_at(p, i, g[i] + weight_decay * p[i], {args})
    for i in range(n_weights, p.shape[0]):
        {name}_at(p, i, g[i], {args})
""" for name, args in (("sgd", "lr"), ("momentum", "lr, v, mu"), ("nesterov", "lr, v, mu"),
                       ("adam", "lr_t, m, v, beta1, beta2, eps, inv_sqrt_bc2")))


_SUPPORT = _HEAD + _OPTIMIZERS  # one str object: _load's lookup hashes it once, not per call


def _mode():
    return os.environ.get("FASTBP_JIT", "").strip().lower() or "auto"


def wanted():
    """Does the numpy backend use these? FASTBP_JIT: unset or 'auto', where
    numba is installed; '1' always (an error without it); '0' never. (Whether
    it imports is seen when it is first needed: importing it costs 0.3 s.)"""
    mode = _mode()
    if mode in ("0", "off", "false", "no"):
        return False
    found = importlib.util.find_spec("numba") is not None
    if mode in ("1", "on", "true", "yes"):
        if not found:
            raise BackendError("FASTBP_JIT=1 asks for the compiled CPU step, and numba is not installed: "
                           "pip install 'fastbp[jit]', or unset FASTBP_JIT")
        return True
    if mode != "auto":
        raise BackendError(f"FASTBP_JIT={mode!r}: use 0 (numpy only), 1 (compiled, numba required) or auto")
    return found


def _folder():
    from .data.locate import cache_dir

    user = os.getuid() if hasattr(os, "getuid") else "user"
    for folder in (cache_dir() / "jit", Path(tempfile.gettempdir()) / f"fastbp-jit-{user}"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
        except OSError:
            continue
    raise BackendError("no writable folder for the compiled CPU step (the user cache or the temp folder)")


_modules = {}
_broken = []  # why numba does not import, once seen: the numpy code runs from then on


def _load(source):
    """The module of this source, written once to a file named by its hash (numba
    caches beside it); None where numba is installed but does not import (a numba
    too old for this numpy, say): a warning says so once, or, with FASTBP_JIT=1,
    a BackendError."""
    if _broken:
        return None
    module = _modules.get(source)  # a str caches its hash: no sha256 per call (gather_scaled runs per chunk)
    if module is None:
        digest = hashlib.sha256(source.encode()).hexdigest()[:20]
        path = _folder() / f"fastbp_jit_{digest}.py"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(source)
            os.replace(tmp, path)  # whole or not at all: another process may be reading it
        spec = importlib.util.spec_from_file_location(f"fastbp_jit_{digest}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except ImportError as exc:
            why = f"numba is installed but does not import ({type(exc).__name__}: {exc})"
            if _mode() in ("1", "on", "true", "yes"):
                raise BackendError(f"FASTBP_JIT=1 asks for the compiled CPU step, and {why}") from None
            _broken.append(why)
            warnings.warn(f"{why}: the numpy code runs (FASTBP_JIT=0 says so without this warning)", RuntimeWarning,
                          stacklevel=3)
            return None
        sys.modules[spec.name] = module
        _modules[source] = module
    return module


def step_source(hidden, output, cost):
    """The generated step module for these records, or None where one lacks its CPU form."""
    softmax = isinstance(output, Softmax)
    if hidden.cpu_sigma is None or hidden.cpu_prime is None or cost.cpu_term is None:
        return None
    if not softmax and output.cpu_sigma is None:
        return None
    prime = cost.delta_kernel == "(a - y) σ'"
    if cost.delta_kernel is None or (prime and output.cpu_prime is None):
        return None
    return _HEAD + _ACTIVATIONS.format(
        hidden_sigma=hidden.cpu_sigma, hidden_prime=hidden.cpu_prime,
        output_sigma=output.cpu_sigma or "z", output_prime=output.cpu_prime or "1.0",
        cost_term=cost.cpu_term, softmax=softmax, delta_prime=prime) + _GEMMS + _STEP


@intrinsic
def cblas_gemm(typingctx, address, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc):
    """cblas_?gemm(RowMajor, trans_a, trans_b, m, n, k, 1, a, lda, b, ldb, 0, c, ldc)
    through the function at `address`: an ILP64 cblas (64-bit sizes), as numpy's
    wheels carry. Compiled into the caller, so numba can cache it; the address is
    an argument, not a constant of the machine code."""
    sig = types.void(address, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc)

    def codegen(context, builder, signature, args):
        address, trans_a, trans_b, m, n, k, a_, lda, b_, ldb, c_, ldc = args
        real = context.get_value_type(signature.args[6].dtype)
        i32, i64 = ir.IntType(32), ir.IntType(64)
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, real, real.as_pointer(), i64,
                                               real.as_pointer(), i64, real, real.as_pointer(), i64])
        fn = builder.inttoptr(address, fnty.as_pointer())

        def data(i, value):
            return context.make_array(signature.args[i])(context, builder, value).data

        def int64(i, value):
            return context.cast(builder, value, signature.args[i], types.int64)

        builder.call(fn, [ir.Constant(i32, 101), builder.trunc(int64(1, trans_a), i32), builder.trunc(int64(2, trans_b), i32),
                          int64(3, m), int64(4, n), int64(5, k), ir.Constant(real, 1.0), data(6, a_), int64(7, lda),
                          data(8, b_), int64(9, ldb), ir.Constant(real, 0.0), data(10, c_), int64(11, ldc)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def prefetch(typingctx, array, index):
    """Ask for the cache line holding array.flat[index] (LLVM's prefetch: a read, kept
    in every cache level): a hint, which changes no value."""
    sig = types.void(array, index)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = builder.module.declare_intrinsic("llvm.prefetch", fnty=ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]))
        builder.call(fn, [builder.bitcast(builder.gep(data, [args[1]]), i8p), ir.Constant(i32, 0), ir.Constant(i32, 3),
                          ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@functools.lru_cache(maxsize=None)
def numpy_gemm(dtype):
    """The address of cblas_sgemm/dgemm (by dtype) in numpy's own BLAS, where it is
    the ILP64 scipy-openblas of numpy's wheels; else 0 (the step calls np.dot)."""
    from .machine import blas

    path = blas()["blas_file"]
    name = {"float32": "scipy_cblas_sgemm64_", "float64": "scipy_cblas_dgemm64_"}.get(np.dtype(dtype).name)
    if not path or not name:
        return 0
    try:
        return ctypes.cast(getattr(ctypes.CDLL(path), name), ctypes.c_void_p).value or 0
    except (OSError, AttributeError):
        return 0


class TrainStep:
    """A network's compiled batch step: step(x, y, labels, hits) -> summed cost,
    as loop.reference_step computes it."""

    def __init__(self, net, kernel):
        from .nn.network import layout

        self.net, self.kernel = net, kernel
        self.layers = np.array([(w.start, o, i, b.start) for w, (o, i), b in layout(net.sizes)[0]], np.int64)
        self.dtype = np.dtype(net.dtype)
        real = self.dtype.type
        self.slopes = real(net.hidden.slope), real(net.output.slope)
        self.gemm = numpy_gemm(self.dtype)
        self.drop = real(net.dropout), real(1.0 / (1.0 - net.dropout))  # as numpy rounds them
        self._rows = {}

    def __call__(self, x, y, labels, hits):
        net, n = self.net, x.shape[0]
        if not (x.dtype == y.dtype == self.dtype and x.flags.c_contiguous and y.flags.c_contiguous):
            from .train.loop import reference_step

            return reference_step(net, x, y, labels, hits)
        rows = self._rows.get(n)
        buf = net.buffers(n, train=True)
        if rows is None or rows[0] is not buf:
            cut = buf.rows(n)
            Z, A = tuple(cut.z), tuple(cut.a)
            # one mask and fed array per layer (the last: a stand-in the kernel never reads)
            M, F = (tuple(cut.mask) + A[-1:], tuple(cut.dropped) + A[-1:]) if net.dropout else (A, A)
            rows = self._rows[n] = buf, cut, Z, A, tuple(cut.delta), M, F
        _, cut, Z, A, D, M, F = rows
        for l in range(len(cut.mask)):  # the reference's draws, in its order
            net.draw_mask(cut, l)
        cost = self.kernel(x, y, labels, hits, net.params, net.grads, self.layers, Z, A, D, M, F, *self.drop,
                           *self.slopes, 1.0 / n, self.gemm)
        # The network as its training forward pass leaves it (but the softmax's log_norm):
        # a_out, batch_cost and backward read these buffers.
        net._out, net._trained, net._dropped = (Z[-1], A[-1], None), n, bool(net.dropout)
        return self.dtype.type(cost)  # in the network's dtype, as batch_cost's: the loop's running sums are


def train_step(net):
    """The compiled step of this network, or None (a record without CPU forms)."""
    source = step_source(net.hidden, net.output, net.cost)
    module = None if source is None else _load(source)
    return None if module is None else TrainStep(net, module.train_step)


def gather_scaled(X, rows, scale, out):
    """out = X[rows] × scale in one pass (X uint8, as stored); None where numba does not import."""
    module = _load(_SUPPORT)
    if module is None:
        return None
    module.gather_scaled(X, rows, scale, out)
    return out


def uniform(key, start, out):
    """backend.uniform in one pass; None where numba does not import."""
    module = _load(_SUPPORT)
    if module is None:
        return None
    module.uniform(np.uint64((key + start * SPLITMIX[0]) % 2**64), out)
    return out


def update(name):
    """A callable(p, g, n_weights, weight_decay, *args) doing optimiser `name`'s
    whole update in one pass (args as optim's _fused_args gives them), or None."""
    fname = kernels.OPTIMIZER_KERNELS.get(name)  # the CUDA kernels' names, here too
    if fname is None:
        return None
    module = _load(_SUPPORT)
    if module is None:
        return None
    kernel = getattr(module, fname)

    def step(p, g, n_weights, weight_decay, *args):
        real = p.dtype.type
        kernel(p, g, n_weights, real(weight_decay), *[a if isinstance(a, np.ndarray) else real(a) for a in args])

    return step
