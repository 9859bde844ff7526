"""Ask a trained run about your own inputs: `fastbp predict RUN_DIR FILE...`.

Images (PNG, JPEG, anything Pillow opens; Pillow is the optional extra
`fastbp[images]`) are read as the run's data were made, as its checkpoint
records (`--preprocess auto`), or as asked: "digits" is MNIST's own
preprocessing (`mnist_preprocess`), so a digit drawn dark on white, large and
off-centre, reaches the network looking like an MNIST digit; "none" feeds the
image's grey levels as they are, resized to 28x28 (photographs, as
Fashion-MNIST's). `.npy` and `.csv` files hold rows of raw features, as the
data set had them (e.g. 784 pixel values 0..255), and are fed as they are.

Either way the network sees what training fed it: the raw input times the
data set's scale, standardised when the run was (the checkpoint's Preprocess).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .data.datasets import IMAGE_PREPROCESSING, is_header
from .errors import DataError, UsageError
from .extras import require

MAX_PIXELS = 40_000_000  # a 12-megapixel phone photo passes; a decompression bomb does not
SIDE, BOX = 28, 20  # MNIST: the digit fitted into 20x20, centred by mass in 28x28
MIN_CONTRAST = 24  # of 255: less than this between ink and paper is a blank image
PREPROCESS_CHOICES = ("auto", *IMAGE_PREPROCESSING)  # auto: as the checkpoint records


class Model(NamedTuple):
    net: object  # fastbp.nn.network.Network, numpy backend
    preprocess: object  # fastbp.train.build.Preprocess: what the network saw for raw rows
    class_names: tuple  # of str: output i is class_names[i]
    path: Path  # the checkpoint file


# -- a saved run --------------------------------------------------------------------------------------
def load_run(target, checkpoint="best") -> Model:
    """The network of a run directory (its best.npz, else last.npz; or last.npz)
    or of a checkpoint file, on the CPU, with its preprocessing."""
    from .train import checkpoint as ckpt_mod

    if checkpoint not in ckpt_mod.CHOICES:
        raise UsageError(f"--checkpoint must be {' or '.join(ckpt_mod.CHOICES)}, got {checkpoint!r}")
    ckpt = ckpt_mod.load(target, prefer=ckpt_mod.CHOICES[checkpoint])
    return Model(ckpt.make_network("numpy"), ckpt.preprocess, ckpt.class_names, ckpt.path)


# -- MNIST's preprocessing ----------------------------------------------------------------------------
def mnist_preprocess(gray) -> np.ndarray:
    """A greyscale image (2-D, 0..255, any size) as an MNIST digit: (28, 28) uint8, white ink on black.

    As LeCun et al. describe MNIST: the digit is cropped to its ink, scaled to
    fit a 20x20 box keeping its aspect ratio (anti-aliased), and placed in
    28x28 with its centre of mass at the centre. Dark ink on light paper is
    inverted first; the paper's colour is the median of the image's border.
    ValueError for an image with no ink."""
    from PIL import Image

    g = np.asarray(gray, dtype=np.float64)
    if g.ndim != 2 or g.size == 0:
        raise ValueError(f"expected a 2-D greyscale image, got shape {g.shape}")
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    paper = np.median(border)
    ink = g - paper if paper < 128 else paper - g
    # The border's own variation is noise (JPEG, paper grain): ink must rise above it.
    # On a clean image (MNIST's own, a drawing) that is 0, and nothing is lost; the
    # 90th percentile ignores a stroke that runs off the edge.
    noise = np.percentile(np.abs(border - paper), 90)
    ink[ink <= noise] = 0
    top = ink.max()
    if top < MIN_CONTRAST:
        raise ValueError("no digit found: the image is blank (no ink darker or lighter than the paper)")
    ink *= 255.0 / top  # a pencil-grey stroke becomes as strong as MNIST's
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = ink.shape
    f = BOX / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    if size != (w, h):  # MNIST's own digits already fit: left untouched
        resized = Image.fromarray(ink.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)  # mode F
        ink = np.clip(np.asarray(resized, dtype=np.float64), 0, 255)
    h, w = ink.shape
    ys, xs = np.mgrid[:h, :w]
    mass = ink.sum()
    cy, cx = (ink * ys).sum() / mass, (ink * xs).sum() / mass
    # Integer shifts keep the strokes sharp; the centre is pixel 14 as in MNIST, whose
    # digits' centres of mass average (13.99, 14.01).
    top_row = min(max(round(SIDE / 2 - cy), 0), SIDE - h)
    left = min(max(round(SIDE / 2 - cx), 0), SIDE - w)
    out = np.zeros((SIDE, SIDE), np.uint8)
    out[top_row : top_row + h, left : left + w] = np.rint(ink).astype(np.uint8)
    return out


def plain_preprocess(gray) -> np.ndarray:
    """A greyscale image as it is, resized to (28, 28) uint8 when it is another size: no inversion,
    crop or centring (for a run trained on photographs, as Fashion-MNIST's)."""
    from PIL import Image

    g = np.asarray(gray, dtype=np.uint8)
    if g.shape != (SIDE, SIDE):
        g = np.asarray(Image.fromarray(g).resize((SIDE, SIDE), Image.Resampling.LANCZOS))
    return g


IMAGE_READERS = {"digits": mnist_preprocess, "none": plain_preprocess}


# -- reading inputs -----------------------------------------------------------------------------------
def _error(path, problem):
    return DataError(f"input {path}: {problem}")


def read_image(path) -> np.ndarray:
    """The greyscale pixels (2-D uint8) of an image file; transparent parts count as white paper."""
    require("PIL", "reading images")
    from PIL import Image, ImageOps
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, with a clearer line
            with Image.open(path) as im:
                w, h = im.size  # from the header: nothing is decoded yet
                if w * h > MAX_PIXELS:
                    raise _error(path, f"image of {w}x{h} pixels is larger than the limit of {MAX_PIXELS:,} pixels")
                im = ImageOps.exif_transpose(im)  # a phone photo, upright
                if "A" in im.getbands() or "transparency" in im.info:
                    im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im.convert("RGBA"))
                gray = im.convert("L")
                gray.thumbnail((1024, 1024))  # ample for a 20x20 digit; keeps the arrays below small
                return np.asarray(gray)
    except Image.DecompressionBombError as exc:
        raise _error(path, f"image too large: {exc}") from None
    except FileNotFoundError:
        raise _error(path, "not found") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # UnidentifiedImageError is an OSError
        raise _error(path, f"cannot read it as an image: {getattr(exc, 'strerror', None) or exc}") from None


