"""The losses scikit-learn's MLPs report (loss_, loss_curve_, what L-BFGS
minimises), written over the backend's arrays so that they stay on the device.

They are scikit-learn's definitions, not fastbp's cost classes, because the
reported numbers and the L-BFGS objective must be scikit-learn's to the last
bit: probabilities clipped to [eps, 1 − eps], the squared error averaged over
the outputs as well as the rows. The gradients need no mirror: for each pair
(softmax / log loss, logistic / binary log loss, identity / squared error,
exp / Poisson) BP1 is δ^L = a − y in both.
"""

from __future__ import annotations


def _row_average(xp, L, sw):
    """Mean over the rows, weighted by sw (Σ w_i L_i / Σ w_i) if given: one value per output."""
    if sw is None:
        return L.mean(axis=0)
    return (L * sw[:, None]).sum(axis=0) / sw.sum()


def _clip(xp, P):
    eps = xp.finfo(P.dtype).eps
    return xp.clip(P, eps, 1 - eps)


def log_loss(xp, Y, P, sw):
    return -_row_average(xp, Y * xp.log(_clip(xp, P)), sw).sum()


def binary_log_loss(xp, Y, P, sw):
    P = _clip(xp, P)
    return -_row_average(xp, Y * xp.log(P) + (1 - Y) * xp.log(1 - P), sw).sum()


def squared_error(xp, Y, P, sw):
    D = Y - P
    return 0.5 * _row_average(xp, D * D, sw).mean()


def poisson(xp, Y, P, sw):
    # xlogy(y, y / p): 0 where y == 0, without evaluating log(0)
    y_log = Y * xp.log(xp.where(Y > 0, Y, 1) / P)
    return _row_average(xp, y_log - Y + P, sw).sum()


# out_activation_ -> (fastbp output activation, fastbp cost, reported loss)
OUTPUTS = {
    "softmax": ("softmax", "log_likelihood", log_loss),
    "logistic": ("sigmoid", "cross_entropy", binary_log_loss),
    "identity": ("identity", "quadratic", squared_error),
    "exp": ("exp", "poisson", poisson),
}
