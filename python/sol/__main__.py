"""`python -m sol`: what this SOL installation is and where it keeps things."""

from __future__ import annotations

import sys

import sol


def main() -> int:
    print(f"SOL {sol.__version__}")
    try:
        from sol._loader import core

        info = dict(core().info())
    except ImportError as error:
        print(f"  core: not available ({error})")
        return 1
    width = max((len(key) for key in info), default=0)
    # Print every key the core reports: new keys show up without a change here.
    for key, value in info.items():
        print(f"  {key:<{width}} : {value}")
    try:
        import torch

        print(f"  {'torch':<{width}} : {torch.__version__}")
    except ImportError:
        print(f"  {'torch':<{width}} : not installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
