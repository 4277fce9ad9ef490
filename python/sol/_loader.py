"""Lazy access to the C++ core `sol._core`.

The pure-Python layers (device registry, frontend tables, error classes) must
import without the extension so that `import sol` works in a source checkout
and the frontend can be tested before the core is built. Everything that needs
the core goes through `core()`, which fails with one actionable message.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_core: ModuleType | None = None


def core() -> ModuleType:
    """Return the `sol._core` extension module, importing it on first use."""
    global _core
    if _core is None:
        try:
            _core = importlib.import_module("sol._core")
        except ImportError as error:
            raise ImportError(
                "SOL's C++ extension `sol._core` is not available "
                f"({error}); build it with `pip install -e .` in the SOL checkout"
            ) from error
    return _core


def available() -> bool:
    """True when the extension can be imported (used by diagnostics, not by hot paths)."""
    try:
        core()
    except ImportError:
        return False
    return True
