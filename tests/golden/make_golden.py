#!/usr/bin/env python3
"""Golden fixtures for the forward-pass tests: tiny random-weight models run by PyTorch.

Git cannot hold random-weight checkpoints (resnet50 alone is 25M parameters), so the weights are
not stored at all. Each tensor is generated from a recipe (seed, lo, hi) by a counter-based PRNG
that this script and tests/common/mod.rs implement identically (spec below). Per fixture this
writes, under tests/golden/:

  <fixture>.manifest.json    {"fixture", "source", "dtype", "input_shape",
                              "tensors": [{"key", "shape", "seed", "lo", "hi"}, ...]}
                             in state-dict order (num_batches_tracked left out: it is an int
                             counter that eval mode never reads)
  <fixture>.golden.safetensors  float32 tensors:
                             "input"   [N, 3, H, W]  (N = 2; H, W per fixture, small
                                                     and often odd or non-square)
                             "logits"  [N, classes]   (when the model has a head)
                             "tap:<name>" [N, P, C]   P = tokens incl. CLS for a ViT, H*W in
                                                      row-major (h, w) order for a CNN
                             "extra:<name>"           debugging aids (dinov2_hf: the interpolated
                                                      position table)
                             metadata "tap_order": the tap names, comma-joined, in forward order
                             (checked against the order in which the forward hooks fired)

and tests/golden/prng_check.json, which tests/synth_weights.rs uses to prove that the Rust
generator reproduces these bytes (reference streams, and a sha256 of every fixture tensor).

The Rust side (tests/common) rebuilds each checkpoint from its manifest into
target/golden-weights/<fixture>.safetensors.

PRNG (normative; keep identical to tests/common/mod.rs)
-------------------------------------------------------
For a tensor with seed s (u64) and flat element index i (row-major, 0-based), in wrapping u64
arithmetic:
    z = s * 0x9E3779B97F4A7C15 + i
    z = z + 0x9E3779B97F4A7C15                      # splitmix64 finaliser from here on
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB
    z = z ^ (z >> 31)
    u = (z >> 40) / 2^24                             # f64, exact, in [0, 1)
    v = lo + (hi - lo) * u                           # f64, in this order, no fused multiply-add
then v is rounded to the manifest dtype with round-to-nearest, ties-to-even, directly from f64
(one rounding): f32 by the IEEE cast; f16 (11 significant bits, subnormals below 2^-14) and bf16
(8 significant bits, subnormals below 2^-126) by r = rint(v / 2^q) * 2^q with
q = max(floor(log2|v|), emin) - (p - 1), after which r is exact in the target format. (Neither
numpy's float16 cast on x86 nor the `half` crate's from_f64 is a single rounding from f64: both may
go through f32 or truncate, which could differ in rare ties; hence the explicit formula.)
The PyTorch model is run with exactly those rounded values, widened to f32, so a golden file
matches what Rust loads.

Seeds: s = first 8 bytes, little-endian, of sha256("<fixture>/<state-dict key>").
lo/hi are written with 6 significant digits, so that any JSON parser (serde_json's default
float parser included) reads back the same f64.

Recipes keep activations O(1) through the depth and make every normalisation non-trivial
(timm's init leaves LayerNorm/BatchNorm at weight 1, bias 0, running stats 0/1, and zeroes the
last BN gamma of ResNet blocks, which hides bugs):
    linear/conv weights     U(-a, a), a = gain * sqrt(3 / fan_in), fan_in = prod(shape[1:])
    norm weights (1-D)      U(0.5, 1.5)         biases (1-D)        U(-0.2, 0.2)
    BN running_var          U(0.5, 2.0)         BN running_mean     U(-0.2, 0.2)
    LayerScale gamma/lambda U(0.1, 1.0)         cls/pos/mask tokens U(-0.5, 0.5)
The gain per fixture (1.0 except efficientnet_lite0's sqrt(2)) keeps every tap's RMS within
about 0.4..4 (printed per tap when the script runs). The input batch comes from the same PRNG:
seed_of(fixture, "input"), U(-1, 1), f32.

DINOv2 position-embedding interpolation (transformers 5.23.0, Dinov2Embeddings.
interpolate_pos_encoding), which the Rust side must reproduce exactly:
  - no interpolation at all when the number of patches equals the table's (num_positions) AND
    height == width (pixel height/width of the input), outside torch.jit tracing; otherwise:
  - the CLS row (row 0) is kept as is; the remaining rows are reshaped to a square grid
    [1, S, S, dim] with S = int(sqrt(num_positions)), permuted to [1, dim, S, S];
  - torch.nn.functional.interpolate(..., size=(H // patch, W // patch), mode="bicubic",
    align_corners=False), antialias left at its default False. It passes the output `size`,
    NOT a scale_factor, and there is no +0.1 offset (older DINO/DINOv2 code used
    scale_factor=(new + 0.1) / S; this version does not). With `size` given, PyTorch's scale is
    in/out = S / (H // patch) (per axis; torch computes scale, coordinates and weights in
    f32, its opmath type for float, so an f64 implementation differs from it by a few 1e-7,
    measured below), the source coordinate of output
    index d is src = (d + 0.5) * scale - 0.5 (not clamped at 0); i = min(floor(src), S - 1),
    t = clamp(src - i, 0, 1); cubic convolution with A = -0.75, weights
    [cc2(t + 1), cc1(t), cc1(1 - t), cc2((1 - t) + 1)] with cc1(x) = ((A + 2) x - (A + 3)) x x + 1,
    cc2(x) = ((A x - 5A) x + 8A) x - 4A, on the rows/columns i - 1 .. i + 2 clamped to
    [0, S - 1]; separable: each of the 4 source rows is first summed along x, then the 4 row
    sums along y;
  - it casts the table to float32 before interpolating and back to its dtype after (here the
    model runs in f32, so no rounding happens);
  - the result is permuted back to [1, h*w, dim] (row-major over (h, w)) and concatenated after
    the CLS row.
  When the grid already matches but height != width, the interpolation runs from S x S to
  S x S, which is the identity (t = 0 gives weights [0, 1, 0, 0] exactly).
  A numpy re-implementation of exactly this is checked against torch below
  (dinov2_extras), and the interpolated table is stored as
  "extra:embeddings.position_embeddings.interpolated" [1, 1 + h*w, dim].

Run from the repository root:
  /work/venv/bin/python tests/golden/make_golden.py            # every fixture
  /work/venv/bin/python tests/golden/make_golden.py resnet18   # one fixture (prng_check.json
                                                               # keeps the others' hashes)
"""

