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
    "silu": F.silu,
    "gelu": F.gelu,
    "gelu-tanh": lambda t: F.gelu(t, approximate="tanh"),
    "hardsigmoid": lambda t: F.hardsigmoid(t * 3.0),
    "hardswish": lambda t: F.hardswish(t * 3.0),
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
    "slice-narrow": lambda t: t[:, 1:4] * 2.0,
    "slice-step": lambda t: t[..., 1::3] * 2.0,
    "slice-step-channels": lambda t: t[:, ::2] + 1.0,
    "chunk-swap": lambda t: torch.cat([t.chunk(2, dim=-1)[1], t.chunk(2, dim=-1)[0]], dim=-1),
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


def assert_trains_like_pytorch(model, batches, optimizer, loss_fn, autotuning=True):
    """Trains `model` through SOL and a copy in PyTorch on `batches`; every float tensor of the
    state must end within relative L2 1e-4 of PyTorch's and have moved (else the run proves
    nothing), integer buffers (num_batches_tracked) must be equal."""
    reference = copy.deepcopy(model)
    initial = copy.deepcopy(model.state_dict())
    sol_model = sol.optimize(model, batches[0][0].shape, autotuning=autotuning)
    train_steps(sol_model, optimizer, batches, loss_fn)
    train_steps(reference, optimizer, batches, loss_fn)
    for (key, value), (_, expected) in zip(model.state_dict().items(), reference.state_dict().items()):
        if not value.is_floating_point():
            assert torch.equal(value, expected), key
            continue
        assert relative_l2(value, expected) <= 1e-4, key
        assert relative_l2(value, initial[key]) > 1e-3, f"{key} did not move: the test would prove nothing"


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
    batches = [(torch.randn(16, 20), torch.randint(0, 5, (16,))) for _ in range(10)]
    assert_trains_like_pytorch(factory().train(), batches, OPTIMIZERS[optimizer], loss_fn)


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


# A 1x1 convolution read by an average pool: SOL pools first (passes/pool_before_pointwise_conv)
# and differentiates that form; the gradients must still be eager's.
CONV1X1_POOL_GRADIENT_CASES = {
    "avg-2x2": nn.AvgPool2d(2),
    "avg-3x3-ceil-partial-windows": nn.AvgPool2d(3, ceil_mode=True),
    "adaptive-3x2": nn.AdaptiveAvgPool2d((3, 2)),
}


@pytest.mark.parametrize("case", list(CONV1X1_POOL_GRADIENT_CASES))
def test_pointwise_conv_then_average_pool_gradients(case):
    check_gradients(nn.Sequential(nn.Conv2d(6, 4, 1), CONV1X1_POOL_GRADIENT_CASES[case]), (2, 6, 10, 8))


@pytest.mark.parametrize("pool", [nn.MaxPool2d(3, stride=2, padding=1), nn.MaxPool2d(2, stride=1, dilation=2)])
def test_max_pool_gradient_goes_where_pytorch_puts_it(pool):
    """Ties (the first maximum in window order wins), a NaN (it wins from where it appears) and
    an all -inf plane (the first tap wins): the input gradient lands exactly where eager's does."""
    x = torch.randint(0, 3, (2, 3, 9, 8)).float()  # many ties in every window
    x[0, 1, 4, 3] = float("nan")
    x[1, 2] = float("-inf")
    sol_model = sol.optimize(nn.Sequential(pool).train(), x.size())
    weights = torch.randn_like(pool(x))
    grads = []
    for model in (sol_model, pool):
        xr = x.clone().requires_grad_(True)
        (model(xr) * weights).sum().backward()
        grads.append(xr.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=1e-6)


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
    batches = [(torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))) for _ in range(8)]
    assert_trains_like_pytorch(model, batches, OPTIMIZERS[optimizer], F.cross_entropy)


# ---------------------------------------------------------------- BatchNorm, clamp, dropout in training mode

UNARY_CLAMPS = {
    "relu6": F.relu6,
    "hardtanh": F.hardtanh,
    "clamp": lambda t: torch.clamp(t, -0.5, 0.8),
    "clamp-min": lambda t: torch.clamp(t, min=0.1),
}


@pytest.mark.parametrize("case", list(UNARY_CLAMPS))
def test_clamp_gradients(case):
    check_gradients(Affine((5, 1), lambda t: UNARY_CLAMPS[case](t * 4.0)), (3, 5, 7))