def read_rows(path, n_features) -> np.ndarray:
    """Rows of raw features from .npy (any shape whose rows hold n_features values) or
    .csv (n_features values a line, or a label, a number or a word, first as in a training CSV;
    a header is skipped)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            a = np.load(path, allow_pickle=False)
        else:
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            if lines and is_header(lines[:2]):
                lines = lines[1:]
            if not lines:
                raise _error(path, "no rows")
            if all(line.count(",") == n_features for line in lines):  # a label first
                lines = [line.split(",", 1)[1] for line in lines]
            a = np.loadtxt(lines, delimiter=",", dtype=np.float64, ndmin=2)
    except DataError:
        raise
    except FileNotFoundError:
        raise _error(path, "not found") from None
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as exc:
        raise _error(path, f"cannot read rows from it: {getattr(exc, 'strerror', None) or exc}") from None
    if a.dtype.kind not in "iuf":
        raise _error(path, f"expected numbers, found dtype {a.dtype}")
    if a.size == n_features:
        a = a.reshape(1, n_features)
    elif a.ndim >= 2 and a.size and math.prod(a.shape[1:]) == n_features:
        a = a.reshape(len(a), n_features)
    else:
        raise _error(path, f"expected rows of {n_features} values (the network's inputs), found shape {a.shape}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise _error(path, "holds NaN or infinite values")
    return a


def read_inputs(path, model: Model, images="auto") -> np.ndarray:
    """Raw network input rows from one file: .npy/.csv rows, or an image preprocessed as `images` says
    (a PREPROCESS_CHOICES; auto: as the run's checkpoint records)."""
    n_features = model.net.sizes[0]
    if Path(path).suffix.lower() in (".npy", ".csv"):
        X = read_rows(path, n_features)
        if model.preprocess.input_dtype == "uint8" and (X.min() < 0 or X.max() > 255):
            raise _error(path, f"values from {X.min():g} to {X.max():g}, but this network was trained on "
                               "uint8 pixel values 0..255 (give the raw values, not scaled ones)")
        if model.preprocess.input_dtype == "uint8" and X.dtype.kind == "f" and 0 < X.max() <= 1:
            warnings.warn(f"input {path}: values are at most {X.max():g}; this network takes raw pixel "
                          f"values (times {model.preprocess.scale:.4g} inside), not values already scaled to [0, 1]")
        return X
    if n_features != SIDE * SIDE or model.preprocess.input_dtype != "uint8":
        raise UsageError(
            f"input {path}: images are read as 28x28 MNIST-style pixels, but this network takes "
            f"{n_features} {model.preprocess.input_dtype} inputs; give .npy or .csv rows"
        )
    reader = IMAGE_READERS[model.preprocess.images if images == "auto" else images]
    try:
        return reader(read_image(path)).reshape(1, -1)
    except ValueError as exc:
        raise _error(path, str(exc)) from None


# -- predicting -----------------------------------------------------------------------------------------
def predict(model: Model, X_raw, top=3):
    """(outputs (n, n_out) as a numpy array, for each row its `top` best (class, value) pairs, best first)."""
    net = model.net
    out = net.bk.to_numpy(net.feedforward(model.preprocess(X_raw, net.dtype)))
    best = np.argsort(-out, axis=1, kind="stable")[:, :top]
    return out, [[(int(c), float(row[c])) for c in cls] for row, cls in zip(out, best)]


def predict_files(model: Model, paths, top=3, images="auto"):
    """One dict per input row: file, row (None for an image), class, name, top [[class, name, value]...].
    images: how image files are read (PREPROCESS_CHOICES)."""
    if top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    if images not in PREPROCESS_CHOICES:
        raise UsageError(f"--preprocess must be one of {', '.join(PREPROCESS_CHOICES)}, got {images!r}")
    name = model.class_names.__getitem__
    results = []
    for path in paths:
        X = read_inputs(path, model, images)
        _, tops = predict(model, X, top)
        for i, pairs in enumerate(tops):
            results.append({
                "file": str(path),
                "row": i if Path(path).suffix.lower() in (".npy", ".csv") else None,
                "class": pairs[0][0],
                "name": name(pairs[0][0]),
                "top": [[c, name(c), round(v, 6)] for c, v in pairs],
            })
    return results


def format_result(r) -> str:
    where = r["file"] if r["row"] is None else f"{r['file']}[{r['row']}]"
    tops = ", ".join(f"{n} {v:.3f}" for _, n, v in r["top"])
    return f"{where}: {r['name']}  ({tops})"


def format_json(r) -> str:
    return json.dumps(r)
