#!/usr/bin/env python3
"""The model-zoo table: every network of issue 3 through SOL against PyTorch eager.

    python bench/zoo_table.py                                   # everything, 224x224 (hours on 2 cores)
    python bench/zoo_table.py --models resnet18,mobilenet_v2 --batch-sizes 1 --runs 3

For each network (tests/python/zoo_models.py: torchvision definitions with random weights and
randomized BatchNorm statistics, eval mode; inception_v3 at 299x299, everything else at
224x224) it reports:

* status: ok, inaccurate (relative L2 > --tol or a different arg-max), or error/crashed with a
  short reason;
* the largest max relative error (max|sol - torch| / max|torch|) and relative L2 error over
  all batch sizes, and whether every arg-max equals PyTorch's;
* compile time, cold and cached: sol.optimize + load_state_dict + the first call at the first
  batch size, first into a fresh, empty SOL_CACHE_DIR (cold), then in a new process on that
  now warm cache (cached);
* SOL's and PyTorch eager's median time per batch size (median of --runs timed runs after
  --warmup untimed ones, both at the same thread count), and the speed-up (PyTorch / SOL).

Every network runs in its own subprocesses, so a crash or a hang costs one row, not the table.
Writes the Markdown table to --out and the raw results to --json, and prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from timing import median_time  # bench/ is on sys.path when a script here runs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "python"))  # zoo_models

RESULT_TAG = "ZOO-RESULT "


# --------------------------------------------------------------------- child: one network


def _short(error: BaseException | str, limit: int = 120) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), str(text))
    return line if len(line) <= limit else line[: limit - 3] + "..."


def child(args: argparse.Namespace) -> int:
    """Runs in a fresh interpreter: one network, cold or cached compile (args.child_mode)."""
    import torch

    torch.set_num_threads(args.threads)
    import sol.pytorch as sol
    from zoo_models import ZOO, build, make_input, max_relative, relative_l2

    name = args.child
    net = ZOO[name]
    result: dict = {"network": name}
    stage = "build"
    try:
        model = build(name)
        sol.device.set(sol.device.x86, 0)
        batches = args.batch_sizes
        inputs = {b: make_input(name, b, net.bench, seed=b) for b in batches}

        stage = "compile"
        x0 = inputs[batches[0]]
        start = time.perf_counter()
        sol_model = sol.optimize(model, x0.size())
        sol_model.load_state_dict(model.state_dict())
        with torch.no_grad():
            first = sol_model(x0)
        result["compile_s"] = time.perf_counter() - start
        if args.child_mode == "cached":
            print(RESULT_TAG + json.dumps(result), flush=True)
            return 0

        result.update(max_rel=0.0, rel_l2=0.0, argmax_equal=True, sol_ms={}, torch_ms={}, speedup={})
        for b in batches:
            stage = f"batch {b}"
            x = inputs[b]
            with torch.no_grad():
                ref = model(x)
                out = first if b == batches[0] else sol_model(x)  # a new batch size compiles here
            if tuple(out.shape) != tuple(ref.shape):
                raise RuntimeError(f"output shape {tuple(out.shape)} from SOL, {tuple(ref.shape)} from PyTorch")
            result["max_rel"] = max(result["max_rel"], max_relative(out, ref))
            result["rel_l2"] = max(result["rel_l2"], relative_l2(out, ref))
            result["argmax_equal"] &= bool(torch.equal(out.argmax(-1), ref.argmax(-1)))
            with torch.no_grad():
                t_sol = median_time(lambda: sol_model(x), args.runs, args.warmup)
                t_ref = median_time(lambda: model(x), args.runs, args.warmup)
            result["sol_ms"][str(b)] = t_sol * 1e3
            result["torch_ms"][str(b)] = t_ref * 1e3
            result["speedup"][str(b)] = t_ref / t_sol
        accurate = result["rel_l2"] <= args.tol and result["argmax_equal"]  # False for NaN too
        result["status"] = "ok" if accurate else "inaccurate"
    except Exception as error:  # noqa: BLE001  (one row per network, whatever happened)
        result["status"] = "error"
        result["error"] = f"{stage}: {_short(error)}"
        traceback.print_exc()
    print(RESULT_TAG + json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------- parent: the table


def _run_child(name: str, mode: str, cache_dir: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    env.pop("SOL_LOG", None)
    env["SOL_CACHE_DIR"] = cache_dir
    env["OMP_NUM_THREADS"] = str(args.threads)  # SOL's generated code: read at start-up
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--child-mode", mode,
           "--batch-sizes", ",".join(map(str, args.batch_sizes)), "--runs", str(args.runs),
           "--warmup", str(args.warmup), "--threads", str(args.threads), "--tol", str(args.tol)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"network": name, "status": "error", "error": f"{mode} run: timed out after {args.timeout} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG):])
            if result.get("status") == "error" and args.verbose:
                sys.stderr.write(proc.stderr)
            return result
    # no result line: the process died (a signal, an abort in native code, out of memory)
    how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
    tail = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    if args.verbose:
        sys.stderr.write(proc.stderr)
    return {"network": name, "status": "crashed",
            "error": f"{mode} run: {how}" + (f": {_short(tail[-1])}" if tail else "")}


def run_network(name: str, args: argparse.Namespace) -> dict:
    cache_dir = tempfile.mkdtemp(prefix=f"sol-zoo-{name}-")  # fresh: the cold compile
    try:
        result = _run_child(name, "cold", cache_dir, args)
        result["compile_cold_s"] = result.pop("compile_s", None)
        if "compile_cold_s" in result and result["compile_cold_s"] is not None:
            cached = _run_child(name, "cached", cache_dir, args)  # new process, warm cache
            result["compile_cached_s"] = cached.get("compile_s")
            if cached.get("status") in ("error", "crashed"):
                result.setdefault("error", cached.get("error"))
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return result


def _fmt(value, spec: str, missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def markdown(results: list[dict], args: argparse.Namespace, header: dict) -> str:
    from zoo_models import ZOO

    batches = [str(b) for b in args.batch_sizes]
    cols = ["network", "input", "status", "max rel err", "rel L2", "arg-max equal",
            "compile cold (s)", "compile cached (s)"]
    for b in batches:
        cols += [f"SOL b{b} (ms)", f"PyTorch b{b} (ms)", f"speed-up b{b}"]
    lines = [
        f"SOL model zoo, {header['date']}: {header['cpu']}, "
        f"{header['threads']} thread{'s' if header['threads'] != 1 else ''} for both SOL and PyTorch, "
        f"torch {header['torch']}, torchvision {header['torchvision']}; median of {args.runs} runs after "
        f"{args.warmup} warm-up; errors vs PyTorch eager (worst over batch sizes); speed-up = "
        f"PyTorch time / SOL time; compile = sol.optimize + load_state_dict + first call at batch "
        f"{batches[0]}, cold (empty cache) and cached (new process).",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
    ]
    for r in results:
        net = ZOO[r["network"]]
        size = "x".join(map(str, net.bench)) if net.image else f"{net.bench[0]} features"
        status = r["status"]
        if r.get("error"):
            status += f": {r['error']}" if status not in ("ok", "inaccurate") else f" ({r['error']})"
        status = status.replace("|", "\\|")
        argmax = {True: "yes", False: "**no**", None: "–"}[r.get("argmax_equal")]
        row = [r["network"], size, status, _fmt(r.get("max_rel"), ".1e"), _fmt(r.get("rel_l2"), ".1e"), argmax,
               _fmt(r.get("compile_cold_s"), ".1f"), _fmt(r.get("compile_cached_s"), ".2f")]
        for b in batches:
            row += [_fmt(r.get("sol_ms", {}).get(b), ".2f"), _fmt(r.get("torch_ms", {}).get(b), ".2f"),
                    _fmt(r.get("speedup", {}).get(b), ".2f")]
        lines.append("| " + " | ".join(row) + " |")
    ok = sum(r["status"] == "ok" for r in results)
    lines += ["", f"{ok} of {len(results)} networks ok."]
    return "\n".join(lines) + "\n"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--models", default="all",
                   help="comma-separated zoo names (default: all); see --list")
    p.add_argument("--list", action="store_true", help="print the zoo's network names and exit")
    p.add_argument("--batch-sizes", default="1,8", help="comma-separated batch sizes (default: 1,8)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per network, framework and batch size (default: 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before timing (default: 1)")
    p.add_argument("--threads", type=int, default=0, help="threads for both SOL and PyTorch (default: all cores)")
    p.add_argument("--tol", type=float, default=1e-4, help="largest relative L2 error counted as ok (default: 1e-4)")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per network and process (default: 3600)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "zoo_table.md"),
                   help="Markdown output (default: bench/results/zoo_table.md)")
    p.add_argument("--json", default=None, help="JSON output (default: --out with .json)")
    p.add_argument("--verbose", "-v", action="store_true", help="show the stderr of failed networks")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-mode", choices=["cold", "cached"], default="cold", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.batch_sizes = [int(b) for b in str(args.batch_sizes).split(",") if b.strip()]
    if not args.batch_sizes or any(b < 1 for b in args.batch_sizes):
        p.error("--batch-sizes needs positive integers, e.g. 1,8")
    if args.runs < 1 or args.warmup < 0:
        p.error("--runs must be >= 1 and --warmup >= 0")
    args.threads = args.threads or os.cpu_count() or 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)

    from zoo_models import ZOO

    if args.list:
        print("\n".join(ZOO))
        return 0
    names = list(ZOO) if args.models == "all" else [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [n for n in names if n not in ZOO]
    if unknown:
        print(f"error: unknown network(s) {', '.join(unknown)}; known: {', '.join(ZOO)}", file=sys.stderr)
        return 2

    import torch
    import torchvision

    header = {"date": datetime.date.today().isoformat(), "cpu": _cpu_name(), "threads": args.threads,
              "torch": torch.__version__, "torchvision": torchvision.__version__, "runs": args.runs,
              "warmup": args.warmup, "batch_sizes": args.batch_sizes}
    results = []
    for i, name in enumerate(names, 1):
        start = time.perf_counter()
        print(f"[{i}/{len(names)}] {name} ...", end=" ", file=sys.stderr, flush=True)
        result = run_network(name, args)
        result["wall_s"] = time.perf_counter() - start
        print(f"{result['status']}{': ' + result['error'] if result.get('error') else ''} "
              f"({result['wall_s']:.0f} s)", file=sys.stderr, flush=True)
        results.append(result)

    table = markdown(results, args, header)
    print(table, end="")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    json_path = Path(args.json) if args.json else out.with_suffix(".json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"header": header, "results": results}, indent=2) + "\n")
    print(f"wrote {out} and {json_path}", file=sys.stderr)
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