import hashlib
import json
import math
import os
import sys

import numpy as np
import safetensors
import safetensors.numpy
import timm
import torch
import torch.nn as nn
import transformers

# Pinned versions (the golden files were written with these).
PINNED = {
    "torch": "2.15.0",
    "timm": "1.0.31",
    "transformers": "5.23.0",
    "numpy": "2.4.6",
    "safetensors": "0.8.0",
}

HERE = os.path.dirname(os.path.abspath(__file__))
N_IMAGES = 2

# --------------------------------------------------------------------------------------------
# PRNG
# --------------------------------------------------------------------------------------------

MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
CHUNK = 1 << 22

# (significant bits p, minimum normal exponent emin) of the 16-bit formats
HALF_FORMATS = {"f16": (11, -14), "bf16": (8, -126)}


def prng_z(seed, start, n):
    """The raw splitmix64 outputs z for element indices start .. start + n."""
    base = np.uint64(((seed * GOLDEN_GAMMA) + start) & MASK64)
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + base
        z += np.uint64(GOLDEN_GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
        z ^= z >> np.uint64(31)
    return z


def prng_f64(seed, lo, hi, n):
    """v = lo + (hi - lo) * u for the first n elements, as f64."""
    out = np.empty(n, dtype=np.float64)
    span = hi - lo
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        u = (prng_z(seed, start, m) >> np.uint64(40)).astype(np.float64) / float(1 << 24)
        out[start : start + m] = lo + span * u
    return out


def round_half(v, fmt):
    """Round f64 values to f16 / bf16 (ties to even, one rounding), returned as exact f64."""
    p, emin = HALF_FORMATS[fmt]
    _, e = np.frexp(v)  # |v| in [2^(e-1), 2^e); e = 0 for v = 0
    q = np.maximum(e.astype(np.int64) - 1, emin) - (p - 1)
    r = np.ldexp(np.rint(np.ldexp(v, -q)), q)
    limit = 65504.0 if fmt == "f16" else 3.3895313892515355e38
    if np.any(np.abs(r) > limit):
        raise ValueError(f"value out of {fmt} range")
    return r


def encode(v, dtype):
    """f64 values -> (little-endian bytes in the manifest dtype, the same values as f32)."""
    if dtype == "f32":
        f = v.astype(np.float32)
        return f.astype("<f4").tobytes(), f
    r = round_half(v, dtype)
    f = r.astype(np.float32)  # exact
    if dtype == "f16":
        bits = r.astype(np.float16).view(np.uint16)  # exact: r is representable
    else:
        bits = (f.view(np.uint32) >> np.uint32(16)).astype(np.uint16)
    return bits.astype("<u2").tobytes(), f


def generate(seed, lo, hi, shape, dtype):
    n = int(np.prod(shape)) if len(shape) else 1
    raw, f32 = encode(prng_f64(seed, lo, hi, n), dtype)
    return raw, f32.reshape(shape)


def seed_of(fixture, key):
    return int.from_bytes(hashlib.sha256(f"{fixture}/{key}".encode()).digest()[:8], "little")


def sig6(x):
    return float(f"{x:.6g}")


# --------------------------------------------------------------------------------------------
# Recipes
# --------------------------------------------------------------------------------------------

TOKEN_NAMES = {"cls_token", "pos_embed", "position_embeddings", "mask_token", "reg_token"}
LAYERSCALE_NAMES = {"gamma", "lambda1"}


def default_recipe(key, shape, gain):
    """(lo, hi) for a state-dict tensor, from its name and shape."""
    name = key.rsplit(".", 1)[-1]
    if name == "running_mean":
        return -0.2, 0.2
    if name == "running_var":
        return 0.5, 2.0
    if name in TOKEN_NAMES:
        return -0.5, 0.5
    if name in LAYERSCALE_NAMES:
        return 0.1, 1.0
    if name == "weight" and len(shape) == 1:
        return 0.5, 1.5
    if name == "bias" and len(shape) == 1:
        return -0.2, 0.2
    if name == "weight" and len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        a = sig6(gain * math.sqrt(3.0 / fan_in))
        return -a, a
    raise ValueError(f"no recipe for {key} {list(shape)}")


def assign_weights(fixture, model, dtype, gain, recipe=default_recipe):
    """Fill every state-dict tensor from the PRNG; returns the manifest's tensor list and the
    sha256 of each tensor's bytes (for prng_check.json)."""
    state = model.state_dict()
    entries, hashes, new_state = [], {}, {}
    for key, t in state.items():
        if key.endswith("num_batches_tracked"):
            new_state[key] = t
            continue
        shape = list(t.shape)
        lo, hi = recipe(key, shape, gain)
        lo, hi = sig6(lo), sig6(hi)
        seed = seed_of(fixture, key)
        raw, values = generate(seed, lo, hi, shape, dtype)
        hashes[key] = hashlib.sha256(raw).hexdigest()[:16]  # 64 bits are plenty here
        new_state[key] = torch.from_numpy(values.copy())
        entries.append({"key": key, "shape": shape, "seed": seed, "lo": lo, "hi": hi})
    model.load_state_dict(new_state, strict=True)
    return entries, hashes


# --------------------------------------------------------------------------------------------
# Taps
# --------------------------------------------------------------------------------------------


def to_npc(x, layout):
    """A hooked activation as [N, P, C] float32 numpy."""
    if layout == "tokens":  # [N, T, C]
        return x
    if layout == "nchw":
        n, c, h, w = x.shape
        return x.permute(0, 2, 3, 1).reshape(n, h * w, c)
    if layout == "nhwc":
        n, h, w, c = x.shape
        return x.reshape(n, h * w, c)
    raise ValueError(layout)


def capture(model, taps, x):
    """Run model(x) with forward hooks on each (name, module, layout); returns the output, the
    taps as {name: [N, P, C]} and the order in which the hooks fired."""
    values, fired, handles = {}, [], []
    for name, module, layout in taps:

        def hook(_m, _inp, out, name=name, layout=layout):
            if isinstance(out, tuple):
                out = out[0]
            if name in values:
                raise RuntimeError(f"tap {name} fired twice")
            fired.append(name)
            # Clone now: in-place activations later in the graph must not change the value.
            values[name] = to_npc(out.detach().clone(), layout).float().numpy()

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    return out, values, fired


# --------------------------------------------------------------------------------------------
# Fixtures: each returns a spec dict; run_fixture does the common work.
# --------------------------------------------------------------------------------------------


def fixture_vit_tiny():
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, num_classes=10)
    taps = []
    for i, blk in enumerate(model.blocks):
        taps.append((f"blocks.{i}.mlp.act", blk.mlp.act, "tokens"))
        taps.append((f"blocks.{i}", blk, "tokens"))
    taps.append(("norm", model.norm, "tokens"))
    return dict(
        model=model,
        source="timm vit_tiny_patch16_224 img_size=64 num_classes=10",
        dtype="f32",
        input_shape=[N_IMAGES, 3, 64, 64],
        gain=1.0,
        taps=taps,
        logits=True,
    )


