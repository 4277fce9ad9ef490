#!/usr/bin/env python3
"""SOL against every peer on the CPU: PyTorch eager, torch.compile, ONNX Runtime and OpenVINO.

    python bench/compare.py                              # the default networks, batch 1 and 8
    python bench/compare.py --quick                      # smoke test: 2 models, batch 1, 3 runs
    python bench/compare.py --models resnet50,vgg16 --batch-sizes 1 --runs 20

Speed, in this one process, fp32, one thread count for all: per network (zoo_models.py, 224x224)
and batch size, every framework is prepared and its first output checked against eager (relative
L2 > --tol: invalid); then each is timed in --passes blocks (the second pass in reverse order) of
--runs calls after --warmup, and the cell is the fastest block's median. Preparation time
cold/warm and peak memory: each framework in fresh subprocesses. Prints tables, writes JSON and a
PNG chart to --out-dir. A framework that is missing or fails gets the reason in its cell. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "python"))  # zoo_models: the zoo's networks
from timing import median_time  # noqa: E402  (bench/ is on sys.path when a script here runs)

DEFAULT_MODELS = ("resnet50,resnet18,densenet121,mobilenet_v2,shufflenet_v2_x1_0,squeezenet1_1,"
                  "vgg16,googlenet,mnasnet1_0,mlp")
QUICK_MODELS = "resnet18,mlp"
FRAMEWORKS = ("sol", "compile", "ort", "openvino")  # eager is always run: it is the reference
TITLES = {"eager": "PyTorch eager", "sol": "SOL", "compile": "torch.compile (Inductor)",
          "ort": "ONNX Runtime (CPU)", "openvino": "OpenVINO (CPU)"}
RESULT_TAG = "COMPARE-RESULT "
BUSY = 0.1  # cores used by other processes during a timing that make its cell suspect
# what each framework imports (eager and torch.compile: only torch, imported first anyway)
IMPORTS = {"sol": ("sol.pytorch",), "ort": ("onnxruntime",), "openvino": ("openvino",)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None, help=f"comma-separated zoo names (default: {DEFAULT_MODELS})")
    p.add_argument("--batch-sizes", default=None, help="comma-separated (default: 1,8)")
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="peers besides eager (default: all)")
    p.add_argument("--runs", type=int, default=None, help="timed runs per cell (default 10)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs before timing (default 3)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every framework")
    p.add_argument("--tol", type=float, default=1e-3, help="largest relative L2 error vs eager (default 1e-3)")
    p.add_argument("--prep-models", default=None,
                   help="networks for the cold/warm preparation and memory table: names, 'all' "
                        "(the --models) or 'none' (default: resnet50; --quick: mlp)")
    p.add_argument("--prep-timeout", type=float, default=900, help="seconds per preparation subprocess")
    p.add_argument("--retries", type=int, default=2, help="re-timings of a cell disturbed by other processes")
    p.add_argument("--passes", type=int, default=2,
                   help="timing blocks per framework and cell, at different times; the fastest counts")
    p.add_argument("--pause", type=float, default=0.2,
                   help="seconds of idle before each timing block, so the previous framework's spinning "
                        "threads do not slow it")
    p.add_argument("--out-dir", type=Path, default=HERE / "results")
    p.add_argument("--name", default=None, help="output file stem (default: compare, --quick: compare_quick)")
    p.add_argument("--quick", action="store_true", help="smoke test: resnet18 and the MLP, batch 1, 3 runs")
    p.add_argument("--no-plot", action="store_true")
    # internal: one preparation/memory measurement in a fresh process
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-mode", choices=("cold", "warm", "call"), help=argparse.SUPPRESS)
    p.add_argument("--child-model", help=argparse.SUPPRESS)
    p.add_argument("--child-batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-dir", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    q = a.quick
    a.models = [m for m in (a.models or (QUICK_MODELS if q else DEFAULT_MODELS)).split(",") if m]
    a.batch_sizes = [int(b) for b in (a.batch_sizes or ("1" if q else "1,8")).split(",") if b]
    a.frameworks = [f for f in a.frameworks.split(",") if f and f != "eager"]
    a.runs = a.runs or (3 if q else 10)
    a.warmup = a.warmup if a.warmup is not None else (1 if q else 3)
    prep = a.prep_models or ("mlp" if q else "resnet50")
    a.prep_models = [] if prep == "none" else a.models if prep == "all" else prep.split(",")
    a.name = a.name or ("compare_quick" if q else "compare")
    bad = [f for f in a.frameworks if f not in FRAMEWORKS]
    if bad:
        p.error(f"unknown framework(s) {bad}; choose from {FRAMEWORKS}")
    return a


def short(error: BaseException | str, limit: int = 110) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    line = next((s.strip() for s in str(text).splitlines() if s.strip()), str(text))
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --------------------------------------------------------------------- the frameworks


def export_onnx(model, x, path: Path) -> dict:
    """torch.onnx.export to `path`: the TorchScript exporter (dynamo=False) if this torch still
    has it, else the dynamo exporter (needs onnxscript). Returns which one and how long."""
    import torch

    start = time.perf_counter()
    errors = []
    for dynamo in (False, True):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation warning
                torch.onnx.export(model, (x,), str(path), dynamo=dynamo, input_names=["input"],
                                  output_names=["output"], **({"external_data": False} if dynamo else {}))
            return {"exporter": "dynamo" if dynamo else "torchscript", "export_s": time.perf_counter() - start}
        except Exception as error:  # noqa: BLE001  (try the other exporter, report both)
            errors.append(f"dynamo={dynamo}: {short(error, 200)}")
    raise RuntimeError("torch.onnx.export failed; " + "; ".join(errors))


def prepare(fw: str, model, x, work: Path, threads: int, reuse_onnx: bool = True, ov_cache: Path | None = None):
    """Make `model` ready for input `x` with framework `fw`. Returns (run, info): run() does
    one inference and returns a torch tensor; info holds details such as the exporter used."""
    import torch

    info: dict = {}
    if fw == "eager":
        return (lambda: model(x)), info
    if fw == "sol":
        import sol.pytorch as sol

        sol.device.set(sol.device.x86, 0)
        sm = sol.optimize(model, x.size())
        sm.load_state_dict(model.state_dict())

        def run():
            return sm(x)

        run.sol_module = sm  # child_main reports its memory
        return run, info
    if fw == "compile":
        torch._dynamo.reset()  # a fresh compile per (network, batch), not a recompile
        cm = torch.compile(model, dynamic=False)  # default mode: Inductor
        return (lambda: cm(x)), info
    xn, path = x.numpy(), work / "model.onnx"  # ORT and OpenVINO share one export
    if not (reuse_onnx and path.exists()):
        info.update(export_onnx(model, x, path))
    if fw == "ort":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: xn}
        return (lambda: torch.from_numpy(sess.run(None, feed)[0])), info
    if fw == "openvino":
        import openvino as ov

        config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
                  "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if ov_cache is not None:
            config["CACHE_DIR"] = str(ov_cache)
        compiled = ov.Core().compile_model(str(path), "CPU", config)
        request = compiled.create_infer_request()
        info["precision"] = str(compiled.get_property("INFERENCE_PRECISION_HINT"))  # f32 expected

        def run():
            request.infer([xn])
            return torch.from_numpy(request.get_output_tensor(0).data)  # OpenVINO's buffer, no copy

        return run, info
    raise ValueError(fw)


def availability(frameworks: list[str]) -> dict[str, str | None]:
    """None where the framework's Python package imports, else why not."""
    missing: dict[str, str | None] = dict.fromkeys(frameworks)
    for fw in frameworks:
        try:
            for module in IMPORTS.get(fw, ("torch",)):
                __import__(module)
        except Exception as error:  # noqa: BLE001
            missing[fw] = f"not installed ({short(error, 60)})"
    return missing


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "sol", "onnx", "onnxscript", "onnxruntime", "openvino", "matplotlib"):
        try:
            out[name] = __import__(name).__version__.split("-")[0]  # openvino's has a build suffix
        except Exception:  # noqa: BLE001
            out[name] = None
    return out


