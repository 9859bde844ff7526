"""Activation functions: one record (class) each, holding everything fastbp
knows of it. Every other table (the config's choices, the fused GPU kernels'
codes and C source, the ONNX ops, scikit-learn's names) is derived from these.

A record has
  forward(bk, z, out)             out = σ(z), in place (the numpy/cupy code)
  backward(bk, delta, z, a, work) delta ⊙= σ'(z), the Hadamard product of BP1/BP2
  sigma(z), prime(z, a)           the same maths as plain numpy expressions: the
                                  reference the fused kernels are tested against
  cuda_sigma, cuda_prime          the same as C expressions (in z, a, slope) for
                                  kernels.py; None: no fused kernel (unfused code)
  cpu_sigma, cpu_prime            the same as Python expressions on one number
                                  (math's exp, tanh, ...) for jit.py's compiled
                                  CPU step; None: the numpy code runs
  onnx_op                         the ONNX operator (see `onnx`); None: no export
  sklearn                         scikit-learn's name for it (MLP* `activation`)
  roles                           where it may stand: "hidden", "output"
  health                          how a layer of it fails (train/health.py): "dies"
                                  (units never active: no gradient) or "saturates"
                                  (σ'(z) ≈ 0: barely learns); None: neither is checked

`a = σ(z)` is passed to `backward` because most σ' are cheapest written in
terms of a (sigmoid: a(1−a); tanh: 1−a²; relu: [a>0]).

Adding an activation is one class here, listed in RECORDS (or passed to
`register`); tests/test_records.py shows one added from a test.
"""

from __future__ import annotations

import numpy as np


class Activation:
    name = ""
    roles = ("hidden", "output")
    sklearn = None
    onnx_op = None
    cuda_sigma = None
    cuda_prime = None
    cpu_sigma = None
    cpu_prime = None
    prime_reads_z = False  # does cuda_prime read z (one more pass over memory)?
    health = None
    slope = 0.0  # the parameter the kernels pass every activation (leaky_relu's α)

    def __init__(self, slope=None):
        """Every record is made with the config's slope; only leaky_relu keeps it."""

    def forward(self, bk, z, out):
        raise NotImplementedError

    def backward(self, bk, delta, z, a, work):
        raise NotImplementedError

    def sigma(self, z):
        raise NotImplementedError

    def prime(self, z, a):
        raise NotImplementedError

    def onnx(self, node, const, z, out):
        """Emit the ONNX nodes computing out = σ(z); returns out."""
        return node(self.onnx_op, [z], out)

    def __repr__(self):
        return f"{type(self).__name__}()"


class Sigmoid(Activation):
    """σ(z) = 1/(1+e^{−z}),  σ'(z) = σ(z)(1 − σ(z))."""

    name, sklearn, onnx_op, health = "sigmoid", "logistic", "Sigmoid", "saturates"
    cuda_sigma = "(real)1 / ((real)1 + exp(-z))"  # e^{−z} = inf gives 0: no overflow
    cuda_prime = "a * ((real)1 - a)"
    cpu_sigma, cpu_prime = "1 / (1 + exp(-z))", "a * (1 - a)"  # exp(−z) = inf gives 0 in numba

    def forward(self, bk, z, out):
        return bk.sigmoid(z, out)

    def backward(self, bk, delta, z, a, work):
        xp = bk.xp
        xp.multiply(a, a, out=work)
        xp.subtract(a, work, out=work)  # a − a² = σ'(z)
        xp.multiply(delta, work, out=delta)

    def sigma(self, z):
        return 1 / (1 + np.exp(-z))

    def prime(self, z, a):
        return a * (1 - a)