def fixture_dinov2_hf():
    config = transformers.Dinov2Config(
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        mlp_ratio=4,
        patch_size=14,
        image_size=56,
        num_channels=3,
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        qkv_bias=True,
        layerscale_value=1.0,  # overwritten from the PRNG like every tensor
        drop_path_rate=0.0,
        use_swiglu_ffn=False,
        attn_implementation="eager",
    )
    model = transformers.Dinov2Model(config)
    taps = []
    for i, layer in enumerate(model.encoder.layer):
        # The contract's tap name is `mlp.activation` (transformers 4.x's attribute name); this
        # transformers version calls the module `mlp.activation_fn`. Same point of the graph.
        act = getattr(layer.mlp, "activation", None) or layer.mlp.activation_fn
        taps.append((f"encoder.layer.{i}.mlp.activation", act, "tokens"))
        taps.append((f"encoder.layer.{i}", layer, "tokens"))
    taps.append(("layernorm", model.layernorm, "tokens"))
    return dict(
        model=model,
        source=(
            f"transformers {transformers.__version__} Dinov2Model(Dinov2Config(hidden_size=64, "
            "num_hidden_layers=3, num_attention_heads=4, mlp_ratio=4, patch_size=14, "
            "image_size=56, hidden_act=gelu, layer_norm_eps=1e-6, qkv_bias=True, "
            "use_swiglu_ffn=False)), eager attention; input 70x70 so the 4x4 position grid "
            "is bicubically interpolated to 5x5"
        ),
        dtype="bf16",
        input_shape=[N_IMAGES, 3, 70, 70],
        gain=1.0,
        taps=taps,
        logits=False,
        extra=dinov2_extras,
    )