def test_clamp_gradient_at_the_bounds_follows_each_function():
    """torch.clamp passes the gradient at its bounds, hardtanh/ReLU6 do not; hardsigmoid and
    hardswish have their own rules at -3 and 3: inputs exactly on them."""
    x = torch.tensor([[-4.0, -3.0, -1.0, 0.0, 0.5, 3.0, 6.0, 7.0, 1.0, float("nan")]])
    for fn in (F.relu6, lambda t: torch.clamp(t, 0.0, 1.0), F.hardtanh, F.hardsigmoid, F.hardswish):
        model = Lambda(fn).train()
        sol_model = sol.optimize(model, x.size())
        xs, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
        sol_model(xs).sum().backward()
        fn(xr).sum().backward()
        torch.testing.assert_close(xs.grad, xr.grad, rtol=1e-6, atol=0)


BN_CASES = {
    "default": dict(),
    "momentum0.3-eps1e-3": dict(momentum=0.3, eps=1e-3),
    "no-affine": dict(affine=False),
    "no-running-stats": dict(track_running_stats=False),
}


@pytest.mark.parametrize("case", list(BN_CASES))
def test_batchnorm_training_gradients_and_running_statistics(case):
    def make():
        torch.manual_seed(3)
        model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6, **BN_CASES[case]), nn.ReLU())
        with torch.no_grad():
            if model[1].affine:
                model[1].weight.uniform_(0.5, 1.5)
                model[1].bias.uniform_(-0.5, 0.5)
        return model

    model, reference = make(), make()
    x = torch.randn(4, 3, 5, 7) * 2.0 + 0.5
    sol_model = sol.optimize(model, x.size())
    weights = torch.randn(4, 6, 5, 7)
    for _ in range(2):  # two steps: the second normalizes with statistics the first updated
        out, dx, grads = gradients_of(sol_model, x, weights)
        ref_out, ref_dx, ref_grads = gradients_of(reference, x, weights)
        assert_close(out, ref_out, "forward")
        assert_close(dx, ref_dx, "input gradient")
        for name, grad in ref_grads.items():
            assert_close(grads[name], grad, f"gradient of {name}")
    for (name, value), (_, expected) in zip(model[1].state_dict().items(), reference[1].state_dict().items()):
        if value.dtype == torch.long:
            assert torch.equal(value, expected), name
        else:
            assert_close(value, expected, name)


def test_train_and_eval_modes_keep_one_plan_each():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).train()
    reference = copy.deepcopy(model)
    sol_model = sol.optimize(model, (2, 3, 6, 6))
    x = torch.randn(2, 3, 6, 6)
    for mode in ("train", "eval", "train", "eval"):
        sol_model.train(mode == "train")
        reference.train(mode == "train")
        with torch.no_grad():
            assert_close(sol_model(x), reference(x), mode)
    assert_close(model[1].running_mean, reference[1].running_mean, "running mean after two training calls")
    modes = {key[-1] for key in sol_model._sol.compiled}
    assert modes == {"train", "eval"}, modes


def test_dropout_in_training_mode_draws_seeded_masks():
    """nn.Dropout in training mode: elements dropped with probability p, the rest scaled by 1/(1-p);
    the backward applies the same mask; sol.set_seed(n) replays a run, and each call draws anew."""
    p = 0.3
    model = nn.Sequential(nn.Linear(64, 256), nn.Dropout(p)).train()
    sol_model = sol.optimize(model, (32, 64))
    x = torch.randn(32, 64)
    sol.set_seed(7)
    first = sol_model(x)
    second = sol_model(x)
    sol.set_seed(7)
    replay = sol_model(x)
    assert torch.equal(first, replay), "the same seed must replay the same masks"
    assert not torch.equal(first, second), "successive calls must draw new masks"
    with torch.no_grad():
        dense = model[0](x)
    kept = first != 0
    torch.testing.assert_close(first[kept], dense[kept] / (1 - p), rtol=1e-5, atol=1e-6)
    # 8192 Bernoulli draws: the dropped fraction is p within 5 standard deviations.
    dropped = 1 - kept.float().mean().item()
    assert abs(dropped - p) < 5 * (p * (1 - p) / kept.numel()) ** 0.5, dropped
    # Backward: the input gradient flows through the kept elements only, scaled the same way.
    sol.set_seed(11)
    xg = x.clone().requires_grad_(True)
    out = sol_model(xg)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    mask = (out != 0).float() / (1 - p)
    expected = (weights * mask) @ model[0].weight
    torch.testing.assert_close(xg.grad, expected, rtol=1e-5, atol=1e-5)
    sol_model.eval()
    assert torch.equal(sol_model(x), sol_model(x)), "eval mode is the identity"


def test_dropout_variants_without_support_are_refused_clearly():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout2d(0.5))
    with pytest.raises(sol.UnsupportedError, match=r"Dropout2d\(p=0.5\) in training mode"):
        sol.optimize(model.train(), (2, 3, 6, 6))  # compiles the mode the model is in
    zero = sol.optimize(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.0)).train(), (2, 4))  # p=0: the identity
    zero(torch.randn(2, 4)).sum().backward()


