"""FastBPClassifier and FastBPRegressor: the same models as MLPClassifier and MLPRegressor from the same
random_state, fastbp's additions (class_weight, backend, dtype), and scikit-learn composition.

scikit-learn's own MLP tests and check_estimator run against both classes in test_sklearn_suite.py."""

import inspect
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight

from fastbp import FastBPClassifier as FastBPClassifierLazy
from fastbp import FastBPRegressor as FastBPRegressorLazy
from fastbp.backend import cupy_usable
from fastbp.estimator import FastBPClassifier, FastBPRegressor

FAST = dict(backend="numpy", random_state=0)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=160, n_features=6, n_targets=2, noise=5.0, random_state=0)
    return StandardScaler().fit_transform(X), y / y.std(axis=0)


def quiet_fit(est, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kw)


def assert_same_model(ref, ours, rtol, atol):
    assert ours.n_iter_ == ref.n_iter_ and ours.n_layers_ == ref.n_layers_ and ours.n_outputs_ == ref.n_outputs_
    assert ours.out_activation_ == ref.out_activation_
    for a, b in zip(ref.coefs_ + ref.intercepts_, ours.coefs_ + ours.intercepts_):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol)
    if hasattr(ref, "loss_curve_"):
        np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=rtol, atol=atol)
        assert ours.t_ == ref.t_
    np.testing.assert_allclose(ours.loss_, ref.loss_, rtol=rtol, atol=atol)


# -- same random_state, same model: every solver and schedule ---------------------------------------
SOLVERS = {
    "sgd": dict(solver="sgd", momentum=0.0),
    "momentum": dict(solver="sgd", nesterovs_momentum=False),
    "nesterov": dict(solver="sgd"),
    "invscaling": dict(solver="sgd", learning_rate="invscaling", power_t=0.3, learning_rate_init=0.05),
    "adaptive": dict(solver="sgd", learning_rate="adaptive", tol=0.05, n_iter_no_change=2, learning_rate_init=0.05),
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "adam-early-stopping": dict(solver="adam", learning_rate_init=0.01, early_stopping=True, n_iter_no_change=3),
    "lbfgs": dict(solver="lbfgs"),
}
# Measured largest differences (float64): 2e-15 for the stochastic solvers, 1e-10 for lbfgs (its line
# search sees the same loss to the last few bits, and iterates on it).
TOL = {"lbfgs": (1e-7, 1e-9)}


@pytest.mark.parametrize("name", SOLVERS)
@pytest.mark.parametrize("problem", ["multiclass", "binary", "regression"])
def test_same_random_state_gives_scikit_learns_model(name, problem, iris, regression):
    kw = dict(hidden_layer_sizes=(7, 5), max_iter=25, batch_size=32, alpha=1e-3, random_state=0, **SOLVERS[name])
    if problem == "regression":
        X, y = regression
        ref, ours = MLPRegressor(**kw), FastBPRegressor(**kw, backend="numpy")
    else:
        X, y = iris
        y = y if problem == "multiclass" else np.where(y == 1, "yes", "no")
        ref, ours = MLPClassifier(activation="tanh", **kw), FastBPClassifier(activation="tanh", **kw, backend="numpy")
    quiet_fit(ref, X, y)
    quiet_fit(ours, X, y)
    assert_same_model(ref, ours, *TOL.get(name, (1e-10, 1e-12)))
    if problem != "regression":
        np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
        np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=1e-7, atol=1e-12)
    if "early" in name:
        np.testing.assert_allclose(ours.validation_scores_, ref.validation_scores_, rtol=1e-12)
        np.testing.assert_allclose(ours.best_validation_score_, ref.best_validation_score_, rtol=1e-12)


