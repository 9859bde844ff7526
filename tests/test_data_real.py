"""The real MNIST and Fashion-MNIST, found through $FASTBP_DATA (skipped without it, failed in CI)."""

import hashlib

import numpy as np
import pytest

from fastbp.data import load_dataset, validation_split
from fastbp.data.fetch import SHA256
from fastbp.data.idx import read_bytes
from fastbp.data.locate import idx_files

pytestmark = pytest.mark.mnist

HISTOGRAMS = {
    "mnist": (
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    ),
    "fashion-mnist": ([6000] * 10, [1000] * 10),
}


@pytest.fixture(scope="module", params=sorted(HISTOGRAMS))
def real(request, real_data_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FASTBP_DATA", str(real_data_dir))
        return load_dataset(request.param)


def test_shapes_and_types(real, real_data_dir):
    assert real.source == str(real_data_dir / real.name)
    assert real.X_train.shape == (60000, 784) and real.X_test.shape == (10000, 784)
    assert real.X_train.dtype == real.X_test.dtype == np.uint8
    assert real.y_train.dtype == real.y_test.dtype == np.int64
    assert real.image_shape == (28, 28) and real.n_classes == 10 and len(real.class_names) == 10
    assert real.scale == pytest.approx(1 / 255)
    assert real.X_train.max() == 255 and real.X_train.min() == 0


def test_label_histograms(real):
    train, test = HISTOGRAMS[real.name]
    assert np.bincount(real.y_train, minlength=10).tolist() == train
    assert np.bincount(real.y_test, minlength=10).tolist() == test


def test_decompressed_digests_match_sums_file_and_fetch_table(real_data_dir):
    for name in HISTOGRAMS:
        folder = real_data_dir / name
        listed = dict(line.split()[::-1] for line in (folder / "SHA256SUMS.raw").read_text().splitlines())
        assert listed == SHA256[name]
        for stem, path in idx_files(folder).items():
            assert hashlib.sha256(read_bytes(path)).hexdigest() == listed[stem], path


def test_validation_split_holds_out_the_last_10000(real):
    X_tr, y_tr, X_val, y_val = validation_split(real.X_train, real.y_train, 10000)
    assert len(X_tr) == 50000 and len(X_val) == 10000
    assert np.array_equal(X_val[-1], real.X_train[-1]) and np.array_equal(y_tr, real.y_train[:50000])