def cpu_name() -> str:
    info = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in (info.read_text().splitlines() if info.exists() else [])
             if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


# --------------------------------------------------------------------- speed (one process)


def cpu_seconds() -> tuple[float, float, float]:
    """(wall, CPU seconds of the whole machine, of this process and its waited-for children).
    The difference of two snapshots tells how busy *other* processes kept the cores."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle, iowait
    t = os.times()
    return time.perf_counter(), busy, t.user + t.system + t.children_user + t.children_system


def foreign_load(before: tuple, after: tuple) -> float:
    """Average number of cores other processes used between two cpu_seconds() snapshots."""
    wall, busy, own = (a - b for a, b in zip(after, before))
    return max(0.0, (busy - own) / max(wall, 1.0))  # both count 10 ms ticks: short windows are noise


def time_in_blocks(runs: dict, cells: dict, args) -> None:
    """cells[fw]["ms"] for each framework of `runs` (fw -> one inference call). Each framework is
    timed in --passes blocks: after --pause seconds of idle (the previous framework's worker
    threads stop spinning; ONNX Runtime's spin for ~40 ms after a call), --warmup untimed calls
    and --runs timed ones, back to back as in a user's loop. The second pass visits the
    frameworks in reverse order. A block's time is its median; the cell keeps the fastest
    block's: a slow spell of this shared machine only ever slows calls down, and it now has to
    hit every block of a framework to show in its cell. When other processes kept the cores busy
    during a block (foreign_load > BUSY), it is timed again, up to --retries times. A call that
    fails turns its cell into an error."""
    import torch

    with torch.no_grad():
        for pass_ in range(args.passes):
            for fw in list(runs)[:: -1 if pass_ % 2 else 1]:
                cell = cells[fw]
                try:
                    for _ in range(1 + args.retries):
                        ms, load = time_block(runs[fw], args)
                        cell.setdefault("block_ms", []).append(ms)
                        # the fastest undisturbed block; disturbed ones only while nothing better exists
                        if "ms" not in cell or (load <= BUSY and (ms < cell["ms"] or cell["foreign_load"] > BUSY)):
                            cell.update(ms=ms, foreign_load=load)
                        if load <= BUSY:
                            break
                        time.sleep(1.0)
                except Exception as error:  # noqa: BLE001  (one cell, whatever happened)
                    cell.update(status="error", error=f"run: {short(error)}")
                    traceback.print_exc(limit=3)
                    del runs[fw]


def time_block(run, args) -> tuple[float, float]:
    """One block of time_in_blocks: (median ms, cores other processes used meanwhile)."""
    time.sleep(args.pause)
    before = cpu_seconds()
    seconds = median_time(run, args.runs, args.warmup)
    return seconds * 1e3, foreign_load(before, cpu_seconds())


def relative_l2(out, ref) -> float:
    a, b = out.detach().double(), ref.detach().double()
    return ((a - b).norm() / max(b.norm().item(), 1e-30)).item()


def prepare_cell(fw, model, x, ref, work: Path, args) -> tuple[dict, object]:
    """Prepare `fw` for this cell and check its first output against eager's `ref`. Returns the
    cell (preparation time, details, error) and the inference call, None when it failed."""
    import torch

    cell: dict = {}
    stage = "prepare"
    try:
        with torch.no_grad():
            start = time.perf_counter()
            run, info = prepare(fw, model, x, work, args.threads)
            first = run()
            cell["prep_s"] = time.perf_counter() - start  # in the benchmark process; see the prep table
            cell.update(info)
            stage = "check"
            if tuple(first.shape) != tuple(ref.shape):
                raise RuntimeError(f"output shape {tuple(first.shape)}, eager's {tuple(ref.shape)}")
            cell["rel_l2"] = relative_l2(first, ref)
        return cell, run
    except Exception as error:  # noqa: BLE001  (one cell, whatever happened)
        cell.update(status="error", error=f"{stage}: {short(error)}")
        traceback.print_exc(limit=3)
        return cell, None


def run_speed(args, missing: dict) -> dict:
    import torch

    from zoo_models import ZOO, build, make_input

    results: dict = {}
    work_root = Path(tempfile.mkdtemp(prefix="sol-compare-"))
    try:
        for name in args.models:
            results[name] = {}
            if name not in ZOO:
                print(f"unknown network {name!r}; zoo: {', '.join(ZOO)}", file=sys.stderr)
                continue
            try:
                model = build(name)
            except Exception as error:  # noqa: BLE001  (e.g. a torchvision without this network)
                failed = {"status": "error", "error": f"build: {short(error)}"}
                results[name] = {str(b): {fw: failed for fw in ["eager", *args.frameworks]} for b in args.batch_sizes}
                continue
            for batch in args.batch_sizes:
                x = make_input(name, batch, ZOO[name].bench, seed=batch)
                work = work_root / f"{name}_b{batch}"
                work.mkdir()
                with torch.no_grad():
                    ref = model(x)
                row, runs = {}, {}
                for fw in ["eager", *args.frameworks]:
                    if missing.get(fw):
                        row[fw] = {"status": "error", "error": missing[fw]}
                        continue
                    print(f"{name} batch {batch}: preparing {fw} ...", file=sys.stderr, flush=True)
                    row[fw], run = prepare_cell(fw, model, x, ref, work, args)
                    if run is not None:
                        runs[fw] = run
                print(f"{name} batch {batch}: timing {', '.join(runs)} ...", file=sys.stderr, flush=True)
                time_in_blocks(runs, row, args)
                for cell in row.values():
                    if "status" not in cell:
                        cell["status"] = "ok" if cell["rel_l2"] <= args.tol else "invalid"  # NaN is invalid too
                eager = row["eager"].get("ms") if row["eager"]["status"] == "ok" else None
                for fw, cell in row.items():
                    if cell["status"] == "ok" and eager:
                        cell["speedup"] = eager / cell["ms"]
                results[name][str(batch)] = row
                del runs
                torch._dynamo.reset()  # torch.compile's compiled code for this cell
                gc.collect()
                shutil.rmtree(work, ignore_errors=True)
            del model
            gc.collect()
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    return results


def geomeans(results: dict, args) -> dict:
    """Per batch size and framework: geomean of eager/framework over its valid cells."""
    out = {}
    for batch in args.batch_sizes:
        out[str(batch)] = {}
        for fw in args.frameworks:
            cells = [r[str(batch)][fw] for r in results.values() if str(batch) in r]
            ups = [c["speedup"] for c in cells if "speedup" in c]
            out[str(batch)][fw] = {
                "geomean": math.exp(sum(map(math.log, ups)) / len(ups)) if ups else None,
                "valid": len(ups), "cells": len(cells), "slower_than_eager": sum(u < 1 for u in ups)}
    return out


def fmt_ms(ms: float, width: int) -> str:
    """Milliseconds with about 4 significant digits: the MLP takes microseconds, vgg16 seconds."""
    return f"{ms:{width}.{4 if ms < 1 else 2 if ms < 100 else 1}f}"


def format_speed(results: dict, means: dict, args) -> str:
    fws, w = args.frameworks, 16
    lines = ["time in ms, median; (N.NNx) = eager time / framework time, higher is better",
             f"{'network':20} {'batch':>5} {'eager ms':>9} | " + " | ".join(f"{fw:>{w}}" for fw in fws)]
    lines.append("-" * len(lines[-1]))
    notes: list[str] = []

    def note(text: str) -> str:
        notes.append(text)
        return f"[{len(notes)}]"

    for name, by_batch in results.items():
        for batch, row in by_batch.items():
            e = row["eager"]
            eager = fmt_ms(e["ms"], 9) if e["status"] == "ok" else f"{'error ' + note(f'{name} b{batch} eager: ' + e.get('error', '')):>9}"
            cells = []
            for fw in fws:
                c = row.get(fw, {"status": "error", "error": "not run"})
                if c["status"] == "ok":
                    text = fmt_ms(c["ms"], 8) + (f" ({c['speedup']:.2f}x)" if "speedup" in c else "")
                    if max(c.get("foreign_load", 0), e.get("foreign_load", 0)) > BUSY:
                        text += "*"  # other processes ran while this cell or eager was timed
                elif c["status"] == "invalid":
                    text = "invalid " + note(f"{name} b{batch} {fw}: rel L2 {c['rel_l2']:.2e} > {args.tol:g} "
                                             f"({c['ms']:.2f} ms)")
                else:
                    text = "error " + note(f"{name} b{batch} {fw}: {c.get('error', '?')}")
                cells.append(f"{text:>{w}}")
            lines.append(f"{name:20} {batch:>5} {eager} | " + " | ".join(cells))
    lines += ["", "geomean speed-up over eager (valid cells / all; slower than eager)"]
    lines.append(f"{'batch':>5}  " + " | ".join(f"{fw:>{w + 4}}" for fw in fws))
    for batch, by_fw in means.items():
        cells = []
        for fw in fws:
            m = by_fw[fw]
            g = f"{m['geomean']:.2f}x" if m["geomean"] else "-"
            cells.append(f"{g + ' (' + str(m['valid']) + '/' + str(m['cells']) + '; ' + str(m['slower_than_eager']) + ')':>{w + 4}}")
        lines.append(f"{batch:>5}  " + " | ".join(cells))
    if any("*" in line for line in lines):
        lines.append(f"* other processes used more than {BUSY} cores on average while this cell or eager's was timed")
    if notes:
        lines += ["", "notes:"] + [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines)


# --------------------------------------------------------------------- preparation and memory (subprocesses)


def rss_mib() -> tuple[float | None, float | None]:
    """(peak, current) resident set of this process in MiB, from /proc/self/status (VmHWM,
    VmRSS). Not ru_maxrss: Linux carries the parent's peak over fork and exec into it."""
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.exists() else []
    field = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in lines if line.startswith("Vm")}
    return field.get("VmHWM"), field.get("VmRSS")


