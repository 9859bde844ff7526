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
