"""A scikit-learn classifier on fastbp's engine: a drop-in for MLPClassifier.

    from fastbp.estimator import FastBPClassifier as MLPClassifier  # the one-line swap

FastBPClassifier takes MLPClassifier's parameter names where they mean the
same thing, and trains with fastbp's Trainer (numpy or cupy) one epoch at a
time, applying scikit-learn's stopping rules (tol, n_iter_no_change,
early_stopping) itself.

How the parameters map onto a fastbp config
-------------------------------------------
hidden_layer_sizes  model.sizes = [n_features, *hidden_layer_sizes, n_classes]
activation          model.hidden: relu, logistic -> sigmoid, tanh, leaky_relu
                    (fastbp's own); model.init = he for relu/leaky_relu, glorot
                    for logistic/tanh. 'identity' is refused unless there are no
                    hidden layers (fastbp has no identity hidden activation).
                    The output is always softmax + log-likelihood (cross-entropy),
                    also for two classes where MLPClassifier uses one logistic
                    unit; predict_proba is (n, n_classes) either way.
solver              'sgd': optimizer sgd (momentum == 0), momentum, or nesterov
                    (nesterovs_momentum); 'adam': adam with beta_1, beta_2,
                    epsilon. 'lbfgs' is not supported (ValueError).
alpha               optimizer.weight_decay = alpha / batch_size. scikit-learn's
                    _backprop adds (alpha / n_batch) * W to the gradient of the
                    batch's mean loss (_compute_loss_grad: (Xᵀδ + alpha W) / n,
                    where n is the number of rows of the *batch*), i.e. the batch
                    loss carries alpha / (2 n_batch) * ||W||², biases excluded:
                    exactly fastbp's weight_decay λ' with λ' = alpha / batch_size.
                    Only a smaller last batch differs (scikit-learn decays it by
                    alpha / len(last batch), fastbp by alpha / batch_size).
                    loss_curve_ includes the penalty as scikit-learn's does: per
                    epoch, 0.5 * alpha * n_batches * ||W||² / n_train, with the
                    weights the epoch starts from (scikit-learn sums it over the
                    weights each batch starts from: the same for one batch).
batch_size          'auto' = min(200, n_train); a larger int is clipped to n_train
                    with a warning, as scikit-learn does.
learning_rate       only 'constant' (fastbp's Trainer has no hook to change the
                    rate between epochs, which 'adaptive' and 'invscaling' need).
learning_rate_init  optimizer.lr
max_iter            the most epochs (train.epochs)
shuffle             fastbp shuffles every epoch; shuffle=False is refused unless
                    the Trainer's config has a 'train.shuffle' key.
random_state        seeds the init, the shuffles and the validation split
                    (None: a fresh seed each fit, as scikit-learn).
warm_start          as scikit-learn: fit starts from coefs_ and intercepts_ (the
                    attributes, so edits count) with a fresh optimiser, and
                    loss_curve_ and the best scores carry on; n_iter_ counts this
                    fit's epochs and the n_iter_no_change count restarts at 0
                    (scikit-learn keeps it, so a converged model stops again
                    after one epoch); with early_stopping only this fit's epochs
                    can be restored.
early_stopping, validation_fraction, n_iter_no_change, tol, verbose: as
                    scikit-learn (stratified validation split, validation accuracy
                    monitored, the best weights restored at the end).
backend, dtype      fastbp's own: 'numpy', 'cupy' or 'auto'; 'float32' or 'float64'.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

try:
    from sklearn.utils.validation import validate_data
except ImportError:  # scikit-learn < 1.6

    def validate_data(estimator, /, X="no_validation", y="no_validation", **kwargs):
        return estimator._validate_data(X, y, **kwargs)


from .data import Dataset
from .errors import ConfigError, TrainingDiverged
from .nn.network import Network
from .train import config as config_mod
from .train.trainer import Trainer

# scikit-learn's activation name -> (fastbp hidden activation, initialiser)
ACTIVATIONS = {
    "relu": ("relu", "he"),
    "logistic": ("sigmoid", "glorot"),
    "tanh": ("tanh", "glorot"),
    "leaky_relu": ("leaky_relu", "he"),
}
SOLVERS = ("sgd", "adam")
OUTPUT, COST = "softmax", "log_likelihood"


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and np.isfinite(v)


def _check(name, value, ok, want):
    if not ok:
        raise ValueError(f"FastBPClassifier: {name} must be {want}, got {value!r}")


class FastBPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier trained by fastbp's hand-written
    mini-batch backprop, with MLPClassifier's interface (see the module
    docstring for how each parameter maps onto fastbp).

    Attributes after fit: classes_, n_features_in_ (feature_names_in_ for a
    DataFrame), loss_curve_, best_loss_ (None with early stopping),
    validation_scores_ and best_validation_score_ (None without), n_iter_,
    coefs_ (coefs_[i] is (n_in, n_out), host numpy, as scikit-learn's),
    intercepts_, n_layers_, n_outputs_ (= n_classes: a softmax output also for
    two classes), out_activation_.
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        backend="auto",
        dtype="float32",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.dtype = dtype

    # -- parameters ----------------------------------------------------------
    def _hidden_sizes(self):
        h = self.hidden_layer_sizes
        if _is_int(h):
            sizes = [h]
        else:
            sizes = None if isinstance(h, str) or not hasattr(h, "__iter__") else list(h)
        _check("hidden_layer_sizes", h, sizes is not None and all(_is_int(n) and n >= 1 for n in sizes),
               "a positive int or a sequence of positive ints")
        return [int(n) for n in sizes]

    def _check_params(self):
        """ValueError naming the parameter for anything fastbp cannot do."""
        hidden = self._hidden_sizes()
        if self.activation == "identity" and hidden:
            raise ValueError(
                "FastBPClassifier: activation='identity' is not supported for hidden layers by fastbp; "
                f"use one of {', '.join(ACTIVATIONS)} (or hidden_layer_sizes=() for a linear model)"
            )
        _check("activation", self.activation, self.activation in ACTIVATIONS or self.activation == "identity",
               f"one of {', '.join(ACTIVATIONS)}")
        _check("solver", self.solver, self.solver in SOLVERS,
               "'sgd' or 'adam' (fastbp trains with mini-batches; 'lbfgs' is not supported)")
        _check("learning_rate", self.learning_rate, self.learning_rate == "constant",
               "'constant' (fastbp has no 'invscaling' or 'adaptive' schedule)")
        _check("shuffle", self.shuffle, isinstance(self.shuffle, (bool, np.bool_)), "True or False")
        if not self.shuffle and "shuffle" not in config_mod.SCHEMA["train"]:
            raise ValueError("FastBPClassifier: shuffle=False is not supported; fastbp shuffles every epoch")
        for name, lo, lo_open, hi in (
            ("alpha", 0, False, None), ("learning_rate_init", 0, True, None), ("tol", 0, False, None),
            ("momentum", 0, False, 1), ("beta_1", 0, False, 1), ("beta_2", 0, False, 1),
            ("epsilon", 0, True, None), ("validation_fraction", 0, True, 1),
        ):
            v = getattr(self, name)
            ok = _is_real(v) and (v > lo if lo_open else v >= lo) and (hi is None or v < hi)
            _check(name, v, ok, f"a number {'>' if lo_open else '>='} {lo}" + (f" and < {hi}" if hi else ""))
        _check("batch_size", self.batch_size, self.batch_size == "auto" or _is_int(self.batch_size) and self.batch_size >= 1,
               "'auto' or an int >= 1")
        _check("max_iter", self.max_iter, _is_int(self.max_iter) and self.max_iter >= 1, "an int >= 1")
        n = self.n_iter_no_change
        _check("n_iter_no_change", n, _is_int(n) and n >= 1 or n == np.inf, "an int >= 1 or numpy.inf")
        _check("backend", self.backend, self.backend in ("numpy", "cupy", "auto"), "'numpy', 'cupy' or 'auto'")
        _check("dtype", self.dtype, self.dtype in ("float32", "float64"), "'float32' or 'float64'")
        return hidden

    def _config(self, sizes, n_val, batch_size, seed):
        hidden, init = ACTIVATIONS.get(self.activation, ("relu", "he"))  # identity: no hidden layer uses it
        if self.solver == "adam":
            opt = {"name": "adam", "beta1": float(self.beta_1), "beta2": float(self.beta_2), "eps": float(self.epsilon)}
        elif self.momentum > 0:
            opt = {"name": "nesterov" if self.nesterovs_momentum else "momentum", "momentum": float(self.momentum)}
        else:
            opt = {"name": "sgd"}
        opt.update(lr=float(self.learning_rate_init), weight_decay=float(self.alpha) / batch_size)
        train = {"epochs": int(self.max_iter), "batch_size": batch_size, "seed": seed,
                 "backend": self.backend, "dtype": self.dtype}
        if "shuffle" in config_mod.SCHEMA["train"]:
            train["shuffle"] = bool(self.shuffle)
        overrides = {
            "data": {"name": "FastBPClassifier", "validation": n_val, "standardize": False},
            "model": {"sizes": sizes, "hidden": hidden, "output": OUTPUT, "cost": COST, "init": init},
            "optimizer": opt,
            "train": train,
            "output": {"checkpoint_every": 0, "plots": False, "grad_norms": False},
        }
        try:
            return config_mod.validate(config_mod.merge(config_mod.defaults(), overrides))
        except ConfigError as exc:
            raise ValueError(f"FastBPClassifier: {exc}") from None

    # -- fit -------------------------------------------------------------------
    def fit(self, X, y):
        """Train on X (n_samples, n_features) and class labels y (any type)."""
        hidden = self._check_params()
        warm = bool(self.warm_start) and hasattr(self, "coefs_")
        X, y = validate_data(self, X, y, accept_sparse=False, dtype=self.dtype, reset=not warm)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        if warm and not np.array_equal(encoder.classes_, self.classes_):
            raise ValueError(
                "warm_start can only be used where `y` has the same classes as in the previous call to fit. "
                f"Previously got {self.classes_}, `y` has {encoder.classes_}"
            )
        if len(encoder.classes_) < 2:
            raise ValueError(
                "FastBPClassifier needs samples of at least 2 classes in the data, but the data contains only "
                f"one class: {encoder.classes_[0]}"
            )
        self.classes_ = encoder.classes_
        sizes = [X.shape[1], *hidden, len(self.classes_)]
        if warm and sizes != self._sizes():
            raise ValueError(f"warm_start: hidden_layer_sizes changed since the last fit (network {self._sizes()}, now {sizes})")
        codes = encoder.transform(y).astype(np.int64)
        rng = check_random_state(self.random_state)
        n_val = 0
        if self.early_stopping:
            X_tr, X_val, y_tr, y_val = train_test_split(
                X, codes, random_state=rng, test_size=self.validation_fraction, stratify=codes
            )
            n_val = len(y_val)  # >= 2: stratified, it holds every class
            X, codes = np.concatenate([X_tr, X_val]), np.concatenate([y_tr, y_val])  # the Trainer holds out the last rows
        n_train = len(codes) - n_val
        batch_size = min(200, n_train) if self.batch_size == "auto" else int(self.batch_size)
        if batch_size > n_train:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch_size = n_train
        cfg = self._config(sizes, n_val, batch_size, int(rng.randint(np.iinfo(np.int32).max)))
        ds = Dataset(
            name="FastBPClassifier", X_train=X, y_train=codes, X_test=X[:0], y_test=codes[:0], scale=1.0,
            image_shape=None, n_classes=len(self.classes_), class_names=tuple(map(str, self.classes_)),
            source="FastBPClassifier.fit",
        )
        trainer = Trainer(cfg, dataset=ds, write=False, quiet=True).setup()
        if warm:
            trainer.net.set_params(self._flat_params())
        self._train(trainer, warm)
        net = self._net = trainer.net
        self.coefs_ = [net.bk.to_numpy(W).T.copy() for W in net.weights]
        self.intercepts_ = [net.bk.to_numpy(b).copy() for b in net.biases]
        self.n_layers_, self.n_outputs_, self.out_activation_ = len(sizes), len(self.classes_), OUTPUT
        return self

    def _train(self, trainer, warm):
        """scikit-learn's epoch loop and stopping rules (_fit_stochastic) over trainer.train_epoch."""
        early, net = self.early_stopping, trainer.net
        penalty_per_sq_norm = 0.5 * self.alpha * trainer.n_batches / trainer.data["train"].n
        if not warm:
            self.loss_curve_ = []
            self.best_loss_ = None if early else np.inf
            self.validation_scores_ = [] if early else None
            self.best_validation_score_ = -np.inf if early else None
        self.n_iter_, best_params, no_improvement = 0, None, 0
        try:
            for _ in range(self.max_iter):
                w = net.params[: net.n_weights]  # scikit-learn adds the penalty of the weights each batch starts from
                penalty = penalty_per_sq_norm * float((w * w).sum()) if self.alpha else 0.0
                try:
                    row = trainer.train_epoch(evaluate=early)
                except TrainingDiverged:
                    raise ValueError(
                        f"FastBPClassifier: training diverged (non-finite loss) at epoch {self.n_iter_ + 1}; "
                        "scale the input (e.g. StandardScaler) or lower learning_rate_init"
                    ) from None
                loss = row["train_loss"] + penalty
                self.n_iter_ += 1
                self.loss_curve_.append(loss)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, loss))
                if early:
                    score = row["val_accuracy"]
                    self.validation_scores_.append(score)
                    if self.verbose:
                        print("Validation score: %f" % score)
                    no_improvement = no_improvement + 1 if score < self.best_validation_score_ + self.tol else 0
                    if score > self.best_validation_score_:
                        self.best_validation_score_, best_params = score, net.get_params()
                else:
                    no_improvement = no_improvement + 1 if loss > self.best_loss_ - self.tol else 0
                    self.best_loss_ = min(self.best_loss_, loss)
                if no_improvement > self.n_iter_no_change:
                    if self.verbose:
                        what = "Validation score" if early else "Training loss"
                        print(f"{what} did not improve more than tol={self.tol:f} for "
                              f"{self.n_iter_no_change} consecutive epochs. Stopping.")
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the optimization "
                        "hasn't converged yet.",
                        ConvergenceWarning,
                    )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if best_params is not None:
            net.set_params(best_params)  # restore the best weights, as scikit-learn does

    # -- predict ---------------------------------------------------------------
    def _network(self):
        """The trained Network (made anew after unpickling) holding coefs_ and intercepts_ as they are now."""
        net = self.__dict__.get("_net")
        if net is None or net.sizes != self._sizes():
            hidden = ACTIVATIONS.get(self.activation, ("relu",))[0]
            net = self._net = Network(self._sizes(), hidden, OUTPUT, COST, "glorot", backend=self.backend,
                                      dtype=self.coefs_[0].dtype)
        net.set_params(self._flat_params())  # a host-to-device copy: edits to coefs_ count, as in scikit-learn
        return net

    def _sizes(self):
        return [self.coefs_[0].shape[0], *(c.shape[1] for c in self.coefs_)]

    def _flat_params(self):
        """coefs_ and intercepts_ as fastbp's flat buffer: every W (n_out, n_in), then every b."""
        return np.concatenate([c.T.ravel() for c in self.coefs_] + [b.ravel() for b in self.intercepts_])

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes) in the order of classes_."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=False, dtype=self.coefs_[0].dtype, reset=False)
        net = self._network()
        return net.bk.to_numpy(net.feedforward(X))

    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each row (labels as given to fit)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_net", None)  # device arrays and work buffers: made anew where unpickled
        return dict(state)
