"""jit.py's compiled CPU step and optimiser updates give what the numpy code
gives (network.py, optim.py, loop.reference_step): to rounding, since the
kernels add and multiply in their own order."""

import numpy as np
import pytest

from fastbp import jit
from fastbp.backend import NumpyBackend, get_backend
from fastbp.errors import BackendError
from fastbp.nn import activations, costs, optim
from fastbp.nn.network import Network
from fastbp.train.loop import reference_step, step_of
from optional_helpers import require

require("numba", "jit")  # the test extra installs it: under CI its absence is a failure

TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-12, atol=1e-13)}
PAIRS = [(out, cost) for cost, rec in costs.RECORDS.items() for out in rec.outputs]


@pytest.fixture(autouse=True)
def compiled(monkeypatch):
    monkeypatch.setattr(get_backend("numpy"), "jit", True)


def _batch(dtype, n, sizes, output, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    labels = rng.integers(0, sizes[-1], n)
    if output in ("softmax", "sigmoid"):
        Y = np.eye(sizes[-1], dtype=dtype)[labels]
    else:  # a regression target the output can reach
        Y = rng.random((n, sizes[-1])).astype(dtype)
    return X, Y, labels


# every hidden activation once, and every output and cost it pairs with once: each
# triple is a module of its own to compile
NETS = sorted({(h, "softmax", "log_likelihood") for h in activations.names("hidden")} | {("tanh", o, c) for o, c in PAIRS})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hidden,output,cost", NETS)
def test_compiled_step_is_the_reference_step(hidden, output, cost, dtype):
    sizes = [11, 8, 6, 4]
    kw = dict(hidden=hidden, output=output, cost=cost, dtype=dtype, seed=3, init="glorot")
    ref, net = Network(sizes, **kw), Network(sizes, **kw)
    step = step_of(net)
    assert isinstance(step, jit.TrainStep)
    for n in (13, 1, 13):  # a second size, and back: the buffers' row views are kept per size
        X, Y, labels = _batch(dtype, n, sizes, output, seed=n)
        want_hits, got_hits = np.zeros(n, bool), np.ones(n, bool)
        want = reference_step(ref, X, Y, labels, want_hits)
        got = step(X, Y, labels, got_hits)
        assert np.dtype(type(got)) == np.dtype(dtype)  # the loop's running sums stay in the network's dtype
        assert np.allclose(got, want, **TOL[dtype]) and (got_hits == want_hits).all()
        assert np.allclose(net.grads, ref.grads, **TOL[dtype]), (hidden, output, cost, n)
        assert np.abs(net.grads).max() > 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_both_gemm_routes_give_the_reference(dtype):
    """numpy's own cblas (the address jit.numpy_gemm finds in numpy's wheels), and
    numba's np.dot where there is none: the same gradients."""
    sizes = [9, 7, 5, 3]
    kw = dict(hidden="relu", output="softmax", cost="log_likelihood", dtype=dtype, seed=2)
    ref, net = Network(sizes, **kw), Network(sizes, **kw)
    X, Y, labels = _batch(dtype, 17, sizes, "softmax")
    want = reference_step(ref, X, Y, labels, np.zeros(17, bool))
    step = step_of(net)
    assert step.gemm == jit.numpy_gemm(dtype) and (step.gemm != 0) == ("scipy_openblas64" in str(get_backend("numpy").describe()["blas_file"]))
    for route in {step.gemm, 0}:
        step.gemm = route
        net.grads.fill(np.nan)
        assert np.allclose(step(X, Y, labels, np.zeros(17, bool)), want, **TOL[dtype])
        assert np.allclose(net.grads, ref.grads, **TOL[dtype]), route


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("share", [None, (3, 20)])
def test_compiled_dropout_is_the_reference_dropout(dtype, share):
    """The same masks (the reference's draws, in its order; with share, this process's rows of
    a batch split over processes), the same gradients."""
    sizes = [9, 8, 7, 3]
    kw = dict(hidden="sigmoid", output="softmax", cost="log_likelihood", dtype=dtype, seed=2, dropout=0.3)
    ref, net = Network(sizes, **kw), Network(sizes, **kw)
    for m in (ref, net):
        m.seed_dropout([5, 0, 1])
        m.drop_share = share
    step = step_of(net)
    assert isinstance(step, jit.TrainStep)
    for n in (11, 11, 4):
        X, Y, labels = _batch(dtype, n, sizes, "softmax", seed=n)
        want = reference_step(ref, X, Y, labels, np.zeros(n, bool))
        got = step(X, Y, labels, np.zeros(n, bool))
        assert np.allclose(got, want, **TOL[dtype])
        assert np.allclose(net.grads, ref.grads, **TOL[dtype])
        rows_ref, rows_net = ref.buffers(n).rows(n), net.buffers(n).rows(n)
        for l in range(2):
            assert np.array_equal(rows_ref.mask[l], rows_net.mask[l])  # the same draws, made the same mask
            assert set(np.unique(rows_net.mask[l])) <= {0, np.dtype(dtype).type(1 / 0.7)}
            assert np.allclose(rows_ref.dropped[l], rows_net.dropped[l], **TOL[dtype])


def test_what_the_kernels_cannot_take_runs_the_reference():
    class Swish(activations.Activation):
        name = "swish"  # no cpu_sigma

    net = Network([5, 4, 3], hidden="relu", output="softmax", cost="log_likelihood")
    assert jit.step_source(Swish(), net.output, net.cost) is None
    # float64 inputs for a float32 network: the reference, which casts
    X, Y, labels = _batch("float64", 6, [5, 4, 3], "softmax")
    ref = Network([5, 4, 3], hidden="relu", output="softmax", cost="log_likelihood")
    hits = np.zeros(6, bool)
    assert np.allclose(step_of(net)(X, Y, labels, hits), reference_step(ref, X, Y, labels, hits.copy()))
    assert np.array_equal(net.grads, ref.grads)


def _digits(batch):
    from sklearn.datasets import load_digits

    from fastbp.train.build import Split
    from fastbp.train.loop import Batches

    X, y = load_digits(return_X_y=True)
    split = Split(get_backend("numpy"), X[:700].astype(np.uint8), y[:700], 10, 1 / 16, "float32")
    net = Network([64, 24, 10], "relu", "softmax", "log_likelihood", seed=1)
    return net, optim.make("momentum", net), Batches(split, batch, seed=5)


def test_compiled_epochs_are_the_reference_epochs(monkeypatch):
    from fastbp.train.loop import TrainState, train_epoch

    net, opt, batches = _digits(10)
    monkeypatch.setattr(get_backend("numpy"), "jit", False)
    ref, ref_opt, _ = _digits(10)
    assert opt._fused is not None and ref_opt._fused is None
    states = TrainState(), TrainState()
    for epoch in range(2):
        for s, (m, o) in zip(states, ((net, opt), (ref, ref_opt))):
            monkeypatch.setattr(get_backend("numpy"), "jit", m is net)
            train_epoch(m, o, lambda t: 0.1, batches, s)
        got, want = states
        assert np.allclose(net.params, ref.params, rtol=1e-4, atol=1e-5), epoch
        assert np.isclose(got.loss_sum, want.loss_sum, rtol=1e-5) and abs(got.correct - want.correct) <= 1
        assert got.seen == want.seen == 700 and got.step == want.step == 70 * (epoch + 1)
        for s in states:
            s.next_epoch()


def test_a_compiled_epoch_stopped_inside_a_chunk_resumes_to_the_same_sums_and_weights():
    from fastbp.train.loop import TrainState, train_epoch

    net, opt, batches = _digits(10)
    ref, ref_opt, _ = _digits(10)
    whole = TrainState()
    train_epoch(ref, ref_opt, lambda t: 0.1, batches, whole)
    parts, calls = TrainState(), iter(range(1000))
    assert not train_epoch(net, opt, lambda t: 0.1, batches, parts, should_stop=lambda: next(calls) == 6)
    assert train_epoch(net, opt, lambda t: 0.1, batches, parts)
    assert net.params.tobytes() == ref.params.tobytes()
    assert (parts.loss_sum, parts.correct, parts.seen) == (whole.loss_sum, whole.correct, whole.seen)


def test_a_non_finite_compiled_cost_stops_the_epoch():
    from fastbp.errors import TrainingDiverged
    from fastbp.train.loop import TrainState, train_epoch

    net, opt, batches = _digits(10)
    net.params[:5] = np.inf
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged, match=r"non-finite loss at epoch 1, batch 1$"):
        train_epoch(net, opt, lambda t: 0.1, batches, TrainState())


