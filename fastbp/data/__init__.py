"""The data layer: IDX files, where data sets live, downloading them, and loading them as arrays."""

from .datasets import Dataset, check_input_size, load_dataset, validation_split
from .fetch import fetch
from .idx import read_idx, write_idx
from .locate import cache_dir, dataset_dir_in, find_dataset_dir, search_roots

__all__ = [
    "Dataset",
    "cache_dir",
    "check_input_size",
    "dataset_dir_in",
    "fetch",
    "find_dataset_dir",
    "load_dataset",
    "read_idx",
    "search_roots",
    "validation_split",
    "write_idx",
]
