"""Indexing and splitting: `x[:, a:b]`, `x[:, 0]`, `x[..., None]`, narrow,
select, chunk, split, tensor_split, unbind.

All of them lower to the core's `slice` (one axis, 0 <= start <= end <=
extent, step >= 1) plus a `reshape` where an integer index drops an axis or
None adds one. Splitting ops return tuples of tensors; `operator.getitem` on
that tuple then picks the pieces in Python. Indices are plain Python ints here
(shapes are concrete), so all bounds are resolved before the core sees them.
Registered into the tables of `op_mapping` (which imports this module).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch

from sol.pytorch.frontend import GraphBuilder, TensorValue
from sol.pytorch.op_mapping import _axis, _int, _reject, _tensor, functions, methods

# ---------------------------------------------------------------- core helpers


def slice_axis(b: GraphBuilder, x: TensorValue, axis: int, start: int, end: int, step: int = 1) -> TensorValue:
    """`x[..., start:end:step, ...]` on `axis` with bounds already inside the
    extent; the whole axis returns `x` itself (no op)."""
    extent = b.shape(x)[axis]
    if (start, end, step) == (0, extent, 1):
        return x
    if start >= end:
        # torch allows empty tensors; SOL's runtime hands out no memory for them.
        _reject(f"the slice [{start}:{end}] of axis {axis} (size {extent}) is empty; SOL does not compute empty tensors")
    return b.op("slice", [x], axis=axis, start=start, end=end, step=step)


class EmptyPiece:
    """An empty piece from split/tensor_split (torch allows them). Unused ones are
    harmless; picking one out of the tuple fails, naming it."""

    def __init__(self, axis: int, start: int) -> None:
        self.axis, self.start = axis, start

    def __repr__(self) -> str:
        return f"<the empty piece at {self.start} of axis {self.axis}: SOL does not compute empty tensors>"


def _piece(b: GraphBuilder, x: TensorValue, axis: int, start: int, end: int) -> TensorValue | EmptyPiece:
    return EmptyPiece(axis, start) if start >= end else slice_axis(b, x, axis, start, end)


def _python_slice(item: slice, extent: int) -> tuple[int, int, int]:
    """A Python slice's bounds clipped like torch does (empty when stop < start)."""
    start, stop, step = (None if v is None else _int(v, "slice bound") for v in (item.start, item.stop, item.step))
    if step is not None and step <= 0:
        _reject(f"slice step {step} (torch requires a positive step)")
    start, stop, step = slice(start, stop, step).indices(extent)
    return start, max(start, stop), step


def _index(index: Any, extent: int, what: str = "index") -> int:
    index = _int(index, what)
    if not -extent <= index < extent:
        _reject(f"{what} {index} is out of range for a dimension of size {extent}")
    return index % extent


def _reshape_if_needed(b: GraphBuilder, x: TensorValue, shape: list[int]) -> TensorValue:
    return x if b.shape(x) == shape else b.op("reshape", [x], shape=shape)


def _pieces(b: GraphBuilder, x: TensorValue, axis: int, sizes: list[int]) -> tuple[Any, ...]:
    """Consecutive slices of `axis` with the given sizes (summing to its extent)."""
    extent = b.shape(x)[axis]
    if sum(sizes) != extent or any(size < 0 for size in sizes):
        _reject(f"split sizes {sizes} do not add up to the dimension's size {extent}")
    pieces, start = [], 0
    for size in sizes:
        pieces.append(_piece(b, x, axis, start, start + size))
        start += size
    return tuple(pieces)


def _drop_axis(b: GraphBuilder, x: TensorValue, axis: int) -> TensorValue:
    shape = b.shape(x)
    return _reshape_if_needed(b, x, shape[:axis] + shape[axis + 1 :])


# ---------------------------------------------------------------- x[...]


def tensor_getitem(b: GraphBuilder, x: TensorValue, index: Any) -> TensorValue:
    """Basic indexing: ints, slices, None and Ellipsis (no tensor or bool indices)."""
    items = list(index) if isinstance(index, tuple) else [index]
    for item in items:
        if isinstance(item, bool) or not (isinstance(item, (int, slice)) or item is None or item is Ellipsis):
            kind = "a tensor" if isinstance(item, TensorValue) else f"{type(item).__name__} {item!r}"
            _reject(f"indexing with {kind} (SOL maps ints, slices, None and ...)")
    if items.count(Ellipsis) > 1:
        _reject("an index can only have one ellipsis")
    shape = b.shape(x)
    consumed = sum(1 for item in items if item is not None and item is not Ellipsis)
    if consumed > len(shape):
        _reject(f"{consumed} indices for a rank-{len(shape)} tensor")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items[at : at + 1] = [slice(None)] * (len(shape) - consumed)

    result_shape: list[int] = []  # the shape after dropping/adding axes
    axis = 0
    for item in items:
        if item is None:
            result_shape.append(1)
        elif isinstance(item, slice):
            start, end, step = _python_slice(item, shape[axis])
            x = slice_axis(b, x, axis, start, end, step)
            result_shape.append(b.shape(x)[axis])
            axis += 1
        else:  # an int: keep a size-1 slice, drop the axis in the final reshape
            start = _index(item, shape[axis])
            x = slice_axis(b, x, axis, start, start + 1)
            axis += 1
    result_shape += b.shape(x)[axis:]  # axes not mentioned are kept whole
    return _reshape_if_needed(b, x, result_shape)


