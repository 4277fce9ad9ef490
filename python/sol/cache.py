"""SOL's on-disk cache of compiled artifacts (generated sources and shared libraries)."""

from __future__ import annotations

from sol._loader import core

__all__ = ["clear", "dir"]


def clear() -> int:
    """Remove every cached artifact; returns how many files were removed."""
    return int(core().clear_cache())


def dir() -> str:  # noqa: A001 - the product API name
    """The folder that holds the cache (SOL_CACHE_DIR or the core's default)."""
    return str(core().cache_dir())
