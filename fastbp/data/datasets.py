"""Data sets as arrays: scikit-learn's bundled digits, MNIST and Fashion-MNIST, and data of one's own
(a folder of IDX files, an .npz file, or CSV files)."""

from __future__ import annotations

import math
import numbers
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .idx import data_error, read_idx
from .locate import IDX_FILES, data_dir_folder, find_dataset_dir, idx_files

DIGIT_NAMES = tuple("0123456789")
CLASS_NAMES = {
    "mnist": DIGIT_NAMES,
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}
NAMED = ("digits", *CLASS_NAMES)
ARRAY_KEYS = ("X_train", "y_train", "X_test", "y_test")
MAX_CLASSES = 10_000  # more distinct labels are taken for a wrong column, not classes
# How `fastbp predict` turns an image file into an input row for a run trained on this data: "digits"
# is MNIST's own preprocessing (invert dark ink, crop to it, centre by mass), right for handwritten
# digits; "none" feeds the image's grey levels as they are (photographs, as Fashion-MNIST's).
IMAGE_PREPROCESSING = ("digits", "none")
DIGIT_SETS = ("digits", "mnist")


@dataclass
class Dataset:
    """A train and a test set. X is (n, n_features), uint8 for image data: X * scale lies in
    [0, 1]. y holds int64 class indices 0 .. n_classes-1; class_names[i] is class i's label as the
    data had it (str(i) when none is given). images: how predict reads an image for this data
    (IMAGE_PREPROCESSING)."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    scale: float
    image_shape: tuple[int, ...] | None
    n_classes: int
    class_names: tuple[str, ...] | None = None
    source: str = ""
    images: str = "none"

    def __post_init__(self):
        if self.class_names is None:
            self.class_names = tuple(str(i) for i in range(self.n_classes))

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]


def load_dataset(name_or_path, data_dir=None) -> Dataset:
    """'digits', 'mnist', 'fashion-mnist' (found as locate.py says, `data_dir` first), or the path
    of a folder of the four IDX files, of an .npz file (X_train, y_train, X_test, y_test), or of a
    folder holding train.csv and test.csv, or of a train CSV file with its test file beside it."""
    key = str(name_or_path)
    if data_dir is not None:  # checked even where the data set does not use it: a wrong path is a mistake
        data_dir_folder(data_dir)
    if key == "digits":
        return _load_digits()
    if key in CLASS_NAMES:
        return _load_idx_folder(find_dataset_dir(key, data_dir), key, strict=True)
    path = Path(key).expanduser()
    if path.is_dir():
        if idx_files(path):
            return _load_idx_folder(path, key)
        if (path / "train.csv").is_file():
            return _load_csv(path / "train.csv", key)
        raise data_error(path, f"expected the four IDX files ({', '.join(IDX_FILES)}) or train.csv and test.csv in it")
    if path.suffix.lower() == ".npz":
        return _load_npz(path, key)
    if path.suffix.lower() == ".csv":
        return _load_csv(path, key)
    raise DataError(
        f"unknown data set {key!r}: expected one of {', '.join(NAMED)}, or the path of a folder of IDX "
        "files, of an .npz file, or of a train .csv file"
    )


def validation_split(X, y, n_val):
    """(X_tr, y_tr, X_val, y_val), the LAST n_val rows held out (as Nielsen's network2.py holds out
    the last 10,000 of MNIST's 60,000 training images). n_val: a row count or a fraction in [0, 1)."""
    n = len(X)
    if len(y) != n:
        raise DataError(f"validation split: {n} examples but {len(y)} labels")
    if isinstance(n_val, numbers.Integral) and not isinstance(n_val, bool):
        k = int(n_val)
    elif isinstance(n_val, numbers.Real) and not isinstance(n_val, bool) and 0 <= n_val < 1:
        k = round(float(n_val) * n)
    else:
        k = -1
    if not 0 <= k < n:
        raise ConfigError(
            f"validation size {n_val!r} is out of range: expected 0 to {n - 1} rows or a fraction "
            f"in [0, 1) of the {n} training rows"
        )
    cut = n - k  # not X[-k:]: with k = 0 that would be everything
    return X[:cut], y[:cut], X[cut:], y[cut:]


def check_input_size(ds: Dataset, n_inputs: int) -> None:
    """DataError unless the data's feature count equals the network's input layer size."""
    if ds.n_features != n_inputs:
        per = "image" if ds.image_shape else "example"
        raise DataError(
            f"data set {ds.name} has {ds.n_features} features per {per} but the network's input layer has {n_inputs}"
        )


# --- loaders ---------------------------------------------------------------------------------------


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = digits.data.astype(np.uint8)  # values 0..16
    X_tr, X_te, y_tr, y_te = train_test_split(X, digits.target, test_size=0.2, random_state=0, stratify=digits.target)
    source = "scikit-learn load_digits, stratified 80/20 split, seed 0"
    return _assemble("digits", (X_tr, y_tr, source, source), (X_te, y_te, source, source), source,
                     n_classes=10, class_names=DIGIT_NAMES, scale=1 / 16, images="digits")


def _load_idx_folder(folder: Path, name: str, strict: bool = False) -> Dataset:
    """The four IDX files in `folder`. strict: MNIST's own shape (28x28 uint8 images, labels 0..9)."""
    files = idx_files(folder)
    arrays = {stem: read_idx(path) for stem, path in files.items()}
    if strict:
        for stem in (IDX_FILES[0], IDX_FILES[2]):
            images = arrays[stem]
            if images.dtype != np.uint8 or images.shape[1:] != (28, 28):
                shape = "x".join(map(str, images.shape))
                raise data_error(files[stem], f"expected uint8 images of Nx28x28, found {images.dtype} of {shape}")
    train, test = ((arrays[x], arrays[y], files[x], files[y]) for x, y in (IDX_FILES[:2], IDX_FILES[2:]))
    if not strict:
        return _assemble(name, train, test, str(folder))
    return _assemble(name, train, test, str(folder), n_classes=10, class_names=CLASS_NAMES[name],
                     images="digits" if name in DIGIT_SETS else "none")


def _load_npz(path: Path, name: str) -> Dataset:
    arrays = _read_npz(path)
    srcs = {key: f"{path} (array {key})" for key in ARRAY_KEYS}
    train, test = ((arrays[x], arrays[y], srcs[x], srcs[y]) for x, y in (ARRAY_KEYS[:2], ARRAY_KEYS[2:]))
    return _assemble(name, train, test, str(path))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise data_error(path, "not found") from None
    except _NPZ_ERRORS as exc:
        raise data_error(path, f"cannot read it as an .npz archive: {exc}") from None
    try:
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise data_error(path, "expected an .npz archive of arrays, found a single .npy array")
        with archive:
            return {key: archive[_npz_key(archive, key, path)] for key in ARRAY_KEYS}
    except _NPZ_ERRORS as exc:
        raise data_error(path, f"cannot read it as an .npz archive: {exc}") from None


# zipfile raises NotImplementedError for unknown compression, RuntimeError for encryption
_NPZ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error, MemoryError,
               NotImplementedError, RuntimeError)


