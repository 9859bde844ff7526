"""load_dataset for digits, .npz and CSV; validation_split; check_input_size."""

import numpy as np
import pytest
from data_helpers import raises_one_line

from fastbp.data import Dataset, check_input_size, load_dataset, validation_split
from fastbp.errors import ConfigError, DataError


def save_npz(path, *arrays, **spellings):
    """np.savez of X_train, y_train, X_test, y_test, each key spelled as `spellings` say."""
    np.savez(path, **{spellings.get(k, k): a for k, a in zip(("X_train", "y_train", "X_test", "y_test"), arrays)})
    return path


def small_arrays(n_train=8, n_test=4, shape=(3, 3), dtype=np.uint8):
    rng = np.random.default_rng(1)
    return (rng.integers(0, 256, (n_train, *shape)).astype(dtype), rng.integers(0, 3, n_train),
            rng.integers(0, 256, (n_test, *shape)).astype(dtype), rng.integers(0, 3, n_test))


def write_csv(path, rows, header=None):
    lines = ([header] if header else []) + [",".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- digits ----------------------------------------------------------------------------------------


def test_digits_embedded_split():
    ds = load_dataset("digits")
    assert (ds.X_train.shape, ds.X_test.shape) == ((1437, 64), (360, 64))
    assert ds.X_train.dtype == np.uint8 and ds.y_train.dtype == np.int64 and ds.X_train.max() == 16
    assert (ds.scale, ds.image_shape, ds.n_classes) == (1 / 16, (8, 8), 10)
    per_class = np.bincount(ds.y_train) + np.bincount(ds.y_test)
    assert np.all(np.abs(np.bincount(ds.y_test) - 0.2 * per_class) <= 1)  # stratified
    again = load_dataset("digits")
    assert np.array_equal(ds.X_test, again.X_test) and np.array_equal(ds.y_train, again.y_train)


# --- .npz ------------------------------------------------------------------------------------------


def test_npz_images(tmp_path):
    arrays = small_arrays()
    ds = load_dataset(save_npz(tmp_path / "d.npz", *arrays))
    assert isinstance(ds, Dataset) and ds.name == str(tmp_path / "d.npz")
    assert ds.X_train.shape == (8, 9) and ds.image_shape == (3, 3) and ds.scale == 1 / 255
    assert np.array_equal(ds.X_test, arrays[2].reshape(4, 9)) and ds.n_classes == 1 + max(arrays[1].max(), arrays[3].max())


def test_npz_lowercase_keys_and_float_data(tmp_path):
    X_tr, y_tr, X_te, y_te = small_arrays(shape=(5,), dtype=np.float64)
    path = save_npz(tmp_path / "d.npz", X_tr / 300, y_tr.astype(float), X_te / 300, y_te, X_train="x_train", X_test="x_test")
    ds = load_dataset(path)
    assert ds.X_train.dtype == np.float32 and ds.scale == 1.0 and ds.image_shape is None
    assert np.allclose(ds.X_train, X_tr / 300) and ds.y_train.dtype == np.int64


def test_npz_integer_data_scaled_by_its_maximum(tmp_path):
    X_tr, y_tr, X_te, y_te = small_arrays(shape=(4,), dtype=np.int64)
    ds = load_dataset(save_npz(tmp_path / "d.npz", X_tr % 17, y_tr, X_te % 17, y_te))
    assert ds.X_train.dtype == np.uint8 and ds.scale == 1 / max((X_tr % 17).max(), (X_te % 17).max())
    assert ds.image_shape == (2, 2)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_npz_non_finite(tmp_path, value):
    X_tr, y_tr, X_te, y_te = small_arrays(dtype=np.float32)
    X_te[2, 1, 1] = value
    path = save_npz(tmp_path / "d.npz", X_tr, y_tr, X_te, y_te)
    raises_one_line(r"d.npz \(array X_test\): non-finite feature values \(NaN or infinity\) in row 2", load_dataset, path)


def test_npz_missing_file(tmp_path):
    raises_one_line(f"^data file {tmp_path / 'd.npz'}: not found$", load_dataset, tmp_path / "d.npz")


def test_npz_missing_key(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X_train=np.zeros((2, 2)), y_train=np.zeros(2), X_test=np.zeros((2, 2)))
    raises_one_line("lacks array y_test", load_dataset, path)


def test_npz_refuses_pickled_objects(tmp_path):
    path = save_npz(tmp_path / "d.npz", *small_arrays())
    np.savez(path, X_train=np.array([{"a": 1}], dtype=object))
    raises_one_line("cannot read it as an .npz archive: Object arrays cannot be loaded", load_dataset, path)


def test_npy_is_not_npz(tmp_path):
    np.save(tmp_path / "d.npy", np.zeros(3))
    (tmp_path / "d.npy").rename(tmp_path / "d.npz")
    raises_one_line("found a single .npy array", load_dataset, tmp_path / "d.npz")


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda a: a.__setitem__(1, a[1][:7]), r"\(array X_train\) and .*\(array y_train\) disagree: 8 examples but 7 labels"),
        (lambda a: a.__setitem__(1, a[1] + 0.5), r"\(array y_train\): label \d\.5 at index 0 is not a class \(expected integers or strings\)"),
        (lambda a: a.__setitem__(1, a[1] + 1j), "expected labels that are integers or strings, found dtype complex128"),
        (lambda a: a.__setitem__(1, a[1].astype(str)), r"\(array y_train\) and .*\(array y_test\) disagree: train labels are strings, test labels numbers"),
        (lambda a: a.__setitem__(3, np.array([b"\xff"] * 4)), r"\(array y_test\): labels are bytes that are not UTF-8 text"),
        (lambda a: (a.__setitem__(2, a[2][:0]), a.__setitem__(3, a[3][:0])), r"\(array y_test\): empty data set"),
        (lambda a: a.__setitem__(0, a[0][:, :0, :0]), "no feature values"),
        (lambda a: a.__setitem__(0, a[0][..., None]), "expected one row of features per example"),
        (lambda a: a.__setitem__(2, np.float64(3.0)), r"\(array X_test\): expected one row of features .* found 0-D"),
        (lambda a: a.__setitem__(3, a[3][:, None]), "expected a 1-D array of labels, found 2-D"),
        (lambda a: a.__setitem__(2, a[2][:, :2]), "disagree: train examples are 3x3, test examples 2x3"),
    ],
)
def test_npz_bad_contents(tmp_path, change, match):
    arrays = list(small_arrays())
    change(arrays)
    raises_one_line(match, load_dataset, save_npz(tmp_path / "d.npz", *arrays))


