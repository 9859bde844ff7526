"""numpy and cupy agree (marked gpu: skipped where no CUDA device is usable,
run on the lent device with `python -m pytest -m gpu`)."""

import numpy as np
import pytest

from fastbp.backend import cupy_usable
from fastbp.nn import gradcheck, optim
from fastbp.nn.network import Network

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not cupy_usable(), reason="no usable CUDA device / cupy")]
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-4, atol=1e-5)}


def _pair(dtype, hidden="relu", output="softmax", cost="log_likelihood", dropout=0.0):
    kw = dict(hidden=hidden, output=output, cost=cost, dtype=dtype, seed=5, init="glorot", dropout=dropout)
    return Network([30, 20, 15, 4], backend="numpy", **kw), Network([30, 20, 15, 4], backend="cupy", **kw)


def _data(dtype, n=37):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 30)).astype(dtype), np.eye(4, dtype=dtype)[rng.integers(0, 4, n)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu", "leaky_relu"])
@pytest.mark.parametrize("output,cost", gradcheck.OUTPUT_COSTS)
def test_forward_and_gradients_agree(dtype, hidden, output, cost):
    cpu, gpu = _pair(dtype, hidden, output, cost)
    X, Y = _data(dtype)
    a_cpu = cpu.feedforward(X)
    a_gpu = gpu.bk.to_numpy(gpu.feedforward(gpu.xp.asarray(X)))
    assert np.allclose(a_cpu, a_gpu, **TOL[dtype])
    g_cpu = cpu.gradient(X, Y).copy()
    g_gpu = gpu.bk.to_numpy(gpu.gradient(gpu.xp.asarray(X), gpu.xp.asarray(Y)))
    assert np.allclose(g_cpu, g_gpu, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
def test_optimizer_steps_agree(dtype, name):
    cpu, gpu = _pair(dtype)
    X, Y = _data(dtype)
    opt_c, opt_g = optim.make(name, cpu, weight_decay=1e-3), optim.make(name, gpu, weight_decay=1e-3)
    Xg, Yg = gpu.xp.asarray(X), gpu.xp.asarray(Y)
    for _ in range(5):
        cpu.gradient(X, Y)
        opt_c.step(0.05)
        gpu.gradient(Xg, Yg)
        opt_g.step(0.05)
    assert np.allclose(cpu.get_params(), gpu.get_params(), **TOL[dtype])


def test_gradcheck_on_the_gpu():
    worst = max(r[-1] for r in gradcheck.check_all(backend="cupy"))
    assert worst < 1e-6


def test_training_on_cupy_matches_numpy(tmp_path):
    from fastbp.train import config, trainer

    summaries = []
    for backend in ("numpy", "cupy"):
        cfg = config.load(None, ["train.epochs=3", f'train.backend="{backend}"', 'train.dtype="float64"', 'schedule.name="constant"'])
        summaries.append(trainer.Trainer(cfg, write=False, quiet=True).run())
    # Shuffles differ (each device's own generator), so compare outcomes, not bits.
    assert abs(summaries[0]["test_accuracy"] - summaries[1]["test_accuracy"]) < 0.03


# -- the fused kernels (fastbp/kernels.py) against their numpy references ---------------
def _bk():
    from fastbp.backend import get_backend

    return get_backend("cupy")


def _rel(out, ref):
    """‖out − ref‖ / ‖ref‖ against a float64 reference; NaN (an unwritten output) never passes."""
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    err = np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-300)
    return err if np.isfinite(out).all() else np.inf


REL = {"float64": 1e-13, "float32": 1e-6}


def _layers(bk, hidden="relu", output="softmax", cost="log_likelihood"):
    from fastbp.nn import activations, costs
    from fastbp.nn.fused import FusedLayers

    return FusedLayers.make(bk, activations.make(hidden, "hidden", 0.05), activations.make(output, "output"),
                            costs.make(cost, output))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu", "leaky_relu", "identity"])
@pytest.mark.parametrize("rows,cols", [(1, 1), (333, 37), (2048, 1024)])
def test_bias_activation_kernel(act, dtype, rows, cols):
    from fastbp import kernels

    bk, rng = _bk(), np.random.default_rng()  # fresh inputs each run
    z, b = (3 * rng.standard_normal((rows, cols))).astype(dtype), rng.standard_normal(cols).astype(dtype)
    # z + b rounded as the kernel rounds it; σ of it in float64
    z_ref, a_ref = kernels.bias_activation_reference((z + b).astype(np.float64), 0.0, act, 0.05)
    zg, a = bk.xp.asarray(z), bk.xp.full((rows, cols), np.nan, dtype)  # poisoned: every element must be written
    _layers(bk, hidden=act).bias_activation(zg, bk.xp.asarray(b), a, False, None)
    assert _rel(bk.to_numpy(zg), z_ref) < REL[dtype] and _rel(bk.to_numpy(a), a_ref) < REL[dtype]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("rows,cols", [(1, 1), (5, 10), (333, 10), (64, 100), (3, 1000)])
def test_bias_softmax_kernel(dtype, rows, cols):
    from fastbp import kernels

    bk, rng = _bk(), np.random.default_rng()
    z, b = (20 * rng.standard_normal((rows, cols))).astype(dtype), rng.standard_normal(cols).astype(dtype)
    z_ref, a_ref, ln_ref = kernels.bias_softmax_reference((z + b).astype(np.float64), 0.0)  # as above
    zg, a = bk.xp.asarray(z), bk.xp.full((rows, cols), np.nan, dtype)
    log_norm = bk.xp.full((rows, 1), np.nan, dtype)
    assert _layers(bk).bias_activation(zg, bk.xp.asarray(b), a, True, log_norm) is log_norm
    assert _rel(bk.to_numpy(zg), z_ref) < REL[dtype] and _rel(bk.to_numpy(a), a_ref) < 10 * REL[dtype]
    assert _rel(bk.to_numpy(log_norm), ln_ref) < 10 * REL[dtype]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("output,cost", gradcheck.OUTPUT_COSTS)
def test_output_delta_kernel(output, cost, dtype):
    from fastbp import kernels

    bk, rng = _bk(), np.random.default_rng()
    fused = _layers(bk, output=output, cost=cost)
    z, y = rng.standard_normal((333, 10)).astype(dtype), np.eye(10, dtype=dtype)[rng.integers(0, 10, 333)]
    a = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True) if output == "softmax" else kernels.sigma_reference(output, z, 0)
    delta = bk.xp.full(z.shape, np.nan, dtype)
    fused.output_delta(bk.xp.asarray(z), bk.xp.asarray(a), bk.xp.asarray(y), delta, bk.xp.empty_like(delta), 1 / 333)
    name = {v: k for k, v in kernels.codes().items()}[fused.delta_code]
    ref = kernels.output_delta_reference(z.astype(np.float64), a.astype(np.float64), y, name, 1 / 333)
    assert _rel(bk.to_numpy(delta), ref) < REL[dtype]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu", "leaky_relu"])
