#!/usr/bin/env python3
"""This CPU's FP32 FMA peak, and the fraction of it SOL reaches on resnet50's heavy convolutions.

    python bench/fma_peak.py                       # all cores
    python bench/fma_peak.py --threads 1 --runs 20

1. Builds bench/fma_peak.cpp with the host compiler ($CXX or c++, -O3 -march=native -fopenmp)
   and runs it on 1 thread and on --threads threads: independent FMA chains in vector
   registers, for every vector width -march=native allows (AVX-512, AVX2). The peak is the best
   width's GFLOP/s.
2. Collects every distinct 3x3 and 1x1 convolution of torchvision's resnet50 at batch 1,
   224x224 (forward hooks). SOL's time for a shape is measured where it matters, inside the
   whole network: resnet50 runs through SOL with SOL_PROFILE=1, which times every kernel
   on every call; a shape's time is the median over its layers' per-call times (--runs calls
   after --warmup). Those kernels are the convolutions as SOL runs them in the network:
   channel-blocked input and output, with the folded BatchNorm, ReLU and residual add fused.
   PyTorch eager's time (for reference) is its single nn.Conv2d's median. GFLOP/s =
   2*N*OC*OH*OW*IC/groups*KH*KW / time; the fraction is of the all-threads peak. The total
   weights every shape by how often it occurs in resnet50. Where the autotuner kept oneDNN's
   Winograd kernel for a 3x3 layer (the table's last column), it does fewer multiplications
   than that count: its rate is an effective one and can pass the peak.

Prints both tables and writes them as JSON to --json (default bench/results/fma_peak.json).
Run it on an idle machine: the peak and the conv times are both sensitive to other load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import median_time  # bench/ is on sys.path when a script here runs

HERE = Path(__file__).resolve().parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seconds", type=float, default=0.5, help="duration of each FMA measurement")
    p.add_argument("--runs", type=int, default=20, help="timed runs per convolution")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--no-convs", action="store_true", help="only measure the FMA peak")
    p.add_argument("--json", type=Path, default=HERE / "results" / "fma_peak.json")
    return p.parse_args()


def cpu_seconds() -> tuple[float, float, float]:
    """(wall, CPU seconds of the whole machine, of this process and its waited-for children)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle, iowait
    t = os.times()
    return time.perf_counter(), busy, t.user + t.system + t.children_user + t.children_system


def foreign_load(before: tuple) -> float:
    """Average number of cores other processes used since the cpu_seconds() snapshot `before`:
    above ~0.1 the numbers are suspect."""
    wall, busy, own = (a - b for a, b in zip(cpu_seconds(), before))
    return max(0.0, (busy - own) / max(wall, 1.0))  # both count 10 ms ticks: short windows are noise


# --------------------------------------------------------------------- 1. FMA peak


def build_peak_binary(workdir: Path) -> Path:
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not cxx:
        raise RuntimeError("no C++ compiler found (set CXX)")
    exe = workdir / "fma_peak"
    cmd = [cxx, "-O3", "-march=native", "-fopenmp", "-std=c++17", str(HERE / "fma_peak.cpp"), "-o", str(exe)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return exe


def run_peak(exe: Path, threads: int, seconds: float) -> list[dict]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_PROC_BIND="spread")
    out = subprocess.run([str(exe), str(threads), str(seconds)], capture_output=True, text=True, env=env, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def measure_peak(threads: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="sol-fma-peak-") as tmp:
        exe = build_peak_binary(Path(tmp))
        single = run_peak(exe, 1, seconds)
        multi = run_peak(exe, threads, seconds) if threads > 1 else single
    rows = []
    for one in single:
        many = next(m for m in multi if m["isa"] == one["isa"])
        rows.append({"isa": one["isa"], "lanes": one["lanes"], "chains": one["chains"],
                     "gflops_1_thread": one["gflops"], "gflops_all_threads": many["gflops"],
                     "gflops_per_thread": many["gflops"] / threads})
    best = max(rows, key=lambda r: r["gflops_all_threads"])
    return {"threads": threads, "widths": rows, "isa": best["isa"],
            "peak_gflops": best["gflops_all_threads"], "peak_gflops_per_thread": best["gflops_per_thread"],
            "peak_gflops_1_thread": best["gflops_1_thread"]}


def print_peak(peak: dict) -> None:
    n = peak["threads"]
    print(f"FP32 FMA peak (bench/fma_peak.cpp, -O3 -march=native -fopenmp, "
          f"{peak['widths'][0]['chains']} independent chains per thread)")
    print(f"{'isa':8} {'lanes':>5} {'1 thread GFLOP/s':>17} {f'{n} threads GFLOP/s':>18} {'per thread':>11}")
    for r in peak["widths"]:
        print(f"{r['isa']:8} {r['lanes']:5d} {r['gflops_1_thread']:17.1f} {r['gflops_all_threads']:18.1f} "
              f"{r['gflops_per_thread']:11.1f}")
    print(f"peak: {peak['peak_gflops']:.1f} GFLOP/s on {n} threads "
          f"({peak['peak_gflops_per_thread']:.1f} per thread, {peak['isa']})\n")


# --------------------------------------------------------------------- 2. resnet50's convolutions


def resnet50_convs() -> list[dict]:
    """Distinct 3x3 and 1x1 convolutions of resnet50 at batch 1, 224x224, with their counts."""
    import torch
    import torchvision

    model = torchvision.models.resnet50(weights=None).eval()
    shapes: dict[tuple, dict] = {}

    def hook(module, inputs, output):
        k = module.kernel_size
        if k not in ((1, 1), (3, 3)):
            return  # the 7x7 stem is not one of the heavy layers the target names
        n, ic, h, w = inputs[0].shape
        key = (n, ic, module.out_channels, k, module.stride, module.padding, module.groups, h, w)
        entry = shapes.setdefault(key, {
            "batch": n, "in_channels": ic, "out_channels": module.out_channels, "kernel": k[0],
            "stride": module.stride[0], "padding": module.padding[0], "groups": module.groups,
            "in_hw": [h, w], "out_hw": list(output.shape[2:]), "count": 0, "layers": []})
        entry["count"] += 1
        entry["layers"].append(names[module])

    names = {}
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            names[m] = name
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.rand(1, 3, 224, 224))
    for e in shapes.values():
        oh, ow = e["out_hw"]
        e["flops"] = 2 * e["batch"] * e["out_channels"] * oh * ow * e["in_channels"] // e["groups"] * e["kernel"] ** 2
    return sorted(shapes.values(), key=lambda e: (e["kernel"], e["flops"]), reverse=True)


