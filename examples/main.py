#!/usr/bin/env python3
"""SOL's main job: optimize a real torchvision network and compare it with PyTorch.

    python examples/main.py                        # resnet18, batch 1, 224x224
    python examples/main.py --model mobilenet_v2 --batch-size 4 --image-size 160

The network has random weights (no downloads) and runs in eval mode; its
BatchNorm statistics are randomized too (unless --keep-bn-stats), as a trained
network's would be, so folding them is exercised. Prints the compile time, the
median times of SOL and of PyTorch eager with the same thread count, their
ratio, and the largest absolute and relative differences of the outputs.
Exits 1 when the relative difference exceeds --tol.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet18", help="a torchvision.models name (default: resnet18)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--image-size", type=int, default=224, help="height and width of the input")
    p.add_argument("--runs", type=int, default=10, help="timed runs per framework (at least 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs before timing")
    p.add_argument("--threads", type=int, default=0, help="threads for both (default: all cores)")
    p.add_argument("--tol", type=float, default=1e-4,
                   help="largest allowed max|sol-torch| / max|torch| (default 1e-4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-bn-stats", action="store_true", help="keep BatchNorm's initial 0/1 statistics")
    p.add_argument("--cold", action="store_true", help="compile into a fresh temporary cache folder")
    args = p.parse_args()
    args.runs = max(args.runs, 10)
    return args


def median_time(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main():
    args = parse_args()
    threads = args.threads or os.cpu_count() or 1
    # one thread count for both: OpenMP (SOL's generated code) reads it at start-up
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if args.cold:
        os.environ["SOL_CACHE_DIR"] = tempfile.mkdtemp(prefix="sol-cold-cache-")

    import torch
    import torchvision

    import sol.pytorch as sol

    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)

    py_model = torchvision.models.get_model(args.model, weights=None)
    if not args.keep_bn_stats:
        g = torch.Generator().manual_seed(args.seed)
        with torch.no_grad():
            for m in py_model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    c = m.num_features
                    m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                    m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                    m.weight.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
                    m.bias.copy_(torch.randn(c, generator=g) * 0.1)
    py_model.eval()
    x = torch.rand(args.batch_size, 3, args.image_size, args.image_size)

    print(f"model      {args.model}, input {tuple(x.shape)}, {threads} threads, torch {torch.__version__}")
    print(f"cache      {sol.cache.dir()}")

    start = time.perf_counter()
    sol_model = sol.optimize(py_model, x.size())
    sol_model.load_state_dict(py_model.state_dict())
    sol.device.set(sol.device.x86, 0)
    optimize_s = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        y_sol = sol_model(x)
    first_call_s = time.perf_counter() - start
    print(f"compile    {optimize_s + first_call_s:.2f} s "
          f"(sol.optimize + load_state_dict {optimize_s:.2f} s, first call {first_call_s:.2f} s)")

    with torch.no_grad():
        y_ref = py_model(x)
        t_sol, _ = median_time(lambda: sol_model(x), args.runs, args.warmup)
        t_ref, _ = median_time(lambda: py_model(x), args.runs, args.warmup)

    if tuple(y_sol.shape) != tuple(y_ref.shape):
        print(f"result     FAILED: SOL's output has shape {tuple(y_sol.shape)}, PyTorch's {tuple(y_ref.shape)}")
        return 1
    diff = (y_sol.double() - y_ref.double()).abs()
    max_abs = diff.max().item()
    max_rel = max_abs / max(y_ref.abs().max().item(), 1e-30)
    rel_l2 = (diff.norm() / max(y_ref.double().norm().item(), 1e-30)).item()

    print(f"pytorch    {t_ref * 1e3:9.2f} ms  (median of {args.runs})")
    print(f"sol        {t_sol * 1e3:9.2f} ms  (median of {args.runs})")
    print(f"speed-up   {t_ref / t_sol:9.2f} x  (pytorch time / sol time)")
    print(f"max abs    {max_abs:.3e}")
    print(f"max rel    {max_rel:.3e}  (max|sol - torch| / max|torch|, tolerance {args.tol:.0e})")
    print(f"rel L2     {rel_l2:.3e}")
    ok = max_rel <= args.tol  # False for NaN too
    print("result     " + ("OK" if ok else "FAILED: SOL's output differs from PyTorch's"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
