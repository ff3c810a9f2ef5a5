"""PyTorch/timm forward throughput on the CPU, the baseline sparsescope's benches print beside
their own numbers (measured in the same run, on the same machine).

usage: python benches/torch_forward.py MODEL BATCH ITERS   (prints one JSON line)
Needs torch and timm (pip install torch timm); random weights (throughput does not depend on
them). Uses all cores, as a researcher's PyTorch would.
"""
import json
import os
import sys
import time

import torch
import timm

name, batch, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(os.cpu_count())
model = timm.create_model(name, pretrained=False).eval()
cfg = model.pretrained_cfg
size = cfg.get("input_size", (3, 224, 224))
x = torch.randn(batch, *size)
with torch.inference_mode():
    model(x)  # warm-up: allocations, oneDNN primitive creation
    start = time.perf_counter()
    for _ in range(iters):
        model(x)
    seconds = (time.perf_counter() - start) / iters
print(json.dumps({
    "model": name,
    "batch": batch,
    "seconds_per_batch": seconds,
    "images_per_s": batch / seconds,
    "torch": torch.__version__,
    "timm": timm.__version__,
    "threads": torch.get_num_threads(),
}))