def test_activation_grad_kernel(act, dtype):
    from fastbp import kernels

    bk, rng = _bk(), np.random.default_rng()
    z, delta = rng.standard_normal((333, 37)).astype(dtype), rng.standard_normal((333, 37)).astype(dtype)
    a = kernels.sigma_reference(act, z, 0.05).astype(dtype)
    ref = kernels.activation_grad_reference(delta.astype(np.float64), z, a.astype(np.float64), act, 0.05)
    dg = bk.xp.asarray(delta)
    _layers(bk, hidden=act).activation_grad(dg, bk.xp.asarray(z), bk.xp.asarray(a))
    assert _rel(bk.to_numpy(dg), ref) < REL[dtype]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
def test_optimizer_kernel(name, dtype):
    """Several steps from random state, over a buffer larger than one launch's threads."""
    from fastbp import kernels

    bk, rng = _bk(), np.random.default_rng()
    net = Network([1000, 700, 10], backend="cupy", dtype=dtype, seed=1)  # 707,010 parameters
    opt = optim.make(name, net, weight_decay=0.01)
    assert opt._fused is not None
    for s in ("m", "v"):
        if hasattr(opt, s):
            getattr(opt, s)[...] = bk.xp.asarray(np.abs(rng.standard_normal(net.n_params)).astype(dtype))
    p = net.get_params().astype(np.float64)
    state = {s: bk.to_numpy(getattr(opt, s)).astype(np.float64) for s in ("m", "v") if hasattr(opt, s)}
    for _ in range(3):
        g = rng.standard_normal(net.n_params).astype(dtype)
        net.grads[...] = bk.xp.asarray(g)
        opt.t += 1
        args = [state["m" if x is getattr(opt, "m", None) else "v"] if isinstance(x, bk.xp.ndarray) else x
                for x in opt._fused_args(0.01)]
        opt.t -= 1
        p, *new = kernels.optimizer_reference(name, p, g.astype(np.float64), net.n_weights, 0.01, *args)
        state.update(zip([s for s in ("m", "v") if s in state], new))
        opt.step(0.01)
    assert _rel(net.get_params(), p) < 100 * REL[dtype]
    for s, ref in state.items():
        assert _rel(bk.to_numpy(getattr(opt, s)), ref) < 100 * REL[dtype], s


