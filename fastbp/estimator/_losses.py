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


def _total(L, sw):
    """Σ over the outputs of the (sw-weighted) mean over the rows: Σ_ij w_i L_ij / Σ_i w_i.
    (Summed in one reduction, not output by output as scikit-learn: the same to rounding.)"""
    if sw is None:
        return L.sum() / L.shape[0]
    return (L * sw[:, None]).sum() / sw.sum()


def _clip(xp, P):
    eps = xp.finfo(P.dtype).eps
    return xp.minimum(xp.maximum(P, eps), 1 - eps)


def log_loss(xp, Y, P, sw):
    return -_total(Y * xp.log(_clip(xp, P)), sw)


def binary_log_loss(xp, Y, P, sw):
    P = _clip(xp, P)
    return -_total(Y * xp.log(P) + (1 - Y) * xp.log(1 - P), sw)


def squared_error(xp, Y, P, sw):
    D = Y - P
    return 0.5 * _total(D * D, sw) / Y.shape[1]


def poisson(xp, Y, P, sw):
    # xlogy(y, y / p): 0 where y == 0, without evaluating log(0)
    y_log = Y * xp.log(xp.where(Y > 0, Y, 1) / P)
    return _total(y_log - Y + P, sw)


# out_activation_ -> (fastbp output activation, fastbp cost, reported loss)
OUTPUTS = {
    "softmax": ("softmax", "log_likelihood", log_loss),
    "logistic": ("sigmoid", "cross_entropy", binary_log_loss),
    "identity": ("identity", "quadratic", squared_error),
    "exp": ("exp", "poisson", poisson),
}
