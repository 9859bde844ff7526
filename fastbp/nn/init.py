"""Weight initialisers. Each returns (W, b) as float64 numpy arrays drawn on the
host from a seeded generator, so numpy and cupy networks start identical.

W^l has shape (n_out, n_in), Nielsen's convention: w_jk joins neuron k of
layer l−1 to neuron j of layer l.
"""

from __future__ import annotations

import numpy as np


def normal(rng, n_in, n_out):
    """network.py: weights and biases ~ N(0, 1)."""
    return rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)


def normal_scaled(rng, n_in, n_out):
    """network2.py's default: weights ~ N(0, 1/n_in), biases ~ N(0, 1)."""
    return rng.standard_normal((n_out, n_in)) / np.sqrt(n_in), rng.standard_normal(n_out)


def glorot(rng, n_in, n_out):
    """Glorot & Bengio 2010: weights ~ U(±√(6/(n_in+n_out))), biases 0."""
    limit = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-limit, limit, (n_out, n_in)), np.zeros(n_out)


def he(rng, n_in, n_out):
    """He et al. 2015, for ReLU: weights ~ N(0, 2/n_in), biases 0."""
    return rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in), np.zeros(n_out)


INITIALISERS = {"normal": normal, "normal_scaled": normal_scaled, "glorot": glorot, "he": he}


def get(name):
    if name not in INITIALISERS:
        raise ValueError(f"unknown init {name!r}: choose one of {', '.join(INITIALISERS)}")
    return INITIALISERS[name]
