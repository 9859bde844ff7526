"""FastBPClassifier: the scikit-learn interface, its stopping rules, and agreement with MLPClassifier."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastbp.backend import cupy_usable
from fastbp.estimator import FastBPClassifier
from fastbp.train import config

FAST = dict(backend="numpy", random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def quiet_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


# -- accuracy and scikit-learn composition ----------------------------------------
def test_digits_accuracy(digits):
    X_tr, X_te, y_tr, y_te = digits
    clf = quiet_fit(FastBPClassifier((64,), max_iter=60, **FAST), X_tr, y_tr)
    assert clf.score(X_te, y_te) >= 0.95


def test_pipeline_gridsearch_and_cross_val_score(digits):
    X_tr, X_te, y_tr, y_te = digits
    pipe = make_pipeline(StandardScaler(), FastBPClassifier((32,), max_iter=30, learning_rate_init=0.01, **FAST))
    grid = GridSearchCV(pipe, {"fastbpclassifier__alpha": [1e-4, 1.0], "fastbpclassifier__hidden_layer_sizes": [(8,), (32,)]}, cv=2)
    quiet_fit(grid, X_tr, y_tr)
    assert grid.best_params_["fastbpclassifier__hidden_layer_sizes"] == (32,)  # 8 units underfit
    assert grid.score(X_te, y_te) >= 0.9
    assert grid.best_estimator_[-1].coefs_[0].shape == (64, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(pipe, X_tr, y_tr, cv=3)
    assert scores.shape == (3,) and scores.min() >= 0.9


def test_clone_keeps_params_and_drops_fit(iris):
    clf = FastBPClassifier((7, 3), "tanh", solver="sgd", alpha=0.5, momentum=0.5, nesterovs_momentum=False,
                           batch_size=16, dtype="float64", **FAST)
    quiet_fit(clf, *iris)
    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    assert not hasattr(twin, "coefs_")
    twin.set_params(alpha=2.0, hidden_layer_sizes=(4,))
    assert (twin.alpha, twin.hidden_layer_sizes, clf.alpha) == (2.0, (4,), 0.5)


def test_one_line_swap_from_mlpclassifier(iris):
    X, y = iris
    kwargs = dict(hidden_layer_sizes=(16,), activation="logistic", solver="sgd", alpha=1e-3, batch_size=32,
                  learning_rate_init=0.1, momentum=0.9, nesterovs_momentum=True, max_iter=100, shuffle=True,
                  random_state=1, tol=1e-4, verbose=False, early_stopping=False, validation_fraction=0.1,
                  n_iter_no_change=10, learning_rate="constant", beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                  warm_start=False)
    ref, ours = (quiet_fit(cls(**kwargs), X, y) for cls in (MLPClassifier, FastBPClassifier))
    assert ours.score(X, y) >= 0.95 and abs(ours.score(X, y) - ref.score(X, y)) <= 0.05
    assert [c.shape for c in ours.coefs_] == [c.shape for c in ref.coefs_]


# -- labels, probabilities, attributes ----------------------------------------------
@pytest.mark.parametrize("labels", [np.array(["setosa", "versicolor", "virginica"]), np.array([-7, 3, 40]),
                                    np.array([-1.0, 2.0, 4.0]), np.array(["x", "b", "a"], dtype=object)])
def test_labels_round_trip(iris, labels):
    X, y = iris
    clf = quiet_fit(FastBPClassifier((8,), max_iter=100, learning_rate_init=0.05, **FAST), X, labels[y])
    pred = clf.predict(X)
    assert pred.dtype == labels.dtype and set(pred) == set(labels)
    assert list(clf.classes_) == sorted(labels)
    assert np.mean(pred == labels[y]) >= 0.9


def test_predict_proba_consistent_with_predict(iris):
    X, y = iris
    clf = quiet_fit(FastBPClassifier((8,), max_iter=20, **FAST), X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3) and (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))


def test_fitted_attributes(digits):
    X_tr, _, y_tr, _ = digits
    clf = quiet_fit(FastBPClassifier((32, 16), max_iter=5, **FAST), X_tr, y_tr)
    assert [c.shape for c in clf.coefs_] == [(64, 32), (32, 16), (16, 10)]
    assert [b.shape for b in clf.intercepts_] == [(32,), (16,), (10,)]
    assert all(isinstance(c, np.ndarray) for c in clf.coefs_ + clf.intercepts_)
    assert clf.n_features_in_ == 64 and clf.n_layers_ == 4 and clf.out_activation_ == "softmax"
    # coefs_ are the network's weights: a forward pass by hand gives predict_proba
    a = X_tr[:5]
    for W, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        a = np.maximum(a @ W + b, 0)
    z = a @ clf.coefs_[-1] + clf.intercepts_[-1]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(axis=1, keepdims=True), clf.predict_proba(X_tr[:5]), atol=1e-5)
    # and predictions follow edits to them, as scikit-learn's do
    clf.coefs_[-1][:] = 0
    clf.intercepts_[-1][:] = np.arange(10) == 7
    assert (clf.predict(X_tr) == 7).all()


def test_feature_names_from_a_dataframe(iris):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(iris[0], columns=["a", "b", "c", "d"])
    clf = quiet_fit(FastBPClassifier((4,), max_iter=2, **FAST), X, iris[1])
    assert list(clf.feature_names_in_) == ["a", "b", "c", "d"]


# -- bad input ------------------------------------------------------------------------
def test_bad_input_is_refused(iris):
    X, y = iris
    clf = FastBPClassifier((4,), max_iter=2, **FAST)
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(X_nan, y)
    with pytest.raises(ValueError, match="infinity"):
        clf.fit(np.where(X_nan != X_nan, np.inf, X), y)
    with pytest.raises(ValueError, match="2D array"):
        clf.fit(X[:, 0], y)
    with pytest.raises(ValueError, match="dim 3"):
        clf.fit(X[:, :, None], y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clf.fit(X, y[:-1])
    with pytest.raises(ValueError, match="0 sample"):
        clf.fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="at least 2 classes.*one class: a"):
        clf.fit(X, np.full(len(y), "a"))
    with pytest.raises(ValueError, match="Unknown label type"):
        clf.fit(X, y + 0.25 * np.arange(len(y)) / len(y))
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="dense data is required"):
        clf.fit(sparse.csr_matrix(X), y)
    quiet_fit(clf, X, y)
    with pytest.raises(ValueError, match="X has 3 features, but FastBPClassifier is expecting 4"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(X_nan)


@pytest.mark.parametrize("params, match", [
    (dict(activation="identity"), "identity.*not supported"),
    (dict(solver="lbfgs"), "lbfgs"),
    (dict(learning_rate="adaptive"), "learning_rate"),
    (dict(momentum=1.0, solver="sgd"), "momentum"),
    (dict(hidden_layer_sizes=(4, 0)), "hidden_layer_sizes"),
    (dict(batch_size=0), "batch_size"),
    (dict(alpha=-1.0), "alpha"),
    (dict(n_iter_no_change=0), "n_iter_no_change"),
    (dict(dtype="float16"), "dtype"),
])
def test_unsupported_parameters_are_refused(iris, params, match):
    with pytest.raises(ValueError, match=match):
        FastBPClassifier(**params).fit(*iris)


@pytest.mark.skipif("shuffle" in config.SCHEMA["train"], reason="the Trainer can train unshuffled")
def test_shuffle_false_is_refused(iris):
    with pytest.raises(ValueError, match="shuffle=False"):
        FastBPClassifier(shuffle=False).fit(*iris)


def test_linear_model_and_identity_without_hidden_layers(iris):
    clf = quiet_fit(FastBPClassifier((), "identity", max_iter=50, learning_rate_init=0.1, **FAST), *iris)
    assert [c.shape for c in clf.coefs_] == [(4, 3)] and clf.score(*iris) >= 0.85


# -- training: loss curve, stopping rules, reproducibility ---------------------------------------
def test_loss_curve_falls_and_max_iter_is_respected(digits):
    X_tr, _, y_tr, _ = digits
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(8\\)"):
        clf = FastBPClassifier((32,), max_iter=8, learning_rate_init=0.01, **FAST).fit(X_tr, y_tr)
    curve = clf.loss_curve_
    assert clf.n_iter_ == len(curve) == 8
    assert curve[-1] < 0.5 * curve[0] and sum(b < a for a, b in zip(curve, curve[1:])) >= 6
    assert clf.best_loss_ == min(curve) and clf.validation_scores_ is None


def test_tol_stop_agrees_with_mlpclassifier(iris):
    kw = dict(hidden_layer_sizes=(5,), tol=10.0, n_iter_no_change=3, max_iter=50, random_state=0)
    ours, ref = FastBPClassifier(**kw, backend="numpy").fit(*iris), MLPClassifier(**kw).fit(*iris)
    assert ours.n_iter_ == ref.n_iter_ == 5  # no epoch improves by tol: stop after n_iter_no_change + 2


def test_early_stopping(digits):
    X_tr, _, y_tr, _ = digits
    clf = quiet_fit(FastBPClassifier((32,), early_stopping=True, n_iter_no_change=2, tol=0.0, max_iter=100,
                                     learning_rate_init=0.1, **FAST), X_tr, y_tr)
    assert 3 <= clf.n_iter_ < 100 and clf.best_loss_ is None
    assert len(clf.validation_scores_) == len(clf.loss_curve_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_) >= 0.9
    # the last epoch was worse, and the best weights are restored: they score the best on the held-out 10%
    assert clf.validation_scores_[-1] < clf.best_validation_score_
    X_fit, X_val, y_fit, y_val = train_test_split(X_tr, y_tr, test_size=0.1, stratify=y_tr,
                                                  random_state=np.random.RandomState(0))
    assert clf.score(X_val, y_val) == pytest.approx(clf.best_validation_score_)


def test_validation_set_too_small(iris):
    with pytest.raises(ValueError, match="test_size = 2 should be greater or equal to the number of classes = 3"):
        FastBPClassifier(early_stopping=True, validation_fraction=0.01, **FAST).fit(*iris)


def test_same_random_state_same_model(digits):
    X_tr, X_te, y_tr, _ = digits
    fit = lambda seed: quiet_fit(FastBPClassifier((16,), max_iter=3, backend="numpy", random_state=seed), X_tr, y_tr)
    a, b, c = fit(3), fit(3), fit(4)
    np.testing.assert_array_equal(a.predict_proba(X_te), b.predict_proba(X_te))
    assert a.loss_curve_ == b.loss_curve_
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


def test_pickle_round_trip(iris):
    clf = quiet_fit(FastBPClassifier((6,), max_iter=5, **FAST), *iris)
    back = pickle.loads(pickle.dumps(clf))
    assert "_net" not in back.__dict__
    np.testing.assert_array_equal(back.predict_proba(iris[0]), clf.predict_proba(iris[0]))


# -- the same arithmetic as MLPClassifier -------------------------------------------------
def _steps_from_same_weights(X, y, **kw):
    """Both estimators take 3 full-batch steps from MLPClassifier's initial weights (via warm_start)."""
    common = dict(hidden_layer_sizes=(7, 5), alpha=0.3, batch_size=len(X), learning_rate_init=0.1,
                  max_iter=1, random_state=0, **kw)
    ref = quiet_fit(MLPClassifier(**common), X, y)
    ours = quiet_fit(FastBPClassifier(**common, dtype="float64", backend="numpy"), X, y)
    ours.coefs_ = [c.copy() for c in ref.coefs_]
    ours.intercepts_ = [b.copy() for b in ref.intercepts_]
    ours.loss_curve_ = []
    for est in (ref, ours):
        quiet_fit(est.set_params(warm_start=True, max_iter=3), X, y)
    return ref, ours


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
@pytest.mark.parametrize("kw", [dict(solver="sgd", momentum=0.0), dict(solver="sgd", nesterovs_momentum=False),
                                dict(solver="sgd")], ids=["sgd", "momentum", "nesterov"])
