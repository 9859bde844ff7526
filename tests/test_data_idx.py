"""IDX files, and MNIST-style folders of them."""

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from fastbp.errors import WriteError
from data_helpers import raises_one_line, synthetic_arrays, write_idx_folder

from fastbp.data import dataset_dir_in, find_dataset_dir, load_dataset, read_idx, search_roots, write_idx
from fastbp.data.locate import cache_dir

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


# --- read_idx / write_idx ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (2, 1, 3, 2)])
def test_round_trip(tmp_path, suffix, dtype, shape):
    array = (np.arange(np.prod(shape)) * 37 - 50).reshape(shape).astype(dtype)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative and back.flags.writeable
    assert np.array_equal(back, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    assert os.listdir(tmp_path) == [path.name]  # no temp file left behind


def test_gzip_told_by_magic_bytes_not_name(tmp_path):
    write_idx(tmp_path / "a.gz", np.arange(6, dtype=np.uint8))
    write_idx(tmp_path / "b", np.arange(6, dtype=np.uint8))
    os.replace(tmp_path / "a.gz", tmp_path / "a")
    os.replace(tmp_path / "b", tmp_path / "b.gz")
    assert read_idx(tmp_path / "a").tolist() == read_idx(tmp_path / "b.gz").tolist() == list(range(6))


def test_big_endian_on_disk(tmp_path):
    write_idx(tmp_path / "a", np.array([1, 258], dtype=np.int16))
    assert (tmp_path / "a").read_bytes() == b"\0\0\x0b\x01" + b"\0\0\0\x02" + b"\0\x01\x01\x02"


def test_write_replaces_existing_file(tmp_path):
    write_idx(tmp_path / "a", np.zeros(3, np.uint8))
    write_idx(tmp_path / "a", np.ones(2, np.uint8))
    assert read_idx(tmp_path / "a").tolist() == [1, 1]


def test_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(WriteError, match="cannot write .*a.gz: disk full"):
        write_idx(tmp_path / "a.gz", np.zeros(3, np.uint8))
    assert os.listdir(tmp_path) == []


def test_write_rejects_unsupported_arrays(tmp_path):
    for bad, why in ((np.zeros(3, np.uint16), "IDX cannot hold dtype uint16"), (np.zeros(3, bool), "IDX cannot hold dtype bool"),
                     (np.zeros((1,) * 5, np.uint8), "IDX holds 1 to 4 dimensions, not 5")):
        with pytest.raises(ValueError, match=why):
            write_idx(tmp_path / "a", bad)


def header(type_byte, *dims):
    return bytes([0, 0, type_byte, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "empty file"),
        (b"\0\0", "truncated: 2 bytes"),
        (b"\x01\x00\x08\x01" + b"\0\0\0\x01" + b"\x05", "not an IDX file: magic number 0x01000801"),
        (header(0x07, 1) + b"\x05", "unknown IDX type byte 0x07"),
        (header(0x08) + b"\x05", "0 dimensions"),
        (header(0x08, 1, 1, 1, 1, 1) + b"\x05", "5 dimensions"),
        (header(0x08, 2, 3)[:9], "truncated: the header of 2 dimensions needs 12 bytes, found 9"),
        (header(0x08, 2, 3) + bytes(5), "truncated: header says 2x3 = 6 bytes, found 5"),
        (header(0x0C, 2, 3) + bytes(23), "truncated: header says 2x3 = 24 bytes, found 23"),
        (header(0x08, 2, 3) + bytes(7), "trailing data: header says 2x3 = 6 bytes, found 7"),
    ],
)
def test_malformed_raw(tmp_path, content, match):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(content)
    error = raises_one_line(match, read_idx, path)
    assert str(error).startswith(f"data file {path}: ")


def test_malformed_inside_gzip(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(header(0x08, 60000, 28, 28) + bytes(1000)))
    raises_one_line(rf"data file {path}: truncated: header says 60000x28x28 = 47040000 bytes, found 1000", read_idx, path)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda gz: gz[: len(gz) // 2],  # cut short: EOFError
        lambda gz: gz[:20] + bytes(b ^ 0xFF for b in gz[20:40]) + gz[40:],  # bad deflate data: zlib.error
        lambda gz: gz[:-8] + b"\0\0\0\0" + gz[-4:],  # bad CRC: BadGzipFile
        lambda gz: gz + b"junk",  # trailing garbage: BadGzipFile
        lambda gz: b"\x1f\x8b",  # gzip magic only
    ],
)
def test_corrupt_gzip(tmp_path, mangle):
    path = tmp_path / "a.gz"
    write_idx(path, np.arange(1000, dtype=np.int32))
    path.write_bytes(mangle(path.read_bytes()))
    raises_one_line("corrupt gzip data", read_idx, path)


def test_missing_file(tmp_path):
    raises_one_line(f"data file {tmp_path / 'nope'}: cannot read it", read_idx, tmp_path / "nope")


