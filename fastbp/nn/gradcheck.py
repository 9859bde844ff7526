"""Check backprop against central finite differences, in float64.

    ∂C/∂p ≈ (C(p + h) − C(p − h)) / 2h      (error O(h²))

The error reported for each parameter tensor (each W^l and b^l) is
‖g_bp − g_fd‖ / max(‖g_bp‖, ‖g_fd‖), and a check's error is the worst tensor's.
"""

from __future__ import annotations

import itertools

import numpy as np

from . import activations, costs
from .network import Network, views

# (output activation, cost) pairs: those a user picks from in practice
# (exp + poisson is scikit-learn's MLPRegressor(loss='poisson')).
OUTPUT_COSTS = [
    ("sigmoid", "quadratic"),
    ("sigmoid", "cross_entropy"),
    ("softmax", "log_likelihood"),
    ("identity", "quadratic"),
    ("exp", "poisson"),
]


def numerical_gradient(net, X, Y, h=1e-6, sample_weight=None):
    """Central differences of the (weighted) mean cost, one parameter at a time."""
    p = net.params
    g = np.empty(net.n_params)
    for i in range(net.n_params):
        old = float(p[i])
        p[i] = old + h
        up = net.loss(X, Y, sample_weight)
        p[i] = old - h
        down = net.loss(X, Y, sample_weight)
        p[i] = old
        g[i] = (up - down) / (2 * h)
    return g


def relative_error(net, g_bp, g_fd):
    """Worst per-tensor relative error between two flat gradients."""
    worst = 0.0
    for tensors in views(np.arange(net.n_params), net.sizes):
        for idx in tensors:
            idx = np.asarray(idx).ravel()
            a, b = g_bp[idx], g_fd[idx]
            scale = max(np.linalg.norm(a), np.linalg.norm(b))
            if scale > 0:
                worst = max(worst, float(np.linalg.norm(a - b) / scale))
    return worst


def check(hidden, output, cost, sizes=(5, 4, 3, 3), batch=7, seed=0, backend="numpy", weighted=False):
    """Relative error of backprop's gradient for one configuration (float64);
    weighted=True checks the gradient of a sample-weighted mean cost."""
    rng = np.random.default_rng(seed)
    net = Network(sizes, hidden, output, cost, init="glorot", backend=backend, dtype="float64", seed=seed)
    # Non-zero biases so that no ReLU sits on its kink by construction.
    net.params[net.n_weights :] = net.xp.asarray(rng.uniform(-0.5, 0.5, net.n_params - net.n_weights))
    X = rng.standard_normal((batch, sizes[0]))
    if output == "softmax":
        Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], batch)]
    elif output == "sigmoid":
        Y = rng.uniform(0, 1, (batch, sizes[-1]))
    elif output == "exp":
        Y = rng.poisson(2.0, (batch, sizes[-1])).astype(float)  # counts, zeros included
    else:
        Y = rng.standard_normal((batch, sizes[-1]))
    X, Y = net.xp.asarray(X), net.xp.asarray(Y)
    w = net.xp.asarray(rng.uniform(0.0, 3.0, batch)) if weighted else None
    g_bp = net.bk.to_numpy(net.gradient(X, Y, sample_weight=w)).copy()
    g_fd = numerical_gradient(net, X, Y, sample_weight=w)
    return relative_error(net, g_bp, g_fd)


def check_all(seed=0, backend="numpy"):
    """Every hidden activation × output/cost pair, on two random net shapes
    and batch sizes. Returns a list of (hidden, output, cost, sizes, batch, error)."""
    results = []
    shapes = [((5, 4, 3, 3), 7), ((3, 6, 2), 1)]
    for (hidden, (output, cost)), (sizes, batch) in itertools.product(
        itertools.product(activations.names("hidden"), OUTPUT_COSTS), shapes
    ):
        assert output in costs.RECORDS[cost].outputs
        err = check(hidden, output, cost, sizes, batch, seed, backend)
        results.append((hidden, output, cost, sizes, batch, err))
    return results