@pytest.mark.parametrize("kw", [
    dict(solver="sgd", shuffle=False, activation="relu"),
    dict(solver="adam", activation="logistic", learning_rate_init=0.01),
    dict(solver="lbfgs", activation="identity"),
], ids=["sgd-unshuffled-relu", "adam-logistic", "lbfgs-identity"])
@pytest.mark.parametrize("variant", ["sample_weight", "sparse", "multilabel", "poisson"])
def test_same_model_with_weights_sparse_input_multilabel_and_poisson(kw, variant, iris):
    X, y = iris
    common = dict(hidden_layer_sizes=(6,), max_iter=15, batch_size=25, random_state=3, **kw)
    fit_kw = {}
    if variant == "sample_weight":
        fit_kw["sample_weight"] = np.random.RandomState(0).uniform(0, 3, len(y))
    elif variant == "sparse":
        X = scipy.sparse.csr_matrix(np.where(np.abs(X) < 0.7, 0.0, X))
    elif variant == "multilabel":
        X, y = make_multilabel_classification(n_samples=80, n_features=5, n_classes=3, random_state=0)
    if variant == "poisson":
        y = np.random.RandomState(0).poisson(np.exp(0.3 * X[:, 0]))
        ref, ours = MLPRegressor(loss="poisson", **common), FastBPRegressor(loss="poisson", **common, backend="numpy")
    else:
        ref, ours = MLPClassifier(**common), FastBPClassifier(**common, backend="numpy")
    quiet_fit(ref, X, y, **fit_kw)
    quiet_fit(ours, X, y, **fit_kw)
    assert_same_model(ref, ours, *TOL.get(kw["solver"], (1e-10, 1e-12)))


def test_partial_fit_and_warm_start_continue_as_scikit_learn(iris):
    X, y = iris
    kw = dict(hidden_layer_sizes=(5,), solver="sgd", learning_rate="invscaling", random_state=1)
    ref, ours = MLPClassifier(**kw), FastBPClassifier(**kw, backend="numpy")
    for _ in range(3):
        ref.partial_fit(X[:100], y[:100], classes=[0, 1, 2])
        ours.partial_fit(X[:100], y[:100], classes=[0, 1, 2])
    assert_same_model(ref, ours, 1e-10, 1e-12)
    assert ours._optimizer.learning_rate == ref._optimizer.learning_rate
    for est in (ref, ours):
        quiet_fit(est.set_params(warm_start=True, max_iter=4), X, y)
    assert_same_model(ref, ours, 1e-10, 1e-12)


def test_float32_gives_scikit_learns_model_to_float32_rounding(digits):
    X, y = digits
    X = X.astype(np.float32)
    kw = dict(hidden_layer_sizes=(32,), max_iter=20, random_state=0)
    ref, ours = quiet_fit(MLPClassifier(**kw), X, y), quiet_fit(FastBPClassifier(**kw, backend="numpy"), X, y)
    for a, b in zip(ref.coefs_, ours.coefs_):
        assert b.dtype == a.dtype == np.float32
        assert np.abs(b - a).max() <= 1e-4 * np.abs(a).max()  # measured: 5e-7
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))


def test_leaky_relu_is_fastbps_extra_activation(iris):
    clf = quiet_fit(FastBPClassifier((8,), "leaky_relu", max_iter=100, learning_rate_init=0.01, **FAST), *iris)
    assert clf._net.hidden_name == "leaky_relu" and clf.score(*iris) >= 0.9


def test_float32_input_trains_in_float32_and_dtype_overrides(iris):
    X, y = iris
    clf = quiet_fit(FastBPClassifier((4,), max_iter=3, **FAST), X.astype(np.float32), y)
    assert {c.dtype for c in clf.coefs_ + clf.intercepts_} == {np.dtype(np.float32)}
    clf = quiet_fit(FastBPClassifier((4,), max_iter=3, dtype="float32", **FAST), X, y)
    assert clf.coefs_[0].dtype == np.float32
    reg = quiet_fit(FastBPRegressor(hidden_layer_sizes=(4,), max_iter=3, **FAST), X.astype(np.float32), X[:, 0])
    assert reg.predict(X.astype(np.float32)).dtype == np.float32


# -- the output layer and the attributes users read ----------------------------------------------------
def test_binary_problems_have_one_logistic_output_and_labels_keep_their_dtype(iris):
    X, y = iris
    labels = np.array([-3, 7])[(y == 2).astype(int)]
    clf = quiet_fit(FastBPClassifier((6,), max_iter=5, **FAST), X, labels)
    assert clf.n_outputs_ == 1 and clf.out_activation_ == "logistic" and clf.coefs_[-1].shape == (6, 1)
    assert clf.classes_.dtype == labels.dtype and clf.predict(X).dtype == labels.dtype
    assert clf.predict_proba(X).shape == (len(X), 2)
    one = quiet_fit(FastBPClassifier((3,), max_iter=2, **FAST), X, np.full(len(X), "only"))
    assert list(one.classes_) == ["only"] and (one.predict(X) == "only").all()


