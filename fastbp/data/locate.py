"""Where MNIST-style data sets are looked for.

In order: an explicit data directory, $FASTBP_DATA, the user cache ($XDG_CACHE_HOME/fastbp or
~/.cache/fastbp), then Debian's /usr/share/datasets. Each root holds one folder per data set
(<root>/mnist/train-images-idx3-ubyte.gz, ...); an explicit data directory may also be that folder
itself. Each of the four files may be gzip-compressed (.gz) or not.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError

# The four files of an MNIST-style data set, without the .gz suffix.
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
SYSTEM_ROOT = Path("/usr/share/datasets")
DATA_DIR_LABEL = "data directory"


def cache_dir() -> Path:
    """The user's cache folder for fastbp: $XDG_CACHE_HOME/fastbp, else ~/.cache/fastbp."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # the XDG spec ignores relative paths
    return base / "fastbp"


def data_dir_folder(data_dir) -> Path:
    """An explicit data directory (--data-dir, data.data_dir) as a Path; DataError unless it is a folder."""
    return _folder(data_dir, "data directory {} (--data-dir or data.data_dir)", "give the folder that holds the data")


def _folder(path, what, fix) -> Path:
    """Path(path), or DataError 'WHAT: no such folder; FIX' (WHAT: `what` with the path in its {})."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DataError(f"{what.format(path)}: {'is a file, not a folder' if path.exists() else 'no such folder'}; {fix}")
    return path


def search_roots(data_dir=None) -> list[tuple[str, Path]]:
    """The roots looked in, in order, each with a label saying where it comes from. DataError for a
    data directory or a $FASTBP_DATA that is not a folder: a path that points nowhere is a mistake
    to say, not a root to pass over."""
    roots = []
    if data_dir is not None:
        roots.append((DATA_DIR_LABEL, data_dir_folder(data_dir)))
    if os.environ.get("FASTBP_DATA"):
        fix = "point it at a folder holding mnist/ or fashion-mnist/, or unset it"
        roots.append(("$FASTBP_DATA", _folder(os.environ["FASTBP_DATA"], "$FASTBP_DATA={}", fix)))
    roots.append(("user cache", cache_dir()))
    roots.append(("system", SYSTEM_ROOT))
    return roots


def find_idx_file(folder, stem: str) -> Path | None:
    """folder/stem.gz or folder/stem, whichever exists first; None if neither."""
    for candidate in (Path(folder) / f"{stem}.gz", Path(folder) / stem):
        if candidate.is_file():
            return candidate
    return None


def idx_files(folder) -> dict[str, Path] | None:
    """The four IDX files in `folder` by stem, or None unless all four are there."""
    found = {stem: find_idx_file(folder, stem) for stem in IDX_FILES}
    return found if all(found.values()) else None


def _folders(root, name: str, direct: bool) -> tuple[Path, ...]:
    return (Path(root) / name, Path(root)) if direct else (Path(root) / name,)


def dataset_dir_in(root, name: str, direct: bool = False) -> Path | None:
    """root/name if it holds the four IDX files; else, with direct=True, root itself if it does."""
    return next((folder for folder in _folders(root, name, direct) if idx_files(folder)), None)


def find_dataset_dir(name: str, data_dir=None) -> Path:
    """The first folder holding the four IDX files of data set `name`, looking where search_roots says."""
    tried = []
    for label, root in search_roots(data_dir):
        for folder in _folders(root, name, direct=label == DATA_DIR_LABEL):
            if idx_files(folder):
                return folder
            missing = [stem for stem in IDX_FILES if not find_idx_file(folder, stem)]
            tried.append(f"{folder} ({'lacks ' + ', '.join(missing) if folder.is_dir() else 'absent'})")
    raise DataError(
        f"data set {name}: its IDX files ({', '.join(IDX_FILES)}, each .gz or not) "
        f"were not found in: {'; '.join(tried)}; set FASTBP_DATA, or download them with: fastbp data fetch {name}"
    )