def resnet_fixture(arch, input_hw, gain):
    model = timm.create_model(arch, pretrained=False, num_classes=10)
    taps = [("act1", model.act1, "nchw")]
    bottleneck = arch in ("resnet50", "resnet101", "resnet152")
    for s in range(1, 5):
        for b, blk in enumerate(getattr(model, f"layer{s}")):
            taps.append((f"layer{s}.{b}.act1", blk.act1, "nchw"))
            if bottleneck:
                taps.append((f"layer{s}.{b}.act2", blk.act2, "nchw"))
            taps.append((f"layer{s}.{b}", blk, "nchw"))
    h, w = input_hw
    return dict(
        model=model,
        source=f"timm {arch} num_classes=10",
        dtype="f32",
        input_shape=[N_IMAGES, 3, h, w],
        gain=gain,
        taps=taps,
        logits=True,
    )


def fixture_resnet18():
    # Non-square 48x64: 24x32 after the stem, 3x4 in layer3 and 2x2 in layer4 (odd sizes
    # exercise stride/padding rounding); 64x64 would be the same size on disk.
    return resnet_fixture("resnet18", (48, 64), gain=1.0)


def fixture_resnet50():
    # 32x32 keeps the golden file under 1.5 MB (64x64 would be about 6 MB); layer4 is 1x1.
    return resnet_fixture("resnet50", (32, 32), gain=1.0)