def test_fused_and_unfused_agree_on_the_device(monkeypatch):
    """The same network and Adam with FASTBP_FUSED's switch on and off, on the GPU."""
    bk = _bk()
    X, Y = _data("float64")
    nets = []
    for on in (True, False):
        monkeypatch.setattr(bk, "fused", on)
        net = Network([30, 20, 15, 4], hidden="tanh", output="softmax", cost="log_likelihood", backend="cupy", dtype="float64", seed=2)
        opt = optim.make("adam", net, weight_decay=1e-3)
        assert (net.fused is not None, opt._fused is not None) == (on, on)
        for _ in range(4):
            net.gradient(bk.xp.asarray(X), bk.xp.asarray(Y))
            opt.step(0.01)
        nets.append(net.get_params())
    assert np.allclose(*nets, **TOL["float64"])


# -- checkpoints across devices, dropout and shifts on the GPU, evaluation ---------------
def _cfg(tmp_path, backend, *sets):
    from fastbp.train import config

    return config.load(None, ["output.plots=false", "output.grad_norms=false", f'output.dir="{tmp_path}"',
                              f'train.backend="{backend}"', *sets])


@pytest.mark.parametrize("first,second", [("cupy", "numpy"), ("numpy", "cupy")])
def test_checkpoint_moves_between_gpu_and_cpu(tmp_path, first, second):
    """Written on one device, resumed on the other: same weights and optimiser
    state, so one step on the same batch gives the same weights on both."""
    from fastbp.train import checkpoint, config, trainer

    run = trainer.Trainer(_cfg(tmp_path, first, "train.epochs=2", 'train.dtype="float64"', 'optimizer.name="adam"', "optimizer.lr=0.003"),
                          quiet=True)
    run.run()
    ckpt = checkpoint.load(run.run_dir.path / "last.npz")
    assert np.array_equal(ckpt.params, run.setup.net.get_params()) and ckpt.state.epoch == 2
    pairs = []
    for backend in (first, second):
        net = ckpt.make_network(backend)
        opt = optim.make("adam", net)
        checkpoint.restore(ckpt, net, opt)
        x = net.xp.asarray(np.random.default_rng(1).standard_normal((16, net.sizes[0])))
        net.gradient(x, net.xp.asarray(np.eye(net.sizes[-1])[np.arange(16) % net.sizes[-1]]))
        opt.step(0.01)
        pairs.append((net.get_params(), opt.t))
    assert pairs[0][1] == pairs[1][1] == ckpt.state.step + 1
    assert np.allclose(pairs[0][0], pairs[1][0], **TOL["float64"])
    resumed = trainer.Trainer(config.from_dict(ckpt.config.to_dict(), [f'train.backend="{second}"', "train.epochs=3"]),
                              resume=ckpt, quiet=True)
    summary = resumed.run()
    # Shuffles differ between devices: it learnt (chance is 0.1), no more is asked of it here.
    assert resumed.setup.net.bk.name == second and len(resumed.state.history) == 3 and summary["test_accuracy"] > 0.6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fused", ["1", "0"])
