"""CUDA-graph capture on the cupy backend, checked without a GPU:

- fastbp/cublas.py's mapping of row-major products onto column-major cuBLAS
  GEMMs, evaluated with numpy on the flat buffers as cuBLAS reads them;
- its ctypes binding finds the libcublas CuPy loaded (where cupy is installed);
- the emulated cupy (tests/gpu_emulation.py) refuses, while a graph records,
  what CuPy 13/14 refuse, in CuPy's words, and fails a replay over freed
  arrays; loop.GraphStep records again when evaluation or gradient norms
  replace the network's buffers.
"""

import re
from types import SimpleNamespace

import numpy as np
import pytest
from gpu_emulation import REFUSED, EmulatedCupy, colmajor_gemm, flat

import fastbp.backend
import fastbp.cublas
from fastbp.cublas import OP_N, OP_T, gemm_args
from fastbp.errors import BackendError
from fastbp.nn.network import Network


def _address(x):
    return x.__array_interface__["data"][0]


def _direct(a, b, out):
    """out = a @ b the way the cupy backend computes it; the cuBLAS arguments it used."""
    args = gemm_args(a, b, out, _address)
    assert args is not None
    colmajor_gemm(args, flat(a), flat(b), flat(out))
    return args


def _engine_arrays(n, n_in, n_out, dtype, rng):
    """The network's operands: a weight matrix viewed inside a flat parameter buffer
    (after another layer's), a batch cut from a larger buffer, a δ."""
    params = rng.standard_normal(7 + n_out * n_in).astype(dtype)
    W = params[7:].reshape(n_out, n_in)
    a_prev = rng.standard_normal((n + 3, n_in)).astype(dtype)[:n]
    delta = rng.standard_normal((n, n_out)).astype(dtype)
    return W, a_prev, delta


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,n_in,n_out", [(37, 30, 20), (1, 5, 3), (4, 1, 7), (5, 6, 1), (1, 1, 1), (64, 784, 10)])
def test_the_three_engine_gemms_map_onto_cublas(dtype, n, n_in, n_out):
    """z = a Wᵀ, ∂C/∂W = δᵀ a, δ W: the cuBLAS arguments named here, and numpy's
    product from them read column-major off the buffers."""
    rng = np.random.default_rng(n * n_in * n_out)
    W, a_prev, delta = _engine_arrays(n, n_in, n_out, dtype, rng)
    cases = {  # product: (a, b, out shape, (transa, transb, m, n, k, lda, ldb, ldc))
        "forward": (a_prev, W.T, (n, n_out), (OP_T, OP_N, n_out, n, n_in, n_in, n_in, n_out)),
        "weight gradient": (delta.T, a_prev, (n_out, n_in), (OP_N, OP_T, n_in, n_out, n, n_in, n_out, n_in)),
        "delta below": (delta, W, (n, n_in), (OP_N, OP_N, n_in, n, n_out, n_in, n_out, n_in)),
    }
    for name, (a, b, shape, expected) in cases.items():
        out = np.full(shape, np.nan, dtype)
        args = _direct(a, b, out)
        if 1 not in (n, n_in, n_out):  # a dimension of 1 leaves the transpose flags free
            assert args == expected, name
        assert np.allclose(out, np.matmul(a, b), rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_padded_rows_and_transposed_views_map_onto_cublas(dtype):
    """Leading dimensions larger than a row (a column slice of a wider buffer), on
    either side, transposed or not, and an `out` cut from a larger buffer."""
    rng = np.random.default_rng(1)
    wide = rng.standard_normal((9, 12)).astype(dtype)
    tall = rng.standard_normal((15, 8)).astype(dtype)
    for a, b in [(wide[:, :5], tall[:5, :3]), (wide[:6, 2:7], tall[:5, 1:4]), (tall[:5, :3].T, wide[:5, :4]),
                 (wide[:4, :7], tall[2:6, 1:8].T)]:
        big = np.full((a.shape[0] + 2, b.shape[1]), np.nan, dtype)
        out = big[1 : 1 + a.shape[0]]
        _direct(a, b, out)
        assert np.allclose(out, a @ b) and np.isnan(big[0]).all() and np.isnan(big[-1]).all()


def test_what_the_direct_gemm_does_not_take():
    """Strided, mixed-dtype, integer, half, 3-D, empty or mismatched operands, an
    `out` that is not row-major or that overlaps an operand: None (cupy.matmul, outside a graph)."""
    a, b = np.ones((6, 4)), np.ones((4, 5))
    out = np.empty((6, 5))
    assert gemm_args(a, b, out, _address) is not None
    every_other = np.ones((6, 8))[:, ::2]  # (a[::2] is row-major, with rows 2 apart: taken)
    assert gemm_args(a[::2], b, out[::2].copy(), _address) is not None
    refused = [(every_other, b, out), (a, every_other[:4, :3], out[:, :3]), (a, b[:, :3], out[:, ::2]), (a.astype(np.float32), b, out),
               (a.astype(np.int64), b.astype(np.int64), out.astype(np.int64)),
               (a.astype(np.float16), b.astype(np.float16), out.astype(np.float16)),
               (a[None], b, out[None]), (a[:, :0], b[:0], out), (a, b[:3], out), (a, b, np.empty((5, 6)).T)]
    for x, y, o in refused:
        assert gemm_args(x, y, o, _address) is None, (x.shape, x.strides, y.shape, o.shape)
    square = np.ones((4, 4))
    assert gemm_args(square, square.T, square, _address) is None  # out overlaps a
    assert gemm_args(square, np.ones((4, 4)), square[:, :4], _address) is None


def _cupy():
    try:
        import cupy
        from cupy_backends.cuda.libs import cublas  # noqa: F401
    except Exception as exc:  # not installed (CI), or a broken install
        pytest.skip(f"cupy is not importable ({type(exc).__name__}): pip install cupy-cuda13x")
    return cupy


def test_the_ctypes_binding_finds_cupys_cublas():
    """The library CuPy loaded, of the CUDA major CuPy was built for, with every symbol called."""
    import ctypes

    from fastbp import cublas

    cupy = _cupy()
    lib = cublas._library()
    version = ctypes.c_int()
    assert lib.cublasGetProperty(0, ctypes.byref(version)) == 0  # MAJOR_VERSION
    assert version.value == cupy.cuda.runtime.runtimeGetVersion() // 1000
    for name in ("cublasCreate_v2", "cublasSetStream_v2", "cublasSetWorkspace_v2", "cublasGemmEx", "cublasGetStatusName"):
        assert hasattr(lib, name), name


def test_without_a_device_the_handle_says_why():
    from fastbp.cublas import Cublas, CublasError

    _cupy()
    if fastbp.backend.cupy_status()[0]:
        pytest.skip("a device is here: tests/test_gpu.py calls the handle")
    with pytest.raises(CublasError, match="cublasCreate failed: CUBLAS_STATUS_NOT_INITIALIZED"):
        Cublas()


def _null_handle(monkeypatch):
    """The real libcublas, with cublasCreate leaving the handle NULL: every later call
    returns CUBLAS_STATUS_NOT_INITIALIZED, so the Python around them runs without a device."""
    from fastbp import cublas

    _cupy()
    lib = cublas._library()
    lib.cublasCreate_v2 = lambda handle: 0
    monkeypatch.setattr(cublas, "_library", lambda: lib)


def test_the_handles_calls_reach_cublas(monkeypatch):
    from fastbp.cublas import Cublas, CublasError

    _null_handle(monkeypatch)
    blas = Cublas()
    with pytest.raises(CublasError, match="cublasSetStream failed: CUBLAS_STATUS_NOT_INITIALIZED"):
        blas.bind(0, 0, 0)
    with pytest.raises(CublasError, match="cublasGemmEx failed: CUBLAS_STATUS_NOT_INITIALIZED"):
        blas.gemm((OP_N, OP_N, 2, 2, 2, 2, 2, 2), 0, 0, 0, np.dtype(np.float32), 68)


class _DeviceArray:
    """What CupyBackend.matmul reads of a cupy array, over a numpy one."""

    def __init__(self, a):
        self.shape, self.strides, self.dtype, self.itemsize, self.ndim = a.shape, a.strides, a.dtype, a.itemsize, a.ndim
        self.data = SimpleNamespace(ptr=_address(a))


def test_the_backends_direct_gemm_reaches_cublas(monkeypatch):
    """CupyBackend.matmul's Python up to the cuBLAS call, on the null handle; a layout it does not
    take goes to cupy.matmul instead."""
    _null_handle(monkeypatch)
    bk = fastbp.backend.CupyBackend()
    fake = SimpleNamespace(cuda=SimpleNamespace(runtime=SimpleNamespace(getDevice=lambda: 0),
                                                get_current_stream=lambda: SimpleNamespace(ptr=0)),
                           empty=lambda n, dtype: _DeviceArray(np.empty(n, dtype)), uint8=np.uint8,
                           matmul=lambda a, b, out: "cupy.matmul")
    monkeypatch.setattr(bk, "_cupy", fake)
    monkeypatch.setattr(bk, "_compute_type", lambda dtype: 68)
    a, b, out = (_DeviceArray(np.ones(s, np.float32)) for s in [(4, 3), (3, 5), (4, 5)])
    with pytest.raises(fastbp.cublas.CublasError, match="cublasSetStream failed: CUBLAS_STATUS_NOT_INITIALIZED"):
        bk.matmul(a, b, out)
    assert bk.matmul(_DeviceArray(np.ones((4, 6), np.float32)[:, ::2]), b, out) == "cupy.matmul"


def test_the_direct_gemm_follows_cupys_compute_type():
    """The direct GEMM asks cuBLAS for the compute type cupy.matmul would use, from CuPy's
    switch: pedantic or default here (TF32 needs a device to be set: tests/test_gpu.py)."""
    _cupy()
    from cupy._core import _routines_linalg as linalg
    from cupy_backends.cuda.libs import cublas

    bk, before = fastbp.backend.CupyBackend(), [linalg.get_compute_type(t) for t in (np.float32, np.float64)]
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    try:
        seen = []
        for mode in (linalg.COMPUTE_TYPE_PEDANTIC, linalg.COMPUTE_TYPE_DEFAULT):
            for t in (f32, f64):
                linalg.set_compute_type(t, mode)
            seen.append((bk._compute_type(f32), bk._compute_type(f64), bk.tf32))
    finally:
        for t, mode in zip((np.float32, np.float64), before):
            linalg.set_compute_type(t, mode)
    assert seen == [(cublas.CUBLAS_COMPUTE_32F_PEDANTIC, cublas.CUBLAS_COMPUTE_64F_PEDANTIC, False),
                    (cublas.CUBLAS_COMPUTE_32F, cublas.CUBLAS_COMPUTE_64F, False)]


# -- the emulated cupy: CuPy's refusals while a graph records ------------------------------
def _refusals(bk):
    xp, m, v = bk.xp, np.ones((4, 3)), np.ones(3)
    rng = bk.rng(0)
    return {
        "matmul": ("cuBLAS", lambda: xp.matmul(m, m.T)),
        "dot of matrices": ("cuBLAS", lambda: xp.dot(m, v)),
        "tensordot": ("cuBLAS", lambda: xp.tensordot(m, m.T, axes=1)),
        "inner": ("cuBLAS", lambda: xp.inner(m, m)),
        "einsum contracting": ("cuBLAS", lambda: xp.einsum("ij,ij->i", m, m)),
        "matrix_power": ("cuBLAS", lambda: xp.linalg.matrix_power(np.eye(3), 2)),
        "norm 2 of a matrix": ("cuSOLVER", lambda: xp.linalg.norm(m, 2)),
        "svd": ("cuSOLVER", lambda: xp.linalg.svd(m)),
        "random module": ("cuRAND", lambda: xp.random.random(3)),
        "backend permutation": ("cuRAND", lambda: bk.permutation(rng, 5)),
        "backend integers": ("cuRAND", lambda: bk.integers(rng, 5, 3)),
    }


@pytest.mark.parametrize("case", list(_refusals(EmulatedCupy())))
def test_the_emulated_capture_refuses_what_cupy_refuses(case):
    bk = EmulatedCupy()
    library, f = _refusals(bk)[case]
    f()  # fine outside a capture
    with pytest.raises(NotImplementedError, match=re.escape(REFUSED.format(library))):
        bk.capture(f)


def test_the_emulated_capture_allows_what_cupy_allows():
    """Reductions, elementwise products, a vector dot (CuPy: multiply and sum), integer
    products (CuPy's own kernel), the Frobenius norm, and the direct GEMM."""
    bk = EmulatedCupy()
    xp, m, v, out = bk.xp, np.ones((4, 3)), np.ones(3), np.empty((4, 4))

    def step():
        xp.dot(v, v), xp.einsum("ij,ij->ij", m, m), xp.einsum("ij->i", m), xp.matmul(m.astype(int), m.T.astype(int))
        xp.linalg.norm(m), xp.multiply(m, 2, out=m), m.sum(axis=0)
        bk.matmul(m, m.T, out)

    bk.capture(step)
    assert bk.gemms == 1 and np.array_equal(out, np.full((4, 4), 12.0))


def test_a_product_the_direct_gemm_does_not_take_is_refused_in_a_graph():
    bk = EmulatedCupy()
    a, out = np.ones((4, 6))[:, ::2], np.empty((4, 4))
    bk.matmul(a, a.T, out)  # cupy.matmul, outside a graph
    assert bk.gemms == 0 and np.array_equal(out, np.full((4, 4), 3.0))
    with pytest.raises(BackendError, match=r"a CUDA graph cannot record this matrix product \(float64 \(4, 3\) by float64 \(3, 4\)"):
        bk.capture(lambda: bk.matmul(a, a.T, out))


# -- replays over freed memory ---------------------------------------------------------------
def test_an_emulated_replay_over_freed_arrays_fails():
    """A recorded gradient step, then a larger training batch (new training buffers): the
    replay would write freed memory. A larger inference batch is harmless: inference has
    buffers of its own, the softmax's ln Σ e^z included."""
    bk = EmulatedCupy()
    net = Network([30, 20, 4], hidden="relu", output="softmax", cost="log_likelihood", backend=bk, seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 30)).astype(np.float32), np.eye(4, dtype=np.float32)[rng.integers(0, 4, 16)]
    replay = bk.capture(lambda: net.gradient(x, y))
    replay()
    big = rng.standard_normal((64, 30)).astype(np.float32)
    net.forward(big)
    replay()
    net.gradient(big, np.eye(4, dtype=np.float32)[rng.integers(0, 4, 64)])
    with pytest.raises(RuntimeError, match=r"\d+ array\(s\) it recorded have been freed since"):
        replay()


