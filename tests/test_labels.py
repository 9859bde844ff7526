"""Labels of one's own data, strings or any integers, become classes as scikit-learn's LabelEncoder makes
them (sorted distinct labels -> 0, 1, ...); the class names travel in the checkpoint and come back in
summary.json, `fastbp eval` and `fastbp predict`. And predict reads an image as the run's data were made."""

import dataclasses
import json

import numpy as np
import pytest
from cli_helpers import cli, expect_error  # noqa: F401 (cli is a fixture)
from conftest import RUN_FAST
from optional_helpers import require

from fastbp import cli as fastbp_cli
from fastbp import predict
from fastbp.data import load_dataset
from fastbp.train import checkpoint


def blobs(labels, n_per_class=30, n_features=6, seed=0):
    """(X, y): a well separated cluster of rows per label, shuffled."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (len(labels), n_features))
    X = np.concatenate([c + rng.normal(0, 0.5, (n_per_class, n_features)) for c in centres])
    y = np.repeat(np.array(labels), n_per_class)
    order = rng.permutation(len(y))
    return X[order].astype(np.float32), y[order]


def train(out, data, n_classes, *sets):
    args = ["train", "--out", str(out), *RUN_FAST, "--set", f"data.name={json.dumps(str(data))}",
            "--set", f"model.sizes=[6,16,{n_classes}]", "--set", "train.epochs=8", "--set", "train.batch_size=10",
            "--set", "optimizer.lr=0.05", *sets]
    assert fastbp_cli.main(args) == 0
    (run,) = out.iterdir()
    assert run.name.startswith(f"{data.stem}-")  # named after the data, as no config was given
    return run


@pytest.fixture(scope="module")
def words_run(tmp_path_factory):
    """A run on an .npz whose labels are words."""
    folder = tmp_path_factory.mktemp("words")
    X, y = blobs(["owl", "cat", "émeu"])
    np.savez(folder / "animals.npz", X_train=X[:75], y_train=y[:75], X_test=X[75:], y_test=y[75:])
    return train(folder / "runs", folder / "animals.npz", 3), X[75:], y[75:]


@pytest.fixture(scope="module")
def numbers_run(tmp_path_factory):
    """A run on CSV files whose labels are the integers 42, 7, 3 and -1."""
    folder = tmp_path_factory.mktemp("numbers")
    X, y = blobs([42, 7, 3, -1])
    for name, rows in (("train.csv", slice(0, 100)), ("test.csv", slice(100, None))):
        lines = ["label," + ",".join(f"x{i}" for i in range(6))] + [f"{label}," + ",".join(map(str, row))
                                                                  for label, row in zip(y[rows], X[rows])]
        (folder / name).write_text("\n".join(lines) + "\n")
    return train(folder / "runs", folder, 4), X[100:], y[100:]


def test_word_labels_are_kept_in_the_checkpoint_as_a_unicode_array(words_run):
    run, _, _ = words_run
    for name in ("best.npz", "last.npz"):
        with np.load(run / name, allow_pickle=False) as z:
            stored = z["class_names"]
        assert stored.dtype.kind == "U" and stored.tolist() == ["cat", "owl", "émeu"]  # sorted, as LabelEncoder
        assert checkpoint.load(run / name).class_names == ("cat", "owl", "émeu")


def test_summary_names_the_classes_of_its_confusion_matrix(words_run, numbers_run):
    for (run, _, y_test), names in ((words_run, ["cat", "owl", "émeu"]), (numbers_run, ["-1", "3", "7", "42"])):
        summary = json.loads((run / "summary.json").read_text())
        assert summary["classes"] == names and len(summary["confusion_matrix"]) == len(names)
        by_name = dict(zip(names, map(sum, summary["confusion_matrix"])))  # each row: the true class's count
        assert by_name == {str(v): int(np.sum(y_test == v)) for v in np.unique(y_test)}
        assert summary["test_accuracy"] > 0.9


def test_eval_shows_the_class_names(cli, words_run, numbers_run):
    rc, out, err = cli("eval", numbers_run[0], "--json")
    assert rc == 0, err
    result = json.loads(out)
    assert result["test_per_class"]["classes"] == ["-1", "3", "7", "42"] and len(result["test_per_class"]["recall"]) == 4
    rc, out, err = cli("eval", words_run[0])
    assert rc == 0, err
    table = out.split("test per class:\n")[1].splitlines()
    assert table[0].split() == ["class", "precision", "recall", "f1", "count"]
    assert [line.split()[0] for line in table[1:]] == ["cat", "owl", "émeu"]


def test_eval_refuses_data_whose_classes_changed(cli, tmp_path):
    X, y = blobs(["owl", "cat"], n_per_class=10)
    np.savez(tmp_path / "d.npz", X_train=X, y_train=y, X_test=X, y_test=y)
    run = train(tmp_path / "runs", tmp_path / "d.npz", 2, "--set", "train.epochs=1")
    renamed = np.where(y == "owl", "bat", y)
    np.savez(tmp_path / "d.npz", X_train=X, y_train=renamed, X_test=X, y_test=renamed)
    expect_error(cli("eval", run), 2, f"checkpoint {run / 'best.npz'}: its classes (cat, owl) are not those of data set",
                 "(bat, cat)")


@pytest.mark.parametrize("which", ["words", "numbers"])
def test_predict_names_the_classes(cli, words_run, numbers_run, tmp_path, which):
    run, X, y = words_run if which == "words" else numbers_run
    np.save(tmp_path / "rows.npy", X)
    rc, out, err = cli("predict", run, tmp_path / "rows.npy", "--json", "--top", "2")
    assert rc == 0 and err == "", err
    got = [json.loads(line) for line in out.splitlines()]
    names = checkpoint.load(run / "best.npz").class_names
    assert [r["name"] for r in got] == [names[r["class"]] for r in got] and all(r["top"][0][1] == r["name"] for r in got)
    assert np.mean([r["name"] == str(label) for r, label in zip(got, y)]) > 0.9
    rc, out, _ = cli("predict", run, tmp_path / "rows.npy")
    assert rc == 0 and out.splitlines()[0].startswith(f"{tmp_path / 'rows.npy'}[0]: {got[0]['name']}  ({got[0]['name']} ")


def test_predict_reads_csv_rows_with_a_word_label_first(cli, words_run, tmp_path):
    run, X, y = words_run
    (tmp_path / "rows.csv").write_text("".join(f"{label}," + ",".join(map(str, row)) + "\n" for label, row in zip(y, X)))
    np.save(tmp_path / "rows.npy", X)
    outputs = []
    for name in ("rows.csv", "rows.npy"):
        rc, out, err = cli("predict", run, tmp_path / name, "--json")
        assert rc == 0, err
        outputs.append([json.loads(line)["top"] for line in out.splitlines()])
    assert outputs[0] == outputs[1] and len(outputs[0]) == len(y)


# -- images: as the run's data were made ------------------------------------------------------------------
def test_the_data_set_decides_how_images_are_read(tmp_path):
    from data_helpers import synthetic_arrays, write_idx_folder

    write_idx_folder(tmp_path / "mnist", synthetic_arrays())
    write_idx_folder(tmp_path / "fashion-mnist", synthetic_arrays())
    assert load_dataset("mnist", tmp_path).images == "digits" and load_dataset("digits").images == "digits"
    assert load_dataset("fashion-mnist", tmp_path).images == "none"
    assert load_dataset(tmp_path / "mnist").images == "none"  # a folder of one's own: its images as they are


def test_predict_preprocesses_an_image_as_recorded_or_as_asked(cli, pixels_run, tmp_path):
    Image = require("PIL.Image", "images")
    ImageDraw = require("PIL.ImageDraw", "images")
    im = Image.new("L", (56, 40), 255)  # a dark stroke on light paper, off-centre, not 28x28
    ImageDraw.Draw(im).line((40, 5, 36, 35), fill=0, width=5)
    im.save(tmp_path / "stroke.png")
    gray = np.asarray(im)
    as_digit = predict.mnist_preprocess(gray)
    as_is = predict.plain_preprocess(gray)
    assert as_is.shape == (28, 28) and as_is.mean() > 200 and as_digit.mean() < 60  # light paper kept; inverted
    np.save(tmp_path / "digit.npy", as_digit.reshape(1, -1))
    np.save(tmp_path / "as_is.npy", as_is.reshape(1, -1))

    def top(*args):
        rc, out, err = cli("predict", *args, "--json", "--top", "10")
        assert rc == 0, err
        return [json.loads(line)["top"] for line in out.splitlines()]

    assert checkpoint.load(pixels_run / "best.npz").preprocess.images == "none"  # trained on a folder of its own
    assert top(pixels_run, tmp_path / "stroke.png") == top(pixels_run, tmp_path / "as_is.npy")
    assert top(pixels_run, tmp_path / "stroke.png", "--preprocess", "none") == top(pixels_run, tmp_path / "as_is.npy")
    assert top(pixels_run, tmp_path / "stroke.png", "--preprocess", "digits") == top(pixels_run, tmp_path / "digit.npy")
    model = predict.load_run(pixels_run)
    digits_model = model._replace(preprocess=dataclasses.replace(model.preprocess, images="digits"))
    assert np.array_equal(predict.read_inputs(tmp_path / "stroke.png", digits_model), as_digit.reshape(1, -1))
    with pytest.raises(predict.UsageError, match="--preprocess must be one of auto, digits, none, got 'sharpen'"):
        predict.predict_files(model, [tmp_path / "stroke.png"], images="sharpen")
    expect_error(cli("predict", pixels_run, tmp_path / "stroke.png", "--preprocess", "sharpen"), 2,
                 "argument --preprocess: invalid choice: 'sharpen'")