class FunctionalDropoutMLP(nn.Module):
    """Dropout written as `F.dropout(x, p, training=self.training)`, as many models do."""

    def __init__(self, p):
        super().__init__()
        self.fc1, self.fc2, self.p = nn.Linear(64, 256), nn.Linear(256, 8), p

    def forward(self, x):
        return self.fc2(F.dropout(torch.relu(self.fc1(x)), self.p, training=self.training))


def test_functional_dropout_follows_the_mode():
    """The model is traced once per mode, so F.dropout(training=self.training) draws the same
    seeded masks as nn.Dropout in training mode (gradients through the same mask) and is the
    identity in eval mode."""
    torch.manual_seed(0)
    functional = FunctionalDropoutMLP(0.3).train()
    module_form = nn.Sequential(functional.fc1, nn.ReLU(), nn.Dropout(0.3), functional.fc2).train()
    sol_functional, sol_module_form = sol.optimize(functional, (32, 64)), sol.optimize(module_form, (32, 64))
    x = torch.randn(32, 64)
    outputs, gradients = [], []
    for model in (sol_functional, sol_module_form):
        sol.set_seed(5)
        xg = x.clone().requires_grad_(True)
        out = model(xg)
        out.sum().backward()
        outputs.append(out.detach())
        gradients.append(xg.grad)
    # The same masks; the kernels around them may differ (fusion sees two graphs), so values to rounding.
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gradients[0], gradients[1], rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        eager_without_dropout = functional.eval()(x)
    assert not torch.allclose(outputs[0], eager_without_dropout, atol=1e-3), "training mode dropped nothing"
    sol_functional.eval()
    with torch.no_grad():
        torch.testing.assert_close(sol_functional(x), eager_without_dropout, rtol=1e-5, atol=1e-5)