# --- MNIST-style folders -------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_load_named_set_from_folder(tmp_path, suffix):
    arrays = write_idx_folder(tmp_path / "mnist", suffix=suffix)
    for data_dir in (tmp_path, tmp_path / "mnist"):  # a root, or the folder itself
        ds = load_dataset("mnist", data_dir=data_dir)
        assert ds.X_train.shape == (6, 784) and ds.X_test.shape == (4, 784)
        assert ds.X_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
        assert np.array_equal(ds.X_test[1], arrays["t10k-images-idx3-ubyte"][1].ravel())
        assert np.array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"])
        assert (ds.image_shape, ds.n_classes, ds.class_names[0], ds.source) == ((28, 28), 10, "0", str(tmp_path / "mnist"))


def test_search_order(tmp_path, monkeypatch):
    for where in ("arg", "env", "xdg/fastbp"):
        write_idx_folder(tmp_path / where / "fashion-mnist")
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "fastbp"
    labels = [label for label, _ in search_roots(tmp_path / "arg")]
    assert labels == ["data directory", "$FASTBP_DATA", "user cache", "system"]
    assert find_dataset_dir("fashion-mnist", tmp_path / "arg") == tmp_path / "arg" / "fashion-mnist"
    assert find_dataset_dir("fashion-mnist") == tmp_path / "env" / "fashion-mnist"
    monkeypatch.delenv("FASTBP_DATA")
    assert find_dataset_dir("fashion-mnist") == tmp_path / "xdg" / "fastbp" / "fashion-mnist"
    assert load_dataset("fashion-mnist").class_names[-1] == "Ankle boot"


def test_relative_xdg_cache_home_is_ignored(monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert cache_dir() == Path.home() / ".cache" / "fastbp"


def test_not_found_lists_places_tried(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTBP_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    write_idx_folder(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    error = raises_one_line("data set mnist: its IDX files", find_dataset_dir, "mnist", tmp_path)
    assert f"{tmp_path / 'mnist'} (lacks t10k-labels-idx1-ubyte)" in str(error)
    assert f"{tmp_path / 'xdg' / 'fastbp' / 'mnist'} (absent)" in str(error)
    assert str(error).endswith("download them with: fastbp data fetch mnist")  # a command that exists


def test_counts_disagree(tmp_path):
    arrays = synthetic_arrays()
    arrays["train-labels-idx1-ubyte"] = arrays["train-labels-idx1-ubyte"][:5]
    write_idx_folder(tmp_path / "mnist", arrays)
    raises_one_line("train-images-idx3-ubyte.gz and .*train-labels-idx1-ubyte.gz disagree: 6 examples but 5 labels",
                    load_dataset, "mnist", tmp_path)


def test_label_outside_0_to_9(tmp_path):
    arrays = synthetic_arrays()
    arrays["t10k-labels-idx1-ubyte"][2] = 12
    write_idx_folder(tmp_path / "mnist", arrays)
    raises_one_line(r"t10k-labels-idx1-ubyte.gz: label 12 at index 2 is outside 0..9", load_dataset, "mnist", tmp_path)
    own = load_dataset(tmp_path / "mnist")  # as a folder of one's own: any labels, each a class
    labels = np.concatenate([arrays["train-labels-idx1-ubyte"], arrays["t10k-labels-idx1-ubyte"]])
    assert own.class_names == tuple(str(v) for v in sorted(set(labels.tolist()))) and own.class_names[-1] == "12"


def test_named_set_needs_28x28_uint8_images(tmp_path):
    write_idx_folder(tmp_path / "mnist", synthetic_arrays(side=27))
    raises_one_line("train-images-idx3-ubyte.gz: expected uint8 images of Nx28x28, found uint8 of 6x27x27",
                    load_dataset, "mnist", tmp_path)
    assert load_dataset(tmp_path / "mnist").image_shape == (27, 27)


def test_train_and_test_image_sizes_agree(tmp_path):
    arrays = synthetic_arrays(side=5)
    arrays["t10k-images-idx3-ubyte"] = synthetic_arrays(side=6)["t10k-images-idx3-ubyte"]
    write_idx_folder(tmp_path / "set", arrays)
    raises_one_line("disagree: train examples are 5x5, test examples 6x6", load_dataset, tmp_path / "set")


def test_empty_idx_set(tmp_path):
    write_idx_folder(tmp_path / "set", synthetic_arrays(n_test=0))
    raises_one_line("t10k-labels-idx1-ubyte.gz: empty data set", load_dataset, tmp_path / "set")


def test_dataset_dir_in(tmp_path):
    write_idx_folder(tmp_path / "mnist")
    assert dataset_dir_in(tmp_path, "mnist") == tmp_path / "mnist"
    assert dataset_dir_in(tmp_path / "mnist", "mnist") is None
    assert dataset_dir_in(tmp_path / "mnist", "mnist", direct=True) == tmp_path / "mnist"
    assert dataset_dir_in(tmp_path, "fashion-mnist", direct=True) is None
