"""scikit-learn's own MLP tests and estimator checks, run against FastBPClassifier and FastBPRegressor.

The tests are scikit-learn's `sklearn/neural_network/tests/test_mlp.py` from the installed wheel, not a copy:
its source is executed as a fresh module while `sklearn.neural_network.MLPClassifier` and `MLPRegressor`
name fastbp's classes, so every `MLPClassifier(...)` in it (parametrize lists included) builds a fastbp
estimator. Its test functions are then collected here, with the few that cannot pass marked
xfail(strict=True): if one starts passing, the list must be updated.
"""

import importlib.util
import os

import pytest
import sklearn.neural_network
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastbp.estimator import FastBPClassifier, FastBPRegressor


def _load_sklearn_test_mlp():
    path = os.path.join(os.path.dirname(sklearn.neural_network.__file__), "tests", "test_mlp.py")
    spec = importlib.util.spec_from_file_location("sklearn_test_mlp_on_fastbp", path)
    module = importlib.util.module_from_spec(spec)
    saved = sklearn.neural_network.MLPClassifier, sklearn.neural_network.MLPRegressor
    sklearn.neural_network.MLPClassifier, sklearn.neural_network.MLPRegressor = FastBPClassifier, FastBPRegressor
    try:
        spec.loader.exec_module(module)
    finally:
        sklearn.neural_network.MLPClassifier, sklearn.neural_network.MLPRegressor = saved
    return module


# The tests that cannot pass, and why: each reads or calls a private member of scikit-learn's class.
PRIVATE = {
    "test_gradient": "calls MLPClassifier._loss_grad_lbfgs(packed, X, Y, None, activations, deltas, coef_grads, "
                     "intercept_grads), scikit-learn's private per-layer backprop; fastbp's gradient is checked by "
                     "fastbp.nn.gradcheck (tests/test_engine.py) instead",
}

_suite = _load_sklearn_test_mlp()
for _name in dir(_suite):
    if _name.startswith("test_"):
        _test = getattr(_suite, _name)
        if _name in PRIVATE:
            _test = pytest.mark.xfail(strict=True, reason=PRIVATE[_name])(_test)
        globals()[_name] = _test


@pytest.fixture(scope="module", autouse=True)
def numpy_and_one_blas_thread():
    """backend='auto' in scikit-learn's tests means numpy, as the CPU is what scikit-learn runs on. One BLAS
    thread: scikit-learn's tests fit tiny sets for thousands of epochs (test_n_iter_no_change_inf: 3,000), where
    a second thread only adds synchronisation; on a loaded 2-core machine it made them several times slower."""
    from threadpoolctl import threadpool_limits

    with pytest.MonkeyPatch.context() as mp, threadpool_limits(limits=1, user_api="blas"):
        mp.setenv("FASTBP_BACKEND", "numpy")
        yield


@pytest.fixture
def global_random_seed():
    """scikit-learn's conftest fixture, at its default seed."""
    return 42


# -- check_estimator ------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks([FastBPClassifier(max_iter=100, backend="numpy"), FastBPRegressor(max_iter=100, backend="numpy")])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