def test_optimize_keeps_each_submodule_mode():
    """Tracing in both modes must not unfreeze a BatchNorm kept in eval inside a training model."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).train()
    model[1].eval()
    sol_model = sol.optimize(model, (2, 3, 8, 8))
    assert model.training and not model[1].training
    assert sol_model.training and not sol_model.get_submodule("1").training


class AuxiliaryHead(nn.Module):
    """A branch on self.training (GoogLeNet's auxiliary logits): train mode returns two tensors."""

    def __init__(self):
        super().__init__()
        self.fc, self.aux = nn.Linear(6, 3), nn.Linear(6, 2)

    def forward(self, x):
        if self.training:
            return self.fc(x), self.aux(x)
        return self.fc(x)


def test_branch_on_training_flag_gives_each_mode_its_outputs():
    model = AuxiliaryHead().eval()
    x = torch.randn(4, 6)
    sol_model = sol.optimize(model, x.size())
    with torch.no_grad():
        torch.testing.assert_close(sol_model(x), model(x), rtol=1e-5, atol=1e-5)
        sol_model.train()
        model.train()
        out, aux = sol_model(x)
        ref_out, ref_aux = model(x)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(aux, ref_aux, rtol=1e-5, atol=1e-5)


class AlwaysDropout(nn.Module):
    """F.dropout's default training=True: no module to read a mode from, the same code in both traces."""

    def forward(self, x):
        return F.dropout(x * 2.0, 0.5)


def test_functional_dropout_forced_on_draws_new_masks_in_training_and_is_refused_in_eval():
    sol_model = sol.optimize(AlwaysDropout().train(), (64, 64))
    x = torch.randn(64, 64)
    first, second = sol_model(x), sol_model(x.requires_grad_(True))
    assert not torch.equal(first, second.detach()), "each training-mode call draws a new mask"
    assert 0.3 < (first == 0).float().mean().item() < 0.7
    sol_model.eval()
    with pytest.raises(sol.UnsupportedError, match=r"dropout with training=True in eval mode"):
        sol_model(x)


def test_zoo_mlp_with_dropout_trains():
    """The zoo's MLP (dropout 0.1) in training mode: loss goes down over SGD steps."""
    from zoo_models import MLP as ZooMLP

    torch.manual_seed(6)
    model = ZooMLP().train()
    sol_model = sol.optimize(model, (32, 64))
    x, target = torch.randn(32, 64), torch.randint(0, 10, (32,))
    optimizer = torch.optim.SGD(sol_model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(sol_model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


class SmallCNNWithBN(nn.Module):
    """No bias in front of a BatchNorm: its gradient is zero in exact arithmetic, so any two
    implementations train it on rounding noise alone (Adam normalizes that noise to full steps)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                                      nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


def float_state(model):
    return torch.cat([v.flatten() for v in model.state_dict().values() if v.is_floating_point()])


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_small_cnn_with_batchnorm_training_parity(optimizer):
    torch.manual_seed(5)
    model = SmallCNNWithBN().train()
    batches = [(torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))) for _ in range(8)]
    assert_trains_like_pytorch(model, batches, OPTIMIZERS[optimizer], F.cross_entropy, autotuning=False)


# Deep networks (64x64, batch 8, 3 steps of SGD lr 0.01 with momentum 0.9, or Adam lr 1e-3): the
# relative L2 of all parameters and buffers together must be at most twice what PyTorch's own
# channels_last run deviates from its default run, or 1e-2. Per op, gradients match PyTorch to
# 1e-5 (above); what grows here is ReLU's discontinuity: a pre-activation within rounding of zero
# (one was at 6e-7 in resnet18) lands on the other side of the mask than in PyTorch, which changes
# a BatchNorm gradient by ~1e-2, and momentum or Adam carries that on. PyTorch switching only its
# memory format deviates by the same order (mobilenet_v2: 2e-2 for both), so a tolerance of 1e-4
# cannot hold for any two implementations. autotuning=False keeps the kernels, and so the numbers,
# the same on every machine.
DEEP_OPTIMIZERS = {
    "sgd-momentum": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
}
DEEP_NETWORKS = {
    "resnet18": lambda: __import__("torchvision").models.resnet18(num_classes=10),
    "mobilenet_v2-dropout-off": lambda: __import__("torchvision").models.mobilenet_v2(num_classes=10, dropout=0.0),
    "densenet121": lambda: __import__("torchvision").models.densenet121(num_classes=10),
    # chunk (slice) gradients and the channel shuffle (reshape, transpose)
    "shufflenet_v2_x0_5": lambda: __import__("torchvision").models.shufflenet_v2_x0_5(num_classes=10),
}


@pytest.mark.parametrize("optimizer", list(DEEP_OPTIMIZERS))
@pytest.mark.parametrize("name", list(DEEP_NETWORKS))
def test_deep_network_training_parity(name, optimizer):
    torch.manual_seed(0)
    model = DEEP_NETWORKS[name]().train()
    reference = copy.deepcopy(model)
    channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    initial = float_state(model)
    batches = [(torch.randn(8, 3, 64, 64), torch.randint(0, 10, (8,))) for _ in range(3)]
    sol_model = sol.optimize(model, (8, 3, 64, 64), autotuning=False)
    loss_fn = lambda out, t: F.cross_entropy(out, t)  # noqa: E731
    train_steps(sol_model, DEEP_OPTIMIZERS[optimizer], batches, loss_fn)
    train_steps(reference, DEEP_OPTIMIZERS[optimizer], batches, loss_fn)
    train_steps(channels_last, DEEP_OPTIMIZERS[optimizer],
                [(x.to(memory_format=torch.channels_last), t) for x, t in batches], loss_fn)
    deviation = relative_l2(float_state(model), float_state(reference))
    own = relative_l2(float_state(channels_last), float_state(reference))
    print(f"{name} {optimizer}: SOL vs eager {deviation:.2e}; eager channels_last vs eager {own:.2e}")
    assert deviation <= max(2 * own, 1e-2)
    assert relative_l2(float_state(model), initial) > max(deviation, 1e-3), "the parameters barely moved"
    for (key, value), (_, expected) in zip(model.state_dict().items(), reference.state_dict().items()):
        if not value.is_floating_point():
            assert torch.equal(value, expected), key


# ---------------------------------------------------------------- distributed


def test_distributed_data_parallel_matches_plain_pytorch(tmp_path):
    """Two processes on localhost (gloo): DDP around the SOL model trains to the same weights and
    BatchNorm statistics as DDP around the PyTorch model, on every rank. SOL knows nothing of DDP:
    gradients reach the parameters through autograd, where DDP's hooks all-reduce them."""
    import socket

    import torch.multiprocessing as mp

    import _ddp_worker

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_ddp_worker.run, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    states = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    for rank, state in enumerate(states):
        for key, expected in state["eager"].items():
            value = state["sol"][key]
            if value.is_floating_point():
                assert relative_l2(value, expected) <= 1e-4, f"rank {rank}: {key}"
            else:
                assert torch.equal(value, expected), f"rank {rank}: {key}"
    # DDP keeps the replicas' parameters equal (the BatchNorm statistics each rank updated with its own
    # last batch, after DDP broadcast rank 0's at the start of the call, differ, as in PyTorch).
    for key, value in states[0]["sol"].items():
        if "running" not in key and "num_batches" not in key:
            assert torch.equal(value, states[1]["sol"][key]), key
