"""PyTorch ops -> SOL ops: three tables keyed by fx target.

* FUNCTIONS: `call_function` targets (torch.*, torch.nn.functional.*, operator.*)
* METHODS:   `call_method` names (Tensor methods such as "view", "add_")
* MODULES:   `call_module` classes (exact type: a user subclass of nn.Conv2d
             with its own forward is traced through instead)

A handler declares the torch parameter names and defaults of what it maps, so
Python's own argument binding handles positional/keyword spellings; the
frontend passes `GraphBuilder` first (and the module, for module handlers).
Arguments arrive resolved: tensors are `TensorValue`, everything else is a
plain Python value computed from concrete shapes.

A handler that meets a variant it cannot map raises UnsupportedError with a
short reason; the frontend adds the op name, module path and source line.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable, NoReturn, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from sol.errors import UnsupportedError
from sol.pytorch.frontend import GraphBuilder, TensorValue, op_display_name, torch_dtype

Handler = Callable[..., Any]

FUNCTIONS: dict[Any, Handler] = {}
# Functions of other libraries, by qualified name, so that SOL needs not import
# them (e.g. torchvision's stochastic_depth, which fx keeps as a leaf call).
FUNCTIONS_BY_NAME: dict[str, Handler] = {}
METHODS: dict[str, Handler] = {}
MODULES: dict[type, Handler] = {}


def _existing(namespace: Any, *names: str) -> list[Any]:
    """Attributes that exist in this torch version (aliases come and go)."""
    return [getattr(namespace, name) for name in names if hasattr(namespace, name)]


def functions(*targets: Any) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for target in targets:
            FUNCTIONS[target] = handler
        return handler

    return register


def methods(*names: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for name in names:
            METHODS[name] = handler
        return handler

    return register


def modules(*classes: type) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for cls in classes:
            MODULES[cls] = handler
        return handler

    return register


# ---------------------------------------------------------------- argument helpers


def _reject(reason: str) -> NoReturn:
    raise UnsupportedError(reason)


def _tensor(value: Any, what: str = "input") -> TensorValue:
    if not isinstance(value, TensorValue):
        _reject(f"{what} must be a tensor, got {type(value).__name__} {value!r}")
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _reject(f"{what}={value!r} (an int is required)")
    return value


def _ints(value: Any, count: int, what: str) -> list[int]:
    """torch's `int or tuple` arguments (kernel_size=3, stride=(2, 1)) as a list."""
    if isinstance(value, (tuple, list)):
        items = [_int(item, what) for item in value]
        if len(items) == 1:
            return items * count
        if len(items) == count:
            return items
        _reject(f"{what}={value!r} (expected {count} values)")
    return [_int(value, what)] * count


def _scalar(value: Any) -> float:
    if isinstance(value, (bool, int, float)):
        return float(value)
    _reject(f"operand of type {type(value).__name__} ({value!r})")


def _axis(dim: Any, rank: int) -> int:
    """A dim in [-rank, rank) as a non-negative axis (rank 0 accepts -1 and 0)."""
    dim = _int(dim, "dim")
    size = max(rank, 1)
    if not -size <= dim < size:
        _reject(f"dim={dim} out of range for a rank-{rank} tensor")
    return dim % size


def _require_rank(b: GraphBuilder, value: TensorValue, rank: int, what: str) -> None:
    shape = b.shape(value)
    if len(shape) != rank:
        _reject(f"{what} expects a rank-{rank} (NCHW) input, got shape {shape}")


def _same_dtype(b: GraphBuilder, value: TensorValue, dtype: Any) -> None:
    if dtype is not None and torch_dtype(b.dtype(value)) != dtype:
        _reject(f"dtype={dtype} (a conversion inside the op)")


# ---------------------------------------------------------------- convolution, linear, batch norm