def _npz_key(archive, key: str, path: Path) -> str:
    """`key` as the archive spells it: X_train or x_train, y_train or Y_train."""
    for spelling in (key, key.swapcase()[0] + key[1:]):
        if spelling in archive.files:
            return spelling
    raise data_error(path, f"lacks array {key} (expected {', '.join(ARRAY_KEYS)}; found {', '.join(archive.files) or 'none'})")


def _load_csv(train_path: Path, name: str) -> Dataset:
    test_path = train_path.with_name(train_path.name.replace("train", "test", 1))
    if test_path == train_path:
        raise data_error(train_path, "expected 'train' in the name of a train CSV file, with its test file beside it")
    train, test = (_read_csv(p) for p in (train_path, test_path))
    return _assemble(name, train, test, f"{train_path} and {test_path}")


def _read_csv(path: Path):
    """(X, y, path, path) from a CSV file of rows 'label,x1,x2,...', with an optional header row.
    The features are numbers; the labels numbers or words."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise data_error(path, f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise data_error(path, f"cannot read it as text: {exc}") from None
    rows = [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    if rows and is_header([line for _, line in rows[:2]]):
        rows = rows[1:]
    if not rows:
        raise data_error(path, "no data rows (expected rows of a label then feature values)")
    width = rows[0][1].count(",") + 1
    if width < 2:
        raise data_error(path, f"line {rows[0][0]} has 1 value (expected a label then feature values)")
    for i, line in rows:
        if line.count(",") + 1 != width:
            raise data_error(path, f"ragged rows: line {i} has {line.count(',') + 1} values, line {rows[0][0]} has {width}")
    labels, features = zip(*(line.split(",", 1) for _, line in rows))
    try:
        X = np.loadtxt(features, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        i, line = next(((i, line) for i, line in rows if not _all_numbers(line.split(",")[1:])), (None, ""))
        found = f"line {i}: expected numbers after the label, found {line[:60]!r}" if i else f"cannot parse it: {exc}"
        raise data_error(path, found) from None
    labels = np.array([label.strip().strip('"') for label in labels])
    try:
        y = labels.astype(np.float64)
    except ValueError:  # words
        y = labels
    return X, y, path, path


def _all_numbers(fields) -> bool:
    try:
        for field in fields:
            float(field)
    except ValueError:
        return False
    return True


def is_header(lines) -> bool:
    """Is the first of these CSV lines (label first) a header? Words where the features are, or a word
    where the next line's label is a number."""
    first = lines[0].split(",")
    if not _all_numbers(first[1:]):
        return True
    return not _all_numbers(first[:1]) and len(lines) > 1 and _all_numbers(lines[1].split(",")[:1])


