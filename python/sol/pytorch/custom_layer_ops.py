"""`sol.nn.CustomLayer` -> the core's `custom` op.

The node carries every device's kernels as attributes ("x86.library",
"x86.forward", "x86.backward"): the frontend knows no devices, and each
device's backend picks its own entry when the model is compiled (a missing
library or symbol fails there, naming both).
"""

from __future__ import annotations

import torch

from sol.errors import UnsupportedError
from sol.nn.custom_layer import CustomLayer
from sol.pytorch.frontend import GraphBuilder, TensorValue, torch_dtype


def custom_layer(b: GraphBuilder, module: CustomLayer, *args, **kwargs) -> TensorValue:
    name = type(module).__name__
    if kwargs or not args or not all(isinstance(arg, TensorValue) for arg in args):
        raise UnsupportedError(f"custom layer {name} must be called with tensors only (positional)")
    for arg in args:
        if b.dtype(arg) != "float32":
            raise UnsupportedError(f"custom layer {name} takes float32 tensors, got {b.dtype(arg)}")
    examples = [torch.empty(b.shape(arg), dtype=torch_dtype(b.dtype(arg)), device="meta") for arg in args]
    shape = [int(extent) for extent in module.output_shape(*examples)]
    parameters = [b.parameter(f"{b.path}.{key}" if b.path else key, tensor)
                  for key, tensor in module.named_parameters()]
    attributes = {"input_count": len(args), "shape": shape, "name": b.path or name}
    for device, (library, forward, backward) in module.sol_kernels.items():
        attributes[f"{device}.library"] = library
        attributes[f"{device}.forward"] = forward
        attributes[f"{device}.backward"] = backward
    return b.op("custom", list(args) + parameters, **attributes)
