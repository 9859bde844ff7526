"""Small synthetic MNIST-style data for the data layer's tests."""

import numpy as np
import pytest

from fastbp.data import write_idx
from fastbp.data.locate import IDX_FILES
from fastbp.errors import DataError


def raises_one_line(match, func, *args, error=DataError):
    """func(*args) raises a one-line `error` (DataError) matching `match`."""
    with pytest.raises(error, match=match) as info:
        func(*args)
    assert "\n" not in str(info.value)
    return info.value


def synthetic_arrays(n_train=6, n_test=4, side=28, seed=0):
    """The four arrays of a tiny MNIST-style set, by file stem."""
    rng = np.random.default_rng(seed)
    shapes = ((n_train, side, side), (n_train,), (n_test, side, side), (n_test,))
    return {
        stem: rng.integers(0, 256 if len(shape) == 3 else 10, size=shape, dtype=np.uint8)
        for stem, shape in zip(IDX_FILES, shapes)
    }


def write_idx_folder(folder, arrays=None, suffix=".gz"):
    """Write the four IDX files into `folder` (created); return the arrays written."""
    arrays = synthetic_arrays() if arrays is None else arrays
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        write_idx(folder / f"{stem}{suffix}", array)
    return arrays