def fixture_efficientnet_lite0():
    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=10)
    taps = [("bn1", model.bn1, "nchw")]
    for s, stage in enumerate(model.blocks):
        for b, blk in enumerate(stage):
            taps.append((f"blocks.{s}.{b}.bn1", blk.bn1, "nchw"))
            if not isinstance(blk.bn2.act, nn.Identity):
                taps.append((f"blocks.{s}.{b}.bn2", blk.bn2, "nchw"))
            taps.append((f"blocks.{s}.{b}", blk, "nchw"))
    taps.append(("bn2", model.bn2, "nchw"))
    return dict(
        model=model,
        source="timm efficientnet_lite0 num_classes=10",
        dtype="f32",
        # Non-square and not a multiple of 32: stride-2 stages see odd sizes (20x28 -> 10x14
        # -> 5x7 -> 3x4 -> 2x2); 64x64 would be about 3 MB.
        input_shape=[N_IMAGES, 3, 26, 38],
        gain=math.sqrt(2.0),
        taps=taps,
        logits=True,
    )


def fixture_convnext_atto():
    model = timm.create_model("convnext_atto", pretrained=False, num_classes=10)
    taps = []
    for s, stage in enumerate(model.stages):
        for b, blk in enumerate(stage.blocks):
            # convnext_atto uses conv_mlp=True (1x1 convs, NCHW); with conv_mlp=False timm runs
            # the MLP channels-last (NHWC).
            layout = "nchw" if blk.use_conv_mlp else "nhwc"
            taps.append((f"stages.{s}.blocks.{b}.mlp.act", blk.mlp.act, layout))
            taps.append((f"stages.{s}.blocks.{b}", blk, "nchw"))
    return dict(
        model=model,
        source="timm convnext_atto num_classes=10",
        dtype="f32",
        # 8x12 after the stem, 1x1 in the last stage (2x3 -> k2 s2 conv).
        input_shape=[N_IMAGES, 3, 32, 48],
        gain=1.0,
        taps=taps,
        logits=True,
    )


FIXTURES = {
    "vit_tiny": fixture_vit_tiny,
    "dinov2_hf": fixture_dinov2_hf,
    "resnet18": fixture_resnet18,
    "resnet50": fixture_resnet50,
    "efficientnet_lite0": fixture_efficientnet_lite0,
    "convnext_atto": fixture_convnext_atto,
}


# --------------------------------------------------------------------------------------------
# DINOv2 position interpolation: numpy reference of what transformers does
# --------------------------------------------------------------------------------------------


