"""What FastBPClassifier and FastBPRegressor share: parameters, the epoch loop
of the stochastic solvers, L-BFGS, and the bridge between scikit-learn's
coefs_/intercepts_ and fastbp's Network.

Where the weights live. Training runs on a Network: W^l (n_out, n_in) and
b^l are views into ONE flat buffer `params`. After fit, `coefs_[l]` is
`W^l.T` (scikit-learn's (n_in, n_out)) and `intercepts_[l]` is `b^l`: with
backend="numpy" they are *views* into that buffer (no copy; the next
partial_fit or warm fit moves them), with backend="cupy" host *copies*.
Either way each fit, partial_fit and predict first copies coefs_ and
intercepts_ into the network, so a user's edits to them (or new arrays put
in their place) count, as in scikit-learn.

Same random_state, same model. With backend="numpy", every random draw is
scikit-learn's, from the same RandomState in the same order: the initial
weights (uniform ±√(6/(fan_in+fan_out)), ±√(2/…) for logistic, weights then
biases layer by layer), one shuffle of the row indices per epoch (the draw of
`sklearn.utils.shuffle`), and the `train_test_split` of early stopping. The loss and the
gradient are scikit-learn's too: the batch's weighted mean loss plus
alpha/(2 Σw) ||W||², whose gradient adds alpha/Σw · W to the weights'
(fastbp's weight decay, set per batch because the last batch may be short).
"""

from __future__ import annotations

import warnings
import inspect
from abc import ABC, abstractmethod
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.sparse
from sklearn.base import BaseEstimator, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight, validate_data

from .. import jit
from ..backend import BACKENDS, get_backend
from ..errors import HealthWarning
from ..nn import activations, optim
from ..nn.network import Network, layout, views
from ..train import health as _health
from ._losses import OUTPUTS

STOCHASTIC_SOLVERS = ("sgd", "adam")


class _ActivationNames(StrOptions):
    """scikit-learn's names of the hidden activations, read from the records
    (nn/activations.py) when a parameter is checked, so a new record counts."""

    def __init__(self):
        super().__init__(set())

    @property
    def options(self):
        return set(activations.sklearn_names())

    @options.setter
    def options(self, value):  # Options.__init__ sets it; the records decide
        pass


def device_matrix(bk, X, dtype):
    """X on the backend's device in `dtype`; a sparse X stays sparse, as CSR."""
    return bk.sparse_rows(X, dtype) if scipy.sparse.issparse(X) else bk.asarray(X, dtype)


class _Solver:
    """The stochastic solver's state across epochs: the learning-rate schedule
    (scikit-learn's 'constant', 'invscaling', 'adaptive') around a fastbp
    optimiser over the flat buffer. Named and shaped like scikit-learn's
    `_optimizer` (`learning_rate`, `iteration_ends`, `trigger_stopping`)."""

    def __init__(self, est, net):
        self.learning_rate_init = float(est.learning_rate_init)
        self.learning_rate = self.learning_rate_init
        self.schedule = est.learning_rate if est.solver == "sgd" else "constant"
        self.power_t = est.power_t
        if est.solver == "adam":
            self.spec = ("adam_sklearn", dict(beta1=est.beta_1, beta2=est.beta_2, eps=est.epsilon))
        elif est.momentum == 0:
            self.spec = ("sgd", {})
        else:
            self.spec = ("nesterov" if est.nesterovs_momentum else "momentum", dict(momentum=est.momentum))
        self.engine, self.saved = None, None
        self.bind(net)

    def bind(self, net):
        """The optimiser over `net`'s buffer (made anew after unpickling or a new network)."""
        if self.engine is None or self.engine.net is not net:
            name, kw = self.spec
            self.engine = optim.make(name, net, **kw)
            if self.saved is not None:
                self.engine.load_state(self.saved)
                self.saved = None
        return self

    def step(self, weight_decay):
        self.engine.weight_decay = weight_decay
        self.engine.step(self.learning_rate)

    def iteration_ends(self, t):
        if self.schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (t + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        """True to stop; 'adaptive' instead divides the rate by 5 until it is below 1e-6."""
        if self.schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False

    def __getstate__(self):
        state = dict(self.__dict__)
        engine = state.pop("engine")
        state["engine"], state["saved"] = None, engine.state() if engine is not None else self.saved
        return state


# MLPClassifier's parameters and defaults in its order (the first two may be given by position), then
# fastbp's own. Declared once: each estimator's __init__ is made from them (estimator_init), so no
# parameter is written, or passed on, twice; what a valid value is lives in _parameter_constraints.
POSITIONAL = {"hidden_layer_sizes": (100,), "activation": "relu"}
KEYWORD = {
    "solver": "adam", "alpha": 0.0001, "batch_size": "auto", "learning_rate": "constant",
    "learning_rate_init": 0.001, "power_t": 0.5, "max_iter": 200, "shuffle": True, "random_state": None,
    "tol": 1e-4, "verbose": False, "warm_start": False, "momentum": 0.9, "nesterovs_momentum": True,
    "early_stopping": False, "validation_fraction": 0.1, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8,
    "n_iter_no_change": 10, "max_fun": 15000,
    "backend": "auto", "dtype": None,
}


def estimator_init(leading=None, extra=None):
    """An __init__ taking the shared parameters, with `leading` {name: default} before them (MLPRegressor's
    loss comes first) and `extra` keyword-only ones after. As scikit-learn requires, it only stores each
    value under its name; its signature is the explicit one get_params, clone and help() read."""
    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD)]
    params += [P(n, P.POSITIONAL_OR_KEYWORD, default=d) for n, d in {**(leading or {}), **POSITIONAL}.items()]
    params += [P(n, P.KEYWORD_ONLY, default=d) for n, d in {**KEYWORD, **(extra or {})}.items()]
    signature = inspect.Signature(params)

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    __init__.__signature__ = signature
    return __init__


