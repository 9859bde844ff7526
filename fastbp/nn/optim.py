"""Optimisers over the flat parameter buffer.

Each `step(lr)` is a few whole-buffer, in-place ufuncs (`out=`): never a loop
over layers, never a temporary. `grads` is used as scratch (it is overwritten
by the next backward). Only numpy's own ufuncs and BLAS are called: mixing in
a second BLAS library (scipy's axpy) leaves two OpenBLAS thread pools spinning
against each other, which made an epoch many times slower.
L2 weight decay λ' adds λ'·w to the weight gradients only (biases are
`params[n_weights:]` and are not decayed): with Nielsen's λ and training-set
size n, λ' = λ/n, which gives his update w → (1 − ηλ/n) w − η ∂C/∂w.
"""

from __future__ import annotations

import math

from . import fused
from .registry import Param, take

PARAMS = {
    "weight_decay": Param(0.0, lambda v: v >= 0, ">= 0"),
    "momentum": Param(0.9, lambda v: 0 <= v <= 1, "in [0, 1]"),  # 1: undamped, as scikit-learn allows
    "beta1": Param(0.9, lambda v: 0 <= v < 1, "in [0, 1)"),
    "beta2": Param(0.999, lambda v: 0 <= v < 1, "in [0, 1)"),
    "eps": Param(1e-8, lambda v: v > 0, "> 0"),
}


class Optimizer:
    """Plain SGD; the base of the others. `takes` names its parameters in PARAMS."""

    name = "sgd"
    takes = ("weight_decay",)

    def __init__(self, net, **params):
        self.net, self.xp, self.bk = net, net.xp, net.bk
        for key, value in take("optimizer", self.name, PARAMS, self.takes, params).items():
            setattr(self, key, value)
        self.t = 0  # steps taken
        self._work = None
        self._fused = fused.update(self.bk, self.name)  # None on numpy

    @property
    def work(self):
        """Scratch buffer the size of params, allocated only by those who need it."""
        if self._work is None:
            self._work = self.xp.empty_like(self.net.params)
        return self._work

    def _decay(self):
        """g_w += λ' w, on the weight part of the buffer."""
        if self.weight_decay:
            n, xp = self.net.n_weights, self.xp
            g, w = self.net.grads[:n], self.work[:n]
            xp.multiply(self.net.params[:n], self.weight_decay, out=w)
            xp.add(g, w, out=g)

    def step(self, lr):
        self.t += 1
        if self._fused:  # _decay and _update below, as one kernel
            return self._fused(self.net.params, self.net.grads, self.net.n_weights, self.weight_decay, *self._fused_args(lr))
        self._decay()
        self._update(lr, self.net.params, self.net.grads)

    def _update(self, lr, p, g):
        """Plain SGD: p ← p − η g."""
        self.xp.multiply(g, lr, out=g)
        self.xp.subtract(p, g, out=p)

    def _fused_args(self, lr):
        """The fused kernel's arguments after weight_decay (kernels.OPTIMIZER)."""
        return (lr,)

    def state(self):
        """Host copies of the optimiser's state, for checkpoints."""
        return {"t": self.t}

    def load_state(self, state):
        self.t = int(state["t"])


class Momentum(Optimizer):
    """Momentum (Nielsen ch. 3): v ← μv − η g;  p ← p + v."""

    name = "momentum"
    takes = ("momentum", "weight_decay")

    def __init__(self, net, **params):
        super().__init__(net, **params)
        self.v = self.xp.zeros_like(net.params)

    def _update(self, lr, p, g):
        xp, v = self.xp, self.v
        xp.multiply(v, self.momentum, out=v)
        xp.multiply(g, lr, out=g)
        xp.subtract(v, g, out=v)  # v ← μv − ηg
        xp.add(p, v, out=p)

    def _fused_args(self, lr):
        return lr, self.v, self.momentum

    def state(self):
        return {"t": self.t, "v": self.net.bk.to_numpy(self.v).copy()}

    def load_state(self, state):
        super().load_state(state)
        self.v[...] = self.xp.asarray(state["v"])


