"""SOL: an AI acceleration middleware.

Framework front ends live in subpackages (`sol.pytorch`). This top level holds
what every front end shares: the version, the device selection (`sol.device`),
the artifact cache (`sol.cache`) and the error types. Importing it does not
need the C++ core; the core's error classes are resolved on first access.
"""

from __future__ import annotations

from typing import Any

from sol import cache, device
from sol._logging import configure_from_environment as _configure_logging
from sol.errors import UnsupportedError

__version__ = "0.1.0"

# Error, ShapeError, CompileError and DeviceError are attributes too, but not in
# __all__: `from sol import *` must not require the core.
__all__ = ["__version__", "cache", "device", "UnsupportedError"]

_configure_logging()


def __getattr__(name: str) -> Any:
    # Error, ShapeError, CompileError, DeviceError come from the extension; look
    # them up only when asked so `import sol` works without it.
    from sol import errors

    if name in errors._CORE_ERRORS:
        return getattr(errors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
