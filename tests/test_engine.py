"""The core engine: gradients, worked examples, dtypes, batch sizes, optimisers."""

import re
import math
import subprocess
import sys

import numpy as np
import pytest

from fastbp.errors import BackendError

from fastbp.explain import mazur, relu
from fastbp.nn import gradcheck, optim, schedules
from fastbp.nn.network import Network


# -- gradient checks -----------------------------------------------------------
@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu", "leaky_relu", "identity"])
@pytest.mark.parametrize("output,cost", gradcheck.OUTPUT_COSTS)
def test_backprop_matches_finite_differences(hidden, output, cost):
    for sizes, batch in [((5, 4, 3, 3), 7), ((3, 6, 2), 1), ((4, 3, 5, 2, 3), 12)]:
        err = gradcheck.check(hidden, output, cost, sizes, batch, seed=3)
        assert err < 1e-6, (hidden, output, cost, sizes, err)


@pytest.mark.parametrize("output,cost", gradcheck.OUTPUT_COSTS)
def test_sample_weighted_backprop_matches_finite_differences(output, cost):
    for sizes, batch in [((5, 4, 3, 3), 7), ((3, 6, 2), 1)]:
        err = gradcheck.check("tanh", output, cost, sizes, batch, seed=4, weighted=True)
        assert err < 1e-6, (output, cost, sizes, err)


def test_unit_sample_weights_give_the_unweighted_gradient_and_weights_scale_rows():
    rng = np.random.default_rng(0)
    net = Network([4, 5, 3], "relu", "softmax", "log_likelihood", dtype="float64")
    X, Y = rng.standard_normal((6, 4)), np.eye(3)[rng.integers(0, 3, 6)]
    plain = net.gradient(X, Y).copy()
    assert np.allclose(net.gradient(X, Y, sample_weight=np.full(6, 2.5)), plain, rtol=1e-13, atol=1e-15)
    # integer weights = repeated rows
    w = np.array([1, 2, 0, 1, 3, 1.0])
    rep = np.repeat(np.arange(6), w.astype(int))
    assert np.allclose(net.gradient(X, Y, sample_weight=w), net.gradient(X[rep], Y[rep]), rtol=1e-12, atol=1e-15)


def test_sparse_input_gives_the_dense_forward_and_gradient():
    import scipy.sparse

    rng = np.random.default_rng(1)
    net = Network([6, 4, 2], "tanh", "sigmoid", "cross_entropy", dtype="float64")
    X = rng.standard_normal((5, 6)) * (rng.random((5, 6)) < 0.4)
    Y = rng.integers(0, 2, (5, 2)).astype(float)
    dense_out, dense_g = net.forward(X).copy(), net.gradient(X, Y).copy()
    for fmt in (scipy.sparse.csr_matrix, scipy.sparse.csr_array):
        Xs = fmt(X)
        assert np.allclose(net.forward(Xs), dense_out, rtol=1e-13)
        assert np.allclose(net.gradient(Xs, Y), dense_g, rtol=1e-12, atol=1e-15)


def test_adam_sklearn_step_by_hand():
    net = Network([2, 2], "sigmoid", "identity", "quadratic", dtype="float64")
    net.params[...] = 1.0
    opt = optim.make("adam_sklearn", net, beta1=0.9, beta2=0.999, eps=1e-8)
    for t in (1, 2):
        net.grads[...] = 0.5
        opt.step(0.01)
    m = 0.9 * 0.05 + 0.05
    v = 0.999 * 0.00025 + 0.00025
    lr2 = 0.01 * math.sqrt(1 - 0.999**2) / (1 - 0.9**2)
    step1 = 0.01 * math.sqrt(1 - 0.999) / (1 - 0.9) * 0.05 / (math.sqrt(0.00025) + 1e-8)
    assert np.allclose(net.params, 1.0 - step1 - lr2 * m / (math.sqrt(v) + 1e-8), rtol=1e-14)


def test_gradcheck_detects_a_wrong_gradient(monkeypatch):
    """The checker itself must fail on a broken BP2 (here: σ' dropped)."""
    from fastbp.nn import activations

    monkeypatch.setattr(activations.Tanh, "backward", staticmethod(lambda bk, d, z, a, w: None))
    assert gradcheck.check("tanh", "softmax", "log_likelihood") > 1e-2


