"""Training through SOL (issue 5): gradients of every differentiable op against PyTorch autograd,
and optimizer runs that must leave the same parameters as PyTorch eager.

Tolerances: per-op outputs and gradients |sol - eager| <= 1e-5 |eager| + 1e-5 elementwise. The
inputs, weights and output weightings are O(1) random values, so gradients are O(0.1..10), and the
absolute part is fp32 rounding of sums over up to ~10^3 terms taken in another order than PyTorch's
(it also covers gradients that are zero in exact arithmetic, e.g. a shift along a softmax's axis,
where only rounding noise remains). Parity runs: relative L2 <= 1e-4 on every parameter after the
optimizer steps, as the issue asks."""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import sol.pytorch as sol
from solcheck import Lambda

torch.manual_seed(0)


def gradients_of(model, x, weights):
    """(output, input gradient, parameter gradients by name) of sum(model(x) * weights)."""
    x = x.clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    out = model(x)
    (out * weights).sum().backward()
    return out.detach(), x.grad, {name: p.grad for name, p in model.named_parameters()}


def assert_close(actual, expected, what):
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5, msg=lambda m: f"{what}: {m}")


def check_gradients(model, shape):
    """SOL's forward and every gradient against eager's, for a random output weighting."""
    model = model.train()
    x = torch.randn(shape)
    reference = copy.deepcopy(model)
    sol_model = sol.optimize(model, x.size())
    weights = torch.randn_like(reference(x))
    out, dx, dparams = gradients_of(sol_model, x, weights)
    ref_out, ref_dx, ref_dparams = gradients_of(reference, x, weights)
    assert_close(out, ref_out, "forward")
    assert_close(dx, ref_dx, "input gradient")
    assert dparams.keys() == ref_dparams.keys()
    for name, grad in ref_dparams.items():
        assert dparams[name] is not None, f"no gradient for {name}"
        assert_close(dparams[name], grad, f"gradient of {name}")


class Affine(nn.Module):
    """x * scale + shift with broadcast parameters, then the op under test."""

    def __init__(self, shape, op):
        super().__init__()
        self.scale = nn.Parameter(torch.rand(shape) + 0.5)
        self.shift = nn.Parameter(torch.randn(shape))
        self.op = op

    def forward(self, x):
        return self.op(x * self.scale + self.shift)


UNARY = {
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "exp": lambda t: torch.exp(t * 0.3),
    "log": lambda t: torch.log(t * t + 1.0),
    "sqrt": lambda t: torch.sqrt(t * t + 0.5),
    "rsqrt": lambda t: torch.rsqrt(t * t + 0.5),
    "neg-sub": lambda t: 1.0 - (-t),
    "div": lambda t: t / (t * t + 2.0),
    "softmax-last": lambda t: torch.softmax(t, dim=-1),
    "softmax-dim1": lambda t: F.softmax(t, dim=1),
    "log_softmax": lambda t: F.log_softmax(t, dim=-1),
    "mean-keepdim": lambda t: t - t.mean(dim=-1, keepdim=True),
    "sum-axes": lambda t: t.sum(dim=(0, 2)),
    "mean-all": lambda t: t.mean() * t,
    "flatten-permute": lambda t: torch.flatten(t, 1).t(),
    "reshape-transpose": lambda t: t.reshape(3, -1).transpose(0, 1) * 2.0,
}


@pytest.mark.parametrize("case", list(UNARY))
@pytest.mark.parametrize("broadcast", ["channel", "full"])
def test_elementwise_and_shape_gradients(case, broadcast):
    shape = (3, 5, 7)
    parameter_shape = (5, 1) if broadcast == "channel" else shape
    check_gradients(Affine(parameter_shape, UNARY[case]), shape)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("shape", [(4, 9), (1, 9), (2, 3, 9)], ids=["batch4", "batch1", "rank3"])
def test_linear_gradients(shape, bias):
    check_gradients(nn.Sequential(nn.Linear(9, 6, bias=bias), nn.ReLU(), nn.Linear(6, 5, bias=bias)), shape)


def test_value_read_twice_gets_the_sum_of_gradients():
    check_gradients(Lambda(lambda t: torch.sigmoid(t) * t + t * t), (4, 6))


