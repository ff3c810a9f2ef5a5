#!/usr/bin/env python3
"""Golden fixtures for tests/data_preprocess.rs: timm's evaluation transform run by PIL.

For each (image, config) case this writes, under tests/golden/preprocess/:
  <case>.u8.npy   uint8 [H, W, 3]: the PIL image after Resize + CenterCrop (before ToTensor)
  <case>.f32.npy  float32 [3, H, W]: the full transform's output tensor (for some cases)
and manifest.json describing every case (image, sizes, crop origin, normalisation, versions).

The transform is timm.data.create_transform(input_size, crop_pct, interpolation, mean, std),
applied to Image.open(path).convert('RGB'), which is what timm's dataset loader does.
Sizes are small (crops of 64, 48 and 40 pixels) to keep the fixtures small.

Inputs: real photos from models/images/ (sources, licences and sha256 in models/README.md:
chelsea.png and coffee.png from the scikit-image wheel, CC0; squirrel.jpg (4:2:0 chroma) from
Debian opencv-doc; dog.jpg (4:2:2) from Debian darknet; the JPEGs exercise the JPEG decoder), and
synthetic images written here, seeded: greyscale (mode L), RGBA, palette (P) and
16-bit-per-channel RGB PNGs. Also small .npy files written by numpy for tests/npy_io.rs.

Run from the repository root with the pinned versions:
  pip install Pillow==13.0.0 timm==1.0.31 torch torchvision numpy
  python tests/golden/make_preprocess_golden.py
"""

import json
import os
import struct
import sys
import zlib

import numpy as np
import PIL
from PIL import Image, features
import timm
import torch
import torchvision
from timm.data import create_transform
from timm.data.constants import (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD,
                                 IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD)

PINNED = {"Pillow": "13.0.0", "timm": "1.0.31"}
FOUND = {"Pillow": PIL.__version__, "timm": timm.__version__}
if FOUND != PINNED and "--any-version" not in sys.argv:
    sys.exit(f"pinned versions {PINNED}, found {FOUND}; pass --any-version to run anyway")

OUT = "tests/golden/preprocess"
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(20240607)


