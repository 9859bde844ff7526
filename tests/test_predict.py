"""`fastbp predict`: images get MNIST's preprocessing and come back with fastbp's own predictions."""

import json
import struct
import sys
import zlib

import numpy as np
import pytest
from optional_helpers import require
from cli_helpers import cli, expect_error  # noqa: F401 (cli is a fixture)

from fastbp import predict
from fastbp.errors import CheckpointError

Image = require("PIL.Image", "images")
ImageDraw = require("PIL.ImageDraw", "images")


def eval_predictions(run_dir, checkpoint="last.npz"):
    """(raw test rows, predicted classes) as `fastbp eval` computes them: its build and data pipeline."""
    from fastbp.train import checkpoint as ckpt_mod
    from fastbp.train import loop
    from fastbp.train.build import build

    ckpt = ckpt_mod.load(run_dir / checkpoint)
    setup = build(ckpt.config, train=False)
    ckpt_mod.restore(ckpt, setup.net)
    return setup.dataset.X_test, loop.predict(setup.net, setup.data["test"])


def predicted(cli, *args):
    rc, out, err = cli("predict", *args, "--json")
    assert rc == 0 and err == "", err
    return [json.loads(line) for line in out.splitlines()]


# -- MNIST's preprocessing, on arrays ----------------------------------------------------------------------
def drawing(digit, size=(600, 400), light=True):
    """A digit drawn with thick strokes, large and off-centre, on a canvas of `size`."""
    im = Image.new("L", size, 255 if light else 0)
    d, ink = ImageDraw.Draw(im), 0 if light else 255
    if digit == 0:
        d.ellipse((380, 60, 540, 330), outline=ink, width=28)
    elif digit == 1:
        d.line((470, 50, 450, 350), fill=ink, width=30)
    elif digit == 4:
        d.line([(420, 40), (330, 230), (520, 230)], fill=ink, width=28, joint="curve")
        d.line((480, 120, 480, 370), fill=ink, width=28)
    elif digit == 7:
        d.line([(60, 70), (260, 70), (130, 360)], fill=ink, width=30, joint="curve")
    return im


def centre_and_box(x):
    ys, xs = np.mgrid[:28, :28]
    rows, cols = np.flatnonzero(x.any(axis=1)), np.flatnonzero(x.any(axis=0))
    return (x * ys).sum() / x.sum(), (x * xs).sum() / x.sum(), rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


@pytest.mark.parametrize("digit", [0, 1, 4, 7])
def test_a_large_off_centre_drawing_becomes_an_mnist_digit(digit):
    x = predict.mnist_preprocess(np.asarray(drawing(digit)))
    assert x.shape == (28, 28) and x.dtype == np.uint8 and x.max() == 255
    cy, cx, h, w = centre_and_box(x)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5 and max(h, w) == 20  # as MNIST's digits
    # light or dark paper, and where or how large it is drawn, make (almost) no difference
    assert np.array_equal(x, predict.mnist_preprocess(np.asarray(drawing(digit, light=False))))
    moved = Image.new("L", (900, 900), 255)
    moved.paste(drawing(digit).resize((300, 200)), (20, 600))
    assert np.abs(predict.mnist_preprocess(np.asarray(moved)).astype(int) - x).mean() < 12


def test_mnist_digits_pass_through_unchanged_and_a_blank_image_is_refused():
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 10:18] = np.linspace(60, 255, 8, dtype=np.uint8)  # a box of 20 x 8, centred by mass
    digit[4:24, 17] = 255
    assert np.array_equal(predict.mnist_preprocess(digit), predict.mnist_preprocess(255 - digit))
    with pytest.raises(ValueError, match="no digit found: the image is blank"):
        predict.mnist_preprocess(np.full((50, 40), 200, np.uint8))


def test_transparent_background_counts_as_white_paper(tmp_path):
    rgba = Image.new("RGBA", (600, 400), (0, 0, 0, 0))  # a web canvas: black strokes on nothing
    rgba.putalpha(Image.fromarray(255 - np.asarray(drawing(7))))  # strokes opaque, paper transparent
    rgba.save(tmp_path / "seven.png")
    got = predict.mnist_preprocess(predict.read_image(tmp_path / "seven.png"))
    assert np.array_equal(got, predict.mnist_preprocess(np.asarray(drawing(7))))


# -- fastbp predict on an MNIST run ------------------------------------------------------------------------
@pytest.mark.mnist
def test_mnist_test_digits_as_png_predict_as_fastbp_eval(cli, mnist_run, tmp_path):
    X, want = eval_predictions(mnist_run)
    files = []
    for i in range(100):
        pixels = X[i].reshape(28, 28)
        Image.fromarray(pixels).save(tmp_path / f"dark{i}.png")
        Image.fromarray(255 - pixels).save(tmp_path / f"light{i}.png")  # ink on paper, as drawn
        files += [tmp_path / f"dark{i}.png", tmp_path / f"light{i}.png"]
    got = predicted(cli, mnist_run, *files, "--checkpoint", "last")
    assert [r["file"] for r in got] == [str(f) for f in files]
    assert [r["class"] for r in got] == np.repeat(want[:100], 2).tolist()
    assert all(r["row"] is None and len(r["top"]) == 3 and r["top"][0][0] == r["class"] for r in got)


