"""One record per activation and per cost (fastbp/nn/activations.py, costs.py): a
record added here, in the test alone, works on the CPU, in the fused kernels'
source, in ONNX export, in the config and in the estimator, or is refused with a
clear message where it declares no support."""

import numpy as np
import pytest
from gpu_emulation import EmulatedCupy

from fastbp import kernels
from fastbp.errors import ConfigError, UsageError
from fastbp.nn import activations, costs, gradcheck
from fastbp.nn.network import Network


class Softsign(activations.Activation):
    """σ(z) = z / (1 + |z|),  σ'(z) = 1 / (1 + |z|)² = (1 − |a|)²."""

    name, sklearn, onnx_op = "softsign", "softsign", "Softsign"
    cuda_sigma = "z / ((real)1 + fabs(z))"
    cuda_prime = "((real)1 - fabs(a)) * ((real)1 - fabs(a))"
    cpu_sigma, cpu_prime = "z / (1 + abs(z))", "(1 - abs(a)) * (1 - abs(a))"

    def forward(self, bk, z, out):
        xp = bk.xp
        xp.abs(z, out=out)
        xp.add(out, 1.0, out=out)
        return xp.divide(z, out, out=out)

    def backward(self, bk, delta, z, a, work):
        xp = bk.xp
        xp.abs(a, out=work)
        xp.subtract(1.0, work, out=work)
        xp.multiply(work, work, out=work)
        xp.multiply(delta, work, out=delta)

    def sigma(self, z):
        return z / (1 + np.abs(z))

    def prime(self, z, a):
        return (1 - np.abs(a)) ** 2


class Bent(activations.Activation):
    """σ(z) = z + (√(z² + 1) − 1)/2: declares neither a kernel, an ONNX op nor a scikit-learn name."""

    name = "bent"

    def forward(self, bk, z, out):
        xp = bk.xp
        xp.multiply(z, z, out=out)
        xp.add(out, 1.0, out=out)
        xp.sqrt(out, out=out)
        xp.subtract(out, 1.0, out=out)
        xp.multiply(out, 0.5, out=out)
        return xp.add(out, z, out=out)

    def backward(self, bk, delta, z, a, work):
        xp = bk.xp
        xp.multiply(z, z, out=work)
        xp.add(work, 1.0, out=work)
        xp.sqrt(work, out=work)
        xp.divide(z, work, out=work)
        xp.multiply(work, 0.5, out=work)
        xp.add(work, 1.0, out=work)
        xp.multiply(delta, work, out=delta)


class AbsoluteCost(costs.Cost):
    """C = Σ_j |a_j − y_j|: BP1 δ^L = sign(a − y) ⊙ σ'(z^L), no kernel of its own."""

    name, outputs = "absolute", ("identity", "tanh")

    @staticmethod
    def fn(bk, z, a, y, log_norm=None):
        return bk.xp.abs(a - y).sum()

    @staticmethod
    def delta(bk, z, a, y, out, act, work):
        bk.xp.subtract(a, y, out=out)
        bk.xp.sign(out, out=out)
        act.backward(bk, out, z, a, work)
        return out


@pytest.fixture
def records():
    """The test's records registered for one test, then removed."""
    for cls in (Softsign, Bent):
        activations.register(cls)
    costs.register(AbsoluteCost)
    yield
    for name in ("softsign", "bent"):
        activations.unregister(name)
    costs.unregister("absolute")


def _data(n=9, n_in=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_in)), np.eye(k)[rng.integers(0, k, n)]


def test_a_new_activation_trains_on_the_cpu_with_exact_gradients(records):
    assert gradcheck.check("softsign", "softmax", "log_likelihood", (5, 4, 3), 7, 0, "numpy") < 1e-7
    assert gradcheck.check("bent", "sigmoid", "cross_entropy", (5, 4, 3), 7, 0, "numpy") < 1e-7
    assert gradcheck.check("tanh", "tanh", "absolute", (5, 4, 3), 7, 0, "numpy") < 1e-7
    assert "softsign" in activations.names("hidden") and "softsign" in activations.names("output")


def test_the_config_accepts_new_records_and_refuses_the_unpaired(records):
    from fastbp.train import config

    cfg = config.load(None, ['model.hidden="softsign"', 'model.output="identity"', 'model.cost="absolute"'])
    assert (cfg.model.hidden, cfg.model.cost) == ("softsign", "absolute")
    with pytest.raises(ConfigError, match="'model.cost' = 'absolute' does not pair with model.output = 'softmax'; use output identity or tanh"):
        config.load(None, ['model.cost="absolute"'])