def sol_layer_times(args: argparse.Namespace) -> tuple[dict[str, list[float]], dict[str, str], float]:
    """Per resnet50 layer name, SOL's per-call seconds of the kernel that layer anchors,
    from SOL's profile of the whole network, and the algorithm that kernel runs (direct, or
    Winograd where the autotuner kept oneDNN's); and the network output's rel. L2 error."""
    import torch
    import torchvision

    import sol.pytorch as sol

    os.environ["SOL_PROFILE"] = "1"  # read when the model is compiled
    model = torchvision.models.resnet50(weights=None).eval()
    x = torch.rand(1, 3, 224, 224)
    sm = sol.optimize(model, x.size())
    with torch.no_grad():
        ref, out = model(x), sm(x)
        for _ in range(args.warmup):
            sm(x)
        entry = next(iter(sm._sol.compiled.values()))
        skip = {description: len(samples) for description, samples in entry.model.profile}
        for _ in range(args.runs):
            sm(x)
    rel_l2 = ((out.double() - ref.double()).norm() / ref.double().norm()).item()
    times: dict[str, list[float]] = {}
    algorithms: dict[str, str] = {}
    for description, samples in entry.model.profile:
        # "[dnn] conv2d  # layer1.0.conv1 (resnet.py:146); layer1.0.relu (...)": the kernel,
        # then the layers it computes, its anchor first.
        kernel, _, origins = description.partition("  # ")
        if "conv2d" not in kernel or not origins:
            continue
        layer = origins.split(" (")[0]
        times[layer] = samples[skip[description]:]
        # the chosen variant's oneDNN implementation: "[dnn, variant 2: jit_wino_4x3:avx512_core] conv2d"
        algorithms[layer] = "winograd" if "wino" in kernel else "direct"
    return times, algorithms, rel_l2


def time_convs(convs: list[dict], args: argparse.Namespace, peak_gflops: float) -> None:
    import statistics

    import torch

    import sol.pytorch as sol

    sol.device.set(sol.device.x86, 0)
    torch.manual_seed(0)
    print("resnet50 through SOL, profiling every kernel ...", file=sys.stderr, flush=True)
    layer_times, algorithms, rel_l2 = sol_layer_times(args)
    for i, e in enumerate(convs, 1):
        conv = torch.nn.Conv2d(e["in_channels"], e["out_channels"], e["kernel"], e["stride"],
                               e["padding"], groups=e["groups"], bias=False).eval()
        x = torch.rand(e["batch"], e["in_channels"], *e["in_hw"])
        print(f"[{i}/{len(convs)}] {describe(e)} ...", file=sys.stderr, flush=True)
        with torch.no_grad():
            e["eager_ms"] = median_time(lambda: conv(x), args.runs, args.warmup) * 1e3
        samples = [t for layer in e["layers"] for t in layer_times.get(layer, [])]
        missing = [layer for layer in e["layers"] if layer not in layer_times]
        if missing:
            e["error"] = f"no SOL kernel anchored at {', '.join(missing)}"
            continue
        e["sol_ms"] = statistics.median(samples) * 1e3
        e["sol_algorithm"] = "/".join(sorted({algorithms[layer] for layer in e["layers"]}))
        e["rel_l2"] = rel_l2
        for who in ("sol", "eager"):
            gflops = e["flops"] / (e[f"{who}_ms"] * 1e-3) * 1e-9
            e[f"{who}_gflops"] = gflops
            e[f"{who}_peak_fraction"] = gflops / peak_gflops


