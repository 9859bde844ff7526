"""Activation functions σ and their derivatives σ', in place.

Each activation has
  forward(bk, z, out)        out = σ(z)
  backward(bk, delta, z, a)  delta ⊙= σ'(z), the Hadamard product of BP1/BP2

`a = σ(z)` is passed to `backward` because every σ' below is cheapest
written in terms of a (sigmoid: a(1−a); tanh: 1−a²; relu: [a>0]).
"""

from __future__ import annotations


class Sigmoid:
    """σ(z) = 1/(1+e^{−z}),  σ'(z) = σ(z)(1 − σ(z))."""

    name = "sigmoid"

    @staticmethod
    def forward(bk, z, out):
        return bk.sigmoid(z, out)

    @staticmethod
    def backward(bk, delta, z, a, work):
        xp = bk.xp
        xp.multiply(a, a, out=work)
        xp.subtract(a, work, out=work)  # a − a² = σ'(z)
        xp.multiply(delta, work, out=delta)


class Tanh:
    """σ(z) = tanh z,  σ'(z) = 1 − tanh² z."""

    name = "tanh"

    @staticmethod
    def forward(bk, z, out):
        return bk.xp.tanh(z, out=out)

    @staticmethod
    def backward(bk, delta, z, a, work):
        xp = bk.xp
        xp.multiply(a, a, out=work)
        xp.subtract(1.0, work, out=work)
        xp.multiply(delta, work, out=delta)


class ReLU:
    """σ(z) = max(z, 0),  σ'(z) = 1 if z > 0 else 0."""

    name = "relu"

    @staticmethod
    def forward(bk, z, out):
        return bk.xp.maximum(z, 0, out=out)

    @staticmethod
    def backward(bk, delta, z, a, work):
        # A float × bool multiply is numpy's fastest masking (putmask and
        # copyto with where= are several times slower).
        bk.xp.multiply(delta, a > 0, out=delta)


class LeakyReLU:
    """σ(z) = z if z > 0 else αz,  σ'(z) = 1 if z > 0 else α  (0 < α < 1)."""

    name = "leaky_relu"

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


class Identity:
    """σ(z) = z,  σ'(z) = 1: a linear output for regression, or a linear
    hidden layer (a bottleneck, as scikit-learn's activation='identity')."""

    name = "identity"

    @staticmethod
    def forward(bk, z, out):
        if out is not z:
            out[...] = z
        return out

    @staticmethod
    def backward(bk, delta, z, a, work):
        pass


class Exp:
    """σ(z) = e^z,  σ'(z) = e^z = a: the output of a Poisson regression (the
    log link), where it pairs with the Poisson cost's simplified BP1."""

    name = "exp"

    @staticmethod
    def forward(bk, z, out):
        return bk.xp.exp(z, out=out)

    @staticmethod
    def backward(bk, delta, z, a, work):
        bk.xp.multiply(delta, a, out=delta)


class Softmax:
    """a_j = e^{z_j} / Σ_k e^{z_k}, per row. Output layer only, with the
    log-likelihood cost, whose BP1 simplifies to δ = a − y (costs.py); its
    Jacobian is not diagonal, so it has no elementwise σ'.

    The row's log normaliser ln Σ_k e^{z_k} = max z + ln Σ_k e^{z_k − max z}
    falls out on the way; it is kept in `log_norm` (one value per row) for the
    log-likelihood cost of the same batch, which then costs a few operations
    on n values instead of two more passes over the outputs.
    """

    name = "softmax"

    def __init__(self):
        self.log_norm = None

    def forward(self, bk, z, out):
        xp = bk.xp
        m = z.max(axis=1, keepdims=True)
        xp.subtract(z, m, out=out)  # e^{z − max z} cannot overflow
        xp.exp(out, out=out)
        s = out.sum(axis=1, keepdims=True)  # in [1, k]: its log is safe
        xp.divide(out, s, out=out)
        xp.log(s, out=s)
        self.log_norm = xp.add(m, s, out=m)
        return out

    @staticmethod
    def backward(bk, delta, z, a, work):
        raise NotImplementedError("softmax has no elementwise derivative; pair it with log_likelihood")


HIDDEN = {"sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU, "leaky_relu": LeakyReLU, "identity": Identity}
OUTPUT = {"sigmoid": Sigmoid, "softmax": Softmax, "identity": Identity, "tanh": Tanh, "relu": ReLU, "exp": Exp}


def make(name, table, slope=0.01):
    if name not in table:
        raise ValueError(f"unknown activation {name!r}: choose one of {', '.join(table)}")
    cls = table[name]
    return cls(slope) if cls is LeakyReLU else cls()