def call_growth_mib(run) -> float | None:
    """How far the resident set rises above its level before one call while the call runs. Only
    meaningful with every allocation mmap'd (run_child sets MALLOC_MMAP_THRESHOLD_=0 for the "call"
    process), so that memory a call frees leaves the resident set instead of staying in malloc's
    pools; writing 5 to clear_refs resets VmHWM to the current RSS."""
    clear_refs = Path("/proc/self/clear_refs")
    if not clear_refs.exists():
        return None
    clear_refs.write_text("5")
    before = rss_mib()[1]
    run()
    peak = rss_mib()[0]
    return None if peak is None or before is None else peak - before


def sol_memory_mib(sm) -> dict:
    """What SOL's compiled model holds beside the PyTorch model, in MiB: oneDNN's reordered
    weights and other parameter-derived values (kept between calls), and the per-call workspace."""
    (entry,) = sm._sol.compiled.values()
    return {"sol_kept_mib": (entry.model.library_kept_bytes + entry.model.derived_bytes) / 2**20,
            "sol_workspace_mib": entry.model.workspace_bytes / 2**20}


def child_main(args) -> int:
    """One framework, one network, in a fresh process: preparation time and peak memory, or (mode
    "call") the memory one call takes beyond what stays between calls."""
    import torch

    torch.set_num_threads(args.threads)
    from zoo_models import ZOO, build, make_input

    fw, name, batch = args.child, args.child_model, args.child_batch
    result: dict = {"framework": fw, "mode": args.child_mode}
    try:
        model = build(name)
        x = make_input(name, batch, ZOO[name].bench, seed=batch)
        gc.collect()
        result["base_rss_mib"] = rss_mib()[1]
        # the framework's import is not preparation: a user pays it once per process
        start = time.perf_counter()
        for module in IMPORTS.get(fw, ()):
            __import__(module)
        result["import_s"] = time.perf_counter() - start
        with torch.no_grad():
            start, before = time.perf_counter(), cpu_seconds()
            run, info = prepare(fw, model, x, args.child_dir, args.threads,
                                reuse_onnx=args.child_mode != "cold", ov_cache=args.child_dir / "ov_cache")
            result["prepare_s"] = time.perf_counter() - start
            run()
            result["prep_s"] = time.perf_counter() - start  # preparation + the first call
            result["foreign_load"] = foreign_load(before, cpu_seconds())
            result.update(info)
            for _ in range(3):
                run()
            if args.child_mode == "call":
                result["call_mib"] = call_growth_mib(run)
        result["peak_rss_mib"] = rss_mib()[0]
        if hasattr(run, "sol_module"):
            result.update(sol_memory_mib(run.sol_module))
        result["status"] = "ok"
    except Exception as error:  # noqa: BLE001
        result.update(status="error", error=short(error))
        traceback.print_exc()
    print(RESULT_TAG + json.dumps(result), flush=True)
    return 0