class Tanh(Activation):
    """σ(z) = tanh z,  σ'(z) = 1 − tanh² z."""

    name, sklearn, onnx_op, health = "tanh", "tanh", "Tanh", "saturates"
    cuda_sigma, cuda_prime = "tanh(z)", "(real)1 - a * a"
    cpu_sigma, cpu_prime = "tanh(z)", "1 - a * a"

    def forward(self, bk, z, out):
        return bk.xp.tanh(z, out=out)

    def backward(self, bk, delta, z, a, work):
        xp = bk.xp
        xp.multiply(a, a, out=work)
        xp.subtract(1.0, work, out=work)
        xp.multiply(delta, work, out=delta)

    def sigma(self, z):
        return np.tanh(z)

    def prime(self, z, a):
        return 1 - a * a


class ReLU(Activation):
    """σ(z) = max(z, 0),  σ'(z) = 1 if z > 0 else 0."""

    name, sklearn, onnx_op, health = "relu", "relu", "Relu", "dies"
    cuda_sigma = "z < (real)0 ? (real)0 : z"  # a NaN z stays NaN, as numpy's maximum keeps it
    cuda_prime = "a > (real)0 ? (real)1 : (real)0"
    cpu_sigma, cpu_prime = "0.0 if z < 0 else z", "1.0 if a > 0 else 0.0"

    def forward(self, bk, z, out):
        return bk.relu(z, out)

    def backward(self, bk, delta, z, a, work):
        # A float × bool multiply is numpy's fastest masking (putmask and
        # copyto with where= are several times slower).
        bk.xp.multiply(delta, a > 0, out=delta)

    def sigma(self, z):
        return np.where(z < 0, 0, z).astype(z.dtype)

    def prime(self, z, a):
        return (a > 0).astype(a.dtype)


class LeakyReLU(Activation):
    """σ(z) = z if z > 0 else αz,  σ'(z) = 1 if z > 0 else α  (0 < α < 1)."""

    name, sklearn, roles = "leaky_relu", "leaky_relu", ("hidden",)  # scikit-learn has none: fastbp's extension
    cuda_sigma = "z > (real)0 ? z : slope * z"
    cuda_prime = "z > (real)0 ? (real)1 : slope"
    cpu_sigma, cpu_prime = "z if z > 0 else slope * z", "1.0 if z > 0 else slope"
    prime_reads_z = True
    health = "dies"  # its units pass α: fewer die, but a layer that never activates learns α-slowly

    def __init__(self, slope=0.01):
        if not 0.0 < slope < 1.0:
            raise ValueError(f"leaky_relu slope must be in (0, 1), got {slope}")
        self.slope = slope

    def forward(self, bk, z, out):
        bk.xp.multiply(z, self.slope, out=out)
        return bk.xp.maximum(z, out, out=out)  # max(z, αz) for 0 < α < 1

    def backward(self, bk, delta, z, a, work):
        xp = bk.xp
        xp.greater(z, 0, out=work)  # 1.0 or 0.0
        xp.multiply(work, 1.0 - self.slope, out=work)
        xp.add(work, self.slope, out=work)  # 1 or α
        xp.multiply(delta, work, out=delta)

    def sigma(self, z):
        return np.where(z > 0, z, self.slope * z).astype(z.dtype)

    def prime(self, z, a):
        return np.where(z > 0, 1, self.slope).astype(a.dtype)

    def onnx(self, node, const, z, out):
        # max(z, αz) as forward computes it: ONNX LeakyRelu's alpha is float32 even in float64
        return node("Max", [z, node("Mul", [z, const("leaky_slope", self.slope)], f"{z}_sloped")], out)

    def __repr__(self):
        return f"LeakyReLU({self.slope})"


class Identity(Activation):
    """σ(z) = z,  σ'(z) = 1: a linear output for regression, or a linear
    hidden layer (a bottleneck, as scikit-learn's activation='identity')."""

    name, sklearn, onnx_op = "identity", "identity", "Identity"
    cuda_sigma, cuda_prime = "z", "(real)1"
    cpu_sigma, cpu_prime = "z", "1.0"

    def forward(self, bk, z, out):
        if out is not z:
            out[...] = z
        return out

    def backward(self, bk, delta, z, a, work):
        pass

    def sigma(self, z):
        return z.copy()

    def prime(self, z, a):
        return np.ones_like(a)


