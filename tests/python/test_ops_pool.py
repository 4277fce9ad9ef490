"""MaxPool2d, AvgPool2d, AdaptiveAvgPool2d and their functional forms."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from solcheck import Lambda, check_module, eager, optimize

# (input shape, MaxPool2d arguments)
MAXPOOL_CASES = {
    "k2": ((2, 3, 8, 8), dict(kernel_size=2)),
    "k3-default-stride-floor": ((1, 1, 7, 7), dict(kernel_size=3)),
    "k3-s2-odd": ((1, 2, 9, 7), dict(kernel_size=3, stride=2)),
    "k3-s2-p1": ((1, 2, 9, 9), dict(kernel_size=3, stride=2, padding=1)),
    "k3-s2-ceil": ((1, 3, 10, 10), dict(kernel_size=3, stride=2, ceil_mode=True)),
    "k3-s2-p1-ceil": ((1, 2, 11, 11), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    "k(2,3)-s(1,2)": ((1, 2, 8, 11), dict(kernel_size=(2, 3), stride=(1, 2))),
    "k2-s1-dilation2": ((1, 2, 9, 9), dict(kernel_size=2, stride=1, dilation=2)),
}


@pytest.mark.parametrize("case", list(MAXPOOL_CASES))
def test_maxpool2d(case):
    shape, kwargs = MAXPOOL_CASES[case]
    check_module(nn.Sequential(nn.MaxPool2d(**kwargs)), torch.randn(shape))


@pytest.mark.parametrize("layout", ["default", "blocked"])
@pytest.mark.parametrize("channels", [32, 58])
def test_channel_blocked_maxpool_keeps_nans_and_pads_with_minus_infinity(layout, channels, monkeypatch):
    """Between two convolutions the pool reads channel blocks (NHWC on AVX-512, a register of lanes
    at a time: 16 of 32 channels, 2 of 58; NCHW16c/8c under SOL_LAYOUT=blocked and on AVX2):
    NaNs from one input pixel reach the windows around it, as in PyTorch, and all-negative
    values beside the padding stay (the padding acts as -inf)."""
    if layout != "default":
        monkeypatch.setenv("SOL_LAYOUT", layout)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.MaxPool2d(3, 2, padding=1),
                          nn.Conv2d(channels, 16, 1)).eval()
    with torch.no_grad():
        model[0].bias.fill_(-50.0)  # every conv output negative but near the NaN
    x = torch.rand(1, 3, 13, 13)
    x[0, 1, 6, 4] = float("nan")
    expected = eager(model, x)
    assert expected.isnan().any() and not expected.isnan().all(), "test set-up: some windows see the NaN"
    torch.testing.assert_close(optimize(model, x)(x), expected, rtol=1e-4, atol=1e-4, equal_nan=True)


@pytest.mark.parametrize("layout", ["default", "blocked"])
def test_channel_blocked_maxpool_with_infinities_of_both_signs(layout, monkeypatch):
    """The blocked max pool notices NaN taps by summing each output row's taps; +inf and -inf in
    one row also sum to NaN. Such rows are computed again tap by tap: +inf wins, nothing is NaN."""
    if layout != "default":
        monkeypatch.setenv("SOL_LAYOUT", layout)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.MaxPool2d(3, 2, padding=1),
                          nn.Conv2d(32, 16, 1)).eval()
    with torch.no_grad():
        model[2].weight.abs_()  # +inf pooled anywhere stays +inf; a wrong NaN would show
    x = torch.rand(1, 3, 13, 13)
    x[0, 1, 6, 4] = float("inf")  # the first conv's outputs around it: +inf or -inf by the tap's sign
    expected = eager(model, x)
    assert expected.isinf().any() and not expected.isnan().any(), "test set-up: infinities, no NaN"
    torch.testing.assert_close(optimize(model, x)(x), expected, rtol=1e-4, atol=1e-4)


def test_maxpool2d_all_negative_padded():
    """Padding must act as -inf, not 0: with all-negative inputs a zero would win."""
    check_module(nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1)), -torch.rand(1, 2, 6, 6) - 1,
                 make_input=lambda: -torch.rand(1, 2, 6, 6) - 1)


# (input shape, AvgPool2d arguments)
AVGPOOL_CASES = {
    "k2": ((2, 3, 8, 8), dict(kernel_size=2)),
    "k2-s1-overlapping": ((1, 2, 5, 6), dict(kernel_size=2, stride=1)),
    "k3-s2-p1-include-pad": ((1, 2, 9, 9), dict(kernel_size=3, stride=2, padding=1)),
    "k3-s2-p1-exclude-pad": ((1, 2, 9, 9), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    "k3-s2-ceil": ((1, 2, 10, 10), dict(kernel_size=3, stride=2, ceil_mode=True)),
    "k3-s2-p1-ceil-include-pad": ((1, 2, 10, 10), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    "k3-s2-p1-ceil-exclude-pad": ((1, 2, 10, 10), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                                        count_include_pad=False)),
    "k(3,2)-s(2,1)-divisor4": ((1, 3, 7, 6), dict(kernel_size=(3, 2), stride=(2, 1), divisor_override=4)),
    "k3-p1-divisor5-ceil": ((1, 1, 8, 8), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                               divisor_override=5)),
}


@pytest.mark.parametrize("case", list(AVGPOOL_CASES))
def test_avgpool2d(case):
    shape, kwargs = AVGPOOL_CASES[case]
    check_module(nn.Sequential(nn.AvgPool2d(**kwargs)), torch.randn(shape))


# (input shape, output size)
ADAPTIVE_CASES = {
    "1x1": ((2, 3, 7, 9), (1, 1)),
    "int-1": ((1, 4, 5, 5), 1),
    "2x3-non-divisible": ((1, 3, 7, 9), (2, 3)),
    "3x4-non-divisible": ((1, 3, 7, 9), (3, 4)),
    "4x4-divisible": ((2, 4, 8, 8), (4, 4)),
    "identity": ((1, 2, 7, 9), (7, 9)),
    "none-keeps-height": ((1, 2, 6, 9), (None, 4)),
    "larger-than-input": ((1, 2, 3, 4), (5, 6)),
}


@pytest.mark.parametrize("case", list(ADAPTIVE_CASES))
def test_adaptive_avgpool2d(case):
    shape, size = ADAPTIVE_CASES[case]
    check_module(nn.Sequential(nn.AdaptiveAvgPool2d(size)), torch.randn(shape))


# A 1x1 convolution read by an average pool. SOL pools first where that is the same function
# (passes/pool_before_pointwise_conv): plain averages, whose window weights sum to one, so the
# bias passes through. The biases are large, so a pool moved where its weights do not sum to one
# (padding counted in the divisor, divisor_override) would be off by far more than the tolerance.
# (input shape, convolution, pool)
CONV1X1_POOL_CASES = {
    "avg-2x2": ((2, 16, 8, 8), nn.Conv2d(16, 8, 1), nn.AvgPool2d(2)),
    "avg-3x3-ceil-partial-windows": ((2, 8, 10, 10), nn.Conv2d(8, 12, 1), nn.AvgPool2d(3, ceil_mode=True)),
    "avg-2x2-grouped": ((1, 8, 6, 6), nn.Conv2d(8, 8, 1, groups=2), nn.AvgPool2d(2)),
    "avg-3x3-s1-overlapping": ((1, 4, 7, 7), nn.Conv2d(4, 32, 1), nn.AvgPool2d(3, stride=1)),
    "adaptive-3x2": ((2, 8, 9, 7), nn.Conv2d(8, 12, 1), nn.AdaptiveAvgPool2d((3, 2))),
    "adaptive-global": ((2, 8, 5, 5), nn.Conv2d(8, 12, 1), nn.AdaptiveAvgPool2d(1)),
    "stays-padded-include-pad": ((1, 8, 6, 6), nn.Conv2d(8, 4, 1), nn.AvgPool2d(2, padding=1)),
    "stays-divisor-override": ((1, 8, 6, 6), nn.Conv2d(8, 4, 1), nn.AvgPool2d(2, divisor_override=3)),
}


@pytest.mark.parametrize("case", list(CONV1X1_POOL_CASES))
def test_pointwise_conv_then_average_pool(case):
    shape, conv, pool = CONV1X1_POOL_CASES[case]
    torch.manual_seed(0)
    with torch.no_grad():
        conv.bias.uniform_(5.0, 10.0)
    check_module(nn.Sequential(conv, pool), torch.randn(shape))


@pytest.mark.parametrize("layout", ["default", "blocked"])
def test_densenet_transition(layout, monkeypatch):
    """DenseNet's transition, BN -> ReLU -> conv1x1 -> avg_pool 2x2, with BN folded: SOL pools
    before the convolution, and BN -> ReLU -> pool become one kernel."""
    if layout != "default":
        monkeypatch.setenv("SOL_LAYOUT", layout)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                          nn.Conv2d(64, 32, 1, bias=False), nn.AvgPool2d(2, stride=2))
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
        model[1].weight.uniform_(0.5, 2)
        model[1].bias.uniform_(-1, 1)
    check_module(model, torch.randn(2, 3, 14, 14))


FUNCTIONAL_POOLS = {
    "F.max_pool2d": lambda x: F.max_pool2d(x, 3, 2, 1),
    "F.max_pool2d-kw-ceil": lambda x: F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True),
    "F.avg_pool2d": lambda x: F.avg_pool2d(x, 2, ceil_mode=True),
    "F.avg_pool2d-exclude-pad": lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
    "F.adaptive_avg_pool2d": lambda x: F.adaptive_avg_pool2d(x, (2, 2)),
    "flatten(adaptive_avg_pool2d(x,1))": lambda x: torch.flatten(F.adaptive_avg_pool2d(x, 1), 1),
}


@pytest.mark.parametrize("name", list(FUNCTIONAL_POOLS))
def test_pool_functional(name):
    check_module(Lambda(FUNCTIONAL_POOLS[name], name), torch.randn(2, 3, 7, 7))