def test_gradcheck_cli_exits_zero_and_prints_worst_error():
    out = subprocess.run([sys.executable, "-m", "fastbp.cli", "gradcheck"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    worst = float(out.stdout.split("worst relative error")[1].split()[0])
    assert 0 < worst <= 1e-6


# -- the worked examples, to the digits the issue gives -------------------------
MAZUR = {
    "net_h1": "0.3775", "out_h1": "0.593269992", "E_total": "0.298371109",
    "w5": "0.35891648", "w6": "0.408666186", "w7": "0.511301270", "w8": "0.561370121",
    "w1": "0.149780716", "w2": "0.19956143", "w3": "0.24975114", "w4": "0.29950229",
}


@pytest.mark.parametrize("key", MAZUR)
def test_mazur_values(key):
    lines, values = mazur()
    digits = len(MAZUR[key].split(".")[1])
    assert round(float(values[key]), digits) == pytest.approx(float(MAZUR[key]), abs=10 ** -(digits + 3))
    assert any(line.strip().startswith(f"{key} = ") for line in lines)


def test_relu_values():
    _, v = relu()
    assert np.allclose(v["z1"], [1.0, 1.9]) and np.allclose(v["a1"], [1.0, 1.9])
    assert round(v["y_hat"], 10) == 2.46 and round(v["L"], 10) == 0.1458
    assert round(v["dL/dz2"], 10) == -0.54
    assert np.allclose(v["dL/dW2"], [-0.54, -1.026]) and round(v["dL/db2"], 10) == -0.54
    assert np.allclose(v["dL/da1"], [-0.324, -0.486])
    assert np.allclose(v["dL/dW1"], [[-0.324, -0.648], [-0.486, -0.972]])
    assert np.allclose(v["dL/db1"], [-0.324, -0.486])


@pytest.mark.parametrize("example,shows", [
    ("mazur", ["net_h1 = 0.3775", "out_h1 = 0.593269992", "E_total = 0.298371109", "w5 = 0.35891648", "w6 = 0.408666186"]),
    ("relu", ["z1 = W1 x + b1 = [1.0, 1.9]", "= 2.46", "= 0.1458", "[-0.54, -1.026]", "[[-0.324, -0.648], [-0.486, -0.972]]"]),
])
def test_explain_cli_prints_the_values(example, shows):
    out = subprocess.run([sys.executable, "-m", "fastbp.cli", "explain", example], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for s in shows:
        assert s in out.stdout, s


# -- dtypes and batch sizes -----------------------------------------------------
def _pair(seed=0, **kw):
    a = Network([20, 16, 8, 4], dtype="float32", seed=seed, **kw)
    b = Network([20, 16, 8, 4], dtype="float64", seed=seed, **kw)
    return a, b


@pytest.mark.parametrize("hidden,output,cost", [("sigmoid", "sigmoid", "cross_entropy"), ("relu", "softmax", "log_likelihood"), ("tanh", "identity", "quadratic")])
def test_float32_agrees_with_float64(hidden, output, cost):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((33, 20))
    Y = np.eye(4)[rng.integers(0, 4, 33)]
    f32, f64 = _pair(hidden=hidden, output=output, cost=cost)
    assert np.allclose(f32.get_params(), f64.get_params(), atol=1e-7)
    g32 = f32.gradient(X.astype(np.float32), Y.astype(np.float32)).copy()
    g64 = f64.gradient(X, Y).copy()
    assert g32.dtype == np.float32 and g64.dtype == np.float64
    assert np.allclose(g32, g64, rtol=1e-3, atol=1e-5)
    assert np.allclose(f32.feedforward(X), f64.feedforward(X), atol=1e-5)


@pytest.mark.parametrize("batch", [1, 7, 513])
def test_batch_gradient_is_mean_of_per_example_gradients(batch):
    """The matrix form over a batch equals the average of one-sample backprops."""
    rng = np.random.default_rng(batch)
    net = Network([6, 5, 3], "tanh", "softmax", "log_likelihood", dtype="float64", seed=2)
    X = rng.standard_normal((batch, 6))
    Y = np.eye(3)[rng.integers(0, 3, batch)]
    g_batch = net.gradient(X, Y).copy()
    g_each = sum(net.gradient(X[i : i + 1], Y[i : i + 1]).copy() for i in range(batch)) / batch
    assert np.allclose(g_batch, g_each, rtol=1e-10, atol=1e-12)


def test_buffers_are_reused_and_params_are_views_of_one_buffer():
    net = Network([10, 8, 3], "relu", "softmax", "log_likelihood")
    X = np.ones((16, 10), np.float32)
    Y = np.eye(3, dtype=np.float32)[np.zeros(16, int)]
    net.gradient(X, Y)
    z0 = net._buf[True].z[0]
    net.gradient(X[:5], Y[:5])  # a smaller batch uses the same arrays
    assert net._buf[True].z[0] is z0
    for W in net.weights + net.biases:
        assert np.shares_memory(W, net.params)
    for G in net.grad_weights + net.grad_biases:
        assert np.shares_memory(G, net.grads)
    assert net.n_params == 10 * 8 + 8 * 3 + 8 + 3


def test_predict_and_input_shape_check():
    net = Network([4, 3, 2], "relu", "softmax", "log_likelihood")
    p = net.predict(np.zeros((5, 4)))
    assert p.shape == (5,) and set(p.tolist()) <= {0, 1}
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        net.predict(np.zeros((5, 3)))


BAD_NETWORKS = [
    (dict(sizes=[3]), ValueError, "sizes must list at least two positive layer sizes"),
    (dict(sizes=[3, 0, 2]), ValueError, "sizes must list at least two positive layer sizes"),
    (dict(hidden="softplus"), ValueError, "unknown hidden activation 'softplus': choose one of sigmoid, tanh"),
    (dict(cost="log_likelihood", output="sigmoid"), ValueError, "cost 'log_likelihood' does not pair with output 'sigmoid'"),
    (dict(init="zeros"), ValueError, "unknown init 'zeros'"),
    (dict(dtype="float16"), BackendError, "unsupported dtype 'float16'"),
]


@pytest.mark.parametrize("bad,error,match", BAD_NETWORKS)
def test_bad_network_arguments_are_refused(bad, error, match):
    kw = dict(sizes=[3, 4, 2], hidden="relu", output="softmax", cost="log_likelihood")
    kw.update(bad)
    with pytest.raises(error, match=re.escape(match)):
        Network(**kw)


def test_initialisers_have_the_documented_scale():
    n_in, n_out = 400, 300
    stds = {}
    for init in ("normal", "normal_scaled", "glorot", "he"):
        net = Network([n_in, n_out], output="identity", cost="quadratic", init=init, dtype="float64", seed=0)
        stds[init] = (net.weights[0].std(), net.biases[0].std())
    assert stds["normal"][0] == pytest.approx(1.0, rel=0.02) and stds["normal"][1] == pytest.approx(1.0, rel=0.15)
    assert stds["normal_scaled"][0] == pytest.approx(1 / math.sqrt(n_in), rel=0.02)
    assert stds["glorot"][0] == pytest.approx(math.sqrt(2 / (n_in + n_out)), rel=0.02) and stds["glorot"][1] == 0
    assert stds["he"][0] == pytest.approx(math.sqrt(2 / n_in), rel=0.02) and stds["he"][1] == 0


def test_stable_for_large_inputs():
    """No overflow warnings and finite costs for |z| in the thousands."""
    X = np.array([[1e4, -1e4], [-3e3, 5e3]], np.float32)
    for output, cost in gradcheck.OUTPUT_COSTS[:3]:
        net = Network([2, 3, 2], "sigmoid", output, cost, init="normal")
        net.weights[1][...] = 1e3
        Y = np.array([[1, 0], [0, 1]], np.float32)
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            loss = net.loss(X, Y)
            g = net.gradient(X, Y)
        assert math.isfinite(loss) and np.isfinite(g).all()


# -- optimisers ------------------------------------------------------------------
def _problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 5))
    Y = np.eye(3)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0)]
    return X, Y