def cubic_weights(t):
    """PyTorch's get_cubic_upsample_coefficients (A = -0.75)."""
    a = -0.75

    def c1(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def c2(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [c2(t + 1), c1(t), c1(1 - t), c2((1 - t) + 1)]


def bicubic_reference(grid, out_h, out_w, scale=None):
    """grid [S_h, S_w, C] -> [out_h, out_w, C] as F.interpolate(size=(out_h, out_w),
    mode='bicubic', align_corners=False) computes it (aten UpSampleKernel.cpp,
    HelperInterpCubic + Interpolate<2>), in f64. `scale` overrides in/out (to show what the
    scale_factor + 0.1 variant would give)."""
    s_h, s_w, _ = grid.shape
    g = grid.astype(np.float64)

    def taps_1d(size_in, size_out, sc):
        sc = size_in / size_out if sc is None else sc
        res = []
        for d in range(size_out):
            src = sc * (d + 0.5) - 0.5
            # guard_index_and_lambda: index at most size_in - 1, lambda clamped to [0, 1]
            f = min(math.floor(src), size_in - 1)
            t = min(max(src - f, 0.0), 1.0)
            idx = [min(max(f + k, 0), size_in - 1) for k in (-1, 0, 1, 2)]
            res.append((idx, cubic_weights(t)))
        return res

    rows, cols = taps_1d(s_h, out_h, scale), taps_1d(s_w, out_w, scale)
    out = np.zeros((out_h, out_w, grid.shape[2]), np.float64)
    for y, (iy, wy) in enumerate(rows):
        for x, (ix, wx) in enumerate(cols):
            for ky in range(4):
                row = sum(wx[kx] * g[iy[ky], ix[kx]] for kx in range(4))
                out[y, x] += wy[ky] * row
    return out.astype(np.float32)


def dinov2_extras(model, x):
    emb = model.embeddings
    _, _, h, w = x.shape
    tokens = torch.zeros(x.shape[0], 1 + (h // 14) * (w // 14), model.config.hidden_size)
    with torch.no_grad():
        table = emb.interpolate_pos_encoding(tokens, h, w).float().numpy()
    pos = emb.position_embeddings.detach().float().numpy()[0]
    s = int(math.sqrt(pos.shape[0] - 1))
    ref = bicubic_reference(pos[1:].reshape(s, s, -1), h // 14, w // 14)
    err = np.abs(ref.reshape(-1, pos.shape[1]) - table[0, 1:]).max()
    # What the older DINO/DINOv2 code (scale_factor = (new + 0.1) / S) would have given:
    # shows that the check below tells the two apart.
    old = bicubic_reference(pos[1:].reshape(s, s, -1), h // 14, w // 14, scale=s / (h // 14 + 0.1))
    err_old = np.abs(old.reshape(-1, pos.shape[1]) - table[0, 1:]).max()
    # torch's compiled f32 kernel rounds its weights differently from this f64 reference: a few
    # 1e-7 on values of about 0.5. Algorithmic differences are orders of magnitude larger.
    if not (np.array_equal(table[0, :1], pos[:1]) and err <= 1e-6 and err_old > 1e-3):
        raise SystemExit(f"dinov2 interpolation differs from the documented reference: {err}")
    print(f"  dinov2 position interpolation {s}x{s} -> {h // 14}x{w // 14}: f64 reference "
          f"matches torch to {err:.2e} (the +0.1 scale_factor variant would differ by "
          f"{err_old:.2e})")
    return {"extra:embeddings.position_embeddings.interpolated": table}


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def save_safetensors(tensors, path, metadata):
    """Write float32 tensors as safetensors with a deterministic header (sorted keys), so that
    re-running the script gives byte-identical files (the safetensors package orders the
    metadata map differently from run to run)."""
    header = {"__metadata__": dict(sorted(metadata.items()))}
    offset, blobs = 0, []
    for key in sorted(tensors):
        a = np.ascontiguousarray(tensors[key], dtype="<f4")
        blob = a.tobytes()
        header[key] = {"dtype": "F32", "shape": list(a.shape),
                       "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def manifest_json(manifest):
    """The manifest as JSON with one tensor per line (readable diffs)."""
    head = {k: v for k, v in manifest.items() if k != "tensors"}
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    rows = [f"    {json.dumps(t)}" for t in manifest["tensors"]]
    return "{\n" + "\n".join(lines) + '\n  "tensors": [\n' + ",\n".join(rows) + "\n  ]\n}\n"


def run_model(name, spec, model):
    """Run `model` on the fixture's input (from the same PRNG as the weights, so it too is
    reproducible without the file); returns the input, the golden tensors ("input", "logits"
    when the model has a head, "tap:<name>" [N, P, C]), the tap order and the taps by name."""
    _, x = generate(seed_of(name, "input"), -1.0, 1.0, spec["input_shape"], "f32")
    x = torch.from_numpy(x.copy())
    out, taps, fired = capture(model, spec["taps"], x)
    order = [t[0] for t in spec["taps"]]
    if fired != order:
        raise SystemExit(f"{name}: hooks fired in order {fired}, declared {order}")
    tensors = {"input": x.numpy()}
    if spec["logits"]:
        tensors["logits"] = out.detach().float().numpy()
    for tap in order:
        tensors[f"tap:{tap}"] = np.ascontiguousarray(taps[tap], dtype=np.float32)
    return x, tensors, order, taps


def run_fixture(name):
    """Build, fill, run and write one fixture; returns its tensors' hashes for prng_check.json.
    (Per-fixture statistics can hook in after `capture`, where `taps` holds every [N, P, C].)"""
    spec = FIXTURES[name]()
    model, dtype = spec["model"], spec["dtype"]
    model.eval()
    entries, hashes = assign_weights(name, model, dtype, spec["gain"])
    manifest = {
        "fixture": name,
        "source": spec["source"],
        "dtype": dtype,
        "input_shape": spec["input_shape"],
        "tensors": entries,
    }
    x, tensors, order, taps = run_model(name, spec, model)
    if spec.get("extra"):
        tensors.update(spec["extra"](model, x))
    for k, v in tensors.items():
        if not np.all(np.isfinite(v)):
            raise SystemExit(f"{name}: non-finite values in {k}")

    with open(os.path.join(HERE, f"{name}.manifest.json"), "w") as f:
        f.write(manifest_json(manifest))
    golden = os.path.join(HERE, f"{name}.golden.safetensors")
    save_safetensors(
        tensors,
        golden,
        metadata={"tap_order": ",".join(order), "fixture": name, "source": spec["source"]},
    )
    # Read it back with the reference implementation, as a check of the writer.
    back = safetensors.numpy.load_file(golden)
    if set(back) != set(tensors) or any(not np.array_equal(back[k], tensors[k]) for k in back):
        raise SystemExit(f"{golden}: does not read back")

    params = sum(int(np.prod(e["shape"])) for e in entries)
    print(f"{name}: {len(entries)} tensors, {params} values ({dtype}), {len(order)} taps, "
          f"golden {os.path.getsize(golden)} bytes")
    for tap in order:
        v = taps[tap]
        rms = float(np.sqrt(np.mean(v.astype(np.float64) ** 2)))
        print(f"  {tap:32s} {str(list(v.shape)):16s} rms {rms:7.3f}  max|x| "
              f"{float(np.abs(v).max()):8.3f}  >0 {float(np.mean(v > 0)):.3f}")
    if spec["logits"]:
        lg = tensors["logits"]
        print(f"  logits {list(lg.shape)} rms {float(np.sqrt(np.mean(lg ** 2))):.3f} "
              f"argmax {lg.argmax(1).tolist()}")
    return hashes


def prng_reference_cases():
    """Reference streams for tests/synth_weights.rs: edge seeds, every dtype, f16 subnormals
    (tiny ranges) and large f16 values."""
    cases = [
        (0, -1.0, 1.0, "f32"),
        (1, 0.5, 1.5, "f32"),
        (0x8000000000000000, -0.0441942, 0.0441942, "f32"),
        (MASK64, -0.2, 0.2, "f32"),
        (seed_of("prng_check", "a"), -0.5, 0.5, "f16"),
        (seed_of("prng_check", "b"), -3e-05, 3e-05, "f16"),
        (seed_of("prng_check", "c"), 100.0, 60000.0, "f16"),
        (seed_of("prng_check", "d"), -0.2, 0.2, "bf16"),
        (seed_of("prng_check", "e"), 0.1, 1.0, "bf16"),
        (seed_of("prng_check", "f"), -1e-38, 1e-38, "bf16"),
    ]
    out = []
    for seed, lo, hi, dtype in cases:
        raw, _ = generate(seed, lo, hi, [100000], dtype)
        width = 4 if dtype == "f32" else 2
        first = [f"0x{int.from_bytes(raw[k * width:(k + 1) * width], 'little'):0{2 * width}x}"
                 for k in range(16)]
        out.append({
            "seed": seed, "lo": lo, "hi": hi, "dtype": dtype, "first16": first,
            "sha256_100000": hashlib.sha256(raw).hexdigest(),
        })
    z = prng_z(seed_of("prng_check", "z"), 0, 16)
    raw_z = {"seed": seed_of("prng_check", "z"), "first16_z": [f"0x{int(v):016x}" for v in z]}
    return out, raw_z


def check_versions():
    have = {
        "torch": torch.__version__.split("+")[0],
        "timm": timm.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
    }
    bad = {k: (have[k], v) for k, v in PINNED.items() if have[k] != v}
    if bad and "--any-version" not in sys.argv:
        raise SystemExit(f"version mismatch (have, pinned): {bad}; pass --any-version to go on")


def main():
    check_versions()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or list(FIXTURES)
    for n in names:
        if n not in FIXTURES:
            raise SystemExit(f"unknown fixture {n}; known: {', '.join(FIXTURES)}")

    check_path = os.path.join(HERE, "prng_check.json")
    tensor_hashes = {}
    if os.path.exists(check_path):
        with open(check_path) as f:
            tensor_hashes = json.load(f).get("tensor_sha256", {})
    for n in names:
        tensor_hashes[n] = run_fixture(n)
    tensor_hashes = {k: tensor_hashes[k] for k in FIXTURES if k in tensor_hashes}

    cases, raw_z = prng_reference_cases()
    with open(check_path, "w") as f:
        json.dump({"cases": cases, "raw_z": raw_z, "tensor_sha256": tensor_hashes}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
