"""Worked examples, computed by fastbp's own Network and printed step by step.

`mazur`: Matt Mazur's "A Step by Step Backpropagation Example" (2-2-2,
sigmoid everywhere, E = ½ Σ (target − out)², η = 0.5, biases not updated).
`relu`: a 2-2-1 ReLU network with a linear output and L = ½ (ŷ − y)².

Each example sets the weights by hand, runs `Network.forward` and
`Network.backward` on a batch of one, and reads every value from the
network's own buffers: what is printed is what training computes.
"""

from __future__ import annotations

import numpy as np

from .nn.network import Network


def fmt(v):
    """Up to 9 decimals, trailing zeros dropped: 0.3775, 0.593269992, -0.54."""
    s = f"{float(v):.9f}".rstrip("0")
    return s + "0" if s.endswith(".") else s


def _vec(v):
    return "[" + ", ".join(fmt(x) for x in np.ravel(v)) + "]"


def _build(sizes, hidden, output, W, b):
    net = Network(sizes, hidden=hidden, output=output, cost="quadratic", dtype="float64")
    for l, (Wl, bl) in enumerate(zip(W, b)):
        net.weights[l][...] = np.asarray(Wl, dtype=np.float64)
        net.biases[l][...] = np.asarray(bl, dtype=np.float64)
    return net


def mazur():
    """Returns (lines, values): the printed derivation and a dict of the numbers."""
    W1 = [[0.15, 0.20], [0.25, 0.30]]  # rows: h1 <- (i1, i2) = w1, w2; h2 <- w3, w4
    W2 = [[0.40, 0.45], [0.50, 0.55]]  # rows: o1 <- (h1, h2) = w5, w6; o2 <- w7, w8
    net = _build([2, 2, 2], "sigmoid", "sigmoid", [W1, W2], [[0.35, 0.35], [0.60, 0.60]])
    x, t, eta = np.array([[0.05, 0.10]]), np.array([[0.01, 0.99]]), 0.5

    out = net.forward(x, train=True)
    buf = net.buffers(1)
    (net_h, net_o), (out_h, out_o) = (z[0].copy() for z in buf.z), (a[0].copy() for a in buf.a)
    E = 0.5 * (t[0] - out[0]) ** 2
    net.backward(x, t)
    # The batch-mean cost of one sample equals E_total, so these are ∂E/∂w.
    dW1, dW2 = (g.copy() for g in net.grad_weights)
    delta_o, delta_h = buf.delta[1][0].copy(), buf.delta[0][0].copy()
    w_new1, w_new2 = np.array(W1) - eta * dW1, np.array(W2) - eta * dW2

    v = {
        "net_h1": net_h[0], "out_h1": out_h[0], "net_h2": net_h[1], "out_h2": out_h[1],
        "net_o1": net_o[0], "out_o1": out_o[0], "net_o2": net_o[1], "out_o2": out_o[1],
        "E_o1": E[0], "E_o2": E[1], "E_total": E.sum(),
        "delta_o1": delta_o[0], "delta_o2": delta_o[1], "delta_h1": delta_h[0], "delta_h2": delta_h[1],
    }
    names2 = {"w5": (0, 0), "w6": (0, 1), "w7": (1, 0), "w8": (1, 1)}
    names1 = {"w1": (0, 0), "w2": (0, 1), "w3": (1, 0), "w4": (1, 1)}
    for k, ij in names2.items():
        v["dE/d" + k], v[k] = dW2[ij], w_new2[ij]
    for k, ij in names1.items():
        v["dE/d" + k], v[k] = dW1[ij], w_new1[ij]

    L = [
        "Mazur's step-by-step example: 2-2-2 network, sigmoid units, E = ½ Σ (target − out)²",
        "inputs i1 = 0.05, i2 = 0.10; targets 0.01, 0.99; η = 0.5; biases b1 = 0.35, b2 = 0.60 (not updated)",
        "",
        "Forward pass  z^l = W^l a^{l-1} + b^l,  a^l = σ(z^l)",
    ]
    L += [f"  {k} = {fmt(v[k])}" for k in ("net_h1", "out_h1", "net_h2", "out_h2")]
    L += [f"  {k} = {fmt(v[k])}" for k in ("net_o1", "out_o1", "net_o2", "out_o2")]
    L += [f"  {k} = {fmt(v[k])}" for k in ("E_o1", "E_o2", "E_total")]
    L += [
        "",
        "Output layer  BP1: δ^L = (out − target) ⊙ out(1 − out)",
        f"  δ_o1 = {fmt(v['delta_o1'])}",
        f"  δ_o2 = {fmt(v['delta_o2'])}",
        "  BP4: ∂E/∂w = δ_o × out_h",
    ]
    L += [f"  ∂E/∂{k} = {fmt(v['dE/d' + k])}" for k in names2]
    L += [
        "",
        "Hidden layer  BP2: δ^1 = (W^2ᵀ δ^2) ⊙ out_h(1 − out_h)",
        f"  δ_h1 = {fmt(v['delta_h1'])}",
        f"  δ_h2 = {fmt(v['delta_h2'])}",
        "  BP4: ∂E/∂w = δ_h × input",
    ]
    L += [f"  ∂E/∂{k} = {fmt(v['dE/d' + k])}" for k in names1]
    L += ["", "Update  w ← w − η ∂E/∂w  (all from the same forward pass)"]
    L += [f"  {k} = {fmt(v[k])}" for k in (*names2, *names1)]
    return L, v