# --- CSV -------------------------------------------------------------------------------------------


def test_csv_folder_with_header(tmp_path):
    write_csv(tmp_path / "train.csv", [[1, 0, 255, 3, 4], [0, 9, 8, 7, 6]], header="label,a,b,c,d")
    write_csv(tmp_path / "test.csv", [[2, 1, 1, 1, 1]])
    ds = load_dataset(tmp_path)
    assert ds.X_train.tolist() == [[0, 255, 3, 4], [9, 8, 7, 6]] and ds.X_train.dtype == np.uint8
    assert ds.y_train.tolist() == [1, 0] and ds.y_test.tolist() == [2] and ds.n_classes == 3
    assert (ds.scale, ds.image_shape) == (1 / 255, (2, 2))


def test_csv_train_file_with_test_file_beside_it(tmp_path):
    write_csv(tmp_path / "mnist_train.csv", [[1, 0.5, 0.25], [0, 0.1, 0.2]])
    write_csv(tmp_path / "mnist_test.csv", [[1, 0.0, 1.0]])
    ds = load_dataset(tmp_path / "mnist_train.csv")
    assert ds.X_train.dtype == np.float32 and ds.scale == 1.0 and ds.X_test.tolist() == [[0.0, 1.0]]
    raises_one_line("expected 'train' in the name", load_dataset, tmp_path / "mnist_test.csv")


@pytest.mark.parametrize(
    "rows, match",
    [
        ([[1, 2, 3], [1, 2], [1, 2, 3]], "ragged rows: line 2 has 2 values, line 1 has 3"),
        ([[1.5, 2, 3]], r"label 1.5 at index 0 is not a class \(expected integers or strings\)"),
        ([[1, 2, 3], ["nan", 2, 3]], r"non-finite labels \(NaN or infinity\) in row 1"),
        ([[1, 2, 3], [1, "nan", 3]], r"non-finite feature values \(NaN or infinity\) in row 1"),
        ([[1, 2, 3], [1, "x", 3]], "line 2: expected numbers after the label, found '1,x,3'"),
        ([[1]], "line 1 has 1 value"),
        ([], "no data rows"),
    ],
)
def test_csv_bad_contents(tmp_path, rows, match):
    write_csv(tmp_path / "train.csv", rows)
    write_csv(tmp_path / "test.csv", [[1, 2, 3]])
    error = raises_one_line(match, load_dataset, tmp_path)
    assert str(tmp_path / "train.csv") in str(error)


# --- labels of one's own: classes as scikit-learn's LabelEncoder makes them -----------------------------


def test_npz_string_labels_are_sorted_into_classes_named_by_them(tmp_path):
    X_tr, _, X_te, _ = small_arrays(n_train=5, n_test=3)
    path = save_npz(tmp_path / "d.npz", X_tr, np.array(["dog", "cat", "émeu", "cat", "dog"]), X_te,
                    np.array([b"cat", b"ant", b"dog"]))  # bytes, as some tools write strings
    ds = load_dataset(path)
    assert ds.class_names == ("ant", "cat", "dog", "émeu") and ds.n_classes == 4
    assert ds.y_train.tolist() == [2, 1, 3, 1, 2] and ds.y_test.tolist() == [1, 0, 2] and ds.y_train.dtype == np.int64


