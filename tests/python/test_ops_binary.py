"""add / sub / mul / div: broadcasting, python scalars on either side, functional and in-place forms.

Models take one input; the second operand is a parameter or buffer (get_attr)
or a tensor computed from the input with another op (a pooled copy), which
gives every broadcasting pattern.
"""

import operator

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from solcheck import Lambda, check_module, sol

OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}
X = (2, 3, 4, 5)  # N, C, H, W


def positive(shape):
    return torch.rand(shape) + 0.5


class WithOperand(nn.Module):
    """x OP operand or operand OP x, the operand a parameter (or buffer) of `shape`."""

    def __init__(self, op, shape, operand_first, buffer):
        super().__init__()
        value = positive(shape) if op == "div" else torch.randn(shape)
        if buffer:
            self.register_buffer("operand", value)
        else:
            self.operand = nn.Parameter(value)
        self.op = OPS[op]
        self.operand_first = operand_first

    def forward(self, x):
        return self.op(self.operand, x) if self.operand_first else self.op(x, self.operand)


# (operand shape, input shape, operand first, held as buffer)
OPERAND_CASES = {
    "x-op-param(C,1,1)": ((3, 1, 1), X, False, False),
    "x-op-buffer(W)": ((5,), X, False, True),
    "param(C,1,1)-op-x": ((3, 1, 1), X, True, False),
    "x(2,1,5)-op-param(3,1)-both-broadcast": ((3, 1), (2, 1, 5), False, False),
    "x2d-op-param(K)": ((7,), (3, 7), False, False),
    "x-op-param(1,C,1,1)": ((1, 3, 1, 1), X, False, False),
    "buffer(H,1)-op-x": ((4, 1), X, True, True),
    "x-op-same-shape-param": ((3, 4, 5), X, False, False),
}
# every op with the first five patterns, one op each for the rest
OPERAND_PAIRS = [(op, case) for case in list(OPERAND_CASES)[:5] for op in OPS] + [
    ("mul", "x-op-param(1,C,1,1)"), ("div", "buffer(H,1)-op-x"), ("sub", "x-op-same-shape-param")]


@pytest.mark.parametrize("op,case", OPERAND_PAIRS, ids=[f"{op}-{case}" for op, case in OPERAND_PAIRS])
def test_binary_with_parameter(op, case):
    shape, xshape, first, buffer = OPERAND_CASES[case]
    model = WithOperand(op, shape, first, buffer)
    make = (lambda: positive(xshape)) if (op == "div" and first) else (lambda: torch.randn(xshape))
    check_module(model, make(), make_input=make)


# second operand computed from x: (N,C,1,1), (N,C,H,1), (N,C,1,W)
POOLED = {
    "x-op-pool(N,C,1,1)": lambda op: (lambda x: op(x, F.adaptive_avg_pool2d(x, 1).sigmoid() + 0.5)),
    "pool(N,C,H,1)-op-x": lambda op: (lambda x: op(F.adaptive_avg_pool2d(x, (4, 1)), x)),
    "x-op-pool(N,C,1,W)": lambda op: (lambda x: op(x, F.adaptive_avg_pool2d(x, (1, 5)).sigmoid() + 0.5)),
}
POOLED_PAIRS = [(op, case) for case in list(POOLED)[:2] for op in OPS] + [("mul", "x-op-pool(N,C,1,W)")]


@pytest.mark.parametrize("op,case", POOLED_PAIRS, ids=[f"{op}-{case}" for op, case in POOLED_PAIRS])
def test_binary_broadcast_computed(op, case):
    make = (lambda: positive(X)) if (op == "div" and case.startswith("pool")) else (lambda: torch.randn(X))
    check_module(Lambda(POOLED[case](OPS[op]), f"{op} {case}"), make(), make_input=make)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return F.relu(self.conv(x) + x)


def test_residual_add():
    check_module(Residual(), torch.randn(2, 3, 6, 6))


SCALARS = {
    "x+2": lambda x: x + 2,
    "2+x": lambda x: 2 + x,
    "x-2.5": lambda x: x - 2.5,
    "2-x": lambda x: 2 - x,
    "x*3": lambda x: x * 3,
    "0.5*x": lambda x: 0.5 * x,
    "x/4": lambda x: x / 4,
    "1/x": lambda x: 1 / x,
    "3.5/x": lambda x: 3.5 / x,
    "-x": lambda x: -x,
    # folding candidates: must stay exact
    "x*1": lambda x: x * 1,
    "1*x": lambda x: 1 * x,
    "x+0": lambda x: x + 0,
    "0+x": lambda x: 0 + x,
    "x-0": lambda x: x - 0,
    "x/1": lambda x: x / 1,
    "(x*1+0)*2": lambda x: (x * 1 + 0) * 2,
}


@pytest.mark.parametrize("name", list(SCALARS))
def test_scalar_operand(name):
    make = (lambda: positive((2, 3, 5))) if "/x" in name else (lambda: torch.randn(2, 3, 5))
    check_module(Lambda(SCALARS[name], name), make(), make_input=make)


FUNCTIONAL = {
    "torch.add(x,y)": lambda x: torch.add(x, x.sigmoid()),
    "torch.add(x,2)": lambda x: torch.add(x, 2),
    "torch.sub": lambda x: torch.sub(x.sigmoid(), x),
    "torch.mul": lambda x: torch.mul(x, x),
    "torch.div": lambda x: torch.div(x, x.sigmoid() + 1),
    "Tensor.add": lambda x: x.add(1.5),
    "Tensor.mul": lambda x: x.mul(x.tanh()),
    "Tensor.sub": lambda x: x.sub(x.relu()),
    "Tensor.div": lambda x: x.div(2),
    "torch.rsub": lambda x: torch.rsub(x, 1),
}


@pytest.mark.parametrize("name", list(FUNCTIONAL))
def test_binary_functional(name):
    check_module(Lambda(FUNCTIONAL[name], name), torch.randn(2, 3, 4))


class InplaceArith(nn.Module):
    """In-place arithmetic on an intermediate value."""

    def forward(self, x):
        y = x * 2
        y += x
        y.mul_(0.5)
        y -= 1
        y /= 3
        y.add_(x.sigmoid())
        y.sub_(0.25)
        y.div_(x.sigmoid() + 1)
        return y


def test_binary_inplace():
    check_module(InplaceArith(), torch.randn(2, 3, 4, 5))


CORRECT_OR_UNSUPPORTED = {
    "torch.add(alpha=2)": (lambda x: torch.add(x, x.sigmoid(), alpha=2), "add"),
    "torch.sub(alpha=0.5)": (lambda x: torch.sub(x, x.tanh(), alpha=0.5), "sub"),
    "torch.div(rounding_mode=floor)": (lambda x: torch.div(x * 4, 3, rounding_mode="floor"), "div"),
    "torch.div(rounding_mode=trunc)": (lambda x: torch.div(x * 4, 3, rounding_mode="trunc"), "div"),
}


@pytest.mark.parametrize("name", list(CORRECT_OR_UNSUPPORTED))
def test_arguments_not_ignored(name):
    """Keyword arguments that change the result: right answer or UnsupportedError, never ignored."""
    fn, op = CORRECT_OR_UNSUPPORTED[name]
    try:
        check_module(Lambda(fn, name), torch.randn(2, 3, 4))
    except sol.UnsupportedError as error:
        assert op in str(error), f"UnsupportedError does not name `{op}`: {error}"