def run_child(fw: str, mode: str, name: str, batch: int, work: Path, args) -> dict:
    env = dict(os.environ,
               SOL_CACHE_DIR=str(work / "sol_cache"),  # empty for the cold process
               TORCHINDUCTOR_CACHE_DIR=str(work / "inductor_cache"))
    if mode == "call":
        env["MALLOC_MMAP_THRESHOLD_"] = "0"  # see call_growth_mib
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", fw, "--child-mode", mode,
           "--child-model", name, "--child-batch", str(batch), "--child-dir", str(work),
           "--threads", str(args.threads)]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.prep_timeout)
    except subprocess.TimeoutExpired:
        return {"status": "error", "error": f"timed out after {args.prep_timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"status": "error", "error": f"exit code {done.returncode}: {short(tail[0])}"}


def run_prep(args, missing: dict) -> dict:
    out: dict = {}
    batch = args.batch_sizes[0]
    for name in args.prep_models:
        out[name] = {"batch": batch}
        for fw in ["eager", *args.frameworks]:
            if missing.get(fw):
                out[name][fw] = {"cold": {"status": "error", "error": missing[fw]}}
                continue
            work = Path(tempfile.mkdtemp(prefix=f"sol-prep-{fw}-"))
            try:
                entry = {}
                for mode in ("warm", "call") if fw == "eager" else ("cold", "warm", "call"):
                    print(f"prep {name} batch {batch}: {fw} {mode} ...", file=sys.stderr, flush=True)
                    entry[mode] = run_child(fw, mode, name, batch, work, args)
                out[name][fw] = entry
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return out


PREP_WHAT = {
    "eager": "first call",
    "sol": "sol.optimize + load_state_dict + first call; cold: empty SOL_CACHE_DIR",
    "compile": "torch.compile + first call; cold: empty TORCHINDUCTOR_CACHE_DIR",
    "ort": "cold: onnx export + InferenceSession + first run; warm: session on the saved .onnx",
    "openvino": "cold: onnx export + compile_model (empty CACHE_DIR) + first infer; warm: reuses both",
}


def format_prep(prep: dict) -> str:
    lines = []
    for name, by_fw in prep.items():
        lines.append(f"preparation time and peak memory: {name}, batch {by_fw['batch']}, "
                     "each framework in fresh processes")
        lines.append(f"{'framework':10} {'cold s':>8} {'warm s':>8} {'peak MiB':>9} {'base MiB':>9} {'call MiB':>9}"
                     "  what is timed")
        notes = []
        for fw, entry in by_fw.items():
            if fw == "batch":
                continue
            cells = []
            for mode in ("cold", "warm"):
                r = entry.get(mode)
                if r is None:
                    cells.append(f"{'-':>8}")
                elif r["status"] == "ok":
                    cells.append(f"{r['prep_s']:7.2f}" + ("*" if r.get("foreign_load", 0) > BUSY else " "))
                else:
                    notes.append(f"{fw} {mode}: {r.get('error')}")
                    cells.append(f"{'error':>8}")
            warm = entry.get("warm", {})
            peak, base = (f"{warm[k]:9.0f}" if warm.get(k) else f"{'-':>9}" for k in ("peak_rss_mib", "base_rss_mib"))
            call = entry.get("call", {})
            if call.get("status") not in (None, "ok"):
                notes.append(f"{fw} call: {call.get('error')}")
            growth = f"{call['call_mib']:9.1f}" if call.get("call_mib") is not None else f"{'-':>9}"
            lines.append(f"{fw:10} {cells[0]} {cells[1]} {peak} {base} {growth}  {PREP_WHAT[fw]}")
        lines += [f"  error: {n}" for n in notes]
        lines.append("")
    sol_lines = [f"{name}: sol keeps {entry['sol']['warm']['sol_kept_mib']:.0f} MiB of weights in oneDNN's layouts "
                 f"and folded values between calls, and plans {entry['sol']['warm']['sol_workspace_mib']:.1f} MiB "
                 "of workspace per call (intermediates and oneDNN scratch)"
                 for name, entry in prep.items() if "sol_kept_mib" in entry.get("sol", {}).get("warm", {})]
    lines += sol_lines
    lines.append("peak = VmHWM of the warm process (torch + the PyTorch model + the framework, after "
                 "preparing and 4 calls); base = its RSS with torch and the model loaded, before the framework;\n"
                 "call = how far the RSS rises during a 5th call, in another warm process with every allocation "
                 "mmap'd (MALLOC_MMAP_THRESHOLD_=0: freed memory leaves the RSS)"
                 + (f"\n* other processes used more than {BUSY} cores on average during this preparation"
                    if any("*" in line for line in lines) else ""))
    return "\n".join(lines)


# --------------------------------------------------------------------- chart


def plot(results: dict, means: dict, args, path: Path) -> str | None:
    try:
        import matplotlib.pyplot as plt  # the Agg backend: set in main()
    except Exception as error:  # noqa: BLE001
        return f"no chart: matplotlib missing ({short(error, 60)})"
    names = list(results) + ["geomean"]
    fig, axes = plt.subplots(len(args.batch_sizes), 1, figsize=(max(8, 1.3 * len(names)), 3.6 * len(args.batch_sizes)),
                             squeeze=False)
    width = 0.8 / max(1, len(args.frameworks))
    for ax, batch in zip(axes[:, 0], args.batch_sizes):
        for i, fw in enumerate(args.frameworks):
            ups = [results[n].get(str(batch), {}).get(fw, {}).get("speedup", 0.0) for n in names[:-1]]
            ups.append(means[str(batch)][fw]["geomean"] or 0.0)
            pos = [j + (i - (len(args.frameworks) - 1) / 2) * width for j in range(len(names))]
            ax.bar(pos, ups, width, label=TITLES[fw])
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=20, ha="right")
        ax.set_ylabel("speed-up over eager")
        ax.set_title(f"batch {batch}, fp32, {args.threads} threads (missing bar = failed or invalid)")
        ax.legend(fontsize=8, ncol=len(args.frameworks))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


