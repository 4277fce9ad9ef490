"""torch.fx graph -> `sol._core.Graph`.

The frontend knows PyTorch and nothing about devices. It traces a model with
torch.fx once; `build_graph` then walks the fx graph for one set of concrete
input shapes and calls into the core, which infers every tensor's shape as ops
are added. Per-op translation lives in `op_mapping` (tables keyed by fx
target); this file holds the walk, the value environment, parameter naming and
the error context (module path and the user's source line).

Values in the environment are either `TensorValue` (a tensor id in the core
graph) or plain Python values (ints from `x.size(1)`, tuples, floats): shape
arithmetic in a model is evaluated here, on concrete shapes, and never reaches
the core.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.fx as fx
from torch.fx.immutable_collections import immutable_dict, immutable_list
from torch.utils import _pytree as pytree

from sol._loader import core
from sol.errors import UnsupportedError
from sol.nn.custom_layer import CustomLayer

__all__ = [
    "TensorValue",
    "SolTracer",
    "trace",
    "build_graph",
    "flatten_outputs",
    "behaves_per_mode",
    "source_location",
    "module_path",
    "dtype_name",
    "torch_dtype",
]

# ---------------------------------------------------------------- dtypes

_DTYPE_NAMES: dict[torch.dtype, str] = {
    torch.float32: "float32",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.float64: "float64",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.int16: "int16",
    torch.int8: "int8",
    torch.uint8: "uint8",
    torch.bool: "bool",
}
_TORCH_DTYPES: dict[str, torch.dtype] = {name: dtype for dtype, name in _DTYPE_NAMES.items()}


def dtype_name(dtype: torch.dtype | str) -> str:
    """The core's name for a dtype ("float32"); strings pass through after a check."""
    if isinstance(dtype, str):
        if dtype not in _TORCH_DTYPES:
            raise UnsupportedError(f"dtype {dtype!r} is not known to SOL")
        return dtype
    try:
        return _DTYPE_NAMES[dtype]
    except KeyError:
        raise UnsupportedError(f"dtype {dtype} is not supported by SOL") from None


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype for a core dtype name."""
    try:
        return _TORCH_DTYPES[name]
    except KeyError:
        raise UnsupportedError(f"the core produced dtype {name!r}, unknown to sol.pytorch") from None


# ---------------------------------------------------------------- tracing


class SolTracer(fx.Tracer):
    """fx tracer that records the user's stack for every node (for error messages
    and for `origin` comments in generated code). torch.nn modules stay leaves
    (the default), so they arrive as `call_module` with their state_dict path."""

    # fx's own `record_stack_traces` symbolizes C++ frames as well, which costs
    # about a second per process; the Python frames are all SOL reads.
    record_stack_traces = False

    def is_leaf_module(self, m: torch.nn.Module, module_qualified_name: str) -> bool:
        # A custom layer is one op (the user's kernel), not the ops of its Python forward.
        return isinstance(m, CustomLayer) or super().is_leaf_module(m, module_qualified_name)

    def create_proxy(self, *args: Any, **kwargs: Any) -> fx.Proxy:
        proxy = super().create_proxy(*args, **kwargs)
        frames = [frame for frame in traceback.extract_stack() if frame.filename != __file__]  # not this tracer
        # From the outermost `forward` on, like fx: what called optimize() is noise.
        first = next((i for i, frame in enumerate(frames) if frame.name == "forward"), len(frames))
        proxy.node.stack_trace = "".join(traceback.format_list(frames[first:]))
        return proxy


def trace(model: torch.nn.Module) -> fx.GraphModule:
    """Symbolically trace `model`. The GraphModule shares the model's leaf modules
    and parameters (it does not copy them) and is named after the model's class."""
    tracer = SolTracer()
    try:
        graph = tracer.trace(model)
    except Exception as error:  # fx raises many types (TraceError, TypeError, ...)
        raise UnsupportedError(
            f"torch.fx could not trace {type(model).__name__}: {type(error).__name__}: {error}\n"
            "(SOL traces models with torch.fx symbolic tracing: forward must not branch on "
            "tensor values, and every module it calls must be an attribute of the model)"
        ) from error
    return fx.GraphModule(tracer.root, graph, class_name=type(model).__name__)


# ---------------------------------------------------------------- source locations


@dataclass(frozen=True)
class SourceLocation:
    file: str
    line: int
    code: str = ""

    def short(self) -> str:
        return f"{os.path.basename(self.file)}:{self.line}"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