def test_a_new_activation_is_in_the_kernels_source_and_fused(records):
    code = kernels.codes()["softsign"]
    assert f"case {code}: return {Softsign.cuda_sigma};  // softsign" in kernels.sources()["bias_activation"][0]
    assert "bent" not in kernels.codes()  # no CUDA source: the unfused code runs
    kw = dict(hidden="softsign", output="softmax", cost="log_likelihood", dtype="float64", seed=2)
    bk = EmulatedCupy()
    plain, fused = Network([5, 4, 3], **kw), Network([5, 4, 3], backend=bk, **kw)
    assert fused.fused is not None and fused.fused.hidden_code == code
    X, Y = _data()
    assert np.allclose(plain.gradient(X, Y), fused.gradient(X, Y), rtol=1e-12, atol=1e-14)
    assert "activation_grad" in bk.launches and "bias_activation" in bk.launches


def test_a_new_activation_compiles_on_the_cpu_and_what_has_no_cpu_form_runs_numpy(records, monkeypatch):
    pytest.importorskip("numba")  # the test extra installs it; tests/test_jit.py fails without it under CI
    from fastbp import jit
    from fastbp.backend import get_backend
    from fastbp.train.loop import reference_step, step_of

    monkeypatch.setattr(get_backend("numpy"), "jit", True)
    kw = dict(hidden="softsign", output="softmax", cost="log_likelihood", dtype="float64", seed=2)
    plain, compiled = Network([5, 4, 3], **kw), Network([5, 4, 3], **kw)
    step = step_of(compiled)
    assert isinstance(step, jit.TrainStep) and "return z / (1 + abs(z))" in jit.step_source(compiled.hidden, compiled.output, compiled.cost)
    X, Y = _data()
    labels = Y.argmax(axis=1)
    want = reference_step(plain, X, Y, labels, np.zeros(9, bool))
    assert np.isclose(step(X, Y, labels, np.zeros(9, bool)), want, rtol=1e-12)
    assert np.allclose(plain.grads, compiled.grads, rtol=1e-12, atol=1e-14)
    for hidden, cost, output in (("bent", "log_likelihood", "softmax"), ("tanh", "absolute", "identity")):
        net = Network([5, 4, 3], hidden=hidden, output=output, cost=cost)
        assert jit.train_step(net) is None and step_of(net).func is reference_step


def test_records_without_a_kernel_run_unfused(records):
    bk = EmulatedCupy()
    assert Network([5, 4, 3], hidden="bent", output="softmax", cost="log_likelihood", backend=bk).fused is None
    assert Network([5, 4, 3], hidden="relu", output="identity", cost="absolute", backend=bk).fused is None


def test_a_new_activations_kernel_compiles(records):
    try:
        from cupy_backends.cuda.libs import nvrtc
    except Exception as exc:  # not installed (CI), or a broken install
        pytest.skip(f"cupy's NVRTC binding is not importable ({type(exc).__name__})")
    for name in ("bias_activation", "activation_grad", "output_delta"):
        prog = nvrtc.createProgram(kernels.source(kernels.sources()[name][0], "float32"), f"{name}.cu", [], [])
        nvrtc.compileProgram(prog, ["-arch=compute_90", *kernels.OPTIONS])
        assert f".entry {name}(" in nvrtc.getPTX(prog).decode()


def test_a_new_activation_exports_to_onnx(records):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from fastbp import export

    net = Network([5, 4, 3], hidden="softsign", output="softmax", cost="log_likelihood", seed=1)
    layers = [(np.asarray(W), np.asarray(b)) for W, b in zip(net.weights, net.biases)]
    model = export.to_onnx(layers, "softsign", "softmax")
    X = _data()[0].astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    proba = session.run(["probabilities"], {"input": X})[0]
    np.testing.assert_allclose(proba, net.feedforward(X), rtol=1e-5, atol=1e-6)
    with pytest.raises(UsageError, match="hidden activation 'bent' cannot be exported: expected one of .*softsign"):
        export.to_onnx(layers, "bent", "softmax")


def test_a_new_activation_in_the_estimator(records):
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils._param_validation import InvalidParameterError

    from fastbp import FastBPClassifier

    X, y = load_digits(return_X_y=True)
    clf = FastBPClassifier((16,), activation="softsign", learning_rate_init=0.02, max_iter=60, tol=0, random_state=0,
                           backend="numpy")
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        clf.fit(X[:500] / 16, y[:500])
    assert clf._net.hidden_name == "softsign" and clf.score(X[500:800] / 16, y[500:800]) > 0.8
    with pytest.raises(InvalidParameterError, match="The 'activation' parameter of FastBPClassifier must be a str among"):
        FastBPClassifier(activation="bent").fit(X[:50], y[:50])


def test_a_record_needs_a_name_and_pairs():
    class Nameless(activations.Activation):
        pass

    class Unpaired(costs.Cost):
        name = "unpaired"

    with pytest.raises(ValueError, match="Nameless: an activation needs a name"):
        activations.register(Nameless)
    with pytest.raises(ValueError, match="Unpaired: a cost needs a name and the outputs it pairs with"):
        costs.register(Unpaired)
