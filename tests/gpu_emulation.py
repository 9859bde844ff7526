"""The cupy backend's fused hooks on numpy arrays, each kernel launch checked
against its C signature and run by its numpy reference (fastbp/kernels.py).

tests/test_kernels.py uses it to check the launches without a GPU. With
FASTBP_EMULATE_GPU=1 (tests/conftest.py) 'cupy' is this backend, so the GPU
tests' own logic can be run anywhere:

    FASTBP_EMULATE_GPU=1 python -m pytest -q tests/test_gpu.py

That proves the tests and the launches' arguments, not the kernels: only a
device runs those.
"""

import re
from types import SimpleNamespace

import numpy as np

from fastbp import kernels
from fastbp.backend import NumpyBackend



_SIGNATURE = re.compile(r'extern "C" __global__ void (\w+)\(([^)]*)\)')


def _signatures():
    """{kernel name: [C type of each parameter]} parsed from the sources."""
    out = {}
    for body, _ in kernels.sources().values():
        for name, params in _SIGNATURE.findall(body):
            out[name] = [" ".join(p.split()[:-1]) for p in params.split(",")]
    return out


SIGNATURES = _signatures()


def _check_args(name, args, real):
    """Each argument is what the C parameter takes: a contiguous array of `real`
    for a pointer, else a numpy scalar of the parameter's type."""
    types = SIGNATURES[name]
    assert len(args) == len(types), f"{name}: {len(args)} arguments for {len(types)} parameters"
    want = {"real": real, "int": np.int32, "unsigned int": np.uint32, "long long": np.int64}
    for i, (arg, ctype) in enumerate(zip(args, types)):
        if ctype.endswith("*"):
            assert isinstance(arg, np.ndarray) and arg.dtype == real and arg.flags.c_contiguous, f"{name} argument {i}"
        else:
            assert type(arg) is want[ctype], f"{name} argument {i}: {type(arg).__name__} for {ctype}"


def _emulate(name, args):
    """Run the kernel's numpy reference, writing its outputs in place."""
    CODE_NAMES = {v: k for k, v in kernels.codes().items()}
    if name == "bias_activation":
        z, b, a, act, slope, cols, n = args
        z[...], a[...] = kernels.bias_activation_reference(z.reshape(-1, int(cols)), b, CODE_NAMES[int(act)], slope)
    elif name == "bias_softmax":
        z, b, a, log_norm, rows, cols = args
        z[...], a[...], log_norm[...] = kernels.bias_softmax_reference(z, b)
    elif name == "output_delta":
        z, a, y, delta, act, slope, scale, n = args
        delta[...] = kernels.output_delta_reference(z, a, y, CODE_NAMES[int(act)], scale, slope)
    elif name == "activation_grad":
        delta, z, a, act, slope, n = args
        delta[...] = kernels.activation_grad_reference(delta, z, a, CODE_NAMES[int(act)], slope)
    else:
        opt = {v: k for k, v in kernels.OPTIMIZER_KERNELS.items()}[name]
        p, g, n_weights, n, wd, *rest = args
        p[...], *state = kernels.optimizer_reference(opt, p, g, int(n_weights), wd, *rest)
        for buf, value in zip([r for r in rest if isinstance(r, np.ndarray)], state):
            buf[...] = value


class EmulatedCupy(NumpyBackend):
    """numpy arrays, CupyBackend's fused hooks, each kernel run by its reference."""

    name = "cupy"
    graphs = True
    fused = True

    def __init__(self):
        super().__init__()
        self._cupy = SimpleNamespace(ndarray=np.ndarray)
        self.launches = []

    def capture(self, fn):
        """Like CupyBackend.capture: fn runs once and is recorded; a replay runs it again
        (here its Python too: a real replay runs only the recorded device work)."""
        fn()
        return fn

    def function(self, source, name, dtype):
        assert name in kernels.sources()[source][1]

        def launch(grid, block, args):
            assert len(grid) == 1 and grid[0] >= 1 and block[0] % 32 == 0
            _check_args(name, args, np.dtype(dtype).type)
            _emulate(name, args)
            self.launches.append(name)

        return launch