@pytest.mark.mnist
def test_drawn_digits_are_recognised(cli, mnist_run, tmp_path):
    files, digits = [], [0, 1, 4, 7]
    for digit in digits:
        drawing(digit).save(tmp_path / f"{digit}.png")
        drawing(digit).convert("RGB").save(tmp_path / f"{digit}.jpg", quality=75)  # JPEG noise, RGB
        files += [tmp_path / f"{digit}.png", tmp_path / f"{digit}.jpg"]
    got = predicted(cli, mnist_run, *files)
    assert [r["class"] for r in got] == np.repeat(digits, 2).tolist(), [r["top"] for r in got]
    assert all(r["top"][0][2] > 0.5 for r in got)


@pytest.mark.mnist
def test_plain_output_is_one_line_per_image(cli, mnist_run, tmp_path):
    drawing(7).save(tmp_path / "seven.png")
    rc, out, err = cli("predict", mnist_run, tmp_path / "seven.png")
    assert rc == 0 and err == "" and out.startswith(f"{tmp_path / 'seven.png'}: 7  (7 0.") and out.count("\n") == 1


# -- rows: .npy and .csv ------------------------------------------------------------------------------------
def test_npy_and_csv_rows_predict_as_fastbp_eval(cli, digits_run, tmp_path):
    X, want = eval_predictions(digits_run)
    np.save(tmp_path / "rows.npy", X[:25])
    np.save(tmp_path / "one.npy", X[25].reshape(8, 8))  # one image, as an 8 x 8 array
    lines = ["label," + ",".join(f"p{i}" for i in range(64))] + [",".join(map(str, [9, *row])) for row in X[26:30]]
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")  # the training CSV layout: header, label first
    (tmp_path / "bare.csv").write_text(",".join(map(str, X[30])) + "\n")
    got = predicted(cli, digits_run, *(tmp_path / n for n in ("rows.npy", "one.npy", "rows.csv", "bare.csv")),
                    "--checkpoint", "last")
    assert [r["class"] for r in got] == want[:31].tolist()
    assert [r["row"] for r in got] == [*range(25), 0, 0, 1, 2, 3, 0]
    assert all(r["name"] == str(r["class"]) for r in got)


# -- bad input: one line, exit 2 ----------------------------------------------------------------------------
def png_header(width, height):
    """A PNG file that claims width x height pixels and holds none: Pillow reads only its header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("name,content,needle", [
    ("garbage.png", b"this is not an image", "cannot read it as an image: cannot identify image file"),
    ("empty.png", b"", "cannot read it as an image"),
    ("truncated.png", "truncated", "cannot read it as an image"),
    ("blank.png", "blank", "no digit found: the image is blank"),
    ("big.png", png_header(7000, 7000), "image of 7000x7000 pixels is larger than the limit of 40,000,000 pixels"),
    ("bomb.png", png_header(50000, 50000), "image too large: "),
    ("missing.png", None, "not found"),
    ("bad.npy", np.zeros((3, 10)), "expected rows of 784 values (the network's inputs), found shape (3, 10)"),
    ("text.csv", b"1,2,3\n4,x,6\n", "cannot read rows from it"),
])
def test_bad_inputs_give_one_line_and_exit_2(cli, pixels_run, tmp_path, name, content, needle):
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(path, content)
    elif content == "blank":
        Image.new("L", (300, 200), 230).save(path)
    elif content == "truncated":
        drawing(1).save(path)
        path.write_bytes(path.read_bytes()[:200])
    elif content is not None:
        path.write_bytes(content)
    expect_error(cli("predict", pixels_run, path, "--preprocess", "digits"), 2, f"fastbp: error: input {path}: {needle}")


def test_rows_out_of_pixel_range_are_refused_and_prescaled_ones_warned_about(cli, digits_run, tmp_path):
    np.save(tmp_path / "neg.npy", np.full(64, -1.0))
    expect_error(cli("predict", digits_run, tmp_path / "neg.npy"), 2,
                 "values from -1 to -1, but this network was trained on uint8")
    np.save(tmp_path / "scaled.npy", np.full(64, 0.5))
    raw = r"scaled.npy: values are at most 0.5; this network takes raw pixel values \(times 0.0625 inside\)"
    with pytest.warns(UserWarning, match=raw):
        rc, out, _ = cli("predict", digits_run, tmp_path / "scaled.npy")
    assert rc == 0 and out.count("\n") == 1


def test_an_image_for_a_model_that_does_not_take_28x28_pixels(cli, digits_run, tmp_path):
    drawing(1).save(tmp_path / "one.png")
    expect_error(cli("predict", digits_run, tmp_path / "one.png"), 2,
                 "images are read as 28x28 MNIST-style pixels, but this network takes 64 uint8 inputs; give .npy or .csv rows")


def test_top_must_be_positive(cli, digits_run, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(64))
    expect_error(cli("predict", digits_run, tmp_path / "x.npy", "--top", "0"), 2, "--top must be at least 1, got 0")
    got = predicted(cli, digits_run, tmp_path / "x.npy", "--top", "12")
    assert len(got[0]["top"]) == 10 and abs(sum(p for _, _, p in got[0]["top"]) - 1) < 1e-5


def test_without_pillow_one_line_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(predict.UsageError, match=r"reading images needs Pillow: pip install 'fastbp\[images\]'"):
        predict.read_image(tmp_path / "x.png")


def test_run_directory_without_a_checkpoint(cli, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(64))
    expect_error(cli("predict", tmp_path, tmp_path / "x.npy"), 2, f"checkpoint {tmp_path}: directory holds no best.npz or last.npz")
    with pytest.raises(CheckpointError, match="not found"):
        predict.load_run(tmp_path / "nope.npz")
