"""FLOPs a training step really needs, and the machine's GEMM ceiling for them.

Per sample and per weight layer of n_in inputs and n_out outputs:
  forward                     2·n_in·n_out   (z = a Wᵀ)
  backward, weight gradient   2·n_in·n_out   (Δᵀ A)
  backward, input gradient    2·n_in·n_out   (Δ W), not needed for the first layer
Elementwise work (activations, softmax, the optimiser step) is not counted.

The ceiling is those same matrix products alone, with the same shapes and the
same batches as one repetition of the case, timed with numpy float32 (cupy on
a GPU) into preallocated `out=` buffers: what the BLAS does for this exact
work with nothing else in the way. It runs interleaved with the contenders.
"""

from __future__ import annotations

import numpy as np

from .interface import Contender


def flops_per_sample(sizes):
    """Training FLOPs per sample for a fully connected net of these layer sizes."""
    return sum((4 if layer == 0 else 6) * n_in * n_out for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])))


def batch_sizes(n, batch):
    """Row counts of the mini-batches of one pass over n samples."""
    sizes = [batch] * (n // batch)
    return sizes + [n % batch] if n % batch else sizes


class GemmCeiling(Contender):
    """The forward, weight-gradient and input-gradient GEMMs of one pass, alone."""

    name = "gemm-numpy"
    role = "ceiling"
    recipe = None

    def __init__(self, spec, xp=np):
        self.xp, self.samples = xp, spec.rep_samples
        self.batches = batch_sizes(spec.rep_samples, spec.batch)
        rng = np.random.default_rng(0)

        def rand(*shape):
            return xp.asarray(rng.standard_normal(shape, dtype=np.float32) * np.float32(0.1))

        def empty(*shape):
            return xp.empty(shape, np.float32)

        B = self.batches[0]
        # per layer: input A, weights W, forward out Z, delta D, weight grad GW, input grad GA
        self.layers = [
            (rand(B, i), rand(o, i), empty(B, o), rand(B, o), empty(o, i), empty(B, i))
            for i, o in zip(spec.sizes[:-1], spec.sizes[1:])
        ]

    def epoch(self):
        mm = self.xp.matmul
        for b in self.batches:
            for layer, (A, W, Z, D, GW, GA) in enumerate(self.layers):
                mm(A[:b], W.T, out=Z[:b])
                mm(D[:b].T, A[:b], out=GW)
                if layer:
                    mm(D[:b], W, out=GA[:b])
        if self.xp is not np:
            self.xp.cuda.get_current_stream().synchronize()

    def gpu_peak_mb(self):
        return None if self.xp is np else self.xp.get_default_memory_pool().total_bytes() / 2**20


class CupyGemmCeiling(GemmCeiling):
    name = "gemm-cupy"
    device = "gpu"
    needs = ("cupy",)

    def __init__(self, spec):
        import cupy

        super().__init__(spec, cupy)