# A formatted traceback frame: `File "x.py", line 12, in forward` and, unless the
# source is unavailable, the code on the next line.
_FRAME = re.compile(
    r'File "(?P<file>[^"]+)", line (?P<line>\d+), in [^\n]*'
    r'(?:\n(?![ \t]*File ")[ \t]*(?P<code>[^\n]*))?'
)
_TORCH_DIRS = tuple(
    {os.path.dirname(torch.__file__) + os.sep, os.path.realpath(os.path.dirname(torch.__file__)) + os.sep}
)
_FX_DIRS = tuple(os.path.join(root, "fx") + os.sep for root in _TORCH_DIRS)


def source_location(stack_trace: str | None) -> SourceLocation | None:
    """The innermost frame of `stack_trace` that is not inside torch itself.

    fx's recorded trace ends in torch's own frames (torch/fx/proxy.py,
    torch/nn/functional.py, ...); the user's line is the last frame before them.
    Model-zoo code such as torchvision counts as the user's code."""
    if not stack_trace:
        return None
    frames = [
        SourceLocation(m["file"], int(m["line"]), (m["code"] or "").strip())
        for m in _FRAME.finditer(stack_trace)
    ]
    user_frames = [f for f in frames if not f.file.startswith(_TORCH_DIRS)]
    # A model with no forward of its own (a bare nn.Sequential) has no user
    # frame: then name torch's module code (Sequential.forward), never the
    # tracer's own machinery in torch/fx.
    module_frames = [f for f in frames if not f.file.startswith(_FX_DIRS)]
    chosen = user_frames or module_frames
    return chosen[-1] if chosen else None


def module_path(node: fx.Node) -> str:
    """The state_dict-style path of the module the node belongs to ("" for the root)."""
    if node.op == "call_module":
        return str(node.target)
    if node.op == "get_attr":
        return str(node.target).rpartition(".")[0]
    stack = node.meta.get("nn_module_stack")
    if stack:
        # Values are (qualified path, module type); keys may carry "@n" call counters.
        return str(list(stack.values())[-1][0])
    return ""


def _module_type_name(node: fx.Node, root: torch.nn.Module) -> str:
    if node.op == "call_module":
        return type(root.get_submodule(str(node.target))).__name__
    stack = node.meta.get("nn_module_stack")
    if stack:
        module_type = list(stack.values())[-1][1]
        return getattr(module_type, "__name__", str(module_type))
    return type(root).__name__


def op_display_name(node: fx.Node, root: torch.nn.Module) -> str:
    """How users write the op: `torch.nn.functional.embedding`, `torch.Tensor.unfold`,
    `operator.floordiv`, or a module class such as `torch.nn.LSTM`."""
    if node.op == "call_module":
        cls = type(root.get_submodule(str(node.target)))
        if getattr(torch.nn, cls.__name__, None) is cls:
            return f"torch.nn.{cls.__name__}"
        return f"{cls.__module__}.{cls.__qualname__}"
    if node.op == "call_method":
        return f"torch.Tensor.{node.target}"
    target = node.target
    name = getattr(target, "__name__", str(target))
    # Builtins such as F.linear report torch._C._nn; prefer the public spelling.
    for public, namespace in (("torch.nn.functional", torch.nn.functional), ("torch", torch)):
        if getattr(namespace, name, None) is target:
            return f"{public}.{name}"
    module = getattr(target, "__module__", None) or ""
    if module in ("_operator", "operator"):
        return f"operator.{name}"
    return f"{module}.{name}" if module else name


# ---------------------------------------------------------------- graph building


@dataclass(frozen=True, slots=True)
class TensorValue:
    """A tensor of the core graph. Wrapped so that ids never mix with Python ints
    from shape arithmetic."""

    id: int


# The graph input through which each call passes its random seed (training-mode dropout).
SEED_INPUT = "sol:seed"


