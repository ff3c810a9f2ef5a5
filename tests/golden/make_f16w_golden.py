#!/usr/bin/env python3
"""Golden taps for `--f16-weights`: fixtures run by PyTorch with the weights sparsescope then
stores.

With --f16-weights sparsescope stores every convolution and linear weight (a state-dict key
ending in ".weight" with two or more dimensions) as float16, rounded to nearest even, and keeps
every other tensor (norms, biases, LayerScale, class token, positions) and all arithmetic in
float32. For fixtures without BatchNorm (nothing is folded into a weight before rounding) that
is exactly this model: the fixture's weights (make_golden.py's recipes), those tensors rounded
float32 -> float16 -> float32, run in float32. The BatchNorm-folding CNNs are covered by the
bundled EfficientNet-Lite0 (models/make_efficientnet_reference.py folds before rounding).

Writes tests/golden/<fixture>.f16w.golden.safetensors with the same layout as
<fixture>.golden.safetensors ("input", "logits", "tap:<name>", metadata "tap_order"); the
checkpoint is the fixture's own (rebuilt from <fixture>.manifest.json by tests/common). Prints
how far the rounding moves every tap from the float32 golden, so that the tests' tolerance can
be seen to tell the two apart.

Run (same pinned versions as make_golden.py): python tests/golden/make_f16w_golden.py
"""

import os
import sys

import numpy as np
import safetensors.numpy
import torch

import make_golden as mg

FIXTURES = ["vit_tiny", "convnext_atto"]


def stored_as_f16(key, tensor):
    return key.endswith(".weight") and tensor.dim() >= 2


def run(name):
    spec = mg.FIXTURES[name]()
    model = spec["model"]
    model.eval()
    mg.assign_weights(name, model, spec["dtype"], spec["gain"])
    rounded = 0
    with torch.no_grad():
        for key, p in model.named_parameters():
            if stored_as_f16(key, p):
                p.copy_(p.half().float())
                rounded += p.numel()
    _, tensors, order, _ = mg.run_model(name, spec, model)

    f32 = safetensors.numpy.load_file(os.path.join(mg.HERE, f"{name}.golden.safetensors"))
    if not np.array_equal(f32["input"], tensors["input"]):
        raise SystemExit(f"{name}: the input differs from the f32 golden's")
    path = os.path.join(mg.HERE, f"{name}.f16w.golden.safetensors")
    mg.save_safetensors(
        tensors,
        path,
        metadata={
            "tap_order": ",".join(order),
            "fixture": name,
            "source": spec["source"] + ", conv/linear weights rounded to float16",
        },
    )
    print(f"{name}: {rounded} weights rounded to float16, golden {os.path.getsize(path)} bytes")
    for k in ["logits"] + [f"tap:{t}" for t in order]:
        moved = float(np.abs(tensors[k] - f32[k]).max())
        print(f"  {k:40s} max |f16w - f32| {moved:.2e}")


def main():
    mg.check_versions()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for name in FIXTURES:
        run(name)


if __name__ == "__main__":
    sys.exit(main())
