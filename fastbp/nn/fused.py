"""The elementwise stages of a training step as one CUDA kernel each
(kernels.py), beside the maths they fuse: bias + σ after the forward GEMM,
BP1's δ^L, BP2's ⊙ σ'(z), and the optimiser's whole update.

Network.forward/backward and Optimizer.step call these next to the equations
they compute, on a backend whose `fused` is true (cupy); elsewhere `make` and
`update` give None and the unfused array code runs: the reference. An input a
kernel cannot take (a target of another dtype, say) goes through the unfused
code as well.
"""

from __future__ import annotations

import numpy as np

from .. import kernels
from .activations import Softmax


def _grid(n):
    """Blocks for a grid-stride kernel over n elements (at least one: a launch of none fails)."""
    return (max(1, min(-(-n // kernels.THREADS), 65535)),)


class FusedLayers:
    """A network's bias + σ, BP1 and BP2 stages on a backend with kernels."""

    @classmethod
    def make(cls, bk, hidden, output, cost):
        """None where the backend runs no kernels, or a kernel lacks one of the
        three (a record with no CUDA source, say)."""
        if not bk.fused:
            return None
        codes = kernels.codes()
        softmax = isinstance(output, Softmax)  # the one output with a kernel of its own
        if hidden.name not in codes or not (softmax or output.name in codes):
            return None
        if cost.delta_kernel == "a - y":
            delta_code = codes["identity"]  # σ' cancels: δ^L = a − y
        elif cost.delta_kernel == "(a - y) σ'" and output.name in codes:
            delta_code = codes[output.name]
        else:
            return None
        return cls(bk, hidden, output, cost, softmax, codes, delta_code)

    def __init__(self, bk, hidden, output, cost, softmax, codes, delta_code):
        self.bk, self.hidden, self.output, self.cost, self.softmax = bk, hidden, output, cost, softmax
        self.hidden_code = codes[hidden.name]
        self.output_code = None if softmax else codes[output.name]
        self.delta_code = delta_code

    def bias_activation(self, z, b, a, last, log_norm):
        """z ← z + b, a = σ(z): kernels.BIAS_ACTIVATION, or BIAS_SOFTMAX for a
        softmax output, which also writes ln Σ e^z per row into log_norm.
        Returns log_norm where it was written, else None."""
        real, f = z.dtype.type, self.bk.function
        if last and self.softmax:
            rows, cols = z.shape
            blocks = max(1, -(-rows // kernels.ROWS_PER_BLOCK))
            f("bias_softmax", "bias_softmax", z.dtype)((blocks,), (32 * kernels.ROWS_PER_BLOCK,),
                                                       (z, b, a, log_norm, np.int64(rows), np.int64(cols)))
            return log_norm
        act = self.output if last else self.hidden
        if z.size >= 2**31:  # past the kernel's 32-bit column arithmetic
            self.bk.xp.add(z, b, out=z)
            act.forward(self.bk, z, a)
            return None
        code = self.output_code if last else self.hidden_code
        f("bias_activation", "bias_activation", z.dtype)(
            _grid(z.size), (kernels.THREADS,), (z, b, a, np.int32(code), real(act.slope), np.uint32(z.shape[1]), np.int64(z.size)))
        return None

    def output_delta(self, z, a, y, delta, work, scale):
        """BP1, δ^L = ∇_a C ⊙ σ'(z^L) · scale: kernels.OUTPUT_DELTA."""
        if y.dtype != z.dtype or y.shape != z.shape or not isinstance(y, self.bk.xp.ndarray) or not y.flags.c_contiguous:
            self.cost.delta(self.bk, z, a, y, delta, self.output, work)
            return self.bk.xp.multiply(delta, scale, out=delta)
        real = z.dtype.type
        self.bk.function("output_delta", "output_delta", z.dtype)(
            _grid(z.size), (kernels.THREADS,),
            (z, a, y, delta, np.int32(self.delta_code), real(self.output.slope), real(scale), np.int64(z.size)))
        return delta

    def activation_grad(self, delta, z, a):
        """BP2's δ ⊙= σ'(z) for a hidden layer: kernels.ACTIVATION_GRAD."""
        real = z.dtype.type
        self.bk.function("activation_grad", "activation_grad", z.dtype)(
            _grid(z.size), (kernels.THREADS,), (delta, z, a, np.int32(self.hidden_code), real(self.hidden.slope), np.int64(z.size)))
        return delta


def uniform(bk, key, start, out):
    """backend.uniform as one kernel (kernels.uniform_source) into a C-contiguous out."""
    rows, w = out.shape
    bk.function("uniform", "uniform", out.dtype)(
        _grid(rows * ((w + 1) // 2)), (kernels.THREADS,),
        (out, np.uint64(key % 2**64), np.uint64(start % 2**64), np.int64(rows), np.int64(w)))
    return out


def update(bk, name):
    """A callable(p, g, n_weights, weight_decay, *args) doing optimiser `name`'s
    whole update in one kernel (args: kernels.OPTIMIZER's), or None. On the
    CPU with numba (backend.jit), jit.py's compiled twin of that kernel."""
    if bk.jit and not bk.fused:
        from .. import jit

        return jit.update(name)
    fname = kernels.OPTIMIZER_KERNELS.get(name) if bk.fused else None
    if fname is None:
        return None
    ndarray = bk.xp.ndarray

    def step(p, g, n_weights, weight_decay, *args):
        real = p.dtype.type
        args = [a if isinstance(a, ndarray) else real(a) for a in args]
        f = bk.function("optimizer", fname, p.dtype)
        f(_grid(p.size), (kernels.THREADS,), (p, g, np.int64(n_weights), np.int64(p.size), real(weight_decay), *args))

    return step
