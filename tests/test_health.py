"""Training health (fastbp.train.health): each problem provoked on purpose is reported once, naming the
layer and the fix; a healthy run says nothing; train.on_unhealthy = "stop" ends the run keeping the last
good checkpoint; the estimators warn with fastbp.HealthWarning."""

import json
import warnings

import numpy as np
import pytest
from cli_helpers import FAST, cli, expect_error, sets  # noqa: F401 (cli is a fixture)
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import fastbp
from fastbp.backend import get_backend
from fastbp.errors import HealthWarning
from fastbp.nn.network import Network
from fastbp.train import checkpoint, config, health, trainer


def _train(*overrides, dataset=None):
    """A digits run in memory: (its health messages as warned, the Trainer)."""
    cfg = config.load(None, [*FAST, *overrides])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = trainer.Trainer(cfg, write=False, quiet=True, dataset=dataset)
        t.run()
    return [str(w.message) for w in caught if w.category is HealthWarning], t


def _npz(tmp_path, factor, offset=0.5):
    """digits with every pixel value × factor (+ offset: not integers, so fastbp does not rescale them)."""
    X, y = load_digits(return_X_y=True)
    path = tmp_path / "big.npz"
    np.savez(path, X_train=X[:1400] * factor + offset, y_train=y[:1400], X_test=X[1400:] * factor + offset, y_test=y[1400:])
    return path


def test_the_shipped_digits_config_trains_without_a_health_line():
    said, t = _train("output.grad_norms=true")
    assert said == [] and t.health.messages == []
    row = t.state.history[-1]["health"]
    assert set(row) == {"dead_units_1", "grad_ratio", "grad_growth"} and row["dead_units_1"] < health.DEAD


def test_unscaled_inputs_are_named_with_the_range_seen_and_the_fix(tmp_path):
    path = _npz(tmp_path, 1e5)
    said, _ = _train("train.epochs=1", f'data.name="{path}"')
    assert said[0] == ("health: the training inputs reach |x| = 1.6e+06 as the network is fed (it expects values of "
                       "about 1): unscaled inputs saturate or kill units; try data.standardize = true")
    # and what such inputs do to a ReLU net: every unit dead, no gradient at all
    assert any(m.startswith("health: layer 1 (relu, 256 units): 100% of the units never activate") for m in said)


def test_standardised_inputs_with_constant_pixels_raise_nothing():
    X, y = load_digits(return_X_y=True)
    assert (X.std(axis=0) == 0).any()  # digits has pixels that are always 0, as MNIST's borders
    said, t = _train("train.epochs=2", "data.standardize=true")
    assert said == [] and t.health.inputs_figures["input_max_abs"] > health.INPUT_MAX  # standardised: not checked
    # a pixel constant in training is divided by 1, not by ~0: the test images with ink there stay in range
    assert float(np.abs(t.setup.data["test"].X).max()) < 1000  # 6.2e4 when divided by 1e-6


def test_every_feature_constant_is_a_note():
    msgs = health.Health(*_tiny_net_and_data()).inputs(0.0, constant=True, rows=100)
    assert msgs == ["health: every input feature is constant over the 100 training rows: there is nothing to learn "
                    "from; check the data file"]


def test_dead_relus_name_the_layer_and_the_learning_rate():
    said, t = _train("train.epochs=2", "optimizer.lr=1.0")
    (msg,) = said  # once, not every epoch
    assert msg.startswith("health: layer 1 (relu, 256 units): ")
    assert "of the units never activate on 1293 training rows" in msg
    assert 'a lower optimizer.lr (now 1) or model.hidden = "leaky_relu" or data.standardize = true' in msg
    assert 'model.init = "he"' not in msg  # the run has He's initialisation already
    assert all(h["health"]["dead_units_1"] >= health.DEAD for h in t.state.history)


def test_saturated_sigmoids_name_the_layer_and_glorot(tmp_path):
    said, _ = _train("train.epochs=1", f'data.name="{_npz(tmp_path, 5)}"', 'model.hidden="sigmoid"', 'model.init="normal"')
    (msg,) = [m for m in said if "saturated" in m]
    assert msg.startswith("health: layer 1 (sigmoid, 256 units): ")
    assert "of the units are saturated (σ'(z) < 0.01 on" in msg and 'model.init = "glorot"' in msg