def _graph_epochs(tmp_path, output, cost, graphed):
    """Three epochs (GraphStep or eager), each followed by evaluate and grad_norms, as a run does."""
    from fastbp.train import build, config, loop

    cfg = config.load(None, ["output.plots=false", f'output.dir="{tmp_path}"', 'train.backend="cupy"', 'train.dtype="float64"',
                             "train.batch_size=100", 'schedule.name="cosine"', "train.epochs=3", "data.train_limit=500",
                             "model.sizes=[64, 32, 10]", f'model.output="{output}"', f'model.cost="{cost}"'])
    s = build.build(cfg)
    graph, state, sums, keys = (loop.GraphStep(s.net, s.batches) if graphed else None), loop.TrainState(), [], []
    for _ in range(3):
        loop.train_epoch(s.net, s.opt, s.lr_at, s.batches, state, graph=graph)
        sums += [state.loss_sum, state.correct, *loop.evaluate(s.net, s.data["test"])]  # evaluate: a larger inference batch
        loop.grad_norms(s.net, s.data["train"])  # all 500 rows through the training buffers
        state.next_epoch()
        keys.append(graph and graph.recorded)
    return s.net.get_params(), sums, keys


@pytest.mark.parametrize("output,cost", [("sigmoid", "cross_entropy"), ("softmax", "log_likelihood")])
def test_a_graph_step_records_again_when_evaluation_replaces_its_buffers(monkeypatch, tmp_path, output, cost):
    """Epochs replayed through loop.GraphStep, with evaluate and grad_norms in between, give the eager
    epochs' weights; the graph is recorded again after each (new buffers). Without that (the step
    never noticing), the emulated replay fails on the freed buffers."""
    from fastbp.train import loop

    monkeypatch.setitem(fastbp.backend._cache, "cupy", EmulatedCupy())
    eager, graphed = _graph_epochs(tmp_path, output, cost, False), _graph_epochs(tmp_path, output, cost, True)
    assert np.allclose(eager[0], graphed[0], rtol=1e-10, atol=1e-12)
    assert np.allclose(eager[1], graphed[1], rtol=1e-9) and eager[1][5] > eager[1][1] > 0  # it learnt
    keys = graphed[2]
    assert keys[0] != keys[1] and keys[1] == keys[2]  # recorded again once: the buffers grew after epoch 1, then stayed
    monkeypatch.setattr(loop.GraphStep, "_touched", lambda self, x, y, labels: ((), "never changes"))
    with pytest.raises(RuntimeError, match="have been freed since; a real replay would write memory handed to other arrays"):
        _graph_epochs(tmp_path, output, cost, True)
