"""`sol.nn.CustomLayer`: user kernels inside optimized networks.

    class MyLayer(sol.nn.CustomLayer):
        def __init__(self):
            super().__init__({sol.device.x86: ["libMyX86.so", "FwdX86", "BwdX86"]})
            self.ParamA = torch.nn.Parameter(torch.randn(16))

        def forward(self, X):
            ...  # what PyTorch runs when the model is not optimized

Inside a model optimized by SOL, the layer runs the named C functions from the
named shared library (see `sol/custom_layer.h` in `include_dir()` for their
signatures and the shape context); outside it, `forward` runs. SOL infers the
result's shape by running `forward` on meta tensors (else on zero-filled ones);
a layer where neither works overrides `output_shape`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from sol import device as sol_device
from sol.errors import UnsupportedError

__all__ = ["CustomLayer", "include_dir"]


def include_dir() -> Path:
    """The folder to pass with -I when compiling a custom layer's C functions
    (`#include <sol/custom_layer.h>`), installed with SOL's core."""
    from sol._loader import core

    return Path(core().__file__).parent / "runtime" / "include"


class CustomLayer(torch.nn.Module):
    """A layer computed by the user's own functions where SOL runs the model.

    `kernels` maps a `sol.device` to `[library, forward]` or `[library, forward,
    backward]`: the shared library's path (made absolute when it exists relative
    to the working directory; otherwise the system's library search finds it) and
    the C function names. Without a backward function the layer runs in inference
    only. The layer's inputs are the tensors `forward` takes, its parameters those
    it registers (in order); it returns one float32 tensor."""

    def __init__(self, kernels: Mapping[sol_device.Device, Sequence[str]]) -> None:
        super().__init__()
        if not isinstance(kernels, Mapping) or not kernels:
            raise TypeError(f"{type(self).__name__}: kernels must map a sol.device to "
                            "[library, forward, backward]")
        table: dict[str, tuple[str, str, str]] = {}
        for device, entry in kernels.items():
            if not isinstance(device, sol_device.Device):
                raise TypeError(f"{type(self).__name__}: kernel keys are sol.device values, not {device!r}")
            entry = list(entry)
            if len(entry) not in (2, 3) or not all(isinstance(part, str) and part for part in entry):
                raise TypeError(f"{type(self).__name__}: the kernels of {device} must be [library, forward] or "
                                f"[library, forward, backward] (non-empty strings), got {entry!r}")
            library = Path(entry[0]).expanduser()
            if not library.is_absolute() and library.exists():
                library = library.resolve()
            table[device.name] = (str(library), entry[1], entry[2] if len(entry) == 3 else "")
        self.sol_kernels = table  # device name -> (library, forward, backward)

    def output_shape(self, *inputs: torch.Tensor) -> Sequence[int]:
        """The shape of `forward(*inputs)`'s result, for inputs of these shapes and dtypes.
        Override it for a layer whose `forward` cannot run on meta or zero-filled tensors."""
        meta_state = {name: value.to("meta") for name, value in self.state_dict(keep_vars=True).items()}
        try:
            with torch.no_grad():
                result = torch.func.functional_call(self, meta_state, tuple(x.to("meta") for x in inputs))
        except Exception:  # forward does something meta tensors cannot (data-dependent code, numpy)
            with torch.no_grad():
                result = self(*(torch.zeros(x.shape, dtype=x.dtype) for x in inputs))
        if not isinstance(result, torch.Tensor):
            raise UnsupportedError(f"{type(self).__name__}.forward returns {type(result).__name__}; a custom layer "
                                   "returns one tensor")
        if result.dtype != torch.float32:
            raise UnsupportedError(f"{type(self).__name__}.forward returns {result.dtype}; custom layers are float32")
        return tuple(result.shape)