# --- checks shared by every loader -----------------------------------------------------------------


def _assemble(name, train, test, source, n_classes=None, class_names=None, scale=None, images="none") -> Dataset:
    """A Dataset from (X, y, X_source, y_source) of each split, checked; sources name files in errors.
    Without n_classes (data of one's own) the labels become classes as _encode_labels says."""
    (X_tr, y_tr), (X_te, y_te) = (_check_split(*split) for split in (train, test))
    if X_tr.shape[1:] != X_te.shape[1:]:
        shapes = ["x".join(map(str, X.shape[1:])) for X in (X_tr, X_te)]
        raise DataError(f"data files {train[2]} and {test[2]} disagree: train examples are {shapes[0]}, test examples {shapes[1]}")
    if n_classes is None:
        y_tr, y_te, class_names = _encode_labels(y_tr, y_te, train[3], test[3])
        n_classes = len(class_names)
    for y, src in ((y_tr, train[3]), (y_te, test[3])):
        outside = np.flatnonzero((y < 0) | (y >= n_classes) | (y != np.round(y)))
        if outside.size:
            i = int(outside[0])
            raise data_error(src, f"label {y[i]} at index {i} is outside 0..{n_classes - 1}")
    y_tr, y_te = y_tr.astype(np.int64), y_te.astype(np.int64)
    image_shape = X_tr.shape[1:] if X_tr.ndim == 3 else None
    X_tr, X_te = (X.reshape(len(X), -1) for X in (X_tr, X_te))
    (X_tr, X_te), auto_scale = _pixels(X_tr, X_te)
    side = math.isqrt(X_tr.shape[1])
    if image_shape is None and X_tr.dtype == np.uint8 and side > 1 and side * side == X_tr.shape[1]:
        image_shape = (side, side)
    return Dataset(name, X_tr, y_tr, X_te, y_te, scale=scale or auto_scale, image_shape=image_shape,
                   n_classes=n_classes, class_names=class_names, source=source, images=images)


