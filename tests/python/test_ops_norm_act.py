"""BatchNorm2d (eval) and the activations, module and functional forms."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from solcheck import Lambda, check_module, sol


def randomize_bn(bn, seed=0):
    """Running statistics and affine parameters far from the 0/1 defaults."""
    g = torch.Generator().manual_seed(seed)
    c = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(c, generator=g))
        bn.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.1)
        if bn.affine:
            bn.weight.copy_(torch.randn(c, generator=g))
            bn.bias.copy_(torch.randn(c, generator=g))
    return bn


# (input shape, BatchNorm2d arguments)
BN_CASES = {
    "affine": ((2, 4, 5, 5), dict(num_features=4)),
    "affine-odd-eps1e-3": ((1, 5, 7, 3), dict(num_features=5, eps=1e-3)),
    "no-affine": ((3, 3, 4, 6), dict(num_features=3, affine=False)),
}


@pytest.mark.parametrize("case", list(BN_CASES))
def test_batchnorm2d(case):
    shape, kwargs = BN_CASES[case]
    model = nn.Sequential(randomize_bn(nn.BatchNorm2d(**kwargs)))
    check_module(model, torch.randn(shape))


@pytest.mark.parametrize("conv_bias", [True, False], ids=["conv-bias", "conv-nobias"])
def test_conv_batchnorm_relu_folding(conv_bias):
    """BatchNorm folded into the conv before it must still use the live statistics."""
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=conv_bias), randomize_bn(nn.BatchNorm2d(6)), nn.ReLU())
    check_module(model, torch.randn(2, 3, 7, 7))


def test_functional_batch_norm():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.randn(4))
            self.register_buffer("var", torch.rand(4) + 0.5)
            self.weight = nn.Parameter(torch.randn(4))
            self.bias = nn.Parameter(torch.randn(4))

        def forward(self, x):
            return F.batch_norm(x, self.mean, self.var, self.weight, self.bias, training=False, eps=1e-4)

    check_module(M(), torch.randn(2, 4, 3, 5))


ACTIVATIONS = {
    "ReLU": nn.ReLU,
    "ReLU6": nn.ReLU6,
    "Sigmoid": nn.Sigmoid,
    "Tanh": nn.Tanh,
    "GELU-erf": lambda: nn.GELU(),
    "GELU-tanh": lambda: nn.GELU(approximate="tanh"),
    "Hardswish": nn.Hardswish,
    "Hardsigmoid": nn.Hardsigmoid,
    "SiLU": nn.SiLU,
}
ACT_SHAPES = {"4d-odd": (2, 3, 5, 7), "2d-odd": (3, 11)}


@pytest.mark.parametrize("shape", list(ACT_SHAPES))
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_module(name, shape):
    model = nn.Sequential(ACTIVATIONS[name]())
    # scale 4 so that the clamps of ReLU6 / hard* and the tails of sigmoid/tanh are hit
    check_module(model, torch.randn(ACT_SHAPES[shape]) * 4)


FUNCTIONAL_ACTIVATIONS = {
    "F.relu": lambda x: F.relu(x),
    "torch.relu": lambda x: torch.relu(x),
    "Tensor.relu": lambda x: x.relu(),
    "F.relu6": lambda x: F.relu6(x),
    "F.hardtanh": lambda x: F.hardtanh(x, -1.5, 2.0),
    "torch.clamp": lambda x: torch.clamp(x, -0.5, 0.7),
    "Tensor.clamp-min": lambda x: x.clamp(min=0.25),
    "torch.sigmoid": lambda x: torch.sigmoid(x),
    "F.sigmoid": lambda x: F.sigmoid(x),
    "Tensor.sigmoid": lambda x: x.sigmoid(),
    "torch.tanh": lambda x: torch.tanh(x),
    "F.gelu": lambda x: F.gelu(x),
    "F.gelu-tanh": lambda x: F.gelu(x, approximate="tanh"),
    "F.hardswish": lambda x: F.hardswish(x),
    "F.hardsigmoid": lambda x: F.hardsigmoid(x),
    "F.silu": lambda x: F.silu(x),
}


@pytest.mark.parametrize("name", list(FUNCTIONAL_ACTIVATIONS))
def test_activation_functional(name):
    check_module(Lambda(FUNCTIONAL_ACTIVATIONS[name], name), torch.randn(2, 3, 5, 7) * 4)


class Inplace(nn.Module):
    """An in-place activation on an intermediate value (never on the user's input)."""

    def __init__(self, act):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.act = act

    def forward(self, x):
        y = self.conv(x)
        return self.act(y)


INPLACE = {
    "nn.ReLU(inplace)": lambda: nn.ReLU(inplace=True),
    "nn.ReLU6(inplace)": lambda: nn.ReLU6(inplace=True),
    "nn.Hardswish(inplace)": lambda: nn.Hardswish(inplace=True),
    "nn.SiLU(inplace)": lambda: nn.SiLU(inplace=True),
    "F.relu(inplace)": lambda: Lambda(lambda y: F.relu(y, inplace=True)),
    "Tensor.relu_": lambda: Lambda(lambda y: y.relu_()),
    "torch.sigmoid_": lambda: Lambda(lambda y: torch.sigmoid_(y)),
}


@pytest.mark.parametrize("name", list(INPLACE))
def test_activation_inplace(name):
    check_module(Inplace(INPLACE[name]()), torch.randn(2, 3, 4, 5) * 3)


def test_inplace_result_used_twice():
    """y.relu_() changes y for every later use: the later use must see the new value.

    torch.fx records `y + z` with the pre-mutation node for y, so a front end
    that ignores the mutation computes conv + 2*conv here: silently wrong. A
    correct answer or sol.UnsupportedError are both acceptable.
    """

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)

        def forward(self, x):
            y = self.conv(x)
            z = y * 2
            y.relu_()
            return y + z

    try:
        check_module(M(), torch.randn(1, 2, 4, 4))
    except sol.UnsupportedError as error:
        assert "relu_" in str(error), str(error)


SPECIAL = {
    "relu": torch.relu,
    "relu6": F.relu6,
    "hardtanh": F.hardtanh,
    "clamp": lambda x: torch.clamp(x, -1, 1),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "max_pool2d": lambda x: F.max_pool2d(x, 2),
    "avg_pool2d": lambda x: F.avg_pool2d(x, 2),
    "arith": lambda x: (x * 2 + 1) / 4 - x,
}


@pytest.mark.parametrize("name", list(SPECIAL))
def test_nan_and_inf_behave_like_pytorch(name):
    """NaN stays NaN (a max/clamp must not swallow it) and infinities land where PyTorch puts them."""
    values = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -1.5, 2.5, 7.0, -0.25])
    x = values.repeat(6).reshape(1, 3, 4, 4)
    model = Lambda(SPECIAL[name], name).eval()
    sol_model = sol.optimize(model, x.size())
    out = sol_model(x)
    with torch.no_grad():
        ref = model(x.clone())
    assert tuple(out.shape) == tuple(ref.shape)
    assert torch.equal(out.isnan(), ref.isnan()), f"NaN positions differ:\nSOL {out}\nPyTorch {ref}"
    assert torch.equal(out.isinf() & (out > 0), ref.isinf() & (ref > 0)), f"+inf positions differ:\n{out}\n{ref}"
    assert torch.equal(out.isinf() & (out < 0), ref.isinf() & (ref < 0)), f"-inf positions differ:\n{out}\n{ref}"
    finite = ref.isfinite()
    torch.testing.assert_close(out[finite], ref[finite], rtol=1e-5, atol=1e-6)