@pytest.mark.parametrize("name,kw,lr", [("sgd", {}, 0.5), ("momentum", {"momentum": 0.9}, 0.1), ("nesterov", {"momentum": 0.9}, 0.1), ("adam", {}, 0.01), ("momentum", {"weight_decay": 1e-3}, 0.1)])
def test_every_optimizer_reduces_the_loss(name, kw, lr):
    X, Y = _problem()
    net = Network([5, 8, 3], "tanh", "softmax", "log_likelihood", dtype="float64", seed=1)
    opt = optim.make(name, net, **kw)
    before = net.loss(X, Y)
    for _ in range(50):
        net.gradient(X, Y)
        opt.step(lr)
    assert net.loss(X, Y) < 0.5 * before


def _one_step(name, lr, steps=2, **kw):
    X, Y = _problem()
    net = Network([5, 4, 3], "sigmoid", "softmax", "log_likelihood", dtype="float64", seed=4)
    opt = optim.make(name, net, **kw)
    p0, grads = net.get_params(), []
    for _ in range(steps):
        grads.append(net.gradient(X, Y).copy())
        opt.step(lr)
    return p0, grads, net.get_params(), net.n_weights


def test_sgd_step_by_hand():
    p0, (g0, g1), p, _ = _one_step("sgd", 0.3)
    assert np.allclose(p, p0 - 0.3 * g0 - 0.3 * g1, rtol=0, atol=1e-14)