@functions(operator.getitem)
def getitem(b, container, index):
    if isinstance(container, TensorValue):
        return tensor_getitem(b, container, index)
    # Python containers holding tensors (a tuple from chunk or a submodule).
    item = container[index]
    if isinstance(item, EmptyPiece):
        _reject(f"picks {item!r}")
    return item


# ---------------------------------------------------------------- narrow, select


@functions(torch.narrow)
@methods("narrow")
def narrow(b, input, dim, start, length):
    x = _tensor(input)
    shape = b.shape(x)
    axis = _axis(dim, len(shape))
    start, length, extent = _int(start, "start"), _int(length, "length"), shape[axis]
    start = start + extent if start < 0 else start  # torch counts a negative start from the end
    if start < 0 or length < 0 or start + length > extent:
        _reject(f"narrow({dim}, {start}, {length}) does not fit a dimension of size {extent}")
    return slice_axis(b, x, axis, start, start + length)


@functions(torch.select)
@methods("select")
def select(b, input, dim, index):
    x = _tensor(input)
    shape = b.shape(x)
    axis = _axis(dim, len(shape))
    start = _index(index, shape[axis])
    return _drop_axis(b, slice_axis(b, x, axis, start, start + 1), axis)


# ---------------------------------------------------------------- chunk, split, unbind


@functions(torch.chunk)
@methods("chunk")
def chunk(b, input, chunks, dim=0):
    x = _tensor(input)
    shape = b.shape(x)
    axis, chunks = _axis(dim, len(shape)), _int(chunks, "chunks")
    if chunks < 1:
        _reject(f"chunks={chunks} (must be at least 1)")
    # torch: pieces of ceil(extent / chunks), the last one smaller; possibly fewer pieces.
    return _split_by_size(b, x, axis, math.ceil(shape[axis] / chunks))


def _split_by_size(b: GraphBuilder, x: TensorValue, axis: int, size: int) -> tuple[Any, ...]:
    extent = b.shape(x)[axis]
    if size < 1 or extent < 1:
        _reject(f"split of a size-{extent} axis into pieces of {size} (SOL needs both positive)")
    full, rest = divmod(extent, size)
    return _pieces(b, x, axis, [size] * full + ([rest] if rest else []))


def _split(b: GraphBuilder, input: Any, split_size_or_sections: Any, dim: Any) -> tuple[Any, ...]:
    x = _tensor(input)
    axis = _axis(dim, len(b.shape(x)))
    if isinstance(split_size_or_sections, (list, tuple)):
        return _pieces(b, x, axis, [_int(size, "split size") for size in split_size_or_sections])
    return _split_by_size(b, x, axis, _int(split_size_or_sections, "split_size"))


@functions(torch.split)
def split(b, tensor, split_size_or_sections, dim=0):
    return _split(b, tensor, split_size_or_sections, dim)


@methods("split")
def split_method(b, input, split_size, dim=0):
    return _split(b, input, split_size, dim)


@methods("split_with_sizes")
@functions(*[f for f in (getattr(torch, "split_with_sizes", None),) if f is not None])
def split_with_sizes(b, input, split_sizes, dim=0):
    return _split(b, input, list(split_sizes), dim)


@functions(torch.tensor_split)
@methods("tensor_split")
def tensor_split(b, input, indices_or_sections, dim=0):
    x = _tensor(input)
    axis = _axis(dim, len(b.shape(x)))
    extent = b.shape(x)[axis]
    if isinstance(indices_or_sections, (list, tuple)):
        # Split points are Python slice bounds: negative ones count from the end.
        points = [slice(_int(i, "index")).indices(extent)[1] for i in indices_or_sections]
        bounds = list(zip([0] + points, points + [extent]))
        return tuple(_piece(b, x, axis, start, end) for start, end in bounds)
    sections = _int(indices_or_sections, "sections")
    if sections < 1:
        _reject(f"sections={sections} (must be at least 1)")
    # The first extent % sections pieces get one more element.
    base, extra = divmod(extent, sections)
    return _pieces(b, x, axis, [base + 1] * extra + [base] * (sections - extra))


@functions(torch.unbind)
@methods("unbind")
def unbind(b, input, dim=0):
    x = _tensor(input)
    axis = _axis(dim, len(b.shape(x)))
    return tuple(_drop_axis(b, piece, axis) for piece in _pieces(b, x, axis, [1] * b.shape(x)[axis]))