def relu():
    """Returns (lines, values) for the ReLU example."""
    W1, b1 = [[0.5, 0.2], [0.3, 0.7]], [0.1, 0.2]
    W2, b2 = [[0.6, 0.9]], [0.15]
    net = _build([2, 2, 1], "relu", "identity", [W1, W2], [b1, b2])
    x, y = np.array([[1.0, 2.0]]), np.array([[3.0]])

    y_hat = net.forward(x, train=True)[0, 0]
    buf = net.buffers(1)
    z1, a1 = buf.z[0][0].copy(), buf.a[0][0].copy()
    loss = 0.5 * (y_hat - y[0, 0]) ** 2
    net.backward(x, y)
    dz2 = buf.delta[1][0, 0]
    da1 = dz2 * np.array(W2[0])  # (W^2)ᵀ δ^2, before ⊙ σ'(z^1)
    v = {
        "z1": z1, "a1": a1, "y_hat": y_hat, "L": loss, "dL/dz2": dz2,
        "dL/dW2": net.grad_weights[1][0].copy(), "dL/db2": net.grad_biases[1][0],
        "dL/da1": da1, "relu_prime(z1)": (z1 > 0).astype(float), "dL/dz1": buf.delta[0][0].copy(),
        "dL/dW1": net.grad_weights[0].copy(), "dL/db1": net.grad_biases[0].copy(),
    }
    L = [
        "ReLU example: x = [1, 2], y = 3, hidden ReLU, linear output, L = ½ (ŷ − y)²",
        "W1 = [[0.5, 0.2], [0.3, 0.7]], b1 = [0.1, 0.2], W2 = [0.6, 0.9], b2 = 0.15",
        "",
        "Forward pass",
        f"  z1 = W1 x + b1 = {_vec(z1)}",
        f"  a1 = relu(z1) = {_vec(a1)}",
        f"  ŷ = W2 a1 + b2 = {fmt(y_hat)}",
        f"  L = ½ (ŷ − y)² = {fmt(loss)}",
        "",
        "Backward pass",
        f"  BP1: ∂L/∂z2 = ŷ − y = {fmt(dz2)}            (identity output: σ' = 1)",
        f"  BP4: ∂L/∂W2 = ∂L/∂z2 · a1ᵀ = {_vec(v['dL/dW2'])}",
        f"  BP3: ∂L/∂b2 = ∂L/∂z2 = {fmt(v['dL/db2'])}",
        f"       ∂L/∂a1 = W2ᵀ ∂L/∂z2 = {_vec(da1)}",
        f"  BP2: ∂L/∂z1 = ∂L/∂a1 ⊙ relu'(z1) = {_vec(da1)} ⊙ {_vec(v['relu_prime(z1)'])} = {_vec(v['dL/dz1'])}",
        f"  BP4: ∂L/∂W1 = ∂L/∂z1 · xᵀ = [{_vec(v['dL/dW1'][0])}, {_vec(v['dL/dW1'][1])}]",
        f"  BP3: ∂L/∂b1 = ∂L/∂z1 = {_vec(v['dL/db1'])}",
    ]
    return L, v


EXAMPLES = {"mazur": mazur, "relu": relu}


def explain(name):
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r}: choose one of {', '.join(EXAMPLES)}")
    return "\n".join(EXAMPLES[name]()[0])
