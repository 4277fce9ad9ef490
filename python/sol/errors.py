"""SOL's exception types.

`UnsupportedError` belongs to the Python front ends: it says that a framework
construct (an op, an argument, a module) has no SOL mapping yet. It is a plain
`Exception`, so it is available without the C++ core.

The core's errors (`Error` and its subclasses `ShapeError`, `CompileError`,
`DeviceError`) live in the extension; they are re-exported here lazily so that
`from sol.errors import ShapeError` works once the core is built, and merely
importing this module never requires it.
"""

from __future__ import annotations

from typing import Any

# The core's errors are module attributes (see __getattr__) but not in __all__,
# so that `from sol.errors import *` does not need the core.
__all__ = ["UnsupportedError"]

_CORE_ERRORS = ("Error", "ShapeError", "CompileError", "DeviceError")


class UnsupportedError(Exception):
    """A model uses something SOL cannot translate yet (op, argument or mode).

    The message names the construct, the module path and the user's source line.
    """


def __getattr__(name: str) -> Any:
    # PEP 562 module __getattr__: resolved only when someone asks for a core error.
    if name in _CORE_ERRORS:
        from sol._loader import core

        return getattr(core(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