@pytest.mark.parametrize("value, wanted", [("0", False), ("off", False), ("1", True), ("auto", True), ("", True)])
def test_fastbp_jit_says_whether_numpy_compiles(monkeypatch, value, wanted):
    monkeypatch.setenv("FASTBP_JIT", value)
    assert jit.wanted() is wanted and NumpyBackend().jit is wanted


def test_fastbp_jit_1_without_numba_is_one_clear_error(monkeypatch):
    import importlib.util

    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba" else find(name, *a))
    monkeypatch.setenv("FASTBP_JIT", "auto")
    assert jit.wanted() is False
    monkeypatch.setenv("FASTBP_JIT", "1")
    with pytest.raises(BackendError, match=r"^FASTBP_JIT=1 asks for the compiled CPU step, and numba is not installed: "
                                           r"pip install 'fastbp\[jit\]', or unset FASTBP_JIT$"):
        jit.wanted()
    monkeypatch.setenv("FASTBP_JIT", "fast")
    with pytest.raises(BackendError, match=r"^FASTBP_JIT='fast': use 0 \(numpy only\), 1 \(compiled, numba required\) or auto$"):
        jit.wanted()


def test_a_numba_that_does_not_import_runs_the_numpy_code_with_one_warning(tmp_path, monkeypatch):
    """A numba too old for the installed numpy fails at import: the numpy code runs, and the
    warning says why once; with FASTBP_JIT=1 it is an error."""
    monkeypatch.setattr(jit, "_folder", lambda: tmp_path)
    monkeypatch.setattr(jit, "_modules", {})
    monkeypatch.setattr(jit, "_broken", [])
    monkeypatch.setattr(jit, "_HEAD", jit._HEAD + "import fastbp_no_such_module\n")
    monkeypatch.setenv("FASTBP_JIT", "1")
    net = Network([5, 4, 3], hidden="relu", output="softmax", cost="log_likelihood")
    with pytest.raises(BackendError, match=r"^FASTBP_JIT=1 asks for the compiled CPU step, and numba is installed but "
                                           r"does not import \(ModuleNotFoundError: No module named 'fastbp_no_such_module'\)$"):
        jit.train_step(net)
    monkeypatch.setenv("FASTBP_JIT", "auto")
    with pytest.warns(RuntimeWarning, match=r"does not import .*: the numpy code runs") as said:
        assert jit.train_step(net) is None
    assert len(said) == 1 and jit.update("momentum") is None and step_of(net).func is reference_step
    X = np.arange(12, dtype=np.uint8).reshape(4, 3)
    out, raw = np.empty((2, 3), np.float32), np.empty((2, 3), np.uint8)
    get_backend("numpy").gather_scaled(X, np.array([3, 1]), np.float32(0.5), raw, out)
    assert np.array_equal(out, X[[3, 1]] * np.float32(0.5))