class BaseFastBP(BaseEstimator, ABC):
    """Shared by FastBPClassifier and FastBPRegressor; not for direct use."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [_ActivationNames()],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        # fastbp's own
        "backend": [StrOptions(set(BACKENDS))],
        "dtype": [None, StrOptions({"float32", "float64"})],
    }

    # -- subclass hooks ------------------------------------------------------------
    @abstractmethod
    def _validate_input(self, X, y, incremental, reset):
        """(X, Y, y): X validated, Y the 2-D training target, y as the user's labels/values."""

    @abstractmethod
    def _output_activation(self):
        """scikit-learn's out_activation_ for the target just validated."""

    @abstractmethod
    def _score(self, X, y, sample_weight=None, net=None):
        """The early-stopping validation score (no input validation)."""

    @abstractmethod
    def _predict(self, X, check_input=True, net=None):
        """Predictions from `net` (by default the network holding coefs_)."""

    def _fit_sample_weight(self, sample_weight, X, y, incremental):
        return None if sample_weight is None else _check_sample_weight(sample_weight, X)

    # -- fit ---------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Fit the model to X (n_samples, n_features; dense or sparse) and y,
        optionally weighting the samples (a weighted mean loss)."""
        self._validate_params()
        return self._fit(X, y, sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in STOCHASTIC_SOLVERS:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not stochastic.")
        return True

    def _dtypes(self):
        return (np.float64, np.float32) if self.dtype is None else self.dtype

    def _hidden_sizes(self):
        h = self.hidden_layer_sizes
        sizes = list(h) if hasattr(h, "__iter__") else [h]
        if np.any(np.array(sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(n) for n in sizes]

    def _fit(self, X, y, sample_weight, incremental):
        hidden = self._hidden_sizes()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, Y, y = self._validate_input(X, y, incremental, reset=first_pass)
        sample_weight = self._fit_sample_weight(sample_weight, X, y, incremental)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        self.n_outputs_ = Y.shape[1]
        layer_units = [X.shape[1], *hidden, self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(layer_units, X.dtype)
        elif [c.shape for c in self.coefs_] != list(zip(layer_units[:-1], layer_units[1:])):
            raise ValueError(
                f"{type(self).__name__}: the layer sizes {layer_units} do not match the fitted coefs_ "
                f"{[c.shape for c in self.coefs_]}; fit anew (warm_start=False) to change hidden_layer_sizes"
            )
        net = self._network(X.dtype, fresh=first_pass)
        if self.solver in STOCHASTIC_SOLVERS:
            self._fit_stochastic(net, X, Y, sample_weight, incremental)
        else:
            self._fit_lbfgs(net, X, Y, sample_weight)
        if not bool(net.xp.isfinite(net.params).all()):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain large values and need to"
                " be preprocessed."
            )
        self._expose(net)
        return self

    def _initialize(self, layer_units, dtype):
        self.n_iter_, self.t_ = 0, 0
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
        self.coefs_, self.intercepts_ = [], []
        factor = 2.0 if self.activation == "logistic" else 6.0
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            self.coefs_.append(self._random_state.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype, copy=False))
            self.intercepts_.append(self._random_state.uniform(-bound, bound, fan_out).astype(dtype, copy=False))
        self._best_params = self._flat()
        if self.solver in STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
            else:
                self.validation_scores_, self.best_validation_score_, self.best_loss_ = None, None, np.inf

    def _flat(self):
        """coefs_ and intercepts_ as fastbp's flat parameter buffer (network.layout)."""
        sizes = [self.coefs_[0].shape[0], *(c.shape[1] for c in self.coefs_)]
        flat = np.empty(layout(sizes)[2], np.asarray(self.coefs_[0]).dtype)
        for W, b, coef, intercept in zip(*views(flat, sizes), self.coefs_, self.intercepts_):
            W[...], b[...] = np.asarray(coef).T, np.ravel(intercept)
        return flat

    def _network(self, dtype, fresh=False):
        """The Network holding coefs_ and intercepts_ as they are now (made
        anew for a new fit, after unpickling, or when its shape changed)."""
        sizes = [self.coefs_[0].shape[0], *(c.shape[1] for c in self.coefs_)]
        output, cost, _ = OUTPUTS[self.out_activation_]
        net = self.__dict__.get("_net")
        # resolving 'auto' probes for a GPU: not on every partial_fit or predict
        bk = net.bk if net is not None and self.backend in ("auto", net.bk.name) else get_backend(self.backend)
        hidden = activations.sklearn_names()[self.activation]
        if (fresh or net is None or net.sizes != sizes or net.dtype != dtype or net.bk is not bk
                or net.hidden_name != hidden or net.output_name != output):
            net = self._net = Network(sizes, hidden, output, cost, "glorot", backend=bk, dtype=dtype)
        for W, b, coef, intercept in zip(net.weights, net.biases, self.coefs_, self.intercepts_):
            W[...] = bk.asarray(np.asarray(coef).T, dtype)  # a no-op copy when coef is W's own view
            b[...] = bk.asarray(np.ravel(intercept), dtype)
        return net

    def _expose(self, net):
        to_np = net.bk.to_numpy
        self.coefs_ = [to_np(W).T for W in net.weights]
        self.intercepts_ = [to_np(b) for b in net.biases]

    def _loss(self, net, Y, sw, sw_sum):
        """scikit-learn's loss of the last forward pass: the (weighted) mean loss + alpha/(2 Σw) ||W||²."""
        loss = OUTPUTS[self.out_activation_][2](net.xp, Y, net.a_out, sw)
        if not self.alpha:
            return loss
        w = net.params[: net.n_weights]
        return loss + (0.5 * self.alpha) * w.dot(w) / sw_sum

    # -- the stochastic solvers (scikit-learn's _fit_stochastic) ----------------------
    def _fit_stochastic(self, net, X, Y, sample_weight, incremental):
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = _Solver(self, net)
        solver = self._optimizer.bind(net)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            X, X_val, Y, y_val, sample_weight, sw_val = self._validation_split(X, Y, sample_weight)
        else:
            X_val = y_val = sw_val = None

        n_samples = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        bk, dtype = net.bk, net.dtype
        Xd, Yd = device_matrix(bk, X, dtype), bk.asarray(Y, dtype)
        swd = None if sample_weight is None else bk.asarray(sample_weight, dtype)
        sample_idx = np.arange(n_samples, dtype=int)
        health = self._start_health(net, X, Xd, Yd, incremental)
        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:
                    # sklearn.utils.shuffle's draw (RandomState.shuffle of arange(n)), without its
                    # per-call validation, which costs more than an epoch of a small set
                    sample_idx = sample_idx[self._random_state.permutation(n_samples)]
                self.loss_ = self._epoch(net, solver, Xd, Yd, swd, sample_weight, sample_idx, batch_size)
                self.n_iter_ += 1
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                epochs = len(self.loss_curve_)
                if epochs <= 10 or epochs % 10 == 0:  # on a tiny set the probe costs as much as an epoch
                    self._warn_health(health.epoch(self.loss_curve_), stacklevel=5)
                self._update_no_improvement_count(net, early_stopping, X_val, y_val, sw_val)
                solver.iteration_ends(self.t_)
                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = "Validation score did not improve more than tol=%f for %d consecutive epochs." % (
                            self.tol, self.n_iter_no_change)
                    else:
                        msg = "Training loss did not improve more than tol=%f for %d consecutive epochs." % (
                            self.tol, self.n_iter_no_change)
                    if solver.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        "Stochastic Optimizer: Maximum iterations (%d) reached and the optimization hasn't converged yet."
                        % self.max_iter, ConvergenceWarning)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if early_stopping:
            net.set_params(self._best_params)

    def _start_health(self, net, X, Xd, Yd, incremental):
        """The training-health checks (fastbp.train.health) of this fit, or of
        the partial_fit calls so far; the inputs are checked when they start."""
        health = self.__dict__.get("_health")
        if incremental and health is not None and health.net is net:
            return health
        accuracy = is_classifier(self) and (self.out_activation_ == "softmax" or self.n_outputs_ == 1)
        health = self._health = _health.Health(net, Xd, Yd, fixes=_health.ESTIMATOR_FIXES, lr=self.learning_rate_init,
                                               backprop=True, accuracy=accuracy, flat_epochs=10)  # an epoch may be one step
        if scipy.sparse.issparse(X):
            max_abs, constant = abs(X).max(), False
        else:
            max_abs, constant = np.abs(X).max(), bool((X.max(axis=0) == X.min(axis=0)).all())
        self._warn_health(health.inputs(max_abs, constant=constant, rows=X.shape[0], limit=_health.ESTIMATOR_INPUT_MAX),
                          stacklevel=6)
        return health

    @staticmethod
    def _warn_health(messages, stacklevel):
        """Each message as a HealthWarning, attributed to the caller of fit or partial_fit (stacklevel)."""
        for msg in messages:
            warnings.warn(msg, HealthWarning, stacklevel=stacklevel)

    def _epoch(self, net, solver, Xd, Yd, swd, sample_weight, sample_idx, batch_size):
        """One pass in gen_batches' slices of the (shuffled) rows: forward, loss, BP1-BP4, step.
        Returns the epoch's loss (scikit-learn's: the batch losses weighted by the batch sizes)."""
        n_samples = Xd.shape[0]
        order = net.bk.asarray(sample_idx) if self.shuffle else None  # one transfer per epoch
        accumulated = 0.0  # on the device: one synchronisation per epoch
        # Dense shuffled rows are gathered for several batches at once (as
        # loop.Batches does), each batch a view: the same rows, fewer calls.
        chunk = batch_size * max(1, net.bk.gather_rows // batch_size) if self.shuffle and not hasattr(Xd, "tocsr") else 0
        # forward and BP1-BP4 as one compiled call where the backend has one (jit.py);
        # its cost and hits go to scratch: the loss is scikit-learn's, from a^L
        compiled = jit.train_step(net) if net.bk.jit and swd is None and not hasattr(Xd, "tocsr") else None
        if compiled is not None:
            labels, hits = np.zeros(batch_size, np.int64), np.zeros(batch_size, bool)
        for start in range(0, n_samples, batch_size):
            batch = slice(start, min(start + batch_size, n_samples))
            rows = order[batch] if self.shuffle else batch
            n_rows = batch.stop - batch.start
            if swd is None:
                swb, sw_sum = None, n_rows
            else:
                swb = swd[rows]
                sw_sum = float(sample_weight[sample_idx[batch] if self.shuffle else batch].sum())
            if chunk:
                at = start % chunk
                if at == 0:
                    gathered = order[start : start + chunk]
                    Xc, Yc = Xd[gathered], Yd[gathered]
                Xb, Yb = Xc[at : at + n_rows], Yc[at : at + n_rows]
            else:
                Xb, Yb = Xd[rows], Yd[rows]
            if compiled is not None:
                compiled(Xb, Yb, labels[:n_rows], hits[:n_rows])
                accumulated = accumulated + self._loss(net, Yb, swb, sw_sum) * n_rows
            else:
                net.forward(Xb, train=True)
                accumulated = accumulated + self._loss(net, Yb, swb, sw_sum) * n_rows
                net.backward(Xb, Yb, swb)
            solver.step(self.alpha / sw_sum)  # the L2 term's gradient, alpha/Σw · W
        return float(accumulated) / n_samples

    def _validation_split(self, X, Y, sample_weight):
        """scikit-learn's split: stratified on the (binarised) target of a
        single-output classifier, drawn from the same RandomState."""
        stratify = Y if is_classifier(self) and self.n_outputs_ == 1 else None
        arrays = (X, Y) if sample_weight is None else (X, Y, sample_weight)
        try:
            parts = train_test_split(*arrays, random_state=self._random_state, test_size=self.validation_fraction,
                                     stratify=stratify)
        except ValueError as exc:
            message = None if stratify is None else self._stratify_error(Y, exc)
            if message is None:
                raise
            raise ValueError(message) from None
        X_tr, X_val, Y_tr, Y_val = parts[:4]
        sw_tr, sw_val = parts[4:] if sample_weight is not None else (None, None)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of your dataset.")
        return X_tr, X_val, Y_tr, self._validation_target(Y_val), sw_tr, sw_val

    def _stratify_error(self, Y, exc):
        """A clearer message for a failed stratified split, or None to keep scikit-learn's."""
        return None

    def _validation_target(self, Y_val):
        return Y_val

    def _update_no_improvement_count(self, net, early_stopping, X_val, y_val, sw_val):
        if early_stopping:
            score = self._score(X_val, y_val, sample_weight=sw_val, net=net)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = net.get_params()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    # -- L-BFGS (scikit-learn's _fit_lbfgs) -------------------------------------------
    def _fit_lbfgs(self, net, X, Y, sample_weight):
        """One scipy L-BFGS-B run over the flat buffer; each evaluation is a
        forward pass and BP1-BP4 over the whole set (on a GPU the vector
        crosses to the host and back once per evaluation)."""
        bk, dtype, nw = net.bk, net.dtype, net.n_weights
        Xd, Yd = device_matrix(bk, X, dtype), bk.asarray(Y, dtype)
        swd = None if sample_weight is None else bk.asarray(sample_weight, dtype)
        sw_sum = X.shape[0] if sample_weight is None else float(sample_weight.sum())

        def loss_grad(flat):
            net.set_params(flat)
            net.forward(Xd, train=True)
            loss = self._loss(net, Yd, swd, sw_sum)
            g = net.backward(Xd, Yd, swd)
            g[:nw] += (self.alpha / sw_sum) * net.params[:nw]
            return float(loss), bk.to_numpy(g).astype(np.float64)

        res = scipy.optimize.minimize(
            loss_grad, net.get_params().astype(np.float64), method="L-BFGS-B", jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol},
        )
        if res.status != 0:
            warnings.warn(
                f"lbfgs failed to converge after {res.nit} iteration(s) (status={res.status}): {res.message}. "
                "Increase the number of iterations (max_iter) or the number of function evaluations (max_fun), "
                "or scale the data.", ConvergenceWarning, stacklevel=3)
        self.n_iter_ = min(res.nit, self.max_iter)
        self.loss_ = res.fun
        net.set_params(res.x)

    # -- prediction ----------------------------------------------------------------------
    def _forward_pass_fast(self, X, check_input=True, net=None):
        """Output activations for X as a host array (n_samples, n_outputs_);
        from `net` while it trains, else from coefs_ and intercepts_."""
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        if net is None:
            net = self._network(self.coefs_[0].dtype)
        return net.bk.to_numpy(net.feedforward(device_matrix(net.bk, X, net.dtype)))

    def _score_with(self, X, y, sample_weight, score_function, net):
        y_pred = self._predict(X, check_input=False, net=net)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_net", None)  # device buffers: made anew from coefs_ where unpickled
        state.pop("_health", None)  # holds the network and a probe of the data
        if "coefs_" in state:  # views into the dropped buffer: pickle them as arrays of their own
            state["coefs_"] = [np.array(c) for c in state["coefs_"]]
            state["intercepts_"] = [np.array(b) for b in state["intercepts_"]]
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
