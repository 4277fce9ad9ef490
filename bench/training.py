"""Training-step benchmark: one step (forward, backward, SGD with momentum) of torchvision networks
in SOL, PyTorch eager and torch.compile, each framework and cell in a fresh process, so the peak
resident memory is that of the step alone (torch and the model included).

    .venv/bin/python bench/training.py                       # resnet18, resnet50, mobilenet_v2 at 8 and 32
    .venv/bin/python bench/training.py --models resnet18 --batch-sizes 8 --runs 3

Prints a table (median step time, speed-up over eager, peak MiB) and writes JSON
(bench/results/training.json). Inputs are 224x224, random weights, training mode, fp32, the same
thread count for every framework; the first steps (compilation, autotuning) are warm-up."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FRAMEWORKS = ("eager", "sol", "compile")
RESULT_TAG = "TRAINING-RESULT "


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="resnet18,resnet50,mobilenet_v2")
    p.add_argument("--batch-sizes", default="8,32")
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    p.add_argument("--runs", type=int, default=5, help="timed steps per cell (median)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation, autotuning)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per cell")
    p.add_argument("--out", type=Path, default=HERE / "results" / "training.json")
    p.add_argument("--child", nargs=3, metavar=("FRAMEWORK", "MODEL", "BATCH"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.models = [m for m in a.models.split(",") if m]
    a.batch_sizes = [int(b) for b in a.batch_sizes.split(",") if b]
    a.frameworks = [f for f in a.frameworks.split(",") if f]
    return a


def peak_rss_mib() -> float:
    """VmHWM of this process (not ru_maxrss, which Linux carries over from the parent)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(args) -> None:
    import torch
    import torch.nn.functional as F
    import torchvision

    framework, name, batch = args.child[0], args.child[1], int(args.child[2])
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)().train()
    x = torch.randn(batch, 3, 224, 224)
    target = torch.randint(0, 1000, (batch,))
    if framework == "sol":
        import sol.pytorch as sol

        model = sol.optimize(model, x.size())
    elif framework == "compile":
        model = torch.compile(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        loss = F.cross_entropy(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    warmup_s = time.perf_counter() - start
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(RESULT_TAG + json.dumps({"ms": statistics.median(times) * 1e3, "warmup_s": warmup_s,
                                   "peak_mib": peak_rss_mib()}), flush=True)


def measure(framework: str, name: str, batch: int, args) -> dict:
    command = [sys.executable, __file__, "--child", framework, name, str(batch), "--runs", str(args.runs),
               "--warmup", str(args.warmup), "--threads", str(args.threads)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {args.timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    return {"error": (done.stderr.strip().splitlines() or ["no result"])[-1][:120]}


def main() -> int:
    args = parse_args()
    if args.child:
        child(args)
        return 0
    results = []
    for name in args.models:
        for batch in args.batch_sizes:
            row = {"model": name, "batch": batch}
            for framework in args.frameworks:
                print(f"{name} batch {batch}: {framework} ...", file=sys.stderr, flush=True)
                row[framework] = measure(framework, name, batch, args)
            results.append(row)
    header = f"{'network':14} {'batch':>5}" + "".join(f" | {fw + ' ms (x eager), peak MiB':>34}" for fw in args.frameworks)
    lines = [f"training step (forward, backward, SGD), 224x224, {args.threads} threads, median of {args.runs}",
             header, "-" * len(header)]
    ratios: dict[str, list[float]] = {fw: [] for fw in args.frameworks}
    for row in results:
        eager = row.get("eager", {}).get("ms")
        cells = []
        for fw in args.frameworks:
            cell = row[fw]
            if "ms" not in cell:
                cells.append(f"{cell.get('error', 'n/a')[:34]:>34}")
                continue
            ratio = eager / cell["ms"] if eager else float("nan")
            ratios[fw].append(ratio)
            cells.append(f"{cell['ms']:>12.1f} ({ratio:5.2f}x), {cell['peak_mib']:>7.0f}")
        lines.append(f"{row['model']:14} {row['batch']:>5}" + "".join(f" | {c:>34}" for c in cells))
    geomeans = {fw: (statistics.geometric_mean(r) if r else None) for fw, r in ratios.items()}
    lines.append("geomean speed-up over eager: " + ", ".join(
        f"{fw} {g:.2f}x" for fw, g in geomeans.items() if g is not None))
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": results, "geomeans": geomeans, "threads": args.threads,
                                    "runs": args.runs}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
