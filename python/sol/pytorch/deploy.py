"""`sol.deploy`: a trained network as a standalone shared library with a C API.

The network is traced and optimized as `sol.optimize` does it, in eval mode (a
deployed library predicts), compiled for the target device, and handed to the
core (deploy/write_library), which writes `libNAME.so` (kernels, SOL's runtime,
the weights as they are now) and `NAME.h` (the C API and the input and output
shapes). The library needs neither Python nor torch.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from sol import deployment
from sol import device as sol_device
from sol._loader import core
from sol._logging import logger
from sol.errors import UnsupportedError
from sol.pytorch.frontend import build_graph
from sol.pytorch.module import modes_kept, optimize

__all__ = ["deploy"]


def _runtime_files() -> tuple[Path, Path]:
    """SOL's static runtime and the header the C API template includes, installed with the core."""
    root = Path(core().__file__).parent / "runtime"
    return root / "lib" / "libsol_core.a", root / "include"


def deploy(
    model: torch.nn.Module,
    input_size_or_example_tensor: Any,
    target: deployment.Target = deployment.SharedLib,
    device: sol_device.Device = sol_device.x86,
    lib_name: str = "sol_network",
    func_name: str = "predict",
    path: str | Path = ".",
    autotuning: bool = True,
) -> tuple[Path, Path]:
    """Write `model` for inputs of the given shape as `path/lib<lib_name>.so` and
    `path/<lib_name>.h`, whose C API is `<func_name>_init(deviceIdx)`,
    `<func_name>_seed(seed)` and `<func_name>(ctx, input, outputs)`. The weights are
    the model's current ones, inside the library. Returns (library, header).

    The network must take one float32 input and return float32 tensors (nested
    outputs are flattened in order, as the header lists them). It is deployed as
    `model.eval()` computes it, whatever mode the model is in; `model` itself is
    not changed. Anything SOL cannot compile fails here, naming the reason."""
    if target is not deployment.SharedLib:
        raise UnsupportedError(f"sol.deploy writes {deployment.SharedLib} only so far, not {target}")
    if device not in (sol_device.x86, sol_device.arm64) or device.name not in core().devices():
        raise UnsupportedError(f"sol.deploy builds for the host CPU ({', '.join(core().devices())}) only so far, "
                               f"not {device}")
    if model.training:
        logger.info("sol.deploy: %s is in training mode; the library computes what model.eval() would",
                    type(model).__name__)
    # Compiled in eval mode (a graph only train mode has must not stop a deployment); the user's
    # model keeps its modes.
    with modes_kept(model):
        model.eval()
        sol_model = optimize(model, input_size_or_example_tensor, autotuning=autotuning)
    sol_model.eval()
    engine = sol_model._sol
    shapes = next(iter(engine.compiled))[0]
    built = build_graph(engine.graph_module, shapes, [engine.dtype] * len(shapes))
    if built.state_names or built.counters:
        raise UnsupportedError(f"{type(model).__name__} updates its own state when it runs in eval mode "
                               f"({', '.join(built.state_names + built.counters)}); a deployed library cannot")
    compiled = core().compile(core().run_passes(built.graph), device.name, 0, autotuning, torch.get_num_threads(),
                              keep_for_deployment=True)
    # The weights as they are now, contiguous float32 on the host; kept alive until written.
    values = []
    for name in compiled.parameter_names:
        storage, key, _ = sol_model._slot(name)
        values.append(storage[key].detach().to("cpu", engine.dtype).contiguous())
    archive, include = _runtime_files()
    cache = Path(core().cache_dir()) / "deploy"
    cache.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f"{lib_name}-", dir=cache))
    try:
        library, header = core().deploy_shared_library(
            compiled, [t.data_ptr() for t in values], lib_name, func_name, str(Path(path)), str(archive),
            str(include), str(build))
    except Exception:
        if not any(build.iterdir()):  # refused before building; a failed build keeps the logs its error names
            build.rmdir()
        raise
    shutil.rmtree(build, ignore_errors=True)
    return Path(library), Path(header)
