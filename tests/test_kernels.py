"""The fused GPU kernels (fastbp/kernels.py), checked without a GPU:

- every source compiles with NVRTC for the H200 (compute_90 PTX, and sm_90 machine code
  as cupy builds it, with no spills or stack frame), in float32 and
  float64 (skipped where cupy's NVRTC binding cannot be imported: CI does not
  install it);
- each numpy reference computes what fastbp's unfused code computes;
- the backend's launches pass each kernel the arguments its C signature
  takes, in order and type, and the network and the optimisers give the
  unfused results through those launches: run here with each kernel emulated
  by its reference.
"""

import numpy as np
import pytest
from gpu_emulation import SIGNATURES, EmulatedCupy

from fastbp import kernels
from fastbp.backend import NumpyBackend, get_backend
from fastbp.nn.fused import FusedLayers
from fastbp.nn import activations, costs, gradcheck, optim
from fastbp.nn.network import Network

DTYPES = ("float32", "float64")
TOL = {"float64": dict(rtol=1e-12, atol=1e-14), "float32": dict(rtol=2e-5, atol=1e-6)}
CODE_NAMES = {v: k for k, v in kernels.codes().items()}


def _nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc
    except Exception as exc:  # not installed (CI), or a broken install
        pytest.skip(f"cupy's NVRTC binding is not importable ({type(exc).__name__}): pip install cupy-cuda13x 'cuda-toolkit[nvrtc]==13.*'")
    return nvrtc


def _compile(nvrtc, name, dtype, options):
    body, _ = kernels.sources()[name]
    prog = nvrtc.createProgram(kernels.source(body, dtype), f"{name}.cu", [], [])
    try:
        nvrtc.compileProgram(prog, [*options, *kernels.OPTIONS])
    except nvrtc.NVRTCError:
        pytest.fail(f"{name} ({dtype}) does not compile with {options}:\n{nvrtc.getProgramLog(prog)}")
    return prog


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(kernels.sources()))
def test_kernel_compiles_for_the_h200(name, dtype):
    nvrtc = _nvrtc()
    ptx = nvrtc.getPTX(_compile(nvrtc, name, dtype, ["-arch=compute_90"])).decode()
    for f in kernels.sources()[name][1]:
        assert f".entry {f}(" in ptx, f"{name}: no kernel {f} in the PTX"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(kernels.sources()))
def test_kernel_machine_code_keeps_to_registers(name, dtype):
    """As cupy builds it on an H200 (sm_90 machine code, -ftz=true): no spills, no stack
    frame (an array indexed at run time would put one in local memory)."""
    nvrtc = _nvrtc()
    prog = _compile(nvrtc, name, dtype, ["-arch=sm_90", "-ftz=true", "--ptxas-options=-v"])
    assert len(nvrtc.getCUBIN(prog)) > 0
    report = [line for line in nvrtc.getProgramLog(prog).splitlines() if "bytes stack frame" in line]
    assert len(report) == len(kernels.sources()[name][1]), report
    for line in report:
        assert "0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads" in line, line


def test_a_broken_kernel_fails_to_compile():
    """The compile test can fail: a source with an undefined name is refused."""
    nvrtc = _nvrtc()
    prog = nvrtc.createProgram(kernels.source(kernels.sources()["activation_grad"][0].replace("delta[i] *=", "delta[i] = q *"), "float32"), "bad.cu", [], [])
    with pytest.raises(nvrtc.NVRTCError, match="COMPILATION"):
        nvrtc.compileProgram(prog, ["-arch=compute_90", *kernels.OPTIONS])
    assert 'identifier "q" is undefined' in nvrtc.getProgramLog(prog)