@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.float32])
def test_npz_non_contiguous_and_negative_integer_labels(tmp_path, dtype):
    X_tr, _, X_te, _ = small_arrays(n_train=4, n_test=2)
    ds = load_dataset(save_npz(tmp_path / "d.npz", X_tr, np.array([42, 7, 3, -1], dtype), X_te, np.array([7, 42], dtype)))
    assert ds.class_names == ("-1", "3", "7", "42") and ds.y_train.tolist() == [3, 2, 1, 0] and ds.y_test.tolist() == [2, 3]


def test_labels_0_to_n_minus_1_keep_their_index_and_are_named_by_it(tmp_path):
    ds = load_dataset(save_npz(tmp_path / "d.npz", *small_arrays()))
    assert ds.class_names == ("0", "1", "2") and np.array_equal(ds.y_train, small_arrays()[1])


def test_csv_string_labels_with_and_without_a_header(tmp_path):
    write_csv(tmp_path / "train.csv", [["cat", 0, 1], ["dog", 2, 3], [" cat", 4, 5]])
    write_csv(tmp_path / "test.csv", [['"bird"', 9, 9]], header="label,a,b")
    ds = load_dataset(tmp_path)
    assert ds.class_names == ("bird", "cat", "dog") and ds.y_train.tolist() == [1, 2, 1] and ds.y_test.tolist() == [0]
    assert ds.X_train.tolist() == [[0, 1], [2, 3], [4, 5]]
    write_csv(tmp_path / "train.csv", [[10, 0, 1], [30, 2, 3]], header="y,1,2")  # a word above numbers: a header
    raises_one_line("disagree: train labels are numbers, test labels strings", load_dataset, tmp_path)
    write_csv(tmp_path / "test.csv", [[30, 9, 9]])
    assert load_dataset(tmp_path).class_names == ("10", "30")


def test_too_many_distinct_labels(tmp_path, monkeypatch):
    monkeypatch.setattr("fastbp.data.datasets.MAX_CLASSES", 5)
    X_tr, _, X_te, _ = small_arrays()
    path = save_npz(tmp_path / "d.npz", X_tr, np.arange(8), X_te, np.arange(4))
    raises_one_line(r"\(array y_train\): 8 distinct labels, more than 5 classes \(is the label the first column", load_dataset, path)


def test_csv_test_file_missing(tmp_path):
    write_csv(tmp_path / "train.csv", [[1, 2, 3]])
    raises_one_line(f"data file {tmp_path / 'test.csv'}: cannot read it", load_dataset, tmp_path)


def test_unknown_name_or_path(tmp_path):
    raises_one_line("unknown data set 'cifar'", load_dataset, "cifar")
    raises_one_line("expected the four IDX files", load_dataset, tmp_path)


# --- validation_split, check_input_size ------------------------------------------------------------


def test_validation_split_takes_the_last_rows():
    X, y = np.arange(20).reshape(10, 2), np.arange(10)
    X_tr, y_tr, X_val, y_val = validation_split(X, y, 3)
    assert y_tr.tolist() == list(range(7)) and y_val.tolist() == [7, 8, 9] and X_val[0].tolist() == [14, 15]
    assert validation_split(X, y, 0.25)[3].tolist() == [8, 9]  # round(2.5) = 2
    assert validation_split(X, y, np.int64(1))[3].tolist() == [9]


def test_validation_split_of_zero_is_empty():
    X, y = np.zeros((10, 2)), np.arange(10)
    X_tr, y_tr, X_val, y_val = validation_split(X, y, 0)
    assert len(X_tr) == len(y_tr) == 10 and X_val.shape == (0, 2) and len(y_val) == 0


@pytest.mark.parametrize("n_val", [10, 11, -1, 1.0, 0.99, -0.1, True, "3", None])
def test_validation_split_out_of_range(n_val):
    with pytest.raises(ConfigError, match="validation size .* is out of range"):
        validation_split(np.zeros((10, 2)), np.arange(10), n_val)


def test_validation_split_length_mismatch():
    with pytest.raises(DataError, match="10 examples but 9 labels"):
        validation_split(np.zeros((10, 2)), np.arange(9), 2)


def test_check_input_size(tmp_path):
    ds = Dataset("mnist", np.zeros((2, 784), np.uint8), np.zeros(2, np.int64), np.zeros((1, 784), np.uint8),
                 np.zeros(1, np.int64), scale=1 / 255, image_shape=(28, 28), n_classes=10)
    check_input_size(ds, 784)
    raises_one_line("^data set mnist has 784 features per image but the network's input layer has 100$",
                    check_input_size, ds, 100)