class Nesterov(Momentum):
    """Nesterov momentum (Sutskever et al. 2013, as scikit-learn writes it):
    v ← μv − η g;  p ← p + μv − η g."""

    name = "nesterov"

    def _update(self, lr, p, g):
        xp, v, mu, w = self.xp, self.v, self.momentum, self.work
        xp.multiply(v, mu, out=v)
        xp.multiply(g, lr, out=g)
        xp.subtract(v, g, out=v)  # v ← μv − ηg
        xp.subtract(p, g, out=p)
        xp.multiply(v, mu, out=w)
        xp.add(p, w, out=p)  # p ← p + μv − ηg


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1):
    m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;
    p ← p − η m̂ / (√v̂ + ε),  m̂ = m/(1−β1^t), v̂ = v/(1−β2^t)."""

    name = "adam"
    takes = ("beta1", "beta2", "eps", "weight_decay")

    def __init__(self, net, **params):
        super().__init__(net, **params)
        self.m = self.xp.zeros_like(net.params)
        self.v = self.xp.zeros_like(net.params)

    def _moments(self, g):
        """m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²."""
        xp, m, v, w = self.xp, self.m, self.v, self.work
        b1, b2 = self.beta1, self.beta2
        xp.multiply(m, b1, out=m)
        xp.multiply(g, 1.0 - b1, out=w)
        xp.add(m, w, out=m)
        xp.multiply(g, g, out=w)
        xp.multiply(w, 1.0 - b2, out=w)
        xp.multiply(v, b2, out=v)
        xp.add(v, w, out=v)

    def _update(self, lr, p, g):
        xp, m, v, w = self.xp, self.m, self.v, self.work
        b1, b2, t = self.beta1, self.beta2, self.t
        self._moments(g)
        xp.sqrt(v, out=w)
        xp.multiply(w, 1.0 / math.sqrt(1.0 - b2**t), out=w)  # √v̂
        xp.add(w, self.eps, out=w)
        xp.divide(m, w, out=w)
        xp.multiply(w, lr / (1.0 - b1**t), out=w)  # η m̂ / (√v̂ + ε)
        xp.subtract(p, w, out=p)

    def _fused_args(self, lr):
        b1, b2, t = self.beta1, self.beta2, self.t
        return lr / (1.0 - b1**t), self.m, self.v, b1, b2, self.eps, 1.0 / math.sqrt(1.0 - b2**t)

    def state(self):
        to_np = self.net.bk.to_numpy
        return {"t": self.t, "m": to_np(self.m).copy(), "v": to_np(self.v).copy()}

    def load_state(self, state):
        super().load_state(state)
        self.m[...] = self.xp.asarray(state["m"])
        self.v[...] = self.xp.asarray(state["v"])


class AdamSklearn(Adam):
    """Adam as scikit-learn's MLP computes it: the bias corrections folded
    into the step size and ε added to √v, not to √v̂:
    p ← p − η_t m / (√v + ε),  η_t = η √(1−β2^t) / (1−β1^t).
    The two forms differ only through ε; this one lets FastBPClassifier and
    FastBPRegressor end with MLPClassifier's and MLPRegressor's weights."""

    name = "adam_sklearn"

    def _update(self, lr, p, g):
        xp, m, v, w = self.xp, self.m, self.v, self.work
        b1, b2, t = self.beta1, self.beta2, self.t
        self._moments(g)
        xp.sqrt(v, out=w)
        xp.add(w, self.eps, out=w)
        xp.divide(m, w, out=w)
        xp.multiply(w, lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t), out=w)
        xp.subtract(p, w, out=p)

    def _fused_args(self, lr):
        b1, b2, t = self.beta1, self.beta2, self.t
        return lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t), self.m, self.v, b1, b2, self.eps, 1.0


OPTIMIZERS = {c.name: c for c in (Optimizer, Momentum, Nesterov, Adam, AdamSklearn)}


def make(name, net, **params):
    """The optimiser called `name` over net's flat buffers; unknown parameters are refused."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](net, **params)
