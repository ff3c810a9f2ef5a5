#!/usr/bin/env python3
"""Reference statistics, computed with numpy from the PyTorch activations of the golden
fixtures (tests/golden/<fixture>.golden.safetensors, written by make_golden.py), exactly as
../shared/DESIGN.md defines them, for tests/golden_stats.rs to compare `sparsescope run` with.

Writes tests/golden/stats/<fixture>.safetensors with, per tap T (in the file's tap order):
  T/firing_count    i64 [C]   #{(n, p): x > 0}
  T/firing_ambig    i64 [C]   #{(n, p): |x| <= EPS}: entries whose side of the threshold the
                              GPU's f32 rounding may flip (its taps differ from PyTorch's by
                              up to ~2e-5; EPS = 1e-4 is the golden tests' tolerance)
  T/active_img      i64 [C]   images where channel c is active at one position or more
  T/active_img_ambig i64 [C]  images where that depends on entries within EPS of 0
  T/hist            i64 [258] linear histogram, 256 bins on [-16, 16): under, bins.., over
  T/hist_pos        i64 [101] 100 bins on (0, 10]: bins.., over (x > 10)
  T/loghist_pos     i64 [130] log2 bins of x > 0, 4 per octave over [2^-24, 2^8): under, .., over
  T/loghist_neg     i64 [130] the same for |x| of x < 0
  T/edge_ambig      i64 [4]   entries within EPS (+ EPS relative) of any edge of each histogram
  T/scalars         f64 [8]   frac_active, frac_nonzero, mean, std (population), min, max,
                              hoyer_mean, hoyer_std (over tokens)
  T/pooled          f32 [N, C] mean over positions
  T/rdm_pooled_<m>, T/rdm_flat_<m>  f64 [N, N], m in correlation, cosine, euclidean
Pinned: numpy 2.4.6, safetensors (any; only the file format is used).
"""
import json
import pathlib
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

HERE = pathlib.Path(__file__).parent
EPS = 1e-4
FIXTURES = ["vit_tiny", "dinov2_hf", "resnet18", "resnet50", "efficientnet_lite0", "convnext_atto"]

assert np.__version__ == "2.4.6", f"numpy {np.__version__}, pinned 2.4.6"


def histogram(x, edges, left_closed):
    """Counts per bin plus under/overflow; left_closed: [e_i, e_i+1), else (e_i, e_i+1]."""
    side = "right" if left_closed else "left"
    idx = np.searchsorted(edges, x, side=side) - 1
    n = len(edges) - 1
    under = int((idx < 0).sum())
    over = int((idx >= n).sum())
    inside = idx[(idx >= 0) & (idx < n)]
    return under, np.bincount(inside, minlength=n).astype(np.int64), over


def near_edges(x, edges):
    if x.size == 0:
        return 0
    pos = np.clip(np.searchsorted(edges, x), 1, len(edges) - 1)
    d = np.minimum(np.abs(x - edges[pos - 1]), np.abs(x - edges[pos]))
    return int((d <= EPS + EPS * np.abs(x)).sum())


def hoyer(tokens):
    c = tokens.shape[1]
    l1 = np.abs(tokens).sum(1)
    l2 = np.sqrt((tokens * tokens).sum(1))
    h = np.ones(len(tokens))
    nz = l2 > 0
    if c > 1:
        h[nz] = (np.sqrt(c) - l1[nz] / l2[nz]) / (np.sqrt(c) - 1)
    return h


def rdm(f, measure):
    f = f.astype(np.float64)
    n = len(f)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            a, b = f[i], f[j]
            if measure == "euclidean":
                out[i, j] = np.linalg.norm(a - b)
            else:
                if measure == "correlation":
                    a, b = a - a.mean(), b - b.mean()
                na, nb = np.linalg.norm(a), np.linalg.norm(b)
                sim = 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))
                out[i, j] = 1.0 - sim
    return out


def tap_stats(name, x):
    n, p, c = x.shape
    x64 = x.astype(np.float64)
    out = {}
    out[f"{name}/firing_count"] = (x > 0).sum((0, 1)).astype(np.int64)
    out[f"{name}/firing_ambig"] = (np.abs(x) <= EPS).sum((0, 1)).astype(np.int64)
    clear = (x > EPS).any(1)
    maybe = (x > -EPS).any(1)
    out[f"{name}/active_img"] = (x > 0).any(1).sum(0).astype(np.int64)
    out[f"{name}/active_img_ambig"] = (maybe & ~clear).sum(0).astype(np.int64)
    flat = x.reshape(-1)
    lin = np.linspace(-16.0, 16.0, 257)
    u, b, o = histogram(flat, lin, True)
    out[f"{name}/hist"] = np.concatenate([[u], b, [o]]).astype(np.int64)
    pos = flat[flat > 0]
    pe = np.linspace(0.0, 10.0, 101)
    _, b, o = histogram(pos, pe, False)
    out[f"{name}/hist_pos"] = np.concatenate([b, [o]]).astype(np.int64)
    le = 2.0 ** (-24 + np.arange(129) / 4.0)
    for sign, vals in (("pos", pos), ("neg", -flat[flat < 0])):
        u, b, o = histogram(vals, le, True)
        out[f"{name}/loghist_{sign}"] = np.concatenate([[u], b, [o]]).astype(np.int64)
    out[f"{name}/edge_ambig"] = np.array(
        [near_edges(flat, lin), near_edges(pos, pe), near_edges(pos, le), near_edges(-flat[flat < 0], le)],
        dtype=np.int64,
    )
    h = hoyer(x64.reshape(-1, c))
    out[f"{name}/scalars"] = np.array(
        [(flat > 0).mean(), (flat != 0).mean(), x64.mean(), x64.std(), x64.min(), x64.max(), h.mean(), h.std()]
    )
    pooled = x64.mean(1)
    out[f"{name}/pooled"] = pooled.astype(np.float32)
    for m in ("correlation", "cosine", "euclidean"):
        out[f"{name}/rdm_pooled_{m}"] = rdm(pooled, m)
        out[f"{name}/rdm_flat_{m}"] = rdm(x64.reshape(n, -1), m)
    return out


def main(names):
    (HERE / "stats").mkdir(exist_ok=True)
    for fixture in names:
        g = load_file(str(HERE / f"{fixture}.golden.safetensors"))
        from safetensors import safe_open

        with safe_open(str(HERE / f"{fixture}.golden.safetensors"), "np") as f:
            order = f.metadata()["tap_order"].split(",")
        out = {}
        for tap in order:
            out.update(tap_stats(tap, g[f"tap:{tap}"]))
        save_file(out, str(HERE / "stats" / f"{fixture}.safetensors"), metadata={"tap_order": ",".join(order), "eps": str(EPS)})
        print(fixture, len(order), "taps")


if __name__ == "__main__":
    main(sys.argv[1:] or FIXTURES)