class GraphBuilder:
    """The state of one `build_graph` walk, handed to every op handler.

    Handlers use `op`, `constant`, `parameter`, `module_parameter`, `shape`,
    `dtype`; `origin` is the current node's "module.path (file.py:line)"."""

    def __init__(self, root: torch.nn.Module, training: bool = False) -> None:
        self.graph = core().Graph()
        self.root = root
        # The mode the graph is built for: the model was traced in it (see module.optimize).
        self.training = training
        self.node: fx.Node | None = None
        self.path = ""  # module path of the current node
        self.origin = ""
        self.parameter_names: list[str] = []
        self._parameters: dict[str, TensorValue] = {}
        self._parameter_ids: set[int] = set()
        self._constants: dict[tuple[float, str], TensorValue] = {}
        self.leaf_ids: set[int] = set()  # inputs, parameters, constants: not op results
        # Training-mode state the graph computes (BatchNorm's running statistics): the buffer
        # name and its new value, which becomes an extra graph output; and the counters
        # (num_batches_tracked) each call adds one to.
        self.state_updates: list[tuple[str, TensorValue]] = []
        self.counters: list[str] = []
        self._seed: TensorValue | None = None

    # -- context
    def begin(self, node: fx.Node) -> None:
        self.node = node
        self.path = module_path(node)
        location = source_location(node.stack_trace)
        where = self.path or type(self.root).__name__
        self.origin = f"{where} ({location.short()})" if location else where

    # -- graph construction
    def op(self, name: str, inputs: Sequence[TensorValue], /, **attrs: Any) -> TensorValue:
        # The binding's Attr type has no bool; flags travel as 0/1.
        clean = {key: int(value) if isinstance(value, bool) else value for key, value in attrs.items()}
        return TensorValue(self.graph.add_op(name, [value.id for value in inputs], clean, self.origin))

    def input(self, name: str, shape: Sequence[int], dtype: str) -> TensorValue:
        value = TensorValue(self.graph.add_input(name, list(shape), dtype))
        self.leaf_ids.add(value.id)
        return value

    def constant(self, value: float, like: TensorValue) -> TensorValue:
        """A rank-0 constant with the dtype of `like` (the tensor it combines with)."""
        key = (float(value), self.dtype(like))
        if key not in self._constants:
            constant = TensorValue(self.graph.add_constant(*key))
            self.leaf_ids.add(constant.id)
            self._constants[key] = constant
        return self._constants[key]

    def parameter(self, name: str, tensor: torch.Tensor) -> TensorValue:
        """A parameter/buffer by its state_dict name; each name enters the graph once."""
        if name not in self._parameters:
            value = TensorValue(self.graph.add_parameter(name, list(tensor.shape), dtype_name(tensor.dtype)))
            self.leaf_ids.add(value.id)
            self._parameter_ids.add(value.id)
            self._parameters[name] = value
            self.parameter_names.append(name)
        return self._parameters[name]

    def module_parameter(self, module: torch.nn.Module, attribute: str) -> TensorValue | None:
        """`module.<attribute>` of the module being translated, or None if unset."""
        tensor = getattr(module, attribute)
        if tensor is None:
            return None
        return self.parameter(f"{self.path}.{attribute}" if self.path else attribute, tensor)

    def update_state(self, name: str, value: TensorValue) -> None:
        """After each call, buffer `name` (a state_dict name) takes `value`."""
        self.state_updates.append((name, value))

    def seed(self) -> TensorValue:
        """The graph's per-call random seed (an int64 scalar input named SEED_INPUT), made on first use."""
        if self._seed is None:
            self._seed = self.input(SEED_INPUT, [], "int64")
        return self._seed

    def count_call(self, name: str) -> None:
        """After each call, integer buffer `name` grows by one."""
        self.counters.append(name)

    def is_parameter(self, value: TensorValue) -> bool:
        return value.id in self._parameter_ids

    # -- queries
    def shape(self, value: TensorValue) -> list[int]:
        return list(self.graph.shape(value.id))

    def dtype(self, value: TensorValue) -> str:
        return str(self.graph.dtype(value.id))


def _contains_tensor(value: Any) -> bool:
    found = False

    def visit(leaf: Any) -> Any:
        nonlocal found
        found = found or isinstance(leaf, TensorValue)
        return leaf

    fx.node.map_aggregate(value, visit)
    return found


def _plain(value: Any) -> Any:
    """fx stores list/dict arguments as immutable_list/immutable_dict; handlers and
    the user get ordinary containers."""
    if isinstance(value, immutable_list):
        return [_plain(item) for item in value]
    if isinstance(value, immutable_dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple) and not hasattr(value, "_fields") and not isinstance(value, torch.Size):
        return tuple(_plain(item) for item in value)
    return value


# Targets that may run in Python when none of their arguments is a tensor:
# shape arithmetic (`x.size(2) * x.size(3)`, `h // 2`, `math.sqrt(d)`).
_PYTHON_MODULES = {"_operator", "operator", "math", "builtins"}


