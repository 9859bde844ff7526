"""The CPU's faster paths give what the readable reference gives: bit for bit
where the arithmetic is the same operations in the same order, to rounding
where it is not."""

import numpy as np

from fastbp.backend import get_backend


def test_relu_against_zeros_is_numpys_maximum_bit_for_bit():
    bk = get_backend("numpy")
    special = [-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf, 1e-45, -1e-45, 1.5, -2.5]
    for dtype in (np.float32, np.float64):
        for shape in [(1, 10), (7, 30), (128, 100)]:
            z = np.random.default_rng(0).standard_normal(shape).astype(dtype)
            z.flat[: len(special)] = special
            out = np.empty_like(z)
            assert bk.relu(z, out) is out
            ref = np.maximum(z, 0)
            assert out.dtype == ref.dtype and out.tobytes() == ref.tobytes(), (dtype, shape)
