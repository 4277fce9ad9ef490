"""What `sol.deploy` can write (`target=`): framework-independent, like `sol.device`.

    sol.deploy(model, [1, 3, 224, 224], target=sol.deployment.SharedLib, device=sol.device.x86,
               lib_name="MyNetwork", func_name="predict", path="out/")

`SharedLib` writes `libNAME.so` and `NAME.h`: the network's kernels, SOL's runtime
and the weights in one library with a C API, needing neither Python nor a framework.
"""

from __future__ import annotations

import enum

__all__ = ["Target", "SharedLib"]


class Target(enum.Enum):
    """A kind of artifact `sol.deploy` writes."""

    SharedLib = "shared_lib"  # libNAME.so + NAME.h


SharedLib = Target.SharedLib
