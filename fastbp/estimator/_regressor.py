"""FastBPRegressor: MLPRegressor's interface and results on fastbp's engine."""

from __future__ import annotations

from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ._base import BaseFastBP, estimator_init


class FastBPRegressor(RegressorMixin, BaseFastBP):
    """Multi-layer perceptron regressor trained by fastbp's hand-written
    backprop: MLPRegressor's parameters, attributes and results.

    Parameters are MLPRegressor's (same names, defaults and meaning):
    loss='squared_error' (identity outputs, half the squared error) or
    'poisson' (exp outputs, half the Poisson deviance), one output per target
    column. Plus fastbp's own backend ('numpy', 'cupy', 'auto') and dtype
    (None: the input's float32/float64), as FastBPClassifier. coefs_ and
    intercepts_ are views into the network's flat buffer with
    backend='numpy', host copies with 'cupy'.
    """

    _parameter_constraints: dict = {
        **BaseFastBP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    __init__ = estimator_init(leading={"loss": "squared_error"})

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
                             dtype=self._dtypes(), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y, y

    def _output_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y)."""
        self._validate_params()
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predicted values: (n_samples,) for one target, else (n_samples, n_outputs)."""
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True, net=None):
        y_pred = self._forward_pass_fast(X, check_input, net)
        return y_pred.ravel() if y_pred.shape[1] == 1 else y_pred

    def _score(self, X, y, sample_weight=None, net=None):
        return self._score_with(X, y, sample_weight, r2_score, net)