def test_dropout_draws_on_the_gpu_are_the_cpus(dtype, fused, monkeypatch):
    """The kernel (and the array code on cupy, FASTBP_FUSED=0) draws what numpy draws, bit for bit."""
    from fastbp.backend import Backend, get_backend

    monkeypatch.setenv("FASTBP_FUSED", fused)
    bk, cpu = type(_bk())(), get_backend("numpy")
    monkeypatch.setattr(cpu, "jit", False)
    for key, start, shape in [(2**64 - 7, (3 << 32) + 5, (128, 1200)), (11, 0, (5, 7))]:
        got, want = bk.xp.empty(shape, dtype), np.empty(shape, dtype)
        bk.uniform(key, start, got)
        Backend.uniform(cpu, key, start, want)
        assert np.array_equal(bk.to_numpy(got), want), (key, start, shape)


def test_dropout_masks_on_the_gpu():
    """Inverted dropout: each hidden unit kept with probability 1 − p and scaled by 1/(1 − p);
    a resumed epoch's generator, skipped ahead, draws the same masks."""
    bk = _bk()
    net = Network([30, 500, 4], backend="cupy", dropout=0.3, seed=0)
    x = bk.xp.asarray(np.random.default_rng(0).standard_normal((400, 30)).astype(np.float32))
    net.seed_dropout(7)
    masks = []
    for _ in range(3):
        net.forward(x, train=True)
        masks.append(bk.to_numpy(net._buf[True].rows(400).mask[0]).copy())
    kept = masks[0] != 0
    assert abs(kept.mean() - 0.7) < 0.01 and np.allclose(masks[0][kept], 1 / 0.7)
    assert not np.array_equal(masks[0], masks[1])
    net.seed_dropout(7, skip=2)
    net.forward(x, train=True)
    assert np.array_equal(bk.to_numpy(net._buf[True].rows(400).mask[0]), masks[2])


def test_random_shift_on_the_gpu():
    """data.shift on cupy: every image is its original moved by (dy, dx) in [-s, s]², border 0."""
    from fastbp.train.augment import RandomShift

    bk = _bk()
    images = np.random.default_rng(0).integers(1, 256, (64, 5 * 4)).astype(np.uint8)
    shift = RandomShift(bk, (5, 4), 2, 64, np.uint8)
    shift.new_epoch(0, 0, 64)
    out = bk.xp.asarray(images[10:40].copy())
    shift(out, 10)
    out, offsets = bk.to_numpy(out), bk.to_numpy(shift.offsets)
    moves = set()
    for k, img in enumerate(out):
        dy, dx = divmod(int(offsets[10 + k]), shift.W)
        canvas = np.zeros((9, 8), np.uint8)
        canvas[2:7, 2:6] = images[10 + k].reshape(5, 4)
        assert np.array_equal(img.reshape(5, 4), canvas[dy : dy + 5, dx : dx + 4]), (k, dy, dx)
        moves.add((dy, dx))
    assert len(moves) > 5


