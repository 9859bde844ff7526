"""ONNX export: the graph computes what fastbp computes, from the raw input fastbp was fed."""

import json
import sys

import numpy as np
import pytest
from optional_helpers import require
from cli_helpers import cli, expect_error  # noqa: F401 (cli is a fixture)

from fastbp import export
from fastbp.nn import activations
from fastbp.errors import UsageError
from fastbp.nn.network import Network
from fastbp.predict import load_run
from fastbp.train.build import Preprocess

onnx = require("onnx", "onnx")
ort = require("onnxruntime", "onnx")

TOL = {"float32": 1e-5, "float64": 1e-12}
HIDDEN = activations.names("hidden")  # every record
OUTPUTS = activations.names("output")


def run_onnx(model, X):
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": X})


def agree(got, want, dtype):
    diff = float(np.abs(np.asarray(got, np.float64) - want).max())
    assert got.dtype == np.dtype(dtype) and got.shape == want.shape and diff <= TOL[dtype], (diff, got.dtype, got.shape)


def same_labels(label, out, dtype):
    """The argmax of fastbp's outputs, except on rows where two outputs tie within rounding."""
    top2 = np.sort(out, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 10 * TOL[dtype]
    assert clear.mean() > 0.8 and np.array_equal(label[clear], out.argmax(axis=1)[clear])


def layers_of(net):
    return [(np.asarray(W), np.asarray(b)) for W, b in zip(net.weights, net.biases)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_random_nets_of_every_activation_match_fastbp(hidden, output, dtype):
    cost = "log_likelihood" if output == "softmax" else "quadratic"
    net = Network([12, 9, 7, 5], hidden, output, cost, "glorot", dtype=dtype, seed=3, leaky_slope=0.3)
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (64, 12), dtype=np.uint8)
    pre = {"input_dtype": "uint8", "scale": 1 / 255, "mean": rng.random(12) * 0.5, "std": rng.random(12) + 0.2}
    model = export.to_onnx(layers_of(net), hidden, output, dtype=dtype, preprocess=pre, leaky_slope=0.3)
    proba, label = run_onnx(model, X)
    want = np.asarray(net.feedforward(Preprocess(**pre)(X, dtype)))
    agree(proba, want, dtype)
    assert label.dtype == np.int64
    same_labels(label, want, dtype)


@pytest.mark.parametrize("input_dtype", ["float32", "float64"])
def test_float_input_without_preprocessing_and_exp_output(input_dtype):
    """A Poisson regression's exp output, fed floats of either dtype into a float32 net."""
    net = Network([6, 8, 3], "tanh", "exp", "poisson", "normal", seed=2)
    X = np.random.default_rng(4).normal(size=(40, 6)).astype(input_dtype)
    model = export.to_onnx(layers_of(net), "tanh", "exp", preprocess={"input_dtype": input_dtype, "scale": 1.0},
                           regression=True)
    (pred,) = run_onnx(model, X)
    want = np.asarray(net.feedforward(X.astype(np.float32)))
    assert pred.dtype == np.float32
    np.testing.assert_allclose(pred, want, rtol=1e-5)  # exp is unbounded: relative
    assert [o.name for o in model.graph.output] == ["predictions"]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_binary_logistic_output_and_class_labels_via_scikit_learns_mlp():
    """export_estimator reads scikit-learn's MLP attributes: a two-class MLPClassifier has one
    logistic unit, exported as [1 - p, p]; "label" holds classes_ (strings here)."""
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = np.where(X[:, 0] + X[:, 1] ** 2 > 0.5, "yes", "no")
    clf = MLPClassifier((6,), activation="logistic", max_iter=300, random_state=0).fit(X, y)
    assert clf.out_activation_ == "logistic" and clf.coefs_[-1].shape[1] == 1
    proba, label = run_onnx(export.export_estimator(clf), X)
    agree(proba, clf.predict_proba(X), "float64")
    assert label.tolist() == clf.predict(X).tolist() and set(label) == {"yes", "no"}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fastbp_classifier_exports(tmp_path, dtype):
    """The model's dtype follows the data's, as in scikit-learn; the graph takes rows of it."""
    from fastbp import FastBPClassifier
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X.astype(dtype)
    clf = FastBPClassifier(hidden_layer_sizes=(32,), max_iter=5, random_state=0, backend="numpy").fit(X, y + 10)
    out = tmp_path / "clf.onnx"
    export.export_estimator(clf, out)
    proba, label = run_onnx(onnx.load(out), X[:300])
    agree(proba, clf.predict_proba(X[:300]), dtype)
    assert np.array_equal(label, clf.predict(X[:300])) and label.dtype == np.int64


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_skl2onnx_route_when_it_is_installed():
    """skl2onnx is not a dependency (this skips without it): its own to_onnx, after register_skl2onnx()."""
    skl2onnx = pytest.importorskip("skl2onnx")
    from fastbp import FastBPClassifier
    from sklearn.datasets import load_digits

    assert export.register_skl2onnx()
    X, y = load_digits(return_X_y=True)
    names = np.array("zero one two three four five six seven eight nine".split())
    clf = FastBPClassifier(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(X, names[y])
    for rows in (X[:60].astype(np.float32), X[:60]):  # float64 rows are cast into the float32 net
        model = skl2onnx.to_onnx(clf, rows[:1], options={"zipmap": False})
        label, proba = ort.InferenceSession(model.SerializeToString()).run(None, {"X": rows})
        assert proba.dtype == rows.dtype and np.abs(proba - clf.predict_proba(X[:60])).max() < 1e-5
        assert label.tolist() == clf.predict(X[:60]).tolist()
    with_zipmap = skl2onnx.to_onnx(clf, X[:1].astype(np.float32))  # skl2onnx's default: a list of dicts
    _, dicts = ort.InferenceSession(with_zipmap.SerializeToString()).run(None, {"X": X[:2].astype(np.float32)})
    assert abs(dicts[0]["zero"] - clf.predict_proba(X[:1])[0, 9]) < 1e-5  # classes_ are sorted: 'zero' is last


def test_cli_export_of_a_digits_run_matches_fastbp_eval(cli, digits_run, tmp_path):
    out = tmp_path / "digits.onnx"
    rc, stdout, err = cli("export", digits_run, "-o", out)
    assert rc == 0 and err == "" and "input ['N', 64], probabilities ['N', 10], label ['N']" in stdout
    model = onnx.load(out)
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["fastbp.preprocess"]) == {"input_dtype": "uint8", "scale": 1 / 16, "mean": None, "std": None,
                                                     "images": "digits"}
    assert meta["fastbp.checkpoint"].endswith("best.npz")
    # the rows and predictions of `fastbp eval`: its build, its data pipeline, the same checkpoint
    from fastbp.train import checkpoint, loop
    from fastbp.train.build import build

    run = load_run(digits_run)
    ckpt = checkpoint.load(run.path)
    setup = build(ckpt.config, train=False)
    checkpoint.restore(ckpt, setup.net)
    X = setup.dataset.X_test
    assert X.dtype == np.uint8
    proba, label = run_onnx(model, X)
    agree(proba, np.asarray(setup.net.feedforward(run.preprocess(X, "float32"))), "float32")
    assert np.array_equal(label, loop.predict(setup.net, setup.data["test"]))


@pytest.mark.mnist
def test_mnist_run_matches_fastbp_on_the_test_set(mnist_run, real_data_dir, tmp_path):
    from fastbp.data.datasets import load_dataset

    model, used = export.export_checkpoint(mnist_run, tmp_path / "m.onnx", checkpoint="last")
    assert str(used).endswith("last.npz") and (tmp_path / "m.onnx").stat().st_size > 400_000
    ds = load_dataset("mnist", data_dir=real_data_dir / "mnist")
    run = load_run(mnist_run, "last")
    proba, label = run_onnx(onnx.load(tmp_path / "m.onnx"), ds.X_test)
    want = np.asarray(run.net.feedforward(ds.X_test.astype(np.float32) * np.float32(1 / 255)))
    agree(proba, want, "float32")
    assert np.array_equal(label, want.argmax(axis=1)) and (label == ds.y_test).mean() > 0.9


def test_run_on_a_data_set_of_ones_own(pixels_run, tmp_path):
    """IDX files of one's own: uint8 with scale 1/255, found from the data set itself."""
    model, _ = export.export_checkpoint(pixels_run, tmp_path / "p.onnx")
    run = load_run(pixels_run)
    assert run.preprocess.input_dtype == "uint8" and run.preprocess.scale == 1 / 255
    X = np.random.default_rng(5).integers(0, 256, (30, 784), dtype=np.uint8)
    proba, _ = run_onnx(onnx.load(tmp_path / "p.onnx"), X)
    agree(proba, np.asarray(run.net.feedforward(X.astype(np.float32) * np.float32(1 / 255))), "float32")


def test_float64_run_exports_in_float64(cli, tmp_path):
    rc, _, _ = cli("train", "--out", tmp_path / "r", "--quiet", "--set", "train.epochs=2", "--set", 'train.dtype="float64"',
                   "--set", "model.hidden=\"leaky_relu\"", "--set", "model.leaky_slope=0.1", "--set", "output.plots=false")
    assert rc == 0
    (run_dir,) = (tmp_path / "r").iterdir()
    model, _ = export.export_checkpoint(run_dir, tmp_path / "d.onnx")
    run = load_run(run_dir)
    X = np.random.default_rng(0).integers(0, 17, (50, 64), dtype=np.uint8)
    proba, _ = run_onnx(model, X)
    agree(proba, np.asarray(run.net.feedforward(run.preprocess(X, "float64"))), "float64")


# -- bad input: one line, exit 2, nothing written -----------------------------------------------------------
def nothing_written(folder, before=()):
    assert sorted(p.name for p in folder.iterdir()) == sorted(before)


@pytest.mark.parametrize("opset", ["99", "12", "0"])
def test_unknown_opset(cli, digits_run, tmp_path, opset):
    latest = onnx.defs.onnx_opset_version()
    expect_error(cli("export", digits_run, "-o", tmp_path / "m.onnx", "--opset", opset), 2,
                 f"fastbp: error: opset {opset} is not supported: fastbp writes opsets 13 to {latest}")
    nothing_written(tmp_path)


def test_opset_in_range_is_written(digits_run, tmp_path):
    model, _ = export.export_checkpoint(digits_run, tmp_path / "m.onnx", opset=13)
    assert model.opset_import[0].version == 13 and onnx.load(tmp_path / "m.onnx").opset_import[0].version == 13


def test_run_directory_without_a_checkpoint(cli, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.toml").write_text("")
    expect_error(cli("export", tmp_path / "run", "-o", tmp_path / "m.onnx"), 2,
                 f"checkpoint {tmp_path / 'run'}: directory holds no best.npz or last.npz")
    expect_error(cli("export", tmp_path / "run" / "best.npz", "-o", tmp_path / "m.onnx"), 2, "best.npz: not found")
    nothing_written(tmp_path, ["run"])


def test_last_is_refused_where_only_best_exists(cli, digits_run, tmp_path):
    ckpt_dir = tmp_path / "run"
    ckpt_dir.mkdir()
    (ckpt_dir / "best.npz").write_bytes((digits_run / "best.npz").read_bytes())
    expect_error(cli("export", ckpt_dir, "-o", tmp_path / "m.onnx", "--checkpoint", "last"), 2, "directory holds no last.npz")
    assert cli("export", ckpt_dir, "-o", tmp_path / "m.onnx")[0] == 0


@pytest.mark.parametrize("where", ["missing dir", "a directory", "under a file"])
def test_unwritable_output_path(cli, digits_run, tmp_path, where):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    out, needle = {"missing dir": (tmp_path / "nope" / "m.onnx", "no directory"),
                   "a directory": (tmp_path / "dir", "it is a directory"),
                   "under a file": (tmp_path / "file" / "m.onnx", "no directory")}[where]
    expect_error(cli("export", digits_run, "-o", out), 2, f"fastbp: error: cannot write {out}: {needle}")
    nothing_written(tmp_path, ["file", "dir"])
    assert not any((tmp_path / "dir").iterdir())


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(cli, digits_run, tmp_path, monkeypatch):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old model")

    def disk_full(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(onnx.ModelProto, "SerializeToString", disk_full)
    rc, _, err = cli("export", digits_run, "-o", out)
    assert rc == 1 and "No space left on device" in err
    assert out.read_bytes() == b"old model"
    nothing_written(tmp_path, ["m.onnx"])


def test_a_standardised_run_exports_its_mean_and_std(cli, tmp_path):
    rc, _, err = cli("train", "--out", tmp_path / "r", "--quiet", "--set", "train.epochs=2", "--set", "data.standardize=true",
                     "--set", "output.plots=false")
    assert rc == 0, err
    (run_dir,) = (tmp_path / "r").iterdir()
    model, _ = export.export_checkpoint(run_dir, tmp_path / "s.onnx")
    run = load_run(run_dir)
    assert run.preprocess.mean is not None and run.preprocess.std.shape == (64,)
    X = np.random.default_rng(0).integers(0, 17, (50, 64), dtype=np.uint8)
    proba, _ = run_onnx(model, X)
    agree(proba, np.asarray(run.net.feedforward(run.preprocess(X, "float32"))), "float32")


def test_without_onnx_one_line_names_the_extra(cli, digits_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    expect_error(cli("export", digits_run, "-o", tmp_path / "m.onnx"), 2, "pip install 'fastbp[onnx]'")
    nothing_written(tmp_path)


def test_bad_arguments_to_to_onnx():
    W = np.ones((3, 4))
    with pytest.raises(UsageError, match="activation 'softplus' cannot be exported"):
        export.to_onnx([(W, np.ones(3))], "softplus", "softmax")
    with pytest.raises(UsageError, match=r"layer 2: W \(2, 5\) and b \(2,\) do not chain into \(n_out, 3\)"):
        export.to_onnx([(W, np.ones(3)), (np.ones((2, 5)), np.ones(2))], "relu", "softmax")