def test_the_generated_module_is_one_file_per_source(tmp_path, monkeypatch):
    monkeypatch.setattr(jit, "_folder", lambda: tmp_path)
    monkeypatch.setattr(jit, "_modules", {})
    net = Network([5, 4, 3], hidden="tanh", output="sigmoid", cost="cross_entropy")
    source = jit.step_source(net.hidden, net.output, net.cost)
    assert "return tanh(z)" in source and "return max(z, 0) + log1p(exp(-abs(z))) - y * z" in source
    first = jit._load(source)
    assert jit._load(source) is first
    files = sorted(p.name for p in tmp_path.glob("*.py"))
    assert len(files) == 1 and files[0].startswith("fastbp_jit_") and (tmp_path / files[0]).read_text() == source
    for equation in ("# BP1", "# BP2", "# BP3", "# BP4"):
        assert equation in source


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_dropout_draws_are_the_numpy_draws(dtype):
    bk = get_backend("numpy")
    for key, start, shape in [(0, 0, (1, 1)), (2**64 - 5, (9 << 32) + 17, (33, 7)), (123456789, 2**63, (3, 40))]:
        got, want = np.empty(shape, dtype), np.empty(shape, dtype)
        assert jit.uniform(key, start, got) is got
        NumpyBackend.__mro__[1].uniform(bk, key, start, want)  # Backend's array code
        assert np.array_equal(got, want), (key, start, shape)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [0, 1, 3, 300])
def test_the_compiled_gather_is_numpys_cast_and_multiply(dtype, n):
    """gather_scaled (rows asked for ahead of their copy) against numpy's X[rows] × scale,
    bit for bit: rows fewer and more than those asked ahead, widths off the cache line."""
    rng = np.random.default_rng(n)
    for width in (100, 784):
        X = rng.integers(0, 256, (500, width), dtype=np.uint8)
        rows = rng.integers(0, 500, n)
        rows[-1:] = 499  # the last row of X: nothing read past it
        out, scale = np.empty((n, width), dtype), np.dtype(dtype).type(1 / 255)
        assert jit.gather_scaled(X, rows, scale, out) is out
        assert np.array_equal(out, X[rows].astype(dtype) * scale)
