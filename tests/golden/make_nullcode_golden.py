#!/usr/bin/env python3
"""Reference null-code probe values, computed with numpy from the PyTorch activations of golden
fixtures (tests/golden/<fixture>.golden.safetensors, written by make_golden.py), exactly as
../shared/DESIGN.md defines them, for tests/nullcode.rs.

Per fixture, the thresholds are the medians of Hoyer and of the cosine over every token of every
tap (so that null shares are far from 0 and 1 on random weights). Writes
tests/golden/nullcode/<fixture>.safetensors with, per tap T:
  T/pattern       f32 [C]     p_c = 1 iff firing_rate[c] = mean(x > 0) > 0.5
  T/pattern_ambig i64 [C]     1 where the rate is within EPS-ambiguous entries of 0.5 (the GPU's
                              taps differ from PyTorch's by ~1e-5, so x near 0 may flip)
  T/hoyer         f64 [N, P]  (sqrt(C) - |x|_1/|x|_2) / (sqrt(C) - 1); 1 for x = 0 or C = 1
  T/cos           f64 [N, P]  x.p / (|x| |p|); 0 for x = 0 or p = 0
  T/null          i64 [N]     null tokens per image: cos >= cos_min and hoyer >= hoyer_min
  T/null_ambig    i64 [N]     tokens per image within TOL of either threshold
and metadata tap_order, cos_min, hoyer_min.
Pinned: numpy 2.4.6.
"""
import pathlib
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

HERE = pathlib.Path(__file__).parent
EPS = 1e-4   # the golden taps' tolerance
TOL = 1e-4   # how far a token's Hoyer/cos may move when its tap moves by EPS-scale errors
FIXTURES = ["vit_tiny", "resnet18", "convnext_atto"]

assert np.__version__ == "2.4.6", f"numpy {np.__version__}, pinned 2.4.6"


def probe(x):
    n, p, c = x.shape
    t = x.astype(np.float64).reshape(-1, c)
    rate = (x > 0).mean((0, 1))
    pattern = (rate > 0.5).astype(np.float64)
    # Channels whose majority could flip: entries within EPS of 0 could change sides.
    near = (np.abs(x) <= EPS).sum((0, 1)) / (n * p)
    ambig = (np.abs(rate - 0.5) <= near).astype(np.int64)
    l1 = np.abs(t).sum(1)
    l2 = np.sqrt((t * t).sum(1))
    h = np.ones(len(t))
    nz = l2 > 0
    if c > 1:
        h[nz] = (np.sqrt(c) - l1[nz] / l2[nz]) / (np.sqrt(c) - 1)
    pn = np.sqrt(pattern.sum())
    cos = np.zeros(len(t))
    ok = nz & (pn > 0)
    cos[ok] = (t[ok] @ pattern) / (l2[ok] * pn)
    return pattern, ambig, h.reshape(n, p), cos.reshape(n, p)


def main(names):
    (HERE / "nullcode").mkdir(exist_ok=True)
    for fixture in names:
        path = str(HERE / f"{fixture}.golden.safetensors")
        g = load_file(path)
        with safe_open(path, "np") as f:
            order = f.metadata()["tap_order"].split(",")
        probes = {tap: probe(g[f"tap:{tap}"]) for tap in order}
        hoyer_min = float(np.median(np.concatenate([v[2].ravel() for v in probes.values()])))
        cos_min = float(np.median(np.concatenate([v[3].ravel() for v in probes.values()])))
        out = {}
        for tap, (pattern, ambig, h, cos) in probes.items():
            out[f"{tap}/pattern"] = pattern.astype(np.float32)
            out[f"{tap}/pattern_ambig"] = ambig
            out[f"{tap}/hoyer"] = h
            out[f"{tap}/cos"] = cos
            null = (cos >= cos_min) & (h >= hoyer_min)
            near = (np.abs(cos - cos_min) <= TOL) | (np.abs(h - hoyer_min) <= TOL)
            out[f"{tap}/null"] = null.sum(1).astype(np.int64)
            out[f"{tap}/null_ambig"] = near.sum(1).astype(np.int64)
        meta = {"tap_order": ",".join(order), "cos_min": repr(cos_min), "hoyer_min": repr(hoyer_min)}
        save_file(out, str(HERE / "nullcode" / f"{fixture}.safetensors"), metadata=meta)
        print(fixture, len(order), "taps", f"cos_min {cos_min:.4f} hoyer_min {hoyer_min:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:] or FIXTURES)