def test_quadratic_cost_on_saturated_sigmoid_outputs_is_bp1s_slowdown():
    said, t = _train("train.epochs=1", 'model.hidden="sigmoid"', 'model.output="sigmoid"', 'model.cost="quadratic"',
                     'model.init="normal"', 'optimizer.name="sgd"', "optimizer.lr=0.01")
    (msg,) = [m for m in said if "output layer" in m]
    assert msg.startswith("health: output layer (sigmoid, quadratic cost): ")
    assert "saturated at the wrong value, where BP1's factor σ'(z)" in msg and msg.endswith('try model.cost = "cross_entropy"')


def test_a_deep_sigmoid_net_has_vanishing_gradients_in_its_first_layer():
    said, t = _train("train.epochs=1", "output.grad_norms=true", 'model.hidden="sigmoid"', 'model.init="normal_scaled"',
                     f"model.sizes=[64,{','.join(['30'] * 8)},10]")
    (msg,) = [m for m in said if "gradients" in m]
    assert msg.startswith("health: vanishing gradients: ‖∂C/∂W‖ is ") and "in layer 1 but " in msg
    assert msg.endswith("so layer 1 barely learns; try model.hidden = \"relu\" or model.init = \"glorot\"")
    assert t.state.history[0]["health"]["grad_ratio"] > health.GRAD_RATIO


def test_without_gradient_norms_the_gradient_checks_are_skipped():
    _, t = _train("train.epochs=1", "output.grad_norms=false")
    assert "grad_ratio" not in t.state.history[0]["health"]


def test_gradients_growing_a_thousandfold_in_one_epoch_are_exploding():
    h = health.Health(*_tiny_net_and_data(), lr=0.5)
    assert h.epoch([2.0], 0.5, grad_norms=[1.0, 2.0]) == []
    (msg,) = h.epoch([2.0, 1.9], 0.5, grad_norms=[1.0, 5000.0])
    assert msg == ("health: exploding gradients: ‖∂C/∂W‖ of layer 2 grew 2.5e+03× in one epoch (to 5e+03); "
                   "try a lower optimizer.lr (now 0.5) or optimizer.clip_norm = 1")
    assert h.figures["grad_growth"] == 2500.0
    assert h.epoch([2.0, 1.9, 1.8], 0.5, grad_norms=[4e6, 5e9]) == [] and h.figures["grad_growth"] == 4e6  # said once


def test_a_run_that_does_not_learn_says_so_after_three_epochs():
    said, t = _train("train.epochs=3", "optimizer.lr=1e-9")
    assert said == ["health: not learning: after 3 epochs the training loss is 2.476 (epoch 1: 2.476) and the accuracy "
                    "10.6% (chance: 10%); check that the labels match the inputs; try another optimizer.lr (now 1e-09)"]


def test_the_figures_go_to_history_and_summary(tmp_path, cli):
    with pytest.warns(HealthWarning, match="not learning"):
        rc, _, err = cli("train", "--out", tmp_path, "--quiet", *sets(*FAST, "train.epochs=3", "optimizer.lr=1e-9",
                                                                     'output.name="r"', 'output.history="csv"'))
    assert rc == 0, err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["health"]["messages"][0].startswith("health: not learning")
    assert summary["health"]["input_max_abs"] == 1.0 and "dead_units_1" in summary["health"]
    assert '"{""dead_units_1"": ' in (tmp_path / "r" / "history.csv").read_text()  # a JSON object in a CSV cell


