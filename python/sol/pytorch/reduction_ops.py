"""Reductions over axes: mean and sum (Tensor methods and torch functions).

`dim` may be an int, a list or tuple of ints, or None (all axes; an empty
list means all axes too, as in torch). They map to the core's `mean` / `sum`
with attributes `axes` and `keepdim`. Registered into the tables of
`op_mapping` (which imports this module).
"""

from __future__ import annotations

from typing import Any

import torch

from sol.pytorch.frontend import GraphBuilder, TensorValue
from sol.pytorch.op_mapping import _axis, _reject, _same_dtype, _tensor, functions, methods


def _axes(rank: int, dim: Any) -> list[int]:
    dims = list(dim) if isinstance(dim, (list, tuple)) else [] if dim is None else [dim]
    if not dims:
        return list(range(rank))
    axes = [_axis(d, rank) for d in dims]
    if len(set(axes)) != len(axes):
        _reject(f"dim={dim!r} names an axis twice")
    return axes


def _reduce(b: GraphBuilder, op: str, input: Any, dim: Any, keepdim: Any, dtype: Any) -> TensorValue:
    x = _tensor(input)
    _same_dtype(b, x, dtype)
    if not isinstance(keepdim, bool):
        _reject(f"keepdim={keepdim!r} (a bool is required)")
    return b.op(op, [x], axes=_axes(len(b.shape(x)), dim), keepdim=keepdim)


@functions(torch.mean)
@methods("mean")
def mean(b, input, dim=None, keepdim=False, *, dtype=None):
    return _reduce(b, "mean", input, dim, keepdim, dtype)


@functions(torch.sum)
@methods("sum")
def sum_(b, input, dim=None, keepdim=False, dtype=None):
    return _reduce(b, "sum", input, dim, keepdim, dtype)
