"""Shape queries and data movement: size/shape/dim, reshape family, permute
family, concat, indexing of Python sequences, no-op views.

Shape queries return Python values computed from the core's inferred shapes,
so `x.view(x.size(0), -1)` becomes one reshape with concrete sizes. Registered
into the tables of `op_mapping` (which imports this module).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from sol.pytorch.frontend import GraphBuilder, TensorValue, torch_dtype
from sol.pytorch.op_mapping import _axis, _int, _reject, _tensor, functions, methods, modules

# ---------------------------------------------------------------- shape queries


@methods("size")
def size(b, input, dim=None):
    shape = b.shape(_tensor(input))
    return torch.Size(shape) if dim is None else shape[_axis(dim, len(shape))]


@methods("dim", "ndimension")
def dim(b, input):
    return len(b.shape(_tensor(input)))


@functions(torch.numel)
@methods("numel", "nelement")
def numel(b, input):
    return math.prod(b.shape(_tensor(input)))


@functions(getattr)
def tensor_attribute(b, obj, name, *default):
    # Only reached when a tensor is involved; getattr on Python values runs in Python.
    x = _tensor(obj)
    shape = b.shape(x)
    if name == "shape":
        return torch.Size(shape)
    if name == "ndim":
        return len(shape)
    if name == "dtype":
        return torch_dtype(b.dtype(x))
    if name == "T":
        return _permute(b, x, list(reversed(range(len(shape)))))
    if name == "mT" and len(shape) >= 2:
        return transpose(b, x, -2, -1)
    _reject(f"tensor attribute .{name}")


@functions(*[f for f in (getattr(torch, "_assert", None),) if f is not None])
def assert_(b, condition, message):
    # Shape checks such as `torch._assert(h == self.image_size, ...)` hold Python
    # bools here (shapes are concrete); a tensor-valued condition is data dependent.
    if isinstance(condition, TensorValue):
        _reject("a tensor-valued assertion")
    if not condition:
        raise AssertionError(message)
    return None


# ---------------------------------------------------------------- no-op views

# SOL tensors are logical values without strides or autograd history, so these
# return their input unchanged.


@functions(*[f for f in (getattr(torch, "clone", None), getattr(torch, "detach", None)) if f is not None])
@methods("contiguous", "clone", "detach")
def same_value(b, input, *, memory_format=None):
    return _tensor(input)


@methods("float")
def to_float(b, input, memory_format=None):
    x = _tensor(input)
    if b.dtype(x) != "float32":
        _reject(f"conversion from {b.dtype(x)} to float32")
    return x


# ---------------------------------------------------------------- reshape family


def _shape_argument(shape: tuple[Any, ...]) -> list[int]:
    """`view(2, -1)`, `view((2, -1))` and `view(torch.Size(...))` all mean the same."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if len(shape) == 1 and isinstance(shape[0], torch.dtype):
        _reject("view(dtype) reinterprets memory")
    return [_int(size, "shape") for size in shape]


def _reshape(b: GraphBuilder, x: TensorValue, shape: list[int]) -> TensorValue:
    # At most one -1; the core resolves it and checks the element count.
    if shape.count(-1) > 1:
        _reject(f"shape {shape} has more than one -1")
    return b.op("reshape", [x], shape=shape)


@methods("view", "reshape")
def view(b, input, *shape):
    return _reshape(b, _tensor(input), _shape_argument(shape))


@functions(torch.reshape)
def reshape(b, input, shape):
    return _reshape(b, _tensor(input), _shape_argument((shape,)))


@methods("view_as", "reshape_as")
def view_as(b, input, other):
    return _reshape(b, _tensor(input), b.shape(_tensor(other, "other")))


