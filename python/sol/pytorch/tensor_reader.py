"""The direct tensor reader for SolModule's parameter check.

Before every call SolModule compares each parameter's identity, data pointer and in-place version
with the last call's (TensorFingerprint). Read through the Python attributes (`data_ptr()`,
`_version`) right after the kernels ran, that is 250-500 ns of cache misses per tensor, 2-4% of
a batch-1 call of a small network. The reader reads the same two values from the tensor's C++
object instead, in 70-150 ns (src/bindings/templates/pytorch_tensor_reader.cpp). SOL's build
does not depend on PyTorch, so the reader is compiled when SOL first compiles a model, against
the headers of the PyTorch that runs, and kept in the compile cache per PyTorch build (about a
second, once).

SOL_TENSOR_READER=0 keeps the Python attributes. Where the reader does not build (no PyTorch
headers) or cannot find the tensors' TensorImpl, a warning says so and the attributes are used:
slower, never wrong.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import torch

from sol._loader import core
from sol._logging import logger

# The types read directly. Exact types only: a subclass may redefine data_ptr() or hold no storage.
READ_TYPES = (torch.Tensor, torch.nn.Parameter)

_lock = threading.Lock()
_attempted = False


def compile_flags() -> list[str]:
    """What the reader is compiled with, besides the host compiler's flags. The definition naming
    the PyTorch build is part of the compile cache's key: another PyTorch gets its own library."""
    root = Path(torch.__file__).parent
    build = f"{torch.__version__} {torch.version.git_version}"
    return [
        f"-I{root / 'include'}",
        f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
        f'-DSOL_PYTORCH_BUILD="{build}"',
        # libc10 holds what the header's error paths call; the process has it loaded already.
        f"-L{root / 'lib'}",
        f"-Wl,-rpath,{root / 'lib'}",
        "-Wl,--no-as-needed",
        "-lc10",
    ]


def install() -> str:
    """Compile (through the cache) and install the reader; returns the library's path. Raises
    sol.Error (sol.CompileError) when it does not build or cannot find the tensors' TensorImpl."""
    # `_cdata` is the address of a tensor's TensorImpl: where the objects keep it is found with these.
    probes = [torch.empty(1), torch.zeros(2), torch.nn.Parameter(torch.empty(3))]
    return core().install_tensor_reader(compile_flags(), list(READ_TYPES), [(t, t._cdata) for t in probes])


def ensure_installed() -> None:
    """Install the reader, once per process; called before SOL compiles a model."""
    global _attempted
    if _attempted:
        return
    with _lock:
        if _attempted:
            return
        _attempted = True
        if os.environ.get("SOL_TENSOR_READER", "").strip() == "0":
            logger.debug("SOL_TENSOR_READER=0: parameters are checked through their Python attributes")
            return
        try:
            path = install()
        except (core().Error, AttributeError) as error:
            logger.warning(
                "the PyTorch tensor reader is not available, so every call checks the parameters through their "
                "Python attributes (slower, about 0.2 us per tensor): %s", str(error).splitlines()[0])
            return
        logger.debug("parameters are checked through the tensor reader %s", path)