def test_gradient_accumulates_over_calls_like_pytorch():
    model = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 2))
    reference = copy.deepcopy(model)
    sol_model = sol.optimize(model, (3, 6))
    xs = [torch.randn(3, 6) for _ in range(3)]
    for m in (sol_model, reference):
        for x in xs:  # no zero_grad in between
            m(x).square().sum().backward()
    for (name, p), (_, q) in zip(sol_model.named_parameters(), reference.named_parameters()):
        assert_close(p.grad, q.grad, name)


def test_no_grad_keeps_no_activations_and_builds_no_backward():
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU())
    sol_model = sol.optimize(model, (2, 6))
    with torch.no_grad():
        out = sol_model(torch.randn(2, 6))
    assert out.grad_fn is None
    assert not any(key[0] == "train" for key in sol_model._sol.compiled), "no training graphs under no_grad"
    with torch.inference_mode():
        assert sol_model(torch.randn(2, 6)).grad_fn is None
    out = sol_model(torch.randn(2, 6))
    assert out.grad_fn is not None and type(out.grad_fn).__name__ == "_TrainingStepBackward"


def test_frozen_parameters_get_no_gradient():
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
    model[0].weight.requires_grad_(False)
    sol_model = sol.optimize(model, (2, 6))
    sol_model(torch.randn(2, 6)).sum().backward()
    assert model[0].weight.grad is None
    assert model[0].bias.grad is not None and model[2].weight.grad is not None


def test_op_without_gradient_rule_is_named():
    model = nn.Sequential(nn.Linear(4, 4), nn.GELU())
    sol_model = sol.optimize(model, (2, 4))
    with pytest.raises(sol.UnsupportedError, match=r"cannot train through 'gelu' at 1 \("):
        sol_model(torch.randn(2, 4)).sum().backward()


