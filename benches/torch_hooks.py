"""The PyTorch route sparsescope replaces, timed on the same machine in the same run:
timm forward only, and forward with hooks computing the same statistics at every tap
sparsescope taps (per-channel firing counts, per-image firing, the three histograms, moments,
pooled features, and the Gram sums of the flat features for the RDMs).

usage:
  python benches/torch_hooks.py export MODEL PATH       write timm's random-init weights of MODEL
                                                        as safetensors (timm names) to PATH
  python benches/torch_hooks.py time MODEL BATCH ITERS  print one JSON line of timings
Needs torch and timm (pip install torch timm safetensors). Uses every core.
"""
import json
import os
import sys
import time

import torch
import timm


def taps_of(model):
    """The modules sparsescope taps, by family (block outputs and post-nonlinearity hiddens)."""
    mods = []
    if hasattr(model, "blocks") and hasattr(model, "patch_embed"):  # ViT
        for b in model.blocks:
            mods += [b.mlp.act, b]
    else:  # ResNet
        for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
            for b in layer:
                mods += [b.act1] + ([b.act2] if hasattr(b, "conv3") else []) + [b]
    return mods


class Stats:
    """Per tap: what `sparsescope run` accumulates, computed in torch on the CPU."""

    def __init__(self):
        self.acc = {}

    def hook(self, module, _inp, out):
        x = out.detach()
        if x.dim() == 4:  # NCHW -> N, P, C
            x = x.flatten(2).transpose(1, 2)
        n, p, c = x.shape
        a = self.acc.setdefault(module, {"gram": [], "flat": []})
        active = x > 0
        a["firing"] = a.get("firing", 0) + active.sum((0, 1))
        a["firing_img"] = a.get("firing_img", 0) + active.any(1).sum(0)
        a["hist"] = a.get("hist", 0) + torch.histc(x, 256, -16, 16)
        pos = x[active]
        a["hist_pos"] = a.get("hist_pos", 0) + torch.histc(pos, 100, 0, 10)
        a["loghist"] = a.get("loghist", 0) + torch.histc(torch.log2(pos.clamp_min(2**-24)), 128, -24, 8)
        a["sum"] = a.get("sum", 0) + x.double().sum()
        a["sumsq"] = a.get("sumsq", 0) + (x.double() ** 2).sum()
        a.setdefault("pooled", []).append(x.mean(1))
        flat = x.reshape(n, -1)
        # Gram sums against every image seen so far (what the exact flat RDM needs).
        for f in a["flat"]:
            a["gram"].append(flat @ f.T)
        a["gram"].append(flat @ flat.T)
        a["flat"].append(flat)


def main():
    cmd, name = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    if cmd == "export":
        from safetensors.torch import save_file

        state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        save_file(state, sys.argv[3])
        return
    batch, iters = int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(os.cpu_count())
    x = torch.randn(batch, *model.pretrained_cfg.get("input_size", (3, 224, 224)))
    out = {"model": name, "batch": batch, "torch": torch.__version__, "timm": timm.__version__, "threads": torch.get_num_threads()}
    stats = Stats()
    taps = taps_of(model)

    def seconds(hooked):
        """One timed batch, with the statistics hooks or without (registered outside the timing)."""
        handles = [m.register_forward_hook(stats.hook) for m in taps] if hooked else []
        t = time.perf_counter()
        model(x)
        dt = time.perf_counter() - t
        for h in handles:
            h.remove()
        return dt

    with torch.inference_mode():
        seconds(False), seconds(True)  # warm-up
        # One batch of each kind per round, alternated as sparsescope's bench does, so that a
        # machine whose speed drifts slows both kinds alike.
        forward = hooks = 0.0
        for _ in range(iters):
            forward += seconds(False)
            hooks += seconds(True)
        out["forward_images_per_s"] = batch * iters / forward
        out["hooks_images_per_s"] = batch * iters / hooks
    print(json.dumps(out))


if __name__ == "__main__":
    main()
