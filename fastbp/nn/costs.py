"""Cost functions, in the style of Nielsen's network2.py: one record (class)
each, with `fn` (the cost) and `delta` (the output error δ^L of BP1), and
everything else fastbp knows of it.

Rows are samples. `fn(bk, z, a, y, log_norm=None)` returns the cost summed
over the batch (a 0-d device array, so that no host sync is needed); the
network divides by the batch size. `log_norm` is the softmax's ln Σ e^z per
row when the forward pass kept it (activations.Softmax.forward_log_norm).
`delta(bk, z, a, y, out, act, work)` writes δ^L for each row into `out`; `act`
is the output activation that made a from z.

A record also says which outputs it pairs with (`outputs`) and which form
its BP1 takes, for the fused GPU kernel (`delta_kernel`): "a - y" where σ'
cancels with its outputs, "(a - y) σ'" for the quadratic cost's
(a − y) ⊙ σ'(z), None where no kernel computes it (the unfused `delta` runs);
and `cpu_term`, one element's share of `fn` as a Python expression in z, a,
y and the row's log_norm (0 unless the output is a softmax), for jit.py's
compiled CPU step (None: the numpy code runs).
Adding a cost is one class here, listed in RECORDS (or passed to `register`).
"""

from __future__ import annotations


class Cost:
    name = ""
    outputs: tuple = ()
    delta_kernel = None
    cpu_term = None

    @staticmethod
    def fn(bk, z, a, y, log_norm=None):
        raise NotImplementedError

    @staticmethod
    def delta(bk, z, a, y, out, act, work):
        raise NotImplementedError


def _softplus(xp, z):
    """ln(1 + e^z) without overflow: max(z, 0) + ln(1 + e^{−|z|})."""
    return xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))


class QuadraticCost(Cost):
    """C = ½ Σ_j (a_j − y_j)², with any elementwise output activation.

    BP1: δ^L = ∇_a C ⊙ σ'(z^L) = (a − y) ⊙ σ'(z^L).
    """

    name = "quadratic"
    outputs = ("sigmoid", "identity", "tanh", "relu", "exp")  # any elementwise output
    delta_kernel = "(a - y) σ'"
    cpu_term = "0.5 * (a - y) * (a - y)"

    @staticmethod
    def fn(bk, z, a, y, log_norm=None):
        d = a - y
        return 0.5 * (d * d).sum()

    @staticmethod
    def delta(bk, z, a, y, out, act, work):
        bk.xp.subtract(a, y, out=out)  # ∇_a C = a − y
        act.backward(bk, out, z, a, work)  # ⊙ σ'(z^L)
        return out


class CrossEntropyCost(Cost):
    """C = −Σ_j [y_j ln a_j + (1 − y_j) ln(1 − a_j)], with sigmoid outputs.

    BP1 simplifies: ∇_a C = (a − y) / (a(1 − a)) and σ'(z) = a(1 − a) cancel,
    so δ^L = a − y. Computed from z as softplus(z) − y z: never ln(0).
    """

    name, outputs, delta_kernel = "cross_entropy", ("sigmoid",), "a - y"
    cpu_term = "max(z, 0) + log1p(exp(-abs(z))) - y * z"

    @staticmethod
    def fn(bk, z, a, y, log_norm=None):
        xp = bk.xp
        return (_softplus(xp, z) - y * z).sum()

    @staticmethod
    def delta(bk, z, a, y, out, act, work):
        return bk.xp.subtract(a, y, out=out)  # simplified BP1: δ^L = a − y


class LogLikelihoodCost(Cost):
    """C = −ln a_y = −Σ_j y_j ln a_j, with softmax outputs (categorical
    cross-entropy).

    BP1 simplifies through the softmax Jacobian to δ^L = a − y. The cost is
    Σ_j y_j (logsumexp(z) − z_j), never ln(0): with rows of y summing to 1,
    logsumexp(z) = max z − ln(max a), and the largest softmax output is at
    least 1/k, so its log cannot underflow. (Given the forward pass's
    `log_norm`, the softmax's own ln Σ e^z, it is used: two reductions fewer.)
    ln Σ e^z − z_y is taken row by row and is >= 0: one dot product over the
    whole batch would cancel catastrophically for large |z| (float32
    z = ±1e30 over 1,000 rows gave −1.5e26 for confident, correct rows).
    No einsum: on the GPU it goes through cuBLAS, which a CUDA graph cannot
    record on CuPy.
    """

    name, outputs, delta_kernel = "log_likelihood", ("softmax",), "a - y"
    cpu_term = "y * (log_norm - z)"

    @staticmethod
    def fn(bk, z, a, y, log_norm=None):
        xp = bk.xp
        z_y = (y * z).sum(axis=1)
        if log_norm is not None:
            return (log_norm[:, 0] - z_y).sum()
        return (z.max(axis=1) - z_y).sum() - xp.log(a.max(axis=1)).sum()

    @staticmethod
    def delta(bk, z, a, y, out, act, work):
        return bk.xp.subtract(a, y, out=out)  # simplified BP1: δ^L = a − y


class PoissonCost(Cost):
    """Half the Poisson deviance, C = Σ_j [y_j ln(y_j / a_j) − y_j + a_j]
    (0 ln 0 = 0), with exp outputs a = e^z: scikit-learn's loss='poisson'.

    BP1 simplifies: ∇_a C = 1 − y/a and σ'(z) = a, so δ^L = a − y. The cost
    is taken from z (y ln y − y z − y + e^z), so a zero output never meets a log.
    """

    name, outputs, delta_kernel = "poisson", ("exp",), "a - y"
    cpu_term = "(y * log(y) if y > 0 else 0.0) - y * z - y + a"

    @staticmethod
    def fn(bk, z, a, y, log_norm=None):
        xp = bk.xp
        y_ln_y = y * xp.log(xp.where(y > 0, y, 1))
        return (y_ln_y - y * z - y + a).sum()

    @staticmethod
    def delta(bk, z, a, y, out, act, work):
        return bk.xp.subtract(a, y, out=out)  # simplified BP1: δ^L = a − y


RECORDS: dict[str, type[Cost]] = {}


def register(cls):
    """Add a cost record (a class); returns it, so it also serves as a decorator."""
    if not cls.name or not cls.outputs:
        raise ValueError(f"{cls.__name__}: a cost needs a name and the outputs it pairs with")
    RECORDS[cls.name] = cls
    return cls


def unregister(name):
    RECORDS.pop(name, None)


for _cls in (QuadraticCost, CrossEntropyCost, LogLikelihoodCost, PoissonCost):
    register(_cls)


def make(name, output):
    if name not in RECORDS:
        raise ValueError(f"unknown cost {name!r}: choose one of {', '.join(RECORDS)}")
    pairs = RECORDS[name].outputs
    if output not in pairs:
        raise ValueError(f"cost {name!r} does not pair with output {output!r}: use output {' or '.join(pairs)}")
    return RECORDS[name]()