class Exp(Activation):
    """σ(z) = e^z,  σ'(z) = e^z = a: the output of a Poisson regression (the
    log link), where it pairs with the Poisson cost's simplified BP1."""

    name, sklearn, onnx_op, roles = "exp", "exp", "Exp", ("output",)
    cuda_sigma, cuda_prime = "exp(z)", "a"
    cpu_sigma, cpu_prime = "exp(z)", "a"

    def forward(self, bk, z, out):
        return bk.xp.exp(z, out=out)

    def backward(self, bk, delta, z, a, work):
        bk.xp.multiply(delta, a, out=delta)

    def sigma(self, z):
        return np.exp(z)

    def prime(self, z, a):
        return a.copy()


class Softmax(Activation):
    """a_j = e^{z_j} / Σ_k e^{z_k}, per row. Output layer only, with the
    log-likelihood cost, whose BP1 simplifies to δ = a − y (costs.py); its
    Jacobian is not diagonal, so it has no elementwise σ' (and no place in
    the elementwise kernels: kernels.BIAS_SOFTMAX is its own).

    `forward_log_norm` also writes each row's log normaliser
    ln Σ_k e^{z_k} = max z + ln Σ_k e^{z_k − max z}, which falls out on the
    way, into a buffer of the forward pass that the log-likelihood cost reads:
    a few operations on n values instead of two more passes over the outputs.
    """

    name, sklearn, onnx_op, roles = "softmax", "softmax", "Softmax", ("output",)

    def forward(self, bk, z, out):
        return self.forward_log_norm(bk, z, out, None)

    def forward_log_norm(self, bk, z, out, log_norm):
        xp = bk.xp
        m = z.max(axis=1, keepdims=True)
        xp.subtract(z, m, out=out)  # e^{z − max z} cannot overflow
        xp.exp(out, out=out)
        s = out.sum(axis=1, keepdims=True)  # in [1, k]: its log is safe
        xp.divide(out, s, out=out)
        if log_norm is not None:
            xp.log(s, out=s)
            xp.add(m, s, out=log_norm)
        return out

    def backward(self, bk, delta, z, a, work):
        raise NotImplementedError("softmax has no elementwise derivative; pair it with log_likelihood")

    def sigma(self, z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def onnx(self, node, const, z, out):
        return node("Softmax", [z], out, axis=1)


RECORDS: dict[str, type[Activation]] = {}


def register(cls):
    """Add an activation record (a class); returns it, so it also serves as a decorator."""
    if not cls.name or not set(cls.roles) <= {"hidden", "output"}:
        raise ValueError(f"{cls.__name__}: an activation needs a name and roles among hidden, output")
    RECORDS[cls.name] = cls
    return cls


def unregister(name):
    RECORDS.pop(name, None)


for _cls in (Sigmoid, Tanh, ReLU, LeakyReLU, Identity, Exp, Softmax):
    register(_cls)


def names(role):
    """The activations that may stand in `role` ("hidden" or "output"), in RECORDS' order."""
    return tuple(n for n, cls in RECORDS.items() if role in cls.roles)


def sklearn_names():
    """{scikit-learn's activation name: fastbp's} for every hidden activation it has."""
    return {cls.sklearn: n for n, cls in RECORDS.items() if cls.sklearn and "hidden" in cls.roles}


def from_sklearn(name):
    """fastbp's name for a scikit-learn activation name ('logistic' -> 'sigmoid'); others as they are."""
    return next((n for n, cls in RECORDS.items() if cls.sklearn == name), name)


def make(name, role, slope=0.01):
    """The activation `name` for a layer in `role`; a clear ValueError otherwise."""
    if name not in RECORDS or role not in RECORDS[name].roles:
        raise ValueError(f"unknown {role} activation {name!r}: choose one of {', '.join(names(role))}")
    return RECORDS[name](slope)