def describe(e: dict) -> str:
    g = f" g{e['groups']}" if e["groups"] != 1 else ""
    return (f"{e['kernel']}x{e['kernel']} s{e['stride']} {e['in_channels']:4d}->{e['out_channels']:<4d} "
            f"{e['in_hw'][0]:3d}x{e['in_hw'][1]:<3d}{g}")


def print_convs(convs: list[dict], peak: dict) -> dict:
    n = peak["threads"]
    print(f"resnet50's 3x3 and 1x1 convolutions, batch 1, 224x224: SOL vs the {n}-thread peak "
          f"({peak['peak_gflops']:.1f} GFLOP/s), median times; SOL's inside the whole network "
          "(with its fused BatchNorm/ReLU/residual), eager's of the lone nn.Conv2d. GFLOP/s count a "
          "direct convolution's FLOPs: Winograd does fewer, so its rate is effective and may pass the peak")
    print(f"{'conv (k, stride, IC->OC, input)':32} {'count':>5} {'MFLOP':>7} {'SOL ms':>8} {'GFLOP/s':>8} "
          f"{'% peak':>7} {'eager ms':>9} {'eager %':>8}  SOL algorithm")
    three = [e for e in convs if e["kernel"] == 3]
    # "3x3 direct": the 3x3 layers SOL runs as direct convolutions, whose rate is a real one
    direct = [e for e in three if e.get("sol_algorithm") == "direct"]
    groups = [("3x3", three, True), ("3x3 direct", direct, False),
              ("1x1", [e for e in convs if e["kernel"] == 1], True), ("all", convs, False)]
    totals = {}
    for name, rows, listed in groups:
        if name == "3x3 direct" and len(direct) == len([e for e in three if "sol_ms" in e]):
            continue  # every 3x3 layer is direct: the same as the 3x3 line
        if listed:
            for e in rows:
                head = f"{describe(e):32} {e['count']:5d} {e['flops'] / 1e6:7.1f}"
                if "error" in e:
                    print(f"{head} SOL failed: {e['error']}")
                    continue
                print(f"{head} {e['sol_ms']:8.3f} {e['sol_gflops']:8.1f} {100 * e['sol_peak_fraction']:6.1f}% "
                      f"{e['eager_ms']:9.3f} {100 * e['eager_peak_fraction']:7.1f}%  {e['sol_algorithm']}")
        ok = [e for e in rows if "sol_ms" in e]
        if not ok:
            continue
        # weighted by occurrence: the whole network's time in these layers
        flops = sum(e["flops"] * e["count"] for e in ok)
        entry = {}
        for who in ("sol", "eager"):
            seconds = sum(e[f"{who}_ms"] * 1e-3 * e["count"] for e in ok)
            entry[f"{who}_gflops"] = flops / seconds * 1e-9
            entry[f"{who}_peak_fraction"] = entry[f"{who}_gflops"] / peak["peak_gflops"]
        totals[name] = entry
    print()
    for name, t in totals.items():
        print(f"{name + ' convs':17} (weighted by count): SOL {t['sol_gflops']:7.1f} GFLOP/s = "
              f"{100 * t['sol_peak_fraction']:5.1f}% of peak; eager {t['eager_gflops']:7.1f} GFLOP/s = "
              f"{100 * t['eager_peak_fraction']:5.1f}%")
    errors = {e["rel_l2"] for e in convs if "rel_l2" in e}
    if errors and max(errors) > 1e-4:
        print(f"warning: SOL's resnet50 output differs from eager by rel L2 {max(errors):.1e} > 1e-4")
    return totals


def main() -> int:
    args = parse_args()
    # one thread count for everything; OpenMP reads it at start-up, so before torch/SOL load
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    before = cpu_seconds()
    peak = measure_peak(args.threads, args.seconds)
    peak["foreign_load"] = foreign_load(before)
    print_peak(peak)
    result = {"peak": peak, "convs": [], "totals": {}}
    if not args.no_convs:
        import torch

        torch.set_num_threads(args.threads)
        convs = resnet50_convs()
        before = cpu_seconds()
        time_convs(convs, args, peak["peak_gflops"])
        result["conv_foreign_load"] = foreign_load(before)
        result["convs"] = convs
        result["totals"] = print_convs(convs, peak)
        import platform

        import sol

        result.update(torch=torch.__version__, sol=sol.__version__, machine=platform.processor() or platform.machine())
    loads = [peak["foreign_load"], result.get("conv_foreign_load", 0.0)]
    print(f"other processes used {loads[0]:.2f} cores on average during the peak measurement, "
          f"{loads[1]:.2f} during the conv timings" + (" (suspect numbers)" if max(loads) > 0.1 else ""))
    result.update(runs=args.runs, warmup=args.warmup, date=time.strftime("%Y-%m-%d %H:%M:%S"))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