def _is_python_builtin(target: Any) -> bool:
    return getattr(target, "__module__", None) in _PYTHON_MODULES


@functools.lru_cache(maxsize=None)
def _signature(handler: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(handler)


def _call_handler(handler: Callable[..., Any], leading: tuple[Any, ...], args: tuple, kwargs: dict) -> tuple[Any, bool]:
    """Bind like Python would (so handlers declare torch's parameter names and
    defaults) and call; returns (result, inplace requested by an `inplace` arg)."""
    try:
        bound = _signature(handler).bind(*leading, *args, **kwargs)
    except TypeError as error:
        raise UnsupportedError(f"unsupported arguments ({error})") from None
    inplace = bound.arguments.get("inplace") is True
    return handler(*bound.args, **bound.kwargs), inplace


def _qualified_name(target: Any) -> str:
    return f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', '')}"


def _translate(builder: GraphBuilder, node: fx.Node, env: dict[fx.Node, Any]) -> Any:
    """Translate one call node; returns its value and rebinds in-place targets."""
    from sol.pytorch import op_mapping

    args = _plain(fx.node.map_arg(node.args, env.__getitem__))
    kwargs = _plain(fx.node.map_arg(node.kwargs, env.__getitem__))
    inplace = False
    if node.op == "call_module":
        module = builder.root.get_submodule(str(node.target))
        handler = op_mapping.MODULES.get(type(module))
        if handler is None and isinstance(module, CustomLayer):
            from sol.pytorch.custom_layer_ops import custom_layer as handler
        if handler is None:
            raise UnsupportedError("no SOL mapping for this module")
        result, _ = _call_handler(handler, (builder, module), args, kwargs)
        inplace = getattr(module, "inplace", False) is True
    elif node.op == "call_function":
        if _is_python_builtin(node.target) and not _contains_tensor((args, kwargs)):
            return node.target(*args, **kwargs)
        handler = op_mapping.FUNCTIONS.get(node.target) or op_mapping.FUNCTIONS_BY_NAME.get(_qualified_name(node.target))
        if handler is None:
            raise UnsupportedError("no SOL mapping for this function")
        result, inplace = _call_handler(handler, (builder,), args, kwargs)
        inplace = inplace or node.target in op_mapping.INPLACE_FUNCTIONS
    else:  # call_method
        name = str(node.target)
        if args and not isinstance(args[0], TensorValue):
            # A method of a Python value, e.g. `x.size().numel()`.
            return getattr(args[0], name)(*args[1:], **kwargs)
        handler = op_mapping.METHODS.get(name)
        if handler is None:
            raise UnsupportedError("no SOL mapping for this Tensor method")
        result, inplace = _call_handler(handler, (builder,), args, kwargs)
        inplace = inplace or (name.endswith("_") and not name.startswith("__"))
    if inplace:
        _rebind_inplace(builder, node, env, result)
    return result


def _rebind_inplace(builder: GraphBuilder, node: fx.Node, env: dict[fx.Node, Any], result: Any) -> None:
    """fx keeps in-place ops as ordinary nodes whose first argument is mutated.
    The core graph is pure, so later readers of that argument's fx node must see
    the new tensor: point the argument's env entry at the result.
    (Mutation seen through a view of the tensor is not tracked.)"""
    target = node.args[0] if node.args else None
    if not isinstance(target, fx.Node) or not isinstance(result, TensorValue):
        return
    if isinstance(env.get(target), TensorValue) and builder.is_parameter(env[target]):
        raise UnsupportedError("in-place update of a parameter or buffer")
    env[target] = result


def _describe(node: fx.Node, root: torch.nn.Module, reason: str) -> str:
    """The full error text: op, reason, module path and class, user's source line."""
    location = source_location(node.stack_trace)
    path = module_path(node) or "<root>"
    lines = [
        f"SOL does not support `{op_display_name(node, root)}`: {reason}",
        f"  module: {path} ({_module_type_name(node, root)})",
    ]
    if location:
        lines.append(f"  source: {location}")
        if location.code:
            lines.append(f"      {location.code}")
    return "\n".join(lines)


def _resolve_attribute(root: torch.nn.Module, target: str) -> Any:
    value: Any = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def flatten_outputs(graph_module: fx.GraphModule) -> tuple[list[Any], pytree.TreeSpec]:
    """The output node's leaves (fx nodes, in `set_outputs` order) and the structure
    to rebuild (tensor, tuple, list, dict, nested)."""
    output = next(node for node in reversed(graph_module.graph.nodes) if node.op == "output")
    return pytree.tree_flatten(_plain(output.args[0]))


@dataclass
class BuiltGraph:
    """A core graph and what the caller must know about it."""

    graph: Any  # sol._core.Graph
    parameter_names: list[str]  # state_dict keys in the order they were added ("layer1.0.conv1.weight")
    model_outputs: int  # the graph's first outputs are the model's (flattened)
    state_names: list[str]  # buffers that take the graph's further outputs, in order, after each call
    counters: list[str]  # integer buffers that grow by one per call


def build_graph(
    graph_module: fx.GraphModule,
    input_shapes: Sequence[Sequence[int]],
    input_dtypes: Sequence[torch.dtype | str],
    training: bool = False,
) -> BuiltGraph:
    """Build the core graph of `graph_module` for concrete input shapes/dtypes, with each
    module's current train/eval behaviour (BatchNorm's batch statistics in training mode, whose
    updated running statistics become extra outputs). `training`: the mode `graph_module` was
    traced in (functional dropout with training=True is random only then). Raises
    UnsupportedError (op, module path, source line) for anything without a mapping; the core
    raises ShapeError when shapes do not fit."""
    root: torch.nn.Module = graph_module
    builder = GraphBuilder(root, training)
    env: dict[fx.Node, Any] = {}
    placeholders = [node for node in graph_module.graph.nodes if node.op == "placeholder"]
    if len(input_shapes) != len(input_dtypes):
        raise ValueError(f"{len(input_shapes)} input shapes but {len(input_dtypes)} dtypes")
    required = [node for node in placeholders if not node.args]  # args holds a default, if any
    if not len(required) <= len(input_shapes) <= len(placeholders):
        raise UnsupportedError(
            f"{type(root).__name__}.forward takes {len(required)} to {len(placeholders)} inputs, "
            f"got {len(input_shapes)}"
        )

    for index, node in enumerate(placeholders):
        if index < len(input_shapes):
            shape = [int(size) for size in input_shapes[index]]
            env[node] = builder.input(str(node.target), shape, dtype_name(input_dtypes[index]))
        else:
            env[node] = node.args[0]  # the forward() default, e.g. None

    for node in graph_module.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        builder.begin(node)
        try:
            if node.op == "get_attr":
                value = _resolve_attribute(root, str(node.target))
                env[node] = builder.parameter(str(node.target), value) if isinstance(value, torch.Tensor) else value
            else:
                env[node] = _translate(builder, node, env)
        except UnsupportedError as error:
            raise UnsupportedError(_describe(node, root, str(error))) from None

    leaves, _ = flatten_outputs(graph_module)
    output_ids: list[int] = []
    for leaf in leaves:
        value = env[leaf] if isinstance(leaf, fx.Node) else leaf
        if not isinstance(value, TensorValue):
            raise UnsupportedError(
                f"{type(root).__name__}.forward returns a value of type {type(value).__name__}; SOL models return tensors only"
            )
        # An output must be a distinct op result: the runtime writes each output
        # into its own buffer, and inputs/parameters have no producing op.
        if value.id in builder.leaf_ids or value.id in output_ids:
            builder.origin = f"{type(root).__name__} (output)"
            value = builder.op("identity", [value])
        output_ids.append(value.id)
    model_outputs = len(output_ids)
    output_ids += [value.id for _, value in builder.state_updates]
    builder.graph.set_outputs(output_ids)
    return BuiltGraph(builder.graph, builder.parameter_names, model_outputs,
                      [name for name, _ in builder.state_updates], builder.counters)


def behaves_per_mode(graph_module: fx.GraphModule) -> bool:
    """Whether the trace holds nodes that behave differently in training mode: modules whose
    handlers read their `training` flag when a graph is built (BatchNorm, Dropout), and functions
    (functional dropout, F.batch_norm, stochastic depth) whose flag was fixed by the trace and may
    be a literal, the same in both modes' traces."""
    from sol.pytorch import op_mapping

    for node in graph_module.graph.nodes:
        if node.op == "call_module":
            if isinstance(graph_module.get_submodule(str(node.target)), op_mapping.MODE_DEPENDENT_MODULES):
                return True
        elif node.op == "call_function" and (
            node.target in op_mapping.MODE_DEPENDENT_FUNCTIONS
            or _qualified_name(node.target) in op_mapping.MODE_DEPENDENT_FUNCTION_NAMES
        ):
            return True
    return False
