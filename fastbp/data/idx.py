"""IDX files (the format of MNIST), raw or gzip-compressed, and the file helpers the data layer shares.

An IDX file is a 4-byte big-endian magic number (two zero bytes, a type byte, the number of
dimensions), one big-endian uint32 size per dimension, then the data in C order, big-endian.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..files import atomic_write

GZIP_MAGIC = b"\x1f\x8b"

# IDX type byte -> dtype as stored in the file.
IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_BYTES = {(dt.kind, dt.itemsize): code for code, dt in IDX_TYPES.items()}


def data_error(path, problem: str) -> DataError:
    """The one-line error of this layer: 'data file PATH: PROBLEM'."""
    return DataError(f"data file {path}: {problem}")


def read_bytes(path) -> bytes:
    """The content of a file, decompressed when it starts with the gzip magic bytes."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise data_error(path, f"cannot read it: {exc.strerror or exc}") from None
    return decompress(data, path)


def decompress(data: bytes, path) -> bytes:
    """`data` gunzipped if it starts with the gzip magic bytes, else as it is."""
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise data_error(path, f"corrupt gzip data: {exc}") from None


def parse_idx(data: bytes, path) -> np.ndarray:
    """Decode the bytes of an uncompressed IDX file; `path` only names it in errors."""
    if not data:
        raise data_error(path, "empty file (expected an IDX header)")
    if len(data) < 4:
        raise data_error(path, f"truncated: {len(data)} bytes, shorter than the 4-byte IDX magic number")
    if data[:2] != b"\0\0":
        raise data_error(path, f"not an IDX file: magic number 0x{data[:4].hex()} (expected 0x0000TTNN)")
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_TYPES)
        raise data_error(path, f"unknown IDX type byte 0x{code:02X} (expected one of {known})")
    if not 1 <= ndim <= 4:
        raise data_error(path, f"IDX header gives {ndim} dimensions (expected 1 to 4)")
    start = 4 + 4 * ndim
    if len(data) < start:
        raise data_error(path, f"truncated: the header of {ndim} dimensions needs {start} bytes, found {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:start])
    dtype = IDX_TYPES[code]
    need = math.prod(dims) * dtype.itemsize
    have = len(data) - start
    if have != need:
        problem = "truncated" if have < need else "trailing data"
        shape = "x".join(map(str, dims))
        raise data_error(path, f"{problem}: header says {shape} = {need} bytes, found {have}")
    array = np.frombuffer(data, dtype=dtype, count=math.prod(dims), offset=start).reshape(dims)
    return array.astype(dtype.newbyteorder("="))  # a native-endian, writable copy


def read_idx(path) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed (told by its magic bytes, whatever its name)."""
    return parse_idx(read_bytes(path), path)


def write_idx(path, array) -> None:
    """Write `array` as an IDX file, gzip-compressed when `path` ends in .gz; atomically."""
    array = np.asarray(array)
    code = _TYPE_BYTES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise ValueError(f"IDX cannot hold dtype {array.dtype}")
    if not 1 <= array.ndim <= 4:
        raise ValueError(f"IDX holds 1 to 4 dimensions, not {array.ndim}")
    header = struct.pack(f">4B{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    data = header + array.astype(IDX_TYPES[code], copy=False).tobytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    atomic_write(path, data)