def test_sgd_weight_decay_is_nielsens_rule():
    """w ← (1 − ηλ') w − η g on weights; biases not decayed."""
    p0, (g0,), p, nw = _one_step("sgd", 0.3, steps=1, weight_decay=0.01)
    expect = p0 - 0.3 * g0
    expect[:nw] -= 0.3 * 0.01 * p0[:nw]
    assert np.allclose(p, expect, rtol=0, atol=1e-14)


def test_momentum_and_nesterov_steps_by_hand():
    mu, lr = 0.9, 0.2
    p0, (g0, g1), p, _ = _one_step("momentum", lr, momentum=mu)
    v1 = -lr * g0
    v2 = mu * v1 - lr * g1
    assert np.allclose(p, p0 + v1 + v2, rtol=0, atol=1e-14)
    p0, (g0, g1), p, _ = _one_step("nesterov", lr, momentum=mu)
    v1 = -lr * g0
    p1 = p0 + mu * v1 - lr * g0
    v2 = mu * v1 - lr * g1
    assert np.allclose(p, p1 + mu * v2 - lr * g1, rtol=0, atol=1e-14)


def test_adam_steps_by_hand():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    p0, grads, p, _ = _one_step("adam", lr, steps=2)
    m = v = 0
    q = p0.copy()
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        q = q - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    assert np.allclose(p, q, rtol=0, atol=1e-14)


def test_optimizer_state_round_trip():
    net = Network([3, 2], output="identity", cost="quadratic", dtype="float64")
    opt = optim.make("adam", net)
    net.gradient(np.ones((2, 3)), np.zeros((2, 2)))
    opt.step(0.1)
    other = optim.make("adam", net)
    other.load_state(opt.state())
    assert other.t == 1 and np.array_equal(other.m, opt.m) and np.array_equal(other.v, opt.v)