# --------------------------------------------------------------------- main


def main() -> int:
    args = parse_args()
    # One thread count for every framework. OpenMP (torch's, SOL's generated code) reads it when
    # it starts, so it is set before anything imports torch; children inherit it.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ.setdefault("MPLBACKEND", "Agg")  # the chart is a file; no display needed
    if args.child:
        return child_main(args)

    import torch

    torch.set_num_threads(args.threads)
    missing = availability(args.frameworks)
    info = {"cpu": cpu_name(), "threads": args.threads, "runs": args.runs, "warmup": args.warmup,
            "tol": args.tol, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "versions": versions(),
            "models": args.models, "batch_sizes": args.batch_sizes, "frameworks": args.frameworks}
    v = info["versions"]
    header = (f"SOL vs peers: {info['cpu']}, {args.threads} threads, fp32, 224x224 (MLP: 64 features), "
              f"median of {args.runs} runs after {args.warmup} warm-up\n"
              + ", ".join(f"{k} {v[k]}" for k in ("torch", "sol", "onnxruntime", "openvino", "onnx") if v.get(k)))
    print(header, flush=True)

    start, before = time.perf_counter(), cpu_seconds()
    results = run_speed(args, missing)
    info["foreign_load"] = foreign_load(before, cpu_seconds())
    means = geomeans(results, args)
    speed_table = format_speed(results, means, args)
    print("\n" + speed_table, flush=True)
    print(f"other processes used {info['foreign_load']:.2f} of {os.cpu_count()} cores on average during the speed runs")

    prep = run_prep(args, missing)
    prep_table = format_prep(prep) if prep else ""
    if prep_table:
        print("\n" + prep_table, flush=True)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / f"{args.name}.json"
    png_path = args.out_dir / f"{args.name}.png"
    info["seconds"] = time.perf_counter() - start
    json_path.write_text(json.dumps({"info": info, "speed": results, "geomean": means, "prep": prep,
                                     "tables": {"header": header, "speed": speed_table, "prep": prep_table}},
                                    indent=1))
    print(f"\nwrote {json_path}")
    if not args.no_plot:
        problem = plot(results, means, args, png_path)
        print(problem or f"wrote {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
