"""Fuzzing the readers: any input either loads or raises DataError, never another exception."""

import gzip
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastbp.data import load_dataset, read_idx
from fastbp.errors import DataError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def idx_bytes(array):
    dims = b"".join(d.to_bytes(4, "big") for d in array.shape)
    code = {"u1": 0x08, ">i2": 0x0B, ">f8": 0x0E}[array.dtype.str.lstrip("|")]
    return bytes([0, 0, code, array.ndim]) + dims + array.tobytes()


def npz_bytes(save):
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    save(buffer, X_train=rng.random((6, 2, 2)), y_train=np.arange(6) % 3,
         x_test=rng.integers(0, 256, (3, 2, 2), dtype=np.uint8), y_test=np.arange(3))
    return buffer.getvalue()


VALID_IDX = [idx_bytes(np.arange(12, dtype=">i2").reshape(3, 4)), idx_bytes(np.zeros((2, 3, 3), np.uint8)),
             idx_bytes(np.linspace(0, 1, 5).astype(">f8"))]
VALID_IDX += [gzip.compress(data) for data in VALID_IDX]
VALID_NPZ = [npz_bytes(np.savez), npz_bytes(np.savez_compressed)]


@st.composite
def mutated(draw, originals):
    """One of `originals` with a few bit flips, then maybe cut short or given extra bytes."""
    data = bytearray(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(0, 4))):
        data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data) + draw(st.binary(max_size=4))


random_bytes = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda head, rest: bytes([0, 0]) + head + rest, st.binary(min_size=2, max_size=2), st.binary(max_size=300)),
    st.binary(max_size=300).map(gzip.compress),
)


@pytest.mark.parametrize(
    "load, name, inputs",
    [
        (read_idx, "f-idx", random_bytes),
        (read_idx, "f-idx", mutated(VALID_IDX)),
        (load_dataset, "f.npz", st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: b"PK\x03\x04" + b))),
        (load_dataset, "f.npz", mutated(VALID_NPZ)),
    ],
    ids=["idx-random", "idx-mutated", "npz-random", "npz-mutated"],
)
@FUZZ
@given(data=st.data())
def test_loads_or_raises_data_error(tmp_path, load, name, inputs, data):
    path = tmp_path / name
    path.write_bytes(data.draw(inputs))
    try:
        load(path)
    except DataError as error:
        assert "\n" not in str(error)


@pytest.mark.parametrize("valid, load, name", [(VALID_IDX, read_idx, "f-idx"), (VALID_NPZ, load_dataset, "f.npz")])
def test_unmutated_inputs_load(tmp_path, valid, load, name):
    for data in valid:
        (tmp_path / name).write_bytes(data)
        load(tmp_path / name)


@pytest.mark.parametrize("offset, value, match", [(8, 0x01, "encrypted"), (10, 99, "compression method")])
def test_npz_zip_features_not_supported(tmp_path, offset, value, match):
    """Found by fuzzing: zipfile raises RuntimeError / NotImplementedError for these."""
    data = bytearray(VALID_NPZ[0])
    entry = data.index(b"PK\x01\x02")  # the first central directory entry: flags at +8, method at +10
    data[entry + offset] |= value
    (tmp_path / "f.npz").write_bytes(bytes(data))
    with pytest.raises(DataError, match=match):
        load_dataset(tmp_path / "f.npz")
