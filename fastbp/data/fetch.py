"""Download MNIST or Fashion-MNIST into the cache (or another root), verified by SHA-256.

The digests are of each file's decompressed content, so that a mirror's own gzip compression
does not matter. Each file is downloaded whole, checked, then written atomically: a failure leaves
no partial or temporary file behind, and raises FetchError (exit code 1: a failure while running).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import DataError, FetchError, WriteError
from ..files import atomic_write
from .idx import GZIP_MAGIC, decompress, read_bytes
from .locate import cache_dir, find_idx_file

MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

# SHA-256 of the decompressed content of each file.
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}


def mirror_urls(name: str, mirrors=None) -> list[str]:
    """Base URLs to try, in order: `mirrors`, else $FASTBP_MIRRORS (comma separated), else the
    defaults. A '{name}' in a URL is replaced by the data set's name."""
    if mirrors is None and os.environ.get("FASTBP_MIRRORS"):
        mirrors = os.environ["FASTBP_MIRRORS"].split(",")
    if mirrors is None:
        mirrors = MIRRORS[name]
    return [m.strip().replace("{name}", name) for m in mirrors if m.strip()]


def _download(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()  # raises IncompleteRead when the body is shorter than announced


def _try_mirror(url: str, digest: str, timeout: float) -> tuple[bytes | None, str]:
    """The file's bytes from `url` if their content has the right digest, else why not."""
    try:
        data = _download(url, timeout)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        reason = exc.reason if type(exc) is urllib.error.URLError else exc  # drop '<urlopen error ...>'
        return None, f"transfer failed: {reason}"
    try:
        got = hashlib.sha256(decompress(data, url)).hexdigest()
    except DataError:
        return None, "checksum mismatch: not valid gzip data"
    if got != digest:
        return None, f"checksum mismatch: SHA-256 of content {got}, expected {digest}"
    return data, ""


def fetch(name: str, dest_root=None, mirrors=None, timeout: float = 30, log=None) -> Path:
    """Download the four IDX files of `name` ('mnist' or 'fashion-mnist') into dest_root/name/
    (default: the cache dir) and return that folder. Files already there with the right digest are
    kept. `log`, if given, is called with one line per file."""
    if name not in SHA256:
        raise DataError(f"cannot fetch data set {name!r}: expected one of {', '.join(SHA256)}")
    dest = Path(dest_root).expanduser() if dest_root is not None else cache_dir()
    dest = dest / name
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"data folder {dest}: cannot create it: {exc.strerror or exc}") from None
    urls = mirror_urls(name, mirrors)
    for stem, digest in SHA256[name].items():
        present = find_idx_file(dest, stem)
        if present and _has_digest(present, digest):
            if log:
                log(f"{present}: present, checksum ok")
            continue
        written = _fetch_file(dest / f"{stem}.gz", digest, urls, timeout, log)
        if present and present != written:
            present.unlink()  # a bad copy that find_idx_file would otherwise still pick
    return dest


def _has_digest(path: Path, digest: str) -> bool:
    try:
        return hashlib.sha256(read_bytes(path)).hexdigest() == digest
    except DataError:
        return False


def _fetch_file(target: Path, digest: str, urls: list[str], timeout: float, log) -> Path:
    """Download `target`'s name from the first mirror that has it right; return where it went."""
    failures = []
    for base in urls:
        url = base.rstrip("/") + "/" + target.name
        if log:
            log(f"{target}: downloading {url}")
        data, why = _try_mirror(url, digest, timeout)
        if data is None:
            failures.append(f"{url}: {why}")
            continue
        if data[:2] != GZIP_MAGIC:
            target = target.with_suffix("")  # the mirror served it uncompressed: name it so
        try:
            atomic_write(target, data)
        except WriteError as exc:
            raise FetchError(f"data file {target}: {exc}") from None
        return target
    raise FetchError(f"data file {target}: download failed from every mirror: {'; '.join(failures) or 'no mirrors given'}")