def test_training_with_dropout_and_shift_on_the_gpu(tmp_path):
    from fastbp.train import trainer

    summary = trainer.Trainer(_cfg(tmp_path, "cupy", "train.epochs=3", "model.dropout=0.1", "data.shift=1"), write=False, quiet=True).run()
    assert summary["test_accuracy"] > 0.6  # numpy reaches about 0.87 with its own shuffles; chance is 0.1


def test_evaluation_paths_on_the_gpu(tmp_path):
    """evaluate, predict and grad_norms on cupy give numpy's answers for the same weights."""
    from fastbp.train import build, loop, trainer

    run = trainer.Trainer(_cfg(tmp_path, "cupy", "train.epochs=1", 'train.dtype="float64"'), write=False, quiet=True)
    run.run()
    gpu = run.setup.net
    cpu = Network(gpu.sizes, gpu.hidden_name, gpu.output_name, gpu.cost_name, backend="numpy", dtype="float64")
    cpu.set_params(gpu.get_params())
    data = {}
    for bk_name in ("cupy", "numpy"):
        data[bk_name] = build.to_device(run.setup.dataset, bk_name, dtype="float64")[0]["test"]
    (l_g, acc_g), (l_c, acc_c) = loop.evaluate(gpu, data["cupy"]), loop.evaluate(cpu, data["numpy"])
    assert abs(l_g - l_c) < 1e-9 and acc_g == acc_c
    assert np.array_equal(loop.predict(gpu, data["cupy"]), loop.predict(cpu, data["numpy"]))
    for g, c in zip(loop.grad_norms(gpu, data["cupy"]), loop.grad_norms(cpu, data["numpy"])):
        assert np.allclose(g, c, rtol=1e-9)


def test_estimator_on_the_gpu():
    from sklearn.datasets import load_digits

    from fastbp import FastBPClassifier

    X, y = load_digits(return_X_y=True)
    X = X / 16
    clf = FastBPClassifier(hidden_layer_sizes=(32,), max_iter=50, random_state=0, backend="cupy").fit(X[:1500], y[:1500])
    assert clf.score(X[1500:], y[1500:]) > 0.85


def test_a_captured_step_replays_the_eager_step():
    """backend.capture: a training step recorded as a CUDA graph, replayed on new batches
    refilled in place, gives the weights of the same steps run eagerly (momentum, constant lr:
    no scalar changes between steps)."""
    bk = _bk()
    nets = [Network([30, 20, 15, 4], hidden="relu", output="softmax", cost="log_likelihood", backend="cupy", seed=3)
            for _ in range(2)]
    opts = [optim.make("momentum", net) for net in nets]
    x, y = bk.xp.empty((37, 30), np.float32), bk.xp.empty((37, 4), np.float32)
    batches = [_data("float32") for _ in range(4)]
    for X, Y in batches:
        X += np.random.default_rng(len(X)).standard_normal(X.shape).astype(np.float32)

    def step(net, opt):
        net.gradient(x, y)
        opt.step(0.05)

    x[...], y[...] = bk.xp.asarray(batches[0][0]), bk.xp.asarray(batches[0][1])
    replay = bk.capture(lambda: step(nets[1], opts[1]))  # one step run, then one recorded (not run)
    step(nets[0], opts[0])
    for X, Y in batches[1:]:
        x[...], y[...] = bk.xp.asarray(X), bk.xp.asarray(Y)
        step(nets[0], opts[0])
        replay()
    assert np.allclose(nets[0].get_params(), nets[1].get_params(), **TOL["float32"])
    assert not np.allclose(nets[0].get_params(), Network([30, 20, 15, 4], backend="numpy", seed=3).get_params())


