#!/usr/bin/env python3
"""Golden fixtures for the RDM, RSA and ridge code (tests/rdm.rs, tests/rsa.rs).

Run from the repository root with the project's venv:
    /work/venv/bin/python tests/golden/make_rsa_golden.py
It writes tests/golden/rsa/*.npy and tests/golden/rsa/manifest.json (small: a few KiB).

Pinned: numpy 2.4.6, scipy 1.17.1 (checked below). Everything is computed in float64 from the
definitions in ../shared/DESIGN.md, independently of the Rust code:
- RDMs from features with numpy (1 - Pearson r with a constant vector giving r = 0; 1 - cosine
  with a zero vector giving similarity 0; euclidean), not from Gram sums;
- Spearman (scipy.stats.spearmanr, average ranks), Pearson (scipy.stats.pearsonr), Kendall
  tau-a by brute force over all pairs of entries (scipy's kendalltau is tau-b; with ties the
  two differ, and the fixtures include ties);
- the permutation test and the bootstrap with the same generator as src/analysis/mod.rs:
  splitmix64, stream k of seed s starts from state (s + k * 0xD1B54A32D192ED03) xor tag,
  Fisher-Yates for permutations, `next % n` for draws; each permuted or resampled statistic is
  computed from scratch with scipy on the permuted / resampled RDM (no shortcuts);
- ridge leave-one-out R^2 by refitting without each image (brute force), for each alpha of
  the grid, keeping the best.
"""
import json
import pathlib

import numpy as np
import scipy
import scipy.stats

assert np.__version__ == "2.4.6", np.__version__
assert scipy.__version__ == "1.17.1", scipy.__version__

OUT = pathlib.Path(__file__).resolve().parent / "rsa"
MASK = (1 << 64) - 1
TAG_PERMUTATION = 0x7065726D75746521
TAG_BOOTSTRAP = 0x626F6F7473747261


class SplitMix64:
    def __init__(self, state):
        self.state = state & MASK

    @staticmethod
    def stream(seed, tag, index):
        return SplitMix64(((seed + index * 0xD1B54A32D192ED03) & MASK) ^ tag)

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        return self.next() % n

    def permutation(self, n):
        p = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.below(i + 1)
            p[i], p[j] = p[j], p[i]
        return p


def draws(g, n):
    return [g.below(n) for _ in range(n)]


def rdm(x, measure):
    x = x.astype(np.float64)
    n = x.shape[0]
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            a, b = x[i], x[j]
            if measure == "euclidean":
                out[i, j] = np.sqrt(np.sum((a - b) ** 2))
                continue
            if measure == "correlation":
                a, b = a - a.mean(), b - b.mean()
            na, nb = np.sqrt(a @ a), np.sqrt(b @ b)
            out[i, j] = 1.0 if na == 0 or nb == 0 else 1.0 - (a @ b) / (na * nb)
    return out


def upper(m):
    return m[np.triu_indices(m.shape[0], 1)]


def tau_a(x, y):
    n = len(x)
    s = 0.0
    for i in range(n):
        s += np.sum(np.sign(x[i] - x[i + 1:]) * np.sign(y[i] - y[i + 1:]))
    return s / (n * (n - 1) / 2)


def statistic(x, y, method):
    if np.all(x == x[0]) or np.all(y == y[0]):
        return None
    if method == "spearman":
        return float(scipy.stats.spearmanr(x, y).statistic)
    if method == "pearson":
        return float(scipy.stats.pearsonr(x, y).statistic)
    return float(tau_a(x, y))


def permutation_test(a, b, method, count, seed):
    n = a.shape[0]
    observed = statistic(upper(a), upper(b), method)
    exceed = 0
    for k in range(count):
        p = SplitMix64.stream(seed, TAG_PERMUTATION, k).permutation(n)
        bp = b[np.ix_(p, p)]
        if statistic(upper(a), upper(bp), method) >= observed - 1e-12:
            exceed += 1
    return {"observed": observed, "exceed": exceed, "p_value": (1 + exceed) / (1 + count)}


def bootstrap(a, b, method, count, level, seed):
    n = a.shape[0]
    stats = []
    for k in range(count):
        g = SplitMix64.stream(seed, TAG_BOOTSTRAP, k)
        s = [g.below(n) for _ in range(n)]
        x, y = [], []
        for p in range(n):
            for q in range(p + 1, n):
                if s[p] != s[q]:
                    x.append(a[s[p], s[q]])
                    y.append(b[s[p], s[q]])
        v = statistic(np.array(x), np.array(y), method) if len(x) >= 2 else None
        if v is not None and np.isfinite(v):
            stats.append(v)
    lo, hi = np.percentile(stats, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return {"low": float(lo), "high": float(hi), "valid": len(stats)}


def loo_r2_brute(x, y, lam):
    n = x.shape[0]
    sse = 0.0
    for out in range(n):
        keep = np.arange(n) != out
        xs, ys = x[keep], y[keep]
        mx, my = xs.mean(0), ys.mean(0)
        xc, yc = xs - mx, ys - my
        w = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ yc)
        pred = my + (x[out] - mx) @ w
        sse += np.sum((y[out] - pred) ** 2)
    return 1.0 - sse / np.sum((y - y.mean(0)) ** 2)