def test_sgd_steps_and_alpha_match_mlpclassifier(iris, activation, kw):
    ref, ours = _steps_from_same_weights(*iris, activation=activation, **kw)
    for a, b in zip(ref.coefs_ + ref.intercepts_, ours.coefs_ + ours.intercepts_):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_[1:], rtol=1e-10)  # penalty included


def test_adam_steps_match_mlpclassifier_up_to_epsilon(iris):
    """scikit-learn adds ε after folding √(1−β2^t) into the step size, fastbp to √v̂ (Kingma & Ba): the
    steps differ by about ε/|g|."""
    ref, ours = _steps_from_same_weights(*iris, solver="adam", activation="tanh")
    for a, b in zip(ref.coefs_ + ref.intercepts_, ours.coefs_ + ours.intercepts_):
        np.testing.assert_allclose(b, a, atol=1e-3)
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_[1:], rtol=1e-4)


def test_warm_start_continues_and_checks_classes(iris):
    X, y = iris
    clf = quiet_fit(FastBPClassifier((6,), max_iter=4, warm_start=True, **FAST), X, y)
    first = list(clf.loss_curve_)
    quiet_fit(clf, X, y)
    assert clf.n_iter_ == 4 and clf.loss_curve_[:4] == first and len(clf.loss_curve_) == 8
    assert clf.loss_curve_[4] < first[0]  # it went on from the trained weights
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(X[y < 2], y[y < 2])


# -- GPU ------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not cupy_usable(), reason="needs cupy and a CUDA device")
def test_cupy_backend_agrees_with_numpy(digits):
    X_tr, X_te, y_tr, y_te = digits
    cpu, gpu = (quiet_fit(FastBPClassifier((32,), max_iter=10, backend=b, dtype="float64", random_state=0), X_tr, y_tr)
                for b in ("numpy", "cupy"))
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-6)
    np.testing.assert_allclose(gpu.predict_proba(X_te), cpu.predict_proba(X_te), atol=1e-6)
    assert isinstance(gpu.coefs_[0], np.ndarray) and gpu.score(X_te, y_te) >= 0.9
    back = pickle.loads(pickle.dumps(gpu))
    np.testing.assert_allclose(back.predict_proba(X_te), gpu.predict_proba(X_te), atol=1e-12)


# -- scikit-learn's own estimator checks (all of them: about 2 s) -------------------------------------
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks([FastBPClassifier(backend="numpy")])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