# -- schedules ------------------------------------------------------------------
def test_schedules():
    total, per = 100, 10
    assert schedules.make("constant", 0.1, total, per)(57) == 0.1
    step = schedules.make("step", 1.0, total, per, step_epochs=3, gamma=0.5)
    assert step(0) == 1.0 and step(29) == 1.0 and step(30) == 0.5 and step(60) == 0.25
    cos = schedules.make("cosine", 1.0, total, per, min_lr=0.1)
    assert cos(0) == pytest.approx(1.0) and cos(50) == pytest.approx(0.55) and cos(100) == pytest.approx(0.1)
    warm = schedules.make("cosine", 1.0, total, per, warmup=0.1)
    assert warm(0) == pytest.approx(0.1) and warm(9) == pytest.approx(1.0) and warm(99) < 0.01
    oc = schedules.make("one_cycle", 1.0, total, per, pct_start=0.25, div=10, final_div=100)
    assert oc(0) == pytest.approx(0.1) and oc(25) == pytest.approx(1.0) and oc(100) == pytest.approx(0.01)
    assert max(oc(s) for s in range(total)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown schedule 'exponential': choose one of constant, step, cosine, one_cycle"):
        schedules.make("exponential", 1.0, total, per)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_cost_with_the_softmax_normaliser_equals_the_cost_alone(dtype):
    """Network.batch_cost hands the log-likelihood the softmax's ln Σ e^z; the
    value must be the one the cost computes from z and a alone."""
    rng = np.random.default_rng(3)
    net = Network([6, 5, 4], hidden="relu", output="softmax", cost="log_likelihood", dtype=dtype, seed=1)
    for n in (1, 7, 7, 30):
        X = (rng.standard_normal((n, 6)) * 20).astype(dtype)
        Y = np.eye(4, dtype=dtype)[rng.integers(0, 4, n)]
        a = net.forward(X)
        alone = float(net.cost.fn(net.bk, net._out[0], a, Y))  # no log_norm: from z and a alone
        assert float(net.batch_cost(Y)) == pytest.approx(alone, rel=1e-5 if dtype == "float32" else 1e-12)
        assert alone == pytest.approx(-np.sum(Y * np.log(a.astype(np.float64))), rel=1e-4)


# -- the order of calls: a wrong one says which call must come first ---------------
def test_backward_needs_a_training_forward_of_the_same_batch():
    net = Network([4, 3, 2], hidden="relu", output="softmax", cost="log_likelihood", dtype="float64")
    X, Y = np.ones((5, 4)), np.eye(2)[[0, 1, 0, 1, 0]]
    with pytest.raises(RuntimeError, match=r"backward of 5 rows: call forward\(X, train=True\) on the same batch first .*there was none"):
        net.backward(X, Y)
    net.forward(X)  # inference: leaves the training buffers alone
    with pytest.raises(RuntimeError, match="there was none"):
        net.backward(X, Y)
    net.forward(X[:3], train=True)
    with pytest.raises(RuntimeError, match="the last one had 3 rows"):
        net.backward(X, Y)
    net.forward(X, train=True)
    assert np.isfinite(net.backward(X, Y)).all()


def test_batch_cost_needs_a_forward_of_its_batch():
    net = Network([4, 3, 2], hidden="relu", output="softmax", cost="log_likelihood", dtype="float64")
    Y = np.eye(2)[[0, 1, 0]]
    with pytest.raises(RuntimeError, match="call Network.forward first"):
        net.batch_cost(Y)
    net.forward(np.ones((5, 4)))
    with pytest.raises(ValueError, match=r"targets of shape \(3, 2\) for a forward pass of shape \(5, 2\)"):
        net.batch_cost(Y)
    net.forward(np.ones((3, 4)))
    assert float(net.batch_cost(Y)) > 0


# -- dropout's draws: SplitMix64, addressed by (stream, position) --------------------
def _splitmix64(state, n):
    """Steele, Lea & Flood's SplitMix64 in Python integers: its first n outputs from `state`."""
    out = []
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) % 2**64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
        out.append(z ^ (z >> 31))
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("width", [6, 5])
def test_dropout_draws_are_splitmix64_at_their_positions(numpy_reference, dtype, width):
    """Row r of a draw holds outputs start + 3r + 1, 2, 3 of the stream (⌈width/2⌉ = 3), the
    top 24 bits of each output's high and low halves."""
    from fastbp.backend import get_backend

    bk = get_backend("numpy")
    assert [hex(v) for v in _splitmix64(0, 3)] == ["0xe220a8397b1dcdaf", "0x6e789e6aa1b965f4", "0x6c45d188009454f"]
    key, start = 2**64 - 12345, (7 << 32) + 3  # the state wraps around 2^64
    out = np.empty((4, width), dtype)
    bk.uniform(key, start, out)
    outputs = _splitmix64((key + start * 0x9E3779B97F4A7C15) % 2**64, 12)
    draws = [d / 2**24 for v in outputs for d in (v >> 40, (v >> 8) % 2**24)]
    assert out.tolist() == [draws[6 * r : 6 * r + width] for r in range(4)]  # exact: 24-bit fractions
    tail = np.empty((2, width), dtype)[:, :width]
    bk.uniform(key, start + 6, tail)  # rows 2 and 3 alone
    assert np.array_equal(tail, out[2:])
    strided = np.empty((4, 2 * width), dtype)[:, ::2]  # a view that is not C-contiguous
    bk.uniform(key, start, strided)
    assert np.array_equal(strided, out)


def test_dropout_masks_resume_and_split_over_processes(numpy_reference):
    """A resumed epoch's masks are the uninterrupted run's; a process holding rows lo:hi of a
    batch draws exactly those rows of the whole batch's mask; each unit is kept with
    probability 1 − p and scaled by 1/(1 − p)."""
    kw = dict(hidden="relu", output="softmax", cost="log_likelihood", dtype="float64", dropout=0.3)
    X = np.random.default_rng(0).standard_normal((400, 30))

    def masks(net, x, n):
        net.forward(x, train=True)
        return [m.copy() for m in net.buffers(len(x)).rows(len(x)).mask[:n]]

    whole = Network([30, 500, 40, 4], **kw)
    whole.seed_dropout([1, 2, 1])
    run = [masks(whole, X, 2) for _ in range(3)]
    kept = run[0][0] != 0
    assert abs(kept.mean() - 0.7) < 0.01 and np.allclose(run[0][0][kept], 1 / 0.7)
    assert not np.array_equal(run[0][0], run[1][0]) and not np.array_equal(run[0][0][:, :40], run[0][1])
    resumed = Network([30, 500, 40, 4], **kw)
    resumed.seed_dropout([1, 2, 1], skip=2)
    assert all(np.array_equal(a, b) for a, b in zip(masks(resumed, X, 2), run[2]))
    part = Network([30, 500, 40, 4], **kw)
    part.seed_dropout([1, 2, 1])
    part.drop_share = (150, 400)
    assert all(np.array_equal(a, b[150:275]) for a, b in zip(masks(part, X[150:275], 2), run[0]))