def test_coefs_are_views_into_the_flat_buffer_and_edits_count(iris):
    X, y = iris
    clf = quiet_fit(FastBPClassifier((6,), max_iter=3, **FAST), X, y)
    net = clf._net
    assert all(np.shares_memory(c, net.params) for c in clf.coefs_ + clf.intercepts_)
    clf.coefs_[-1][:] = 0
    clf.intercepts_[-1][:] = np.arange(3) == 2
    assert (clf.predict(X) == 2).all()
    clf.intercepts_[-1] = np.array([5.0, 0.0, 0.0])  # a new array in its place counts too
    assert (clf.predict(X) == 0).all()


def test_pickle_clone_and_partial_fit_after_unpickling(iris):
    X, y = iris
    clf = FastBPClassifier((6,), solver="sgd", **FAST)
    for _ in range(3):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    back = pickle.loads(pickle.dumps(clf))
    assert "_net" not in back.__dict__
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    clf.partial_fit(X, y)
    back.partial_fit(X, y)  # the momentum buffer travelled with it
    np.testing.assert_allclose(back.coefs_[0], clf.coefs_[0], rtol=1e-14)
    twin = clone(clf)
    assert twin.get_params() == clf.get_params() and not hasattr(twin, "coefs_")


@pytest.mark.parametrize("ours, theirs, extra", [
    (FastBPClassifier, MLPClassifier, ["backend", "dtype", "class_weight"]),
    (FastBPRegressor, MLPRegressor, ["backend", "dtype"]),
])
def test_signature_is_scikit_learns_plus_fastbps_own_and_every_value_lands_in_its_own_name(ours, theirs, extra):
    """The same names, order, defaults and positional/keyword kinds as MLPClassifier/MLPRegressor; each
    parameter given a distinct value comes back under its own name (nothing swapped, e.g. beta_1 and beta_2)."""
    mine, sk = inspect.signature(ours).parameters, inspect.signature(theirs).parameters
    assert list(mine) == [*sk, *extra]
    assert [(p.default, p.kind) for p in list(mine.values())[: len(sk)]] == [(p.default, p.kind) for p in sk.values()]
    given = {name: f"value of {name}" for name in mine}
    assert ours(**given).get_params() == given
    positional = [n for n, p in mine.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert ours(*(given[n] for n in positional)).get_params() == {**ours().get_params(), **{n: given[n] for n in positional}}
    with pytest.raises(TypeError, match="too many positional arguments"):
        ours(*(given[n] for n in positional), "solver?")


def test_lazy_top_level_imports():
    assert FastBPClassifierLazy is FastBPClassifier and FastBPRegressorLazy is FastBPRegressor


# -- class_weight: what MLPClassifier does not have ---------------------------------------------------
def test_class_weight_is_a_sample_weight_per_class(iris):
    X, y = iris
    kw = dict(hidden_layer_sizes=(5,), max_iter=40, learning_rate_init=0.01, **FAST)
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    a = quiet_fit(FastBPClassifier(class_weight=cw, **kw), X, y)
    b = quiet_fit(FastBPClassifier(**kw), X, y, sample_weight=compute_sample_weight(cw, y))
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    keep = np.r_[0:50, 50:55, 100:150]  # class 1 rare
    balanced = quiet_fit(FastBPClassifier(class_weight="balanced", **kw), X[keep], y[keep])
    plain = quiet_fit(FastBPClassifier(**kw), X[keep], y[keep])
    recall = lambda est: np.mean(est.predict(X[50:100]) == 1)
    assert recall(balanced) > recall(plain)
    with pytest.raises(ValueError, match="class_weight='balanced' is not supported for partial_fit"):
        FastBPClassifier(class_weight="balanced", **FAST).partial_fit(X, y, classes=[0, 1, 2])


# -- bad input: scikit-learn's errors, naming the parameter or the labels ------------------------------
@pytest.mark.parametrize("params, match", [
    (dict(solver="newton"), "'solver' parameter of FastBPClassifier must be a str among"),
    (dict(learning_rate="cosine"), "'learning_rate' parameter"),
    (dict(momentum=1.5), "'momentum' parameter"),
    (dict(batch_size=0), "'batch_size' parameter"),
    (dict(alpha=-1.0), "'alpha' parameter"),
    (dict(n_iter_no_change=0), "'n_iter_no_change' parameter"),
    (dict(dtype="float16"), "'dtype' parameter"),
    (dict(backend="torch"), "'backend' parameter"),
    (dict(class_weight="some"), "'class_weight' parameter"),
    (dict(hidden_layer_sizes=(4, 0)), r"hidden_layer_sizes must be > 0, got \[4, 0\]"),
])
def test_bad_parameters_are_named(iris, params, match):
    with pytest.raises(ValueError, match=match):
        FastBPClassifier(**params).fit(*iris)


def test_bad_data_gets_scikit_learns_errors(iris):
    X, y = iris
    clf = FastBPClassifier((4,), max_iter=2, **FAST)
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.fit(X_nan, y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clf.fit(X, y[:-1])
    with pytest.raises(ValueError, match="Unknown label type"):
        clf.fit(X, y + 0.25 * np.arange(len(y)) / len(y))
    with pytest.raises(ValueError, match="`y` has classes not in `self.classes_`.*'y' has \\['z'\\]"):
        FastBPClassifier(solver="sgd", **FAST).partial_fit(X[:2], ["a", "b"], classes=["a", "b"]).partial_fit(X[:1], ["z"])
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        FastBPRegressor(early_stopping=True, **FAST).partial_fit(X, y)
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'"):
        FastBPClassifier(solver="lbfgs").partial_fit
    quiet_fit(clf, X, y)
    with pytest.raises(ValueError, match="X has 3 features, but FastBPClassifier is expecting 4"):
        clf.predict(X[:, :3])


def test_early_stopping_split_error_names_the_users_label(iris):
    X, y = iris
    labels = np.where(np.arange(len(y)) == 7, "rare", "common")
    with pytest.raises(ValueError, match=r"too few of the label\(s\) \['rare'\]"):
        FastBPClassifier(early_stopping=True, **FAST).fit(X, labels)


# -- scikit-learn composition ----------------------------------------------------------------------------
def test_pipeline_gridsearch_and_cross_val_score(digits):
    X, y = digits
    kw = dict(hidden_layer_sizes=(16,), max_iter=30, learning_rate_init=0.02, random_state=0)
    grids = [GridSearchCV(make_pipeline(StandardScaler(), est), {"est__alpha": [1e-4, 1.0]}, cv=2)
             for est in (MLPClassifier(**kw), FastBPClassifier(**kw, backend="numpy"))]
    for grid in grids:
        grid.estimator.steps[-1] = ("est", grid.estimator.steps[-1][1])
        quiet_fit(grid, X, y)
    ref, ours = grids
    assert ours.best_score_ == pytest.approx(ref.best_score_) and ours.best_score_ >= 0.8
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(make_pipeline(StandardScaler(), FastBPRegressor(hidden_layer_sizes=(8,), max_iter=30,
                                                                                  **FAST)), X, y, cv=2)
    assert scores.shape == (2,)


# -- GPU ----------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not cupy_usable(), reason="needs cupy and a CUDA device")
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_cupy_backend_gives_the_numpy_model(digits, solver):
    X, y = digits
    fit = lambda est, X: quiet_fit(est, X, y)
    for cls in (FastBPClassifier, FastBPRegressor):
        kw = dict(hidden_layer_sizes=(16,), max_iter=5, solver=solver, random_state=0)
        cpu = fit(cls(**kw, backend="numpy"), X)
        gpu = fit(cls(**kw, backend="cupy"), X)
        assert isinstance(gpu.coefs_[0], np.ndarray)
        for a, b in zip(cpu.coefs_, gpu.coefs_):
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-8)
        sparse = fit(cls(**kw, backend="cupy"), scipy.sparse.csr_matrix(X))
        np.testing.assert_allclose(sparse.coefs_[0], gpu.coefs_[0], rtol=1e-6, atol=1e-8)
        back = pickle.loads(pickle.dumps(gpu))
        np.testing.assert_allclose(back.predict(X[:50]), gpu.predict(X[:50]))
