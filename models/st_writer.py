"""A deterministic safetensors writer (numpy only).

The `safetensors` package stores `__metadata__` in a hash map, so two runs of the same conversion
give files whose header bytes (and sha256) differ. This writer emits the header with sorted keys
and the tensors in sorted name order, so a conversion re-run reproduces the committed file byte
for byte and its recorded sha256 stays checkable. The result is a standard safetensors file
(8-byte little-endian header length, JSON header padded with spaces to a multiple of 8, then the
raw little-endian tensor bytes); `check_roundtrip` re-reads it with the safetensors package.
"""

import json
import os
import struct

import numpy as np

_DTYPES = {
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("float64"): "F64",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
}


def save_deterministic(tensors, path, metadata=None):
    """Write {name: np.ndarray} to `path` (via a temporary file renamed into place)."""
    names = sorted(tensors)
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    offset = 0
    blobs = []
    for name in names:
        arr = np.ascontiguousarray(tensors[name])
        if arr.dtype not in _DTYPES:
            raise ValueError(f"{name}: unsupported dtype {arr.dtype}")
        blob = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": _DTYPES[arr.dtype],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        offset += len(blob)
        blobs.append(blob)
    hbytes = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * (-len(hbytes) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for blob in blobs:
            f.write(blob)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def check_roundtrip(tensors, path):
    """Re-read `path` with the safetensors package and compare every tensor bit for bit."""
    from safetensors.numpy import load_file

    back = load_file(path)
    if sorted(back) != sorted(tensors):
        raise AssertionError(f"{path}: key set changed in the round trip")
    for k, v in tensors.items():
        b = back[k]
        if b.dtype != v.dtype or b.shape != v.shape or b.tobytes() != np.ascontiguousarray(v).tobytes():
            raise AssertionError(f"{path}: tensor {k} changed in the round trip")
