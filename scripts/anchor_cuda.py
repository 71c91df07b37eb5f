"""Run the PyTorch anchor (../shared/anchors/pytorch_bnas.py) on a CUDA GPU, for side-by-side
figures with `bnas bench --only gpu` on the same machine:

    python3 scripts/anchor_cuda.py PATH/pytorch_bnas.py [--data DIR] step-train --warmup 5 --steps 30

Models and batches go to the GPU, cuDNN autotuning is on, and every timer read waits for the
device first (the anchor reads `time.perf_counter` around each step; without a synchronize it
would time the kernel launches, not the work). `--data` points at the Fashion-MNIST IDX files.
"""
import importlib.util
import os
import sys
import time

import torch

if len(sys.argv) < 2 or not sys.argv[1].endswith(".py"):
    sys.exit("usage: anchor_cuda.py PATH/pytorch_bnas.py [--data DIR] SUBCOMMAND [ARGS]")
spec = importlib.util.spec_from_file_location("pytorch_bnas", sys.argv[1])
pb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pb)
args = sys.argv[2:]
if args[:1] == ["--data"]:
    pb.load_fmnist.__defaults__ = (args[1],)
    args = args[2:]

if not torch.cuda.is_available():
    sys.exit("anchor_cuda.py: torch sees no CUDA device")
dev = "cuda"
torch.set_default_device(dev)
torch.backends.cudnn.benchmark = True
_sample = pb.sample_batches


def sample_on_device(n, bs, seed=0):
    with torch.device("cpu"):  # the anchor's generator is a CPU one
        batches, src = _sample(n, bs, seed)
    return [(x.to(dev), y.to(dev)) for x, y in batches], src


pb.sample_batches = sample_on_device
_perf_counter = time.perf_counter


def synced_perf_counter():
    torch.cuda.synchronize()
    return _perf_counter()


time.perf_counter = synced_perf_counter
print(f"anchor on {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
sys.argv = [sys.argv[1]] + args
pb.main()