def test_eval_mode_call_with_autograd_on_runs_inference_until_backward():
    """Inference without no_grad (common) must not compile or keep a training step; a backward
    through such a call still gets exact gradients, by recomputing the activations."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 3)).eval()
    reference = copy.deepcopy(model)
    sol_model = sol.optimize(model, (2, 3, 8, 8))
    x = torch.randn(2, 3, 8, 8)
    out = sol_model(x)
    assert out.requires_grad
    assert not any(key[0] == "train" for key in sol_model._sol.compiled), "compiled for training without a backward"
    weights = torch.randn(2, 3)
    (out * weights).sum().backward()
    (reference(x) * weights).sum().backward()
    for (name, p), (_, q) in zip(sol_model.named_parameters(), reference.named_parameters()):
        assert_close(p.grad, q.grad, name)


# ---------------------------------------------------------------- parity runs


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 5))

    def forward(self, x):
        return self.net(x)


class LogisticRegression(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(20, 5)

    def forward(self, x):
        return torch.softmax(self.linear(x), dim=-1)


def relative_l2(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def train_steps(model, optimizer_factory, batches, loss_fn):
    optimizer = optimizer_factory(model.parameters())
    for x, target in batches:
        loss = loss_fn(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


OPTIMIZERS = {
    "sgd-momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
}
MODELS = {
    "mlp": (MLP, lambda out, t: F.cross_entropy(out, t)),
    "logistic-regression": (LogisticRegression, lambda out, t: F.nll_loss(torch.log(out), t)),
    "linear-regression": (lambda: nn.Linear(20, 1), lambda out, t: F.mse_loss(out.squeeze(1), t.float())),
}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("name", list(MODELS))
def test_training_parity_with_pytorch(name, optimizer):
    factory, loss_fn = MODELS[name]
    torch.manual_seed(1)
    model = factory().train()
    reference = copy.deepcopy(model)
    batches = [(torch.randn(16, 20), torch.randint(0, 5, (16,))) for _ in range(10)]
    initial = copy.deepcopy(model.state_dict())
    sol_model = sol.optimize(model, (16, 20))
    train_steps(sol_model, OPTIMIZERS[optimizer], batches, loss_fn)
    train_steps(reference, OPTIMIZERS[optimizer], batches, loss_fn)
    for (key, value), (_, expected) in zip(model.state_dict().items(), reference.state_dict().items()):
        assert relative_l2(value, expected) <= 1e-4, key
        assert relative_l2(value, initial[key]) > 1e-3, f"{key} did not move: the test would prove nothing"


# ---------------------------------------------------------------- convolution and pooling

CONV_GRADIENT_CASES = {
    "3x3-pad1": ((2, 3, 8, 8), dict(in_channels=3, out_channels=4, kernel_size=3, padding=1)),
    "3x3-stride2-odd": ((1, 3, 9, 7), dict(in_channels=3, out_channels=5, kernel_size=3, stride=2, padding=1)),
    "5x3-stride(2,1)-pad(2,1)-nobias": ((2, 2, 11, 6), dict(in_channels=2, out_channels=3, kernel_size=(5, 3),
                                                             stride=(2, 1), padding=(2, 1), bias=False)),
    "dilation2": ((1, 2, 10, 10), dict(in_channels=2, out_channels=3, kernel_size=3, dilation=2, padding=2)),
    "groups2": ((2, 4, 6, 6), dict(in_channels=4, out_channels=6, kernel_size=3, groups=2)),
    "depthwise-stride2": ((1, 6, 9, 9), dict(in_channels=6, out_channels=6, kernel_size=3, groups=6, stride=2,
                                              padding=1)),
    "1x1": ((3, 8, 5, 5), dict(in_channels=8, out_channels=4, kernel_size=1)),
    "7x7-stride2-stem": ((1, 3, 17, 17), dict(in_channels=3, out_channels=8, kernel_size=7, stride=2, padding=3)),
}


@pytest.mark.parametrize("case", list(CONV_GRADIENT_CASES))
def test_conv2d_gradients(case):
    shape, kwargs = CONV_GRADIENT_CASES[case]
    check_gradients(nn.Sequential(nn.Conv2d(**kwargs)), shape)


POOL_CASES = {
    "max-2x2": nn.MaxPool2d(2),
    "max-3x3-s2-p1": nn.MaxPool2d(3, stride=2, padding=1),
    "max-3x3-s2-ceil": nn.MaxPool2d(3, stride=2, ceil_mode=True),
    "max-3x3-s1-p1-overlapping": nn.MaxPool2d(3, stride=1, padding=1),
    "max-dilation2": nn.MaxPool2d(2, stride=1, dilation=2),
    "avg-2x2": nn.AvgPool2d(2),
    "avg-3x3-s2-p1": nn.AvgPool2d(3, stride=2, padding=1),
    "avg-3x3-s2-p1-exclude-pad-ceil": nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    "avg-divisor-override": nn.AvgPool2d(3, stride=1, padding=1, divisor_override=4),
    "adaptive-global": nn.AdaptiveAvgPool2d(1),
    "adaptive-3x2-overlapping": nn.AdaptiveAvgPool2d((3, 2)),
}


@pytest.mark.parametrize("case", list(POOL_CASES))
def test_pooling_gradients(case):
    # A convolution in front, so the pool's input is a computed value with distinct entries.
    check_gradients(nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), POOL_CASES[case]), (2, 2, 9, 7))


def test_concat_gradients():
    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 2, 3, padding=1)

        def forward(self, x):
            return torch.relu(torch.cat([self.a(x), self.b(x), x], dim=1))

    check_gradients(Branches(), (2, 3, 5, 5))


class SmallCNN(nn.Module):
    """conv -> relu -> max pool -> conv -> relu -> global average pool -> linear (no BatchNorm)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_small_cnn_training_parity_with_pytorch(optimizer):
    torch.manual_seed(2)
    model = SmallCNN().train()
    reference = copy.deepcopy(model)
    initial = copy.deepcopy(model.state_dict())
    batches = [(torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))) for _ in range(8)]
    sol_model = sol.optimize(model, (8, 3, 16, 16))
    loss_fn = lambda out, t: F.cross_entropy(out, t)  # noqa: E731
    train_steps(sol_model, OPTIMIZERS[optimizer], batches, loss_fn)
    train_steps(reference, OPTIMIZERS[optimizer], batches, loss_fn)
    for (key, value), (_, expected) in zip(model.state_dict().items(), reference.state_dict().items()):
        assert relative_l2(value, expected) <= 1e-4, key
        assert relative_l2(value, initial[key]) > 1e-3, f"{key} did not move"
