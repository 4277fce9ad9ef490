#!/usr/bin/env python3
"""Deploy a torchvision network as a C library and run it from a C program.

    python examples/deploy.py                       # resnet18, batch 1, 224x224, into ./deployed/
    python examples/deploy.py --model mobilenet_v2 --out /tmp/net

Writes lib<Name>.so and <Name>.h with sol.deploy, compiles a small C program
against them with the system's C compiler, runs it (without Python) on an input
written here, and prints the largest relative difference from PyTorch and the
median time per call of the C program, of SOL inside PyTorch and of PyTorch
eager at the same thread count. Exits 1 when the difference exceeds --tol.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

C_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "Net.h"

static int by_value(const void* a, const void* b) {
    const double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

/* program input.bin output.bin runs: prints the median milliseconds per call */
int main(int argc, char** argv) {
    const int runs = atoi(argv[3]);
    static float input[PREDICT_INPUT_SIZE], output[PREDICT_OUTPUT0_SIZE];
    float* outputs[] = {output};
    FILE* in = fopen(argv[1], "rb");
    if (!in || fread(input, sizeof(float), PREDICT_INPUT_SIZE, in) != PREDICT_INPUT_SIZE) return 2;
    fclose(in);
    predict_init(0);
    predict(NULL, input, outputs); /* the first call prepares the weights */
    double* times = malloc(sizeof(double) * runs);
    for (int k = 0; k < runs; ++k) {
        struct timespec start, end;
        clock_gettime(CLOCK_MONOTONIC, &start);
        predict(NULL, input, outputs);
        clock_gettime(CLOCK_MONOTONIC, &end);
        times[k] = (end.tv_sec - start.tv_sec) * 1e3 + (end.tv_nsec - start.tv_nsec) * 1e-6;
    }
    qsort(times, runs, sizeof(double), by_value);
    printf("%.4f\n", times[runs / 2]);
    FILE* out = fopen(argv[2], "wb");
    if (!out || fwrite(output, sizeof(float), PREDICT_OUTPUT0_SIZE, out) != PREDICT_OUTPUT0_SIZE) return 3;
    fclose(out);
    return 0;
}
"""


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet18", help="a torchvision.models name (default: resnet18)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--out", default="deployed", help="folder for the library, header and program")
    p.add_argument("--runs", type=int, default=20, help="timed calls per framework")
    p.add_argument("--threads", type=int, default=0, help="threads for all three (default: all cores)")
    p.add_argument("--tol", type=float, default=1e-4, help="largest accepted relative difference")
    return p.parse_args()


def median_ms(function, runs):
    function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    args = parse_args()
    import torch
    import torchvision

    import sol.pytorch as sol

    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    model = getattr(torchvision.models, args.model)(weights=None).eval()
    x = torch.rand(args.batch_size, 3, args.image_size, args.image_size)
    out = Path(args.out)
    start = time.perf_counter()
    library, header = sol.deploy(model, x.size(), lib_name="Net", func_name="predict", path=out)
    print(f"deployed {args.model} to {library} and {header} in {time.perf_counter() - start:.1f} s")

    compiler = shutil.which("cc") or sys.exit("no C compiler (cc) on PATH")
    program = out / "predict"
    (out / "main.c").write_text(C_PROGRAM)
    subprocess.run([compiler, "-O2", str(out / "main.c"), f"-I{out}", f"-L{out}", "-lNet",
                    f"-Wl,-rpath,{out.resolve()}", "-o", str(program)], check=True)
    (out / "input.bin").write_bytes(x.numpy().tobytes())
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}
    env["OMP_NUM_THREADS"] = str(threads)
    result = subprocess.run([str(program), str(out / "input.bin"), str(out / "output.bin"), str(args.runs)],
                            env=env, capture_output=True, text=True, check=True)
    c_ms = float(result.stdout)

    sol_model = sol.optimize(model, x.size())
    with torch.no_grad():
        reference = model(x)
        sol_ms = median_ms(lambda: sol_model(x), args.runs)
        eager_ms = median_ms(lambda: model(x), args.runs)
    output = torch.frombuffer(bytearray((out / "output.bin").read_bytes()), dtype=torch.float32)
    difference = ((output - reference.flatten()).abs().max() / reference.abs().max()).item()
    print(f"{threads} threads, median of {args.runs} calls: C program {c_ms:.3f} ms, SOL in PyTorch "
          f"{sol_ms:.3f} ms, PyTorch eager {eager_ms:.3f} ms (eager / C program: {eager_ms / c_ms:.2f}x)")
    print(f"largest relative difference from PyTorch: {difference:.2e} (tolerance {args.tol:.0e})")
    return 0 if difference <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