def test_tf32_switch():
    """TF32 rounds float32 products' inputs to 10 mantissa bits: off, a product is float32-exact
    to ~1e-6; on, it differs from that by more, within TF32's ~1e-3, through cupy's `@` and the
    backend's direct GEMM alike. Off again restores. The switch is put back as it was, pass or fail."""
    from fastbp.backend import CupyBackend

    bk, rng = _bk(), np.random.default_rng()
    if not isinstance(bk, CupyBackend):
        pytest.skip("TF32 is the device's: FASTBP_EMULATE_GPU has none")
    a, b = rng.standard_normal((512, 512)).astype(np.float32), rng.standard_normal((512, 512)).astype(np.float32)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    ag, bg, out = bk.xp.asarray(a), bk.xp.asarray(b), bk.xp.empty((512, 512), np.float32)
    errs, before = [], bk.tf32
    try:
        for on in (False, True, False):
            assert bk.set_tf32(on) is True and bk.tf32 is on
            errs.append((_rel(bk.to_numpy(ag @ bg), ref), _rel(bk.to_numpy(bk.matmul(ag, bg, out)), ref)))
    finally:
        bk.set_tf32(before)
    for path in (0, 1):
        assert errs[0][path] < 1e-5 and errs[2][path] < 1e-5 and 1e-5 < errs[1][path] < 3e-3, errs


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n,n_in,n_out", [(37, 30, 20), (1, 5, 3), (512, 784, 1024), (130, 1024, 10)])
def test_direct_gemms_equal_cupy_matmul(dtype, n, n_in, n_out):
    """The network's three products through the backend's direct cuBLAS call (fastbp/cublas.py)
    against cupy.matmul on the same device arrays, and a layout it does not take (cupy.matmul)."""
    bk, rng = _bk(), np.random.default_rng(n)
    xp, tol = bk.xp, {"float64": 1e-12, "float32": 1e-5}[dtype]
    params = xp.asarray(rng.standard_normal(3 + n_out * n_in).astype(dtype))
    W = params[3:].reshape(n_out, n_in)  # a view inside a flat buffer, as the network's
    a_prev = xp.asarray(rng.standard_normal((n + 2, n_in)).astype(dtype))[:n]
    delta = xp.asarray(rng.standard_normal((n, n_out)).astype(dtype))
    for a, b in [(a_prev, W.T), (delta.T, a_prev), (delta, W), (a_prev[:, ::2], W[:, ::2].T)]:
        out = xp.full((a.shape[0], b.shape[1]), np.nan, dtype)
        assert bk.matmul(a, b, out=out) is out
        assert _rel(bk.to_numpy(out), bk.to_numpy(xp.matmul(a, b)).astype(np.float64)) < tol, (a.shape, b.shape)


def test_epochs_with_a_graph_step_equal_epochs_without(tmp_path):
    """loop.GraphStep: full batches replayed as one CUDA graph, the short last batch eager,
    the schedule's learning rate changing every step, evaluation and gradient norms between
    epochs: the same weights and running metrics."""
    from fastbp.train import build, loop

    cfg = _cfg(tmp_path, "cupy", 'train.dtype="float64"', "train.batch_size=100", 'schedule.name="cosine"', "train.epochs=3")
    results = []
    for graphed in (False, True):
        s = build.build(cfg)
        assert s.batches.n_batches * 100 != s.data["train"].n  # a short last batch
        graph, state = (loop.GraphStep(s.net, s.batches) if graphed else None), loop.TrainState()
        sums = []
        for _ in range(3):
            loop.train_epoch(s.net, s.opt, s.lr_at, s.batches, state, graph=graph)
            sums += [state.loss_sum, state.correct, state.seen]
            state.next_epoch()
            # As a run does between epochs: both replace buffers the graph recorded (larger batches).
            loop.evaluate(s.net, s.data["test"])
            loop.grad_norms(s.net, s.data["train"])
        results.append((s.net.get_params(), sums, loop.evaluate(s.net, s.data["test"])))
    assert np.allclose(results[0][0], results[1][0], **TOL["float64"])
    assert results[0][1] == pytest.approx(results[1][1], rel=1e-9) and results[0][1][7] > results[0][1][1] > 0  # it learnt
    assert results[0][2] == pytest.approx(results[1][2], rel=1e-9)