def _encode_labels(y_tr, y_te, src_tr, src_te):
    """(y_tr, y_te as class indices, class names): as scikit-learn's LabelEncoder and FastBPClassifier
    make classes, the sorted distinct labels of both splits, numbers or strings, are classes 0, 1, ...
    (labels 3, 7, 42 become 0, 1, 2, named '3', '7', '42')."""
    if (y_tr.dtype.kind == "U") != (y_te.dtype.kind == "U"):
        kinds = ["strings" if y.dtype.kind == "U" else "numbers" for y in (y_tr, y_te)]
        raise DataError(f"data files {src_tr} and {src_te} disagree: train labels are {kinds[0]}, test labels {kinds[1]}")
    classes, codes = np.unique(np.concatenate([y_tr, y_te]), return_inverse=True)
    if len(classes) > MAX_CLASSES:
        raise data_error(src_tr, f"{len(classes):,} distinct labels, more than {MAX_CLASSES:,} classes "
                                 "(is the label the first column, or array y_train?)")
    names = tuple(str(c) if classes.dtype.kind in "Ub" else str(int(c)) for c in classes)
    return codes[: len(y_tr)], codes[len(y_tr):], names


def _check_split(X, y, x_src, y_src):
    """(X, y) of one split, or DataError: X numbers, finite, 2-D or 3-D; y integers (or whole floats),
    booleans or strings; as many labels as examples; at least one example."""
    if X.ndim not in (2, 3):
        raise data_error(x_src, f"expected one row of features per example (2-D or 3-D), found {X.ndim}-D")
    if y.ndim != 1:
        raise data_error(y_src, f"expected a 1-D array of labels, found {y.ndim}-D")
    if y.dtype.kind == "S":  # bytes, as some tools write strings
        try:
            y = np.char.decode(y, "utf-8")
        except UnicodeDecodeError as exc:
            raise data_error(y_src, f"labels are bytes that are not UTF-8 text ({exc})") from None
    if X.dtype.kind not in "iuf":
        raise data_error(x_src, f"expected numeric feature values, found dtype {X.dtype}")
    if y.dtype.kind not in "biufU":
        raise data_error(y_src, f"expected labels that are integers or strings, found dtype {y.dtype}")
    for a, src, what in ((X, x_src, "feature values"), (y, y_src, "labels")):
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            i = int(np.argmin(np.isfinite(a).reshape(len(a), -1).all(axis=1)))
            raise data_error(src, f"non-finite {what} (NaN or infinity) in row {i}")
    if len(X) != len(y):
        raise DataError(f"data files {x_src} and {y_src} disagree: {len(X)} examples but {len(y)} labels")
    if len(y) == 0:
        raise data_error(y_src, "empty data set (no examples)")
    if X[0].size == 0:
        raise data_error(x_src, "no feature values (0 columns)")
    if y.dtype.kind == "f":
        bad = np.flatnonzero(y != np.round(y))
        if bad.size:
            raise data_error(y_src, f"label {y[bad[0]]} at index {bad[0]} is not a class (expected integers or strings)")
    return X, y


def _pixels(*Xs):
    """(Xs, scale): uint8 data as it is with scale 1/255; other non-negative integer values as
    uint8 (if they fit) with scale 1/max; anything else as float32 with scale 1.0."""
    if all(X.dtype == np.uint8 for X in Xs):
        return Xs, 1 / 255
    if all(X.size and X.min() >= 0 and (X == np.round(X)).all() for X in Xs):
        top = max(float(X.max()) for X in Xs)
        dtype = np.uint8 if top <= 255 else np.float32
        return tuple(X.astype(dtype) for X in Xs), 1 / top if top else 1.0
    return tuple(X.astype(np.float32) for X in Xs), 1.0
