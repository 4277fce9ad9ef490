"""SOL for PyTorch.

    import sol.pytorch as sol
    sol_model = sol.optimize(py_model, x.size())
    sol_model.load_state_dict(py_model.state_dict())
    sol.device.set(sol.device.x86, 0)
    y = sol_model(x)
    sol.deploy(py_model, x.size(), lib_name="MyNetwork", path="out/")  # libMyNetwork.so + MyNetwork.h

Re-exports the shared SOL surface (device, cache, errors, version) so the one
import above is all a user needs.
"""

from __future__ import annotations

from typing import Any

from sol import __version__, cache, deployment, device, nn
from sol.errors import UnsupportedError
from sol.pytorch.deploy import deploy
from sol.pytorch.module import SolModule, optimize
from sol.pytorch.random import set_seed

__all__ = ["__version__", "cache", "deploy", "deployment", "device", "nn", "optimize", "set_seed", "SolModule",
           "UnsupportedError"]


def __getattr__(name: str) -> Any:
    # The core's error classes (Error, ShapeError, ...), resolved lazily like in `sol`.
    from sol import errors

    if name in errors._CORE_ERRORS:
        return getattr(errors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