@functions(torch.flatten)
@methods("flatten")
def flatten(b, input, start_dim=0, end_dim=-1):
    x = _tensor(input)
    shape = b.shape(x)
    if not shape:
        return _reshape(b, x, [1])
    start, end = _axis(start_dim, len(shape)), _axis(end_dim, len(shape))
    if start > end:
        _reject(f"start_dim={start_dim} comes after end_dim={end_dim}")
    merged = math.prod(shape[start : end + 1])
    return _reshape(b, x, shape[:start] + [merged] + shape[end + 1 :])


@modules(nn.Flatten)
def flatten_module(b, module, input):
    return flatten(b, input, module.start_dim, module.end_dim)


@functions(torch.unsqueeze)
@methods("unsqueeze", "unsqueeze_")
def unsqueeze(b, input, dim):
    x = _tensor(input)
    shape = b.shape(x)
    at = _axis(dim, len(shape) + 1)  # a new axis may go after the last one
    return _reshape(b, x, shape[:at] + [1] + shape[at:])


@functions(torch.squeeze)
@methods("squeeze", "squeeze_")
def squeeze(b, input, dim=None):
    x = _tensor(input)
    shape = b.shape(x)
    if dim is None:
        axes = set(range(len(shape)))
    else:
        axes = {_axis(d, len(shape)) for d in (dim if isinstance(dim, (tuple, list)) else [dim])}
    # torch leaves named axes whose size is not 1 alone.
    kept = [size for axis, size in enumerate(shape) if not (axis in axes and size == 1)]
    return x if kept == shape else _reshape(b, x, kept)


# ---------------------------------------------------------------- permute family


def _permute(b: GraphBuilder, x: TensorValue, dims: list[int]) -> TensorValue:
    rank = len(b.shape(x))
    axes = [_axis(d, rank) for d in dims]
    if sorted(axes) != list(range(rank)):
        _reject(f"dims {dims} are not a permutation of a rank-{rank} tensor's axes")
    return b.op("permute", [x], dims=axes)


@methods("permute")
def permute_method(b, input, *dims):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    return _permute(b, _tensor(input), list(dims))


@functions(torch.permute)
def permute(b, input, dims):
    return _permute(b, _tensor(input), list(dims))


@functions(*[getattr(torch, n) for n in ("transpose", "swapaxes", "swapdims") if hasattr(torch, n)])
@methods("transpose", "swapaxes", "swapdims")
def transpose(b, input, dim0, dim1):
    x = _tensor(input)
    rank = len(b.shape(x))
    dims = list(range(rank))
    a, c = _axis(dim0, rank), _axis(dim1, rank)
    dims[a], dims[c] = dims[c], dims[a]
    return _permute(b, x, dims)


@functions(torch.t)
@methods("t")
def t(b, input):
    x = _tensor(input)
    rank = len(b.shape(x))
    if rank > 2:
        _reject(f"t() of a rank-{rank} tensor")
    return x if rank < 2 else _permute(b, x, [1, 0])


# ---------------------------------------------------------------- concat


def _concat(b: GraphBuilder, tensors: Any, dim: Any) -> TensorValue:
    if not isinstance(tensors, (tuple, list)) or not tensors:
        _reject("expects a non-empty sequence of tensors")
    inputs = [_tensor(item, "every concatenated value") for item in tensors]
    return b.op("concat", inputs, axis=_axis(dim, len(b.shape(inputs[0]))))


@functions(*[getattr(torch, n) for n in ("cat", "concat") if hasattr(torch, n)])
def cat(b, tensors, dim=0):
    return _concat(b, tensors, dim)


@functions(*[getattr(torch, n) for n in ("concatenate",) if hasattr(torch, n)])
def concatenate(b, tensors, axis=0):
    return _concat(b, tensors, axis)


@functions(torch.stack)
def stack(b, tensors, dim=0):
    if not isinstance(tensors, (tuple, list)) or not tensors:
        _reject("expects a non-empty sequence of tensors")
    inputs = [_tensor(item, "every stacked value") for item in tensors]
    at = _axis(dim, len(b.shape(inputs[0])) + 1)
    return _concat(b, [unsqueeze(b, item, at) for item in inputs], at)
