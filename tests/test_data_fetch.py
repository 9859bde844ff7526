"""fetch() against a local HTTP server serving small synthetic IDX files."""

import gzip
import hashlib
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pytest
from data_helpers import raises_one_line, write_idx_folder
from cli_helpers import cli  # noqa: F401 (a fixture)

from fastbp.data import fetch, load_dataset
from fastbp.data.fetch import SHA256
from fastbp.data.locate import IDX_FILES
from fastbp.errors import DataError, FetchError


@pytest.fixture
def server(monkeypatch):
    """An HTTP server on 127.0.0.1: routes maps a path to (status, body, announced length or None)."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # urllib honours http_proxy otherwise
    routes, requests = {}, []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            status, body, length = routes.get(self.path, (404, b"not found", None))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            self.wfile.write(body)  # then the connection closes (HTTP/1.0)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_port}", routes=routes, requests=requests)
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def files(tmp_path, monkeypatch):
    """The synthetic set: its arrays and .gz bytes by stem; the digest table patched to match."""
    arrays = write_idx_folder(tmp_path / "source")
    gz = {stem: (tmp_path / "source" / f"{stem}.gz").read_bytes() for stem in IDX_FILES}
    digests = {stem: hashlib.sha256(gzip.decompress(data)).hexdigest() for stem, data in gz.items()}
    monkeypatch.setitem(SHA256, "mnist", digests)
    return SimpleNamespace(arrays=arrays, gz=gz)


def serve(server, prefix, files, **changes):
    """Serve the files under /prefix/; `changes` maps a stem to the (status, body, length) to use instead."""
    for stem, data in files.gz.items():
        server.routes[f"/{prefix}/{stem}.gz"] = changes.get(stem.replace("-", "_"), (200, data, None))
    return f"{server.url}/{prefix}/"


def test_success(tmp_path, server, files):
    dest = fetch("mnist", tmp_path / "root", mirrors=[serve(server, "good", files)], timeout=5)
    assert dest == tmp_path / "root" / "mnist"
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{stem}.gz" for stem in IDX_FILES)
    ds = load_dataset("mnist", data_dir=tmp_path / "root")
    assert np.array_equal(ds.y_test, files.arrays["t10k-labels-idx1-ubyte"])


def test_404_then_good_mirror(tmp_path, server, files):
    mirrors = [f"{server.url}/missing/", serve(server, "good", files)]
    fetch("mnist", tmp_path, mirrors=mirrors, timeout=5)
    assert server.requests[:2] == ["/missing/train-images-idx3-ubyte.gz", "/good/train-images-idx3-ubyte.gz"]
    assert len(list((tmp_path / "mnist").iterdir())) == 4


def test_mirrors_from_environment(tmp_path, server, files, monkeypatch):
    serve(server, "mnist", files)
    monkeypatch.setenv("FASTBP_MIRRORS", f"{server.url}/missing/, {server.url}/{{name}}")
    fetch("mnist", tmp_path, timeout=5)
    assert "/mnist/t10k-labels-idx1-ubyte.gz" in server.requests


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


@pytest.mark.parametrize(
    "bad, reason",
    [
        (lambda data: (200, data, len(data) + 100), "transfer failed: IncompleteRead"),  # body shorter than announced
        (lambda data: (200, data[: len(data) // 2], len(data)), "transfer failed: IncompleteRead"),
        (lambda data: (500, b"oops", None), "transfer failed: HTTP Error 500"),
        (lambda data: (200, gzip.compress(b"other content"), None), "checksum mismatch: SHA-256 of content"),
        (lambda data: (200, b"\x1f\x8bnot gzip at all", None), "checksum mismatch: not valid gzip data"),
    ],
)
def test_failures_leave_nothing_behind(tmp_path, server, files, bad, reason):
    good_labels = serve(server, "a", files)  # the first file is fine, the second is bad everywhere
    mirrors = [good_labels, serve(server, "b", files, train_labels_idx1_ubyte=bad(files.gz["train-labels-idx1-ubyte"])),
               closed_port_url()]
    del server.routes["/a/train-labels-idx1-ubyte.gz"]
    error = raises_one_line("train-labels-idx1-ubyte.gz: download failed from every mirror", fetch,
                            "mnist", tmp_path, mirrors, 5, error=FetchError)
    assert error.exit_code == 1  # a failure while running, not bad input
    message = str(error)
    assert f"{good_labels}train-labels-idx1-ubyte.gz: transfer failed: HTTP Error 404" in message
    assert f"{server.url}/b/train-labels-idx1-ubyte.gz: {reason}" in message
    assert "Connection refused" in message
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == ["train-images-idx3-ubyte.gz"]  # no partial or temp file


def test_present_files_are_skipped_and_bad_ones_replaced(tmp_path, server, files):
    write_idx_folder(tmp_path / "mnist", {stem: files.arrays[stem] for stem in IDX_FILES[:2]}, suffix="")
    (tmp_path / "mnist" / "train-labels-idx1-ubyte").write_bytes(b"damaged")
    fetch("mnist", tmp_path, mirrors=[serve(server, "good", files)], timeout=5)
    assert "/good/train-images-idx3-ubyte.gz" not in server.requests
    assert "/good/train-labels-idx1-ubyte.gz" in server.requests
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"])
    server.requests.clear()
    fetch("mnist", tmp_path, mirrors=[serve(server, "good", files)], timeout=5)
    assert server.requests == []


def test_unknown_data_set(tmp_path):
    with pytest.raises(DataError, match="cannot fetch data set 'cifar': expected one of mnist, fashion-mnist"):
        fetch("cifar", tmp_path)


def test_unwritable_destination(tmp_path, server, files):
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").mkdir(parents=True)  # a folder where the file goes
    raises_one_line("cannot write .*train-images-idx3-ubyte.gz: Is a directory", fetch,
                    "mnist", tmp_path, [serve(server, "good", files)], 5, error=FetchError)
    assert os.listdir(tmp_path / "mnist") == ["train-images-idx3-ubyte.gz"]  # the temp file is gone


def test_cli_download_failure_is_one_line_exit_1_and_leaves_nothing(tmp_path, server, files, cli):
    """`fastbp data fetch` with every mirror failing: one line naming the file, the mirror and
    the checksum failure; exit code 1 (a failure while running); no file or temp file written."""
    bad = serve(server, "bad", files, train_images_idx3_ubyte=(200, gzip.compress(b"wrong content"), None))
    rc, _, err = cli("data", "fetch", "mnist", "--dest", tmp_path, "--mirror", bad, "--mirror", closed_port_url())
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "Connection refused" in err and err.index(bad) < err.index("Connection refused")  # mirrors in order
    assert err.startswith(f"fastbp: error: data file {tmp_path / 'mnist' / 'train-images-idx3-ubyte.gz'}: download failed")
    assert "checksum mismatch: SHA-256 of content" in err
    assert os.listdir(tmp_path / "mnist") == []