def _string_padding(mode: str, kernel: Sequence[int], dilation: list[int], stride: list[int]) -> list[int]:
    if mode == "valid":
        return [0, 0]
    if mode == "same":
        if stride != [1, 1]:
            _reject("padding='same' with stride != 1")
        totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
        # torch pads the extra element on the bottom/right; SOL's conv2d padding is symmetric.
        if any(total % 2 for total in totals):
            _reject(f"padding='same' for kernel {list(kernel)} needs asymmetric padding")
        return [total // 2 for total in totals]
    _reject(f"padding={mode!r}")


@functions(F.conv2d, torch.conv2d)
def conv2d(b, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    x, w = _tensor(input), _tensor(weight, "weight")
    _require_rank(b, x, 4, "conv2d")
    stride, dilation = _ints(stride, 2, "stride"), _ints(dilation, 2, "dilation")
    if isinstance(padding, str):
        padding = _string_padding(padding, b.shape(w)[2:], dilation, stride)
    else:
        padding = _ints(padding, 2, "padding")
    inputs = [x, w] + ([_tensor(bias, "bias")] if bias is not None else [])
    return b.op("conv2d", inputs, stride=stride, padding=padding, dilation=dilation, groups=_int(groups, "groups"))


@modules(nn.Conv2d)
def conv2d_module(b, module, input):
    if module.padding_mode != "zeros":
        _reject(f"padding_mode={module.padding_mode!r} (only 'zeros')")
    weight, bias = b.module_parameter(module, "weight"), b.module_parameter(module, "bias")
    return conv2d(b, input, weight, bias, module.stride, module.padding, module.dilation, module.groups)


@functions(F.linear)
def linear(b, input, weight, bias=None):
    inputs = [_tensor(input), _tensor(weight, "weight")] + ([_tensor(bias, "bias")] if bias is not None else [])
    return b.op("linear", inputs)


@modules(nn.Linear)
def linear_module(b, module, input):
    return linear(b, input, b.module_parameter(module, "weight"), b.module_parameter(module, "bias"))


@functions(F.batch_norm)
def batch_norm(b, input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    if training:
        _reject("training=True (batch statistics) through F.batch_norm is not supported yet; nn.BatchNorm2d is")
    if running_mean is None or running_var is None:
        _reject("no running statistics (eval mode would use batch statistics)")
    x = _tensor(input)
    # The core's batch_norm always takes gamma and beta; rank-0 constants stand in
    # for affine=False and fold away.
    gamma = _tensor(weight, "weight") if weight is not None else b.constant(1.0, like=x)
    beta = _tensor(bias, "bias") if bias is not None else b.constant(0.0, like=x)
    mean, var = _tensor(running_mean, "running_mean"), _tensor(running_var, "running_var")
    return b.op("batch_norm", [x, mean, var, gamma, beta], eps=float(eps))


@modules(nn.BatchNorm2d)
def batch_norm2d_module(b, module, input):
    _require_rank(b, _tensor(input), 4, "BatchNorm2d")
    if module.training or not module.track_running_stats:
        return _batch_norm_with_batch_statistics(b, module, _tensor(input))
    return batch_norm(
        b,
        input,
        b.module_parameter(module, "running_mean"),
        b.module_parameter(module, "running_var"),
        b.module_parameter(module, "weight") if module.affine else None,
        b.module_parameter(module, "bias") if module.affine else None,
        eps=module.eps,
    )


def _batch_norm_with_batch_statistics(b, module, x):
    """nn.BatchNorm2d in training mode (or without running statistics): normalized by the batch's
    mean and biased variance over N, H, W; in training mode the running estimates are updated as
    PyTorch does, with `momentum` and the unbiased variance, and num_batches_tracked counts the call."""
    n, channels, height, width = b.shape(x)
    count = n * height * width
    if module.training and count <= 1:
        _reject(f"training needs more than 1 value per channel, got input {[n, channels, height, width]}")
    axes = [0, 2, 3]
    mean = b.op("mean", [x], axes=axes, keepdim=True)
    # The gradient of the variance through its mean is sum(x - mean) * (...) = 0: marking the mean
    # a constant there lets autodiff leave out a pass over the activation (see core's autodiff.h).
    centered = b.op("sub", [x, mean], stop_gradient=[1])
    var = b.op("mean", [b.op("mul", [centered, centered])], axes=axes, keepdim=True)
    # y = x * scale + shift with per-channel scale = weight / sqrt(var + eps) and shift = bias -
    # mean * scale, as PyTorch's CPU kernel computes it: the centered input then only feeds the
    # variance (one pass over x with it), and the output is one more pass over x.
    scale = b.op("rsqrt", [b.op("add", [var, b.constant(module.eps, like=x)])])
    if module.affine:
        per_channel = [channels, 1, 1]
        scale = b.op("mul", [scale, b.op("reshape", [b.module_parameter(module, "weight")], shape=per_channel)])
    shift = b.op("neg", [b.op("mul", [mean, scale])])
    if module.affine:
        shift = b.op("add", [shift, b.op("reshape", [b.module_parameter(module, "bias")], shape=per_channel)])
    y = b.op("add", [b.op("mul", [x, scale]), shift])
    if module.training and module.track_running_stats:
        if module.momentum is None:
            _reject("momentum=None (a cumulative average over all batches) is not supported yet")
        momentum = float(module.momentum)

        def updated(name, batch_value):
            running = b.module_parameter(module, name)
            old = b.op("mul", [running, b.constant(1.0 - momentum, like=x)])
            new = b.op("mul", [b.op("reshape", [batch_value], shape=[channels]), b.constant(momentum, like=x)])
            return b.op("add", [old, new])

        b.update_state(f"{b.path}.running_mean", updated("running_mean", mean))
        unbiased = b.op("mul", [var, b.constant(count / (count - 1), like=x)])
        b.update_state(f"{b.path}.running_var", updated("running_var", unbiased))
        b.count_call(f"{b.path}.num_batches_tracked")
    return y


# ---------------------------------------------------------------- elementwise unary


def _unary(op: str) -> Handler:
    def handler(b, input, inplace=False):
        return b.op(op, [_tensor(input)])

    handler.__name__ = op
    return handler


def _unary_module(op: str) -> Handler:
    def handler(b, module, input):
        return b.op(op, [_tensor(input)])

    handler.__name__ = f"{op}_module"
    return handler


# op -> (torch / F function names, Tensor method names, module classes)
_UNARY: dict[str, tuple[list[Any], tuple[str, ...], tuple[type, ...]]] = {
    "relu": (_existing(torch, "relu", "relu_") + _existing(F, "relu", "relu_"), ("relu", "relu_"), (nn.ReLU,)),
    "relu6": (_existing(F, "relu6"), (), (nn.ReLU6,)),
    "sigmoid": (_existing(torch, "sigmoid", "sigmoid_") + _existing(F, "sigmoid"), ("sigmoid", "sigmoid_"), (nn.Sigmoid,)),
    "tanh": (_existing(torch, "tanh", "tanh_") + _existing(F, "tanh"), ("tanh", "tanh_"), (nn.Tanh,)),
    "silu": (_existing(F, "silu"), (), (nn.SiLU,)),
    "hardswish": (_existing(F, "hardswish"), (), (nn.Hardswish,)),
    "hardsigmoid": (_existing(F, "hardsigmoid"), (), (nn.Hardsigmoid,)),
    "exp": (_existing(torch, "exp", "exp_"), ("exp", "exp_"), ()),
    "log": (_existing(torch, "log", "log_"), ("log", "log_"), ()),
    "sqrt": (_existing(torch, "sqrt", "sqrt_"), ("sqrt", "sqrt_"), ()),
    "rsqrt": (_existing(torch, "rsqrt", "rsqrt_"), ("rsqrt", "rsqrt_"), ()),
    "neg": (_existing(torch, "neg", "neg_", "negative") + [operator.neg], ("neg", "neg_", "negative"), ()),
}
for _op, (_functions, _methods, _modules) in _UNARY.items():
    functions(*_functions)(_unary(_op))
    methods(*_methods)(_unary(_op))
    modules(*_modules)(_unary_module(_op))

_GELU_APPROXIMATIONS = {"none": 0, "tanh": 1}


@functions(F.gelu)
@methods("gelu")
def gelu(b, input, approximate="none"):
    if approximate not in _GELU_APPROXIMATIONS:
        _reject(f"approximate={approximate!r}")
    return b.op("gelu", [_tensor(input)], approximate=_GELU_APPROXIMATIONS[approximate])


@modules(nn.GELU)
def gelu_module(b, module, input):
    return gelu(b, input, module.approximate)


@functions(F.hardtanh, *_existing(F, "hardtanh_"))
def hardtanh(b, input, min_val=-1.0, max_val=1.0, inplace=False):
    return b.op("hardtanh", [_tensor(input)], min=_scalar(min_val), max=_scalar(max_val))


@modules(nn.Hardtanh)
def hardtanh_module(b, module, input):
    return hardtanh(b, input, module.min_val, module.max_val)


@functions(*_existing(torch, "clamp", "clip", "clamp_", "clip_"))
@methods("clamp", "clamp_", "clip", "clip_")
def clamp(b, input, min=None, max=None):
    if isinstance(min, TensorValue) or isinstance(max, TensorValue):
        _reject("tensor-valued min/max")
    low = -math.inf if min is None else _scalar(min)
    high = math.inf if max is None else _scalar(max)
    return b.op("clamp", [_tensor(input)], min=low, max=high)


@functions(*_existing(torch, "clamp_min", "clamp_min_"))
@methods("clamp_min", "clamp_min_")
def clamp_min(b, input, min):
    return clamp(b, input, min, None)


@functions(*_existing(torch, "clamp_max", "clamp_max_"))
@methods("clamp_max", "clamp_max_")
def clamp_max(b, input, max):
    return clamp(b, input, None, max)


# ---------------------------------------------------------------- elementwise binary


def _binary(b: GraphBuilder, op: str, lhs: Any, rhs: Any) -> TensorValue:
    """`a <op> b` with numpy broadcasting; a Python scalar on either side becomes a
    rank-0 constant on that side (so `2 - x` stays sub(2, x))."""
    like = lhs if isinstance(lhs, TensorValue) else rhs
    if not isinstance(like, TensorValue):
        _reject("no tensor operand")

    def operand(value: Any) -> TensorValue:
        return value if isinstance(value, TensorValue) else b.constant(_scalar(value), like=like)

    return b.op(op, [operand(lhs), operand(rhs)])


def _scaled(b: GraphBuilder, value: Any, alpha: Any) -> Any:
    """`alpha * value` for torch.add/sub's alpha argument."""
    if alpha == 1:
        return value
    if isinstance(value, TensorValue):
        return _binary(b, "mul", value, alpha)
    return _scalar(value) * _scalar(alpha)


@functions(operator.add, operator.iadd, torch.add)
@methods("add", "add_")
def add(b, input, other, *, alpha=1):
    return _binary(b, "add", input, _scaled(b, other, alpha))


@functions(operator.sub, operator.isub, *_existing(torch, "sub", "subtract"))
@methods("sub", "sub_", "subtract", "subtract_")
def sub(b, input, other, *, alpha=1):
    return _binary(b, "sub", input, _scaled(b, other, alpha))


@functions(torch.rsub)
def rsub(b, input, other, *, alpha=1):
    return _binary(b, "sub", other, _scaled(b, input, alpha))


@functions(operator.mul, operator.imul, *_existing(torch, "mul", "multiply"))
@methods("mul", "mul_", "multiply", "multiply_")
def mul(b, input, other):
    return _binary(b, "mul", input, other)


@functions(operator.truediv, operator.itruediv, *_existing(torch, "div", "divide", "true_divide"))
@methods("div", "div_", "divide", "divide_", "true_divide", "true_divide_")
def div(b, input, other, *, rounding_mode=None):
    if rounding_mode is not None:
        _reject(f"rounding_mode={rounding_mode!r}")
    return _binary(b, "div", input, other)


# ---------------------------------------------------------------- pooling


def _pool_stride(stride: Any, kernel: list[int]) -> list[int]:
    # torch's default stride is the kernel size; functional forms spell it None or [].
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        return kernel
    return _ints(stride, 2, "stride")


@functions(F.max_pool2d, *_existing(torch, "max_pool2d"))
def max_pool2d(b, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    if return_indices:
        _reject("return_indices=True")
    x = _tensor(input)
    _require_rank(b, x, 4, "max_pool2d")
    kernel = _ints(kernel_size, 2, "kernel_size")
    return b.op(
        "max_pool2d",
        [x],
        kernel=kernel,
        stride=_pool_stride(stride, kernel),
        padding=_ints(padding, 2, "padding"),
        dilation=_ints(dilation, 2, "dilation"),
        ceil_mode=bool(ceil_mode),
    )


@modules(nn.MaxPool2d)
def max_pool2d_module(b, module, input):
    m = module
    return max_pool2d(b, input, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, m.return_indices)


@functions(F.avg_pool2d, *_existing(torch, "avg_pool2d"))
def avg_pool2d(b, input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    x = _tensor(input)
    _require_rank(b, x, 4, "avg_pool2d")
    kernel = _ints(kernel_size, 2, "kernel_size")
    return b.op(
        "avg_pool2d",
        [x],
        kernel=kernel,
        stride=_pool_stride(stride, kernel),
        padding=_ints(padding, 2, "padding"),
        ceil_mode=bool(ceil_mode),
        count_include_pad=bool(count_include_pad),
        divisor_override=0 if divisor_override is None else _int(divisor_override, "divisor_override"),
    )


@modules(nn.AvgPool2d)
def avg_pool2d_module(b, module, input):
    m = module
    return avg_pool2d(
        b, input, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad, m.divisor_override
    )


@functions(F.adaptive_avg_pool2d, *_existing(torch._C._nn, "adaptive_avg_pool2d"))
def adaptive_avg_pool2d(b, input, output_size):
    x = _tensor(input)
    _require_rank(b, x, 4, "adaptive_avg_pool2d")
    spatial = b.shape(x)[2:]
    if not isinstance(output_size, (tuple, list)):
        output_size = (output_size, output_size)
    if len(output_size) != 2:
        _reject(f"output_size={output_size!r}")
    # None keeps the input's extent in that dimension.
    size = [spatial[i] if output_size[i] is None else _int(output_size[i], "output_size") for i in range(2)]
    return b.op("adaptive_avg_pool2d", [x], output_size=size)


@modules(nn.AdaptiveAvgPool2d)
def adaptive_avg_pool2d_module(b, module, input):
    return adaptive_avg_pool2d(b, input, module.output_size)


# ---------------------------------------------------------------- softmax, dropout, identity


def _softmax(b: GraphBuilder, op: str, input: Any, dim: Any, dtype: Any) -> TensorValue:
    x = _tensor(input)
    if dim is None:
        _reject("dim=None (implicit dim is deprecated in torch; pass dim)")
    _same_dtype(b, x, dtype)
    return b.op(op, [x], axis=_axis(dim, len(b.shape(x))))


@functions(F.softmax)
def softmax_functional(b, input, dim=None, _stacklevel=3, dtype=None):
    return _softmax(b, "softmax", input, dim, dtype)


@functions(F.log_softmax)
def log_softmax_functional(b, input, dim=None, _stacklevel=3, dtype=None):
    return _softmax(b, "log_softmax", input, dim, dtype)


@functions(torch.softmax)
@methods("softmax")
def softmax(b, input, dim=None, dtype=None):
    return _softmax(b, "softmax", input, dim, dtype)


@functions(torch.log_softmax)
@methods("log_softmax")
def log_softmax(b, input, dim=None, dtype=None):
    return _softmax(b, "log_softmax", input, dim, dtype)


@modules(nn.Softmax)
def softmax_module(b, module, input):
    return _softmax(b, "softmax", input, module.dim, None)


@modules(nn.LogSoftmax)
def log_softmax_module(b, module, input):
    return _softmax(b, "log_softmax", input, module.dim, None)


_DROPOUT_FUNCTIONS = _existing(F, "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout")
_DROPOUT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


@functions(*_DROPOUT_FUNCTIONS)
def dropout(b, input, p=0.5, training=True, inplace=False):
    # The model is traced once per mode, so `training=self.training` arrives True only in the
    # train-mode trace; a True in the eval-mode trace is a literal: random masks at inference.
    x = _tensor(input)
    if not training or p == 0:
        return b.op("identity", [x])
    name = op_display_name(b.node, b.root)
    if not b.training:
        _reject(f"{name} with training=True in eval mode (random masks at inference) is not supported")
    if b.node.target not in (F.dropout, torch.dropout):
        _reject(f"{name} in training mode (whole channels or alpha dropout) is not supported yet; "
                "F.dropout and nn.Dropout are")
    if not 0 < p < 1:
        _reject(f"{name} with p={p} in training mode")
    return b.op("dropout", [x, b.seed()], p=float(p))


@functions(torch.dropout)
def torch_dropout(b, input, p, train):
    return dropout(b, input, p, train)


def stochastic_depth(b, input, p, mode, training=True):
    # torchvision.ops.stochastic_depth: the identity at inference, random otherwise.
    if training:
        _reject("training=True drops random paths; not supported yet")
    return b.op("identity", [_tensor(input)])


FUNCTIONS_BY_NAME["torchvision.ops.stochastic_depth.stochastic_depth"] = stochastic_depth


@modules(*_DROPOUT_MODULES, nn.Identity)
def identity_module(b, module, input, *args, **kwargs):
    # Dropout is the identity at inference and with p=0; nn.Identity ignores extra arguments.
    if isinstance(module, nn.modules.dropout._DropoutNd) and module.training and module.p > 0:
        if type(module) is not nn.Dropout:
            _reject(f"{type(module).__name__}(p={module.p}) in training mode (whole channels or alpha dropout) "
                    "is not supported yet; call .eval() or use nn.Dropout")
        if module.p >= 1:
            _reject("Dropout(p=1) in training mode zeroes everything")
        return b.op("dropout", [_tensor(input), b.seed()], p=float(module.p))
    return b.op("identity", [_tensor(input)])


# Modules whose behaviour follows their `training` flag: the graph is built per mode (their
# handlers read the flag). Functions given `training=self.training` are evaluated when the model
# is traced, once per mode.
MODE_DEPENDENT_MODULES = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)
MODE_DEPENDENT_FUNCTIONS = frozenset([*_DROPOUT_FUNCTIONS, torch.dropout, F.batch_norm])
MODE_DEPENDENT_FUNCTION_NAMES = frozenset(["torchvision.ops.stochastic_depth.stochastic_depth"])

# Functions that mutate their first argument even without an `inplace=True` argument.
INPLACE_FUNCTIONS = frozenset(
    [operator.iadd, operator.isub, operator.imul, operator.itruediv]
    + _existing(torch, "relu_", "sigmoid_", "tanh_", "exp_", "log_", "sqrt_", "rsqrt_", "neg_", "clamp_", "clip_")
    + _existing(torch, "clamp_min_", "clamp_max_")
    + _existing(F, "relu_", "hardtanh_")
)

# Shape handling (reshape, permute, concat, size queries) lives in shape_ops.py,
# indexing and splitting in indexing_ops.py, mean/sum in reduction_ops.py;
# importing them registers their handlers in the tables above.
from sol.pytorch import indexing_ops, reduction_ops, shape_ops  # noqa: E402,F401