def write_png_rgb16(path, arr):
    """A 16-bit-per-channel RGB PNG (PIL cannot write one), by hand."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    png = (b"\x89PNG\r\n\x1a\n"
           + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(png)


def smooth_noise(h, w, channels):
    """Smooth gradients plus noise and a sharp edge: exercises both the filter's smoothing and
    its overshoot (negative lobes of bicubic clip at 0 and 255)."""
    y, x = np.mgrid[0:h, 0:w]
    base = 127 + 100 * np.sin(x / 5.0)[..., None] * np.cos(y / 7.0)[..., None]
    base = base + rng.normal(0, 25, (h, w, channels))
    base[:, w // 2:] = np.where(base[:, w // 2:] > 128, 255, 0)
    return np.clip(base, 0, 255).astype(np.uint8)


# Synthetic inputs (committed next to the fixtures).
synthetic = {}
grey = smooth_noise(67, 41, 1)[..., 0]                     # portrait, upscaled by config A
Image.fromarray(grey, "L").save(f"{OUT}/grey_41x67.png")
synthetic["grey_41x67.png"] = "mode L, 41x67"
rgba = np.concatenate([smooth_noise(100, 150, 3),
                       np.tile(np.linspace(0, 255, 150).astype(np.uint8), (100, 1))[..., None]],
                      axis=2)
rgba[10:30, 10:30, 3] = 0                                  # transparent but coloured pixels
Image.fromarray(rgba, "RGBA").save(f"{OUT}/rgba_150x100.png")
synthetic["rgba_150x100.png"] = "mode RGBA, 150x100, alpha ramp"
pal = Image.fromarray(smooth_noise(30, 50, 3), "RGB").quantize(colors=16)
pal.save(f"{OUT}/palette_50x30.png")
synthetic["palette_50x30.png"] = "mode P (16 colours), 50x30"
rgb16 = (smooth_noise(21, 33, 3).astype(np.uint16) * 257
         + rng.integers(0, 257, (21, 33, 3))).astype(np.uint16)
write_png_rgb16(f"{OUT}/rgb16_33x21.png", rgb16)
synthetic["rgb16_33x21.png"] = "16-bit RGB PNG, 33x21 (PIL keeps the high byte)"

IMAGES = [
    ("chelsea", "models/images/chelsea.png"),
    ("coffee", "models/images/coffee.png"),
    ("squirrel", "models/images/squirrel.jpg"),   # JPEG 4:2:0
    ("dog", "models/images/dog.jpg"),             # JPEG 4:2:2
    ("grey", f"{OUT}/grey_41x67.png"),
    ("rgba", f"{OUT}/rgba_150x100.png"),
    ("palette", f"{OUT}/palette_50x30.png"),
    ("rgb16", f"{OUT}/rgb16_33x21.png"),
]
# (name, crop, crop_pct, interpolation, normalisation)
CONFIGS = [
    ("a", 64, 0.875, "bicubic", "imagenet"),
    ("b", 48, 1.0, "bilinear", "inception"),
    ("c", 40, 0.875, "bicubic", "tflite"),
]
# Float outputs only where they add something, to keep the fixtures small: config c's floats
# are (u8 - 127) / 128 by definition, and the palette / 16-bit cases test decoding only.
FLOATS = {("a", n) for n, _ in IMAGES[:6]} | {("b", n) for n, _ in IMAGES[:6]}

cases = []
for cfg, crop, crop_pct, interp, norm in CONFIGS:
    mean, std = {"imagenet": (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),
                 "inception": (IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD),
                 "tflite": (IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD)}[norm]
    tf = create_transform(input_size=(3, crop, crop), is_training=False, crop_pct=crop_pct,
                          interpolation=interp, mean=mean, std=std)
    names = [type(t).__name__ for t in tf.transforms]
    assert names == ["Resize", "CenterCrop", "MaybeToTensor", "Normalize"], names
    for name, path in IMAGES:
        img = Image.open(path).convert("RGB")
        resized = tf.transforms[0](img)
        cropped = tf.transforms[1](resized)
        u8 = np.asarray(cropped, dtype=np.uint8)
        assert u8.shape == (crop, crop, 3)
        case = f"{name}_{cfg}"
        np.save(f"{OUT}/{case}.u8.npy", u8)
        full = tf(img).numpy().astype(np.float32)
        # Sanity: the tensor is ToTensor+Normalize of the uint8 crop, in float32.
        ref = (torch.from_numpy(u8.transpose(2, 0, 1).copy()).float().div(255)
               .sub(torch.tensor(mean).view(3, 1, 1)).div(torch.tensor(std).view(3, 1, 1)))
        assert np.array_equal(full, ref.numpy())
        entry = {
            "case": case,
            "image": path,
            "image_bytes": os.path.getsize(path),
            "source_size": list(img.size),
            "resized_size": list(resized.size),
            "crop": crop,
            "crop_pct": crop_pct,
            "interpolation": interp,
            "normalization": norm,
            "mean": list(mean),
            "std": list(std),
            "u8": f"{case}.u8.npy",
            "f32": None,
        }
        if norm == "tflite":
            entry["mean"] = entry["std"] = None
        if (cfg, name) in FLOATS:
            np.save(f"{OUT}/{case}.f32.npy", full)
            entry["f32"] = f"{case}.f32.npy"
        cases.append(entry)

# .npy files written by numpy itself, for tests/npy_io.rs: our reader must read them and our
# writer must produce the same bytes. Values follow a formula the Rust test recomputes:
# v[i] = (i * 37 % 101) - 50 for signed types, i * 37 % 101 for unsigned, (i * 37 % 101 - 50) / 8
# for floats (exact in binary), i = flat C-order index.
def formula(n, dtype):
    i = np.arange(n, dtype=np.int64) * 37 % 101
    if np.dtype(dtype).kind == "f":
        return ((i - 50) / 8).astype(dtype)
    if np.dtype(dtype).kind == "i":
        return (i - 50).astype(dtype)
    return i.astype(dtype)


NPY_CASES = [("f4", (2, 3)), ("f8", (4,)), ("u8", (2, 3, 4)), ("u4", (3, 1)),
             ("i8", (5,)), ("u1", (3, 2)), ("f8", ()), ("f4", (1234567, 0))]
npy_files = []
for dt, shape in NPY_CASES:
    n = int(np.prod(shape))
    a = formula(n, "<" + dt if dt != "u1" else "u1").reshape(shape)
    name = "numpy_%s_%s.npy" % (dt, "x".join(map(str, shape)) or "scalar")
    np.save(f"{OUT}/{name}", a)
    npy_files.append({"file": name, "descr": a.dtype.str, "shape": list(shape)})
# Files our reader must refuse, each for its own reason.
np.save(f"{OUT}/numpy_fortran.npy", np.asfortranarray(formula(6, "<f4").reshape(2, 3)))
np.save(f"{OUT}/numpy_bigendian.npy", formula(4, ">f4"))
np.save(f"{OUT}/numpy_int16.npy", formula(4, "<i2"))

manifest = {
    "generator": "tests/golden/make_preprocess_golden.py",
    "versions": {"Pillow": PIL.__version__, "timm": timm.__version__,
                 "torch": torch.__version__, "torchvision": torchvision.__version__,
                 "numpy": np.__version__,
                 "libjpeg_turbo": features.version("jpg")},
    "synthetic_inputs": synthetic,
    "cases": cases,
    "npy_files": npy_files,
}
with open(f"{OUT}/manifest.json", "w") as f:
    json.dump(manifest, f, indent=1)
print(f"wrote {len(cases)} cases to {OUT}")