ALPHAS = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]


def ridge_case(features, dropped):
    y = features.astype(np.float64)
    x = y[:, dropped]
    xc = x - x.mean(0)
    trace = float(np.sum(xc * xc))
    base = trace / len(dropped) if trace > 0 else 1.0
    best = None
    for alpha in ALPHAS:
        r2 = loo_r2_brute(x, y, alpha * base)
        if best is None or r2 > best["r2"]:
            best = {"r2": float(r2), "alpha": alpha, "lambda": alpha * base}
    return best


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240611)
    manifest = {"numpy": np.__version__, "scipy": scipy.__version__}

    # Features with structure (3 factors, ReLU, per-image offsets), plus a constant row, a
    # zero row and an exact duplicate, as float32 like a run's pooled features.
    n, d = 12, 40
    basis = rng.normal(size=(3, d))
    w = rng.normal(size=(n, 3))
    feats = np.maximum(w @ basis + 0.5 * rng.normal(size=(n, d)), 0) + rng.uniform(0, 2, size=(n, 1))
    feats[4] = 0.3
    feats[7] = 0.0
    feats[10] = feats[2]
    feats = feats.astype(np.float32)
    np.save(OUT / "features.npy", feats)
    for m in ["correlation", "cosine", "euclidean"]:
        np.save(OUT / f"rdm_{m}.npy", rdm(feats, m))

    # RSA: continuous RDMs (no ties) and rounded ones (many ties).
    cases = {}
    n = 10
    a = rdm(rng.normal(size=(n, 6)), "correlation")
    b = rdm(rng.normal(size=(n, 6)) + 0.8 * rng.normal(size=(1, 6)), "euclidean") + 0.5 * a
    for name, (ra, rb) in {
        "continuous": (a, b),
        "ties": (np.round(a * 3) / 3, np.round(b)),
    }.items():
        np.save(OUT / f"rsa_{name}_a.npy", ra)
        np.save(OUT / f"rsa_{name}_b.npy", rb)
        ua, ub = upper(ra), upper(rb)
        case = {
            "spearman": statistic(ua, ub, "spearman"),
            "pearson": statistic(ua, ub, "pearson"),
            "kendall": statistic(ua, ub, "kendall"),
            "kendall_tau_b_scipy": float(scipy.stats.kendalltau(ua, ub).statistic),
            "permutation": {},
            "bootstrap": {},
        }
        for method in ["spearman", "pearson", "kendall"]:
            case["permutation"][method] = permutation_test(ra, rb, method, 199, 42)
            case["bootstrap"][method] = bootstrap(ra, rb, method, 100, 0.9, 7)
        cases[name] = case
    manifest["rsa"] = {
        "cases": cases,
        "permutations": 199,
        "permutation_seed": 42,
        "bootstrap_samples": 100,
        "bootstrap_level": 0.9,
        "bootstrap_seed": 7,
        # The first permutations of 9 images, so a failure can be told from a generator bug.
        "first_permutations_n9_seed42": [
            SplitMix64.stream(42, TAG_PERMUTATION, k).permutation(9) for k in range(3)
        ],
        "first_bootstrap_n9_seed7": [draws(SplitMix64.stream(7, TAG_BOOTSTRAP, k), 9) for k in range(3)],
    }

    # Ridge: primal (images > dropped) and dual (images <= dropped) forms.
    ridge = {}
    pooled = (np.maximum(rng.normal(size=(15, 3)) @ rng.normal(size=(3, 8)) + 0.3 * rng.normal(size=(15, 8)), 0)).astype(np.float32)
    np.save(OUT / "ridge_pooled_15x8.npy", pooled)
    for name, dropped in {"one": [2], "three": [0, 3, 5], "seven": [0, 1, 2, 3, 4, 6, 7]}.items():
        ridge[name] = {"features": "ridge_pooled_15x8.npy", "dropped": dropped, **ridge_case(pooled, dropped)}
    wide = (rng.normal(size=(6, 2)) @ rng.normal(size=(2, 10)) + 0.1 * rng.normal(size=(6, 10))).astype(np.float32)
    np.save(OUT / "ridge_pooled_6x10.npy", wide)
    ridge["dual"] = {"features": "ridge_pooled_6x10.npy", "dropped": [0, 1, 2, 3, 4, 5, 6, 7], **ridge_case(wide, [0, 1, 2, 3, 4, 5, 6, 7])}
    manifest["ridge"] = {"alphas": ALPHAS, "cases": ridge}

    with open(OUT / "manifest.json", "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