# -- the references against fastbp's unfused code --------------------------------
def _rng_arrays(dtype, *shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [(3 * rng.standard_normal(s)).astype(dtype) for s in shapes]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", sorted(kernels.codes()))
def test_bias_activation_reference_is_the_unfused_forward(act, dtype):
    bk, f = NumpyBackend(), activations.RECORDS[act](0.05)
    z, b = _rng_arrays(dtype, (9, 7), (7,))
    z_ref, a_ref = kernels.bias_activation_reference(z, b, act, 0.05)
    z_un, a_un = z + b, np.empty_like(z)
    f.forward(bk, z_un, a_un)
    assert np.allclose(z_ref, z_un, **TOL[dtype]) and np.allclose(a_ref, a_un, **TOL[dtype])
    assert a_ref.dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_softmax_reference_is_the_unfused_softmax(dtype):
    bk, soft = NumpyBackend(), activations.Softmax()
    z, b = _rng_arrays(dtype, (9, 37), (37,))
    z *= 30  # large logits: the max shift matters
    z_ref, a_ref, ln_ref = kernels.bias_softmax_reference(z, b)
    a_un, ln_un = np.empty_like(z), np.empty((9, 1), dtype)
    soft.forward_log_norm(bk, z + b, a_un, ln_un)
    assert np.allclose(a_ref, a_un, **TOL[dtype]) and np.allclose(ln_ref, ln_un, **TOL[dtype])
    assert np.allclose(a_ref.sum(axis=1), 1, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu", "leaky_relu"])
def test_activation_grad_reference_is_the_unfused_bp2(act, dtype):
    bk, f = NumpyBackend(), activations.make(act, "hidden", 0.05)
    delta, z = _rng_arrays(dtype, (9, 7), (9, 7))
    a = np.empty_like(z)
    f.forward(bk, z, a)
    ref = kernels.activation_grad_reference(delta, z, a, act, 0.05)
    f.backward(bk, delta, z, a, np.empty_like(z))  # in place
    assert np.allclose(ref, delta, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output,cost", gradcheck.OUTPUT_COSTS)
def test_output_delta_reference_is_the_unfused_bp1(output, cost, dtype):
    """With the σ' code the backend picks for the pair (σ' = 1 where the cost cancels it)."""
    bk = EmulatedCupy()
    act, c = activations.make(output, "output"), costs.make(cost, output)
    fused = FusedLayers.make(bk, activations.make("relu", "hidden"), act, c)
    z, y = _rng_arrays(dtype, (9, 4), (9, 4))
    a = np.empty_like(z)
    act.forward(bk, z, a)
    ref = kernels.output_delta_reference(z, a, y, CODE_NAMES[fused.delta_code], 1 / 9)
    delta = np.empty_like(z)
    c.delta(bk, z, a, y, delta, act, np.empty_like(z))
    assert np.allclose(ref, delta / 9, **TOL[dtype])


def _steps_args(opt, lr):
    """The kernel's arguments for the coming step, with host copies of the state."""
    opt.t += 1
    try:
        return [x.copy() if isinstance(x, np.ndarray) else x for x in opt._fused_args(lr)]
    finally:
        opt.t -= 1


@pytest.mark.usefixtures("numpy_reference")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(kernels.OPTIMIZER_KERNELS))
def test_optimizer_reference_is_the_unfused_update(name, dtype):
    net = Network([6, 5, 3], hidden="tanh", output="softmax", cost="log_likelihood", dtype=dtype, seed=1)
    opt = optim.make(name, net, weight_decay=0.1)
    assert opt._fused is None  # numpy keeps its ufuncs
    rng = np.random.default_rng(2)
    for step in range(4):  # from zero state, then with momentum built up
        g = rng.standard_normal(net.n_params).astype(dtype)
        p0, args = net.params.copy(), _steps_args(opt, 0.05)
        expected = kernels.optimizer_reference(name, p0, g, net.n_weights, 0.1, *args)
        net.grads[...] = g
        opt.step(0.05)
        state = [s for s in (getattr(opt, "m", None), getattr(opt, "v", None)) if s is not None]
        assert np.allclose(expected[0], net.params, **TOL[dtype]), f"step {step}"
        for want, got in zip(expected[1:], state):
            assert np.allclose(want, got, **TOL[dtype]), f"step {step}"
    assert not np.allclose(p0[net.n_weights:], net.params[net.n_weights:])  # something moved


# -- the launches: each kernel emulated by its reference ---------------------------
def test_every_kernel_signature_is_parsed():
    named = {f for _, fs in kernels.sources().values() for f in fs}
    assert set(SIGNATURES) == named
    assert SIGNATURES["adam_step"][:5] == ["real*", "const real*", "long long", "long long", "real"]


NETS = [("sigmoid", "sigmoid", "cross_entropy"), ("relu", "softmax", "log_likelihood"),
        ("leaky_relu", "identity", "quadratic"), ("tanh", "sigmoid", "quadratic")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden,output,cost", NETS)
def test_fused_network_gives_the_unfused_gradient(hidden, output, cost, dtype):
    kw = dict(hidden=hidden, output=output, cost=cost, dtype=dtype, seed=3, init="glorot")
    plain, bk = Network([11, 8, 6, 4], **kw), EmulatedCupy()
    fused = Network([11, 8, 6, 4], backend=bk, **kw)
    assert plain.fused is None and fused.fused is not None
    X, Y = _rng_arrays(dtype, (13, 11), (13, 4))
    Y = np.eye(4, dtype=dtype)[np.argmax(Y, axis=1)]
    for net in (plain, fused):
        net.gradient(X, Y)
    assert np.allclose(plain.grads, fused.grads, **TOL[dtype])
    assert np.allclose(plain.batch_cost(Y), fused.batch_cost(Y), **TOL[dtype])  # softmax's log_norm left for the cost
    assert set(bk.launches) == {"bias_softmax" if output == "softmax" else "bias_activation", "bias_activation",
                                "output_delta", "activation_grad"}


def test_a_target_of_another_dtype_takes_the_unfused_bp1():
    bk = EmulatedCupy()
    net = Network([5, 4, 3], hidden="relu", output="softmax", cost="log_likelihood", backend=bk)
    plain = Network([5, 4, 3], hidden="relu", output="softmax", cost="log_likelihood")
    X = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    Y = np.eye(3)[[0, 1, 2, 0, 1, 2]]  # float64 targets for a float32 net
    net.gradient(X, Y)
    plain.gradient(X, Y)
    assert "output_delta" not in bk.launches and np.allclose(net.grads, plain.grads, rtol=1e-5, atol=1e-6)


def test_an_activation_no_kernel_knows_runs_unfused():
    class Swish(activations.Activation):
        name = "swish"  # no cuda_sigma: no code in the kernels

    assert FusedLayers.make(EmulatedCupy(), Swish(), activations.Softmax(), costs.make("log_likelihood", "softmax")) is None


@pytest.mark.usefixtures("numpy_reference")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(kernels.OPTIMIZER_KERNELS))
@pytest.mark.parametrize("engine", ["cuda", "jit"])
def test_fused_optimizer_step_is_the_unfused_step(name, dtype, engine, monkeypatch):
    """The CUDA kernel (emulated) and jit.py's compiled twin against optim.py's ufuncs."""
    nets = [Network([7, 5, 3], dtype=dtype, seed=4)]
    opts = [optim.make(name, nets[0], weight_decay=0.01)]
    if engine == "jit":
        pytest.importorskip("numba")  # the test extra installs it; tests/test_jit.py fails without it under CI
        monkeypatch.setattr(get_backend("numpy"), "jit", True)
    nets.append(Network([7, 5, 3], dtype=dtype, seed=4, backend=EmulatedCupy() if engine == "cuda" else "numpy"))
    opts.append(optim.make(name, nets[1], weight_decay=0.01))
    assert opts[0]._fused is None and opts[1]._fused is not None
    rng = np.random.default_rng(5)
    for _ in range(5):
        g = rng.standard_normal(nets[0].n_params).astype(dtype)
        for net, opt in zip(nets, opts):
            net.grads[...] = g
            opt.step(0.03)
    assert engine == "jit" or nets[1].bk.launches == [kernels.OPTIMIZER_KERNELS[name]] * 5
    assert np.allclose(nets[0].params, nets[1].params, **TOL[dtype])
    assert opts[0].state().keys() == opts[1].state().keys()
    for key, value in opts[0].state().items():
        assert np.allclose(value, opts[1].state()[key], **TOL[dtype]), key


def test_an_optimizer_no_kernel_knows_runs_unfused():
    from fastbp.nn import fused

    assert fused.update(EmulatedCupy(), "adagrad") is None


# -- loop.GraphStep's refusals (its replays: tests/test_gpu.py) ----------------------------
def _setup(*sets):
    from fastbp.train import build, config

    return build.build(config.load(None, ['train.backend="numpy"', "output.plots=false", "output.grad_norms=false", *sets]))


def test_a_graph_step_refuses_dropout():
    from fastbp.train import loop

    s = _setup("model.dropout=0.2")
    with pytest.raises(ValueError, match="replays the same dropout masks every step"):
        loop.GraphStep(s.net, s.batches)


def test_a_graph_step_needs_a_backend_with_graphs():
    from fastbp.train import loop

    s = _setup()
    with pytest.raises(ValueError, match="the numpy backend has no CUDA graphs"):
        loop.GraphStep(s.net, s.batches)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (4, 6)])
def test_dropout_draws_are_one_launch_of_the_array_codes_values(dtype, shape):
    """The cupy backend fills a mask with one `uniform` launch, whose emulation (the array
    code) the launch's arguments must reproduce: a wrapped key, a start past 2^32."""
    from fastbp.backend import Backend, get_backend

    bk, key, start = EmulatedCupy(), 2**64 - 7, (3 << 32) + 5
    got, want = np.empty(shape, dtype), np.empty(shape, dtype)
    bk.uniform(key, start, got)
    assert bk.launches == ["uniform"]
    reference = get_backend("numpy")
    with pytest.MonkeyPatch.context() as m:
        m.setattr(reference, "jit", False)
        Backend.uniform(reference, key, start, want)
    assert np.array_equal(got, want) and 0 <= got.min() and got.max() < 1