def test_on_unhealthy_stop_exits_1_and_keeps_the_last_good_checkpoint(tmp_path, cli):
    result = cli("train", "--out", tmp_path, "--quiet", *sets(*FAST, "train.epochs=5", "optimizer.lr=1e-9",
                                                               'output.name="r"', 'train.on_unhealthy="stop"'))
    line = expect_error(result, 1, "fastbp: error: health: not learning: after 3 epochs", 'stopped (train.on_unhealthy = "stop")',
                        f"the last good checkpoint (last.npz, best.npz) in {tmp_path / 'r'} is kept")
    assert "Traceback" not in line
    assert checkpoint.load(tmp_path / "r" / "last.npz").state.epoch == 2
    rows = [json.loads(x) for x in (tmp_path / "r" / "history.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and "health" in rows[-1]  # the epoch that showed it is in the history


def test_on_unhealthy_ignore_and_health_off():
    said, t = _train("train.epochs=3", "optimizer.lr=1e-9", 'train.on_unhealthy="ignore"')
    assert said == [] and t.health.messages and "health" in t.state.history[-1]
    said, t = _train("train.epochs=3", "optimizer.lr=1e-9", "train.health=false")
    assert said == [] and t.health is None and "health" not in t.state.history[-1]


def test_on_unhealthy_takes_only_its_choices():
    with pytest.raises(fastbp.errors.ConfigError, match="'train.on_unhealthy' must be one of warn, stop, ignore, got 'halt'"):
        config.load(None, ['train.on_unhealthy="halt"'])


def test_a_diverging_probe_leaves_the_talking_to_the_divergence_check():
    net, X, Y = _tiny_net_and_data()
    net.params[0] = np.nan
    h = health.Health(net, X, Y)
    assert h.epoch([1.0], 0.1, grad_norms=[1.0, 1.0]) == [] and h.figures == {}


# -- the estimators -------------------------------------------------------------------------------
def test_the_estimator_warns_with_health_warning_on_unscaled_inputs():
    X, y = load_digits(return_X_y=True)
    clf = fastbp.FastBPClassifier(hidden_layer_sizes=(32,), max_iter=3, random_state=0, backend="numpy")
    with pytest.warns(HealthWarning, match=r"health: the training inputs reach \|x\| = 1.6e\+06 .*try scaling X "
                                           r"\(sklearn.preprocessing.StandardScaler\)"):
        clf.fit(X * 1e5, y)
    assert issubclass(fastbp.HealthWarning, UserWarning)


def test_the_estimator_on_scaled_digits_says_nothing():
    X, y = load_digits(return_X_y=True)
    X, y = X[:600] / 16, y[:600]
    with warnings.catch_warnings():
        warnings.simplefilter("error", HealthWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        # scikit-learn's defaults, and its slow sgd (lr 0.001) on logistic units: slow is not "not learning"
        for est in (fastbp.FastBPClassifier(hidden_layer_sizes=(32,), max_iter=10, random_state=0, backend="numpy"),
                    fastbp.FastBPClassifier(hidden_layer_sizes=(32,), solver="sgd", activation="logistic", max_iter=10,
                                            random_state=0, backend="numpy"),
                    fastbp.FastBPRegressor(hidden_layer_sizes=(32,), max_iter=10, random_state=0, backend="numpy")):
            est.fit(X, y)


def test_the_estimator_reports_dead_relus_in_its_own_terms():
    X, y = load_digits(return_X_y=True)
    clf = fastbp.FastBPClassifier(hidden_layer_sizes=(32,), solver="sgd", learning_rate_init=5.0, max_iter=2,
                                  random_state=0, backend="numpy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(X / 16, y)
    (msg,) = [str(w.message) for w in caught if w.category is HealthWarning and "never activate" in str(w.message)]
    assert msg.startswith("health: layer 1 (relu, 32 units): ") and "a lower learning_rate_init (now 5)" in msg
    assert 'activation="leaky_relu"' in msg and "optimizer.lr" not in msg


def _tiny_net_and_data():
    net = Network([4, 3, 2], hidden="relu", output="softmax", cost="log_likelihood", init="he", backend="numpy")
    rng = np.random.default_rng(0)
    X = get_backend("numpy").asarray(rng.normal(size=(20, 4)), np.float32)
    return net, X, np.eye(2, dtype=np.float32)[rng.integers(0, 2, 20)]


def test_the_estimator_reports_exploding_gradients_where_scikit_learns_own_test_diverges():
    """scikit-learn's test_mlp_diverging_loss: a linear net at learning rate 1 on iris."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    reg = fastbp.FastBPRegressor(hidden_layer_sizes=100, activation="identity", solver="sgd", learning_rate_init=1,
                                 max_iter=20, early_stopping=True, random_state=0, backend="numpy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg.fit(X, y)
    (w,) = [w for w in caught if w.category is HealthWarning]
    assert str(w.message).startswith("health: exploding gradients: ‖∂C/∂W‖ of layer ")
    assert str(w.message).endswith("try a lower learning_rate_init (now 1)") and w.filename == __file__  # the caller's line


def test_the_overhead_benchmark_runs_both_arms(capsys):
    """benchmarks/health.py on the digits smoke case: A (train.health = false) and B both train."""
    from benchmarks import health as bench  # the repository root is on pytest's pythonpath

    bench.main(["--case", "smoke", "--reps", "1", "--epochs", "3"])
    out = capsys.readouterr().out
    assert "rep 1 health off: " in out and "rep 1 health on : " in out
    assert "median of the paired ratios B/A = " in out and "the probe alone: median " in out
