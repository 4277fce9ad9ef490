"""Conv2d and Linear, module and functional forms, against PyTorch eager (fp32)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from solcheck import check_module

# (input shape, Conv2d arguments)
CONV_CASES = {
    "3x3-valid": ((2, 3, 8, 8), dict(in_channels=3, out_channels=4, kernel_size=3)),
    "3x3-pad1-odd-nonsquare-input": ((1, 3, 7, 9), dict(in_channels=3, out_channels=5, kernel_size=3, padding=1)),
    "3x3-stride2-pad1": ((2, 4, 9, 9), dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1)),
    "3x5-kernel-stride(2,1)-pad(1,2)": ((1, 3, 11, 10), dict(in_channels=3, out_channels=4, kernel_size=(3, 5),
                                                              stride=(2, 1), padding=(1, 2))),
    "dilation2-pad2": ((1, 2, 10, 10), dict(in_channels=2, out_channels=3, kernel_size=3, dilation=2, padding=2)),
    "2x3-kernel-dilation(2,1)-stride(1,2)": ((1, 3, 12, 9), dict(in_channels=3, out_channels=4, kernel_size=(2, 3),
                                                                  dilation=(2, 1), stride=(1, 2))),
    "groups2": ((2, 6, 8, 8), dict(in_channels=6, out_channels=4, kernel_size=3, groups=2, padding=1)),
    "groups3-nobias": ((1, 6, 7, 7), dict(in_channels=6, out_channels=9, kernel_size=3, groups=3, bias=False)),
    "depthwise": ((2, 8, 9, 9), dict(in_channels=8, out_channels=8, kernel_size=3, groups=8, padding=1)),
    "depthwise-multiplier2-stride2-nobias": ((1, 4, 8, 8), dict(in_channels=4, out_channels=8, kernel_size=3,
                                                                 groups=4, stride=2, bias=False)),
    "1x1": ((2, 16, 5, 5), dict(in_channels=16, out_channels=7, kernel_size=1)),
    "1x1-stride2-nobias": ((1, 8, 7, 7), dict(in_channels=8, out_channels=4, kernel_size=1, stride=2, bias=False)),
    "7x7-stride2-pad3-stem": ((1, 3, 15, 15), dict(in_channels=3, out_channels=8, kernel_size=7, stride=2,
                                                    padding=3, bias=False)),
    "asymmetric-padding(2,0)": ((1, 1, 5, 5), dict(in_channels=1, out_channels=1, kernel_size=3, padding=(2, 0))),
    "kernel-equals-input": ((2, 3, 4, 4), dict(in_channels=3, out_channels=5, kernel_size=4)),
    "5x5-stride3-single-channel": ((3, 1, 13, 6), dict(in_channels=1, out_channels=2, kernel_size=5, stride=3)),
    "padding-same": ((1, 3, 6, 7), dict(in_channels=3, out_channels=4, kernel_size=3, padding="same")),
    "many-channels-odd": ((1, 37, 6, 5), dict(in_channels=37, out_channels=19, kernel_size=3, padding=1)),
    "larger-parallel": ((4, 16, 28, 28), dict(in_channels=16, out_channels=32, kernel_size=3, padding=1)),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv2d(case):
    shape, kwargs = CONV_CASES[case]
    model = nn.Sequential(nn.Conv2d(**kwargs))
    check_module(model, torch.randn(shape))


class FunctionalConv(nn.Module):
    """F.conv2d with parameters held by the module (fx get_attr nodes)."""

    def __init__(self, cin, cout, k, bias, stride, padding, dilation, groups):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin // groups, k, k) * 0.3)
        self.bias = nn.Parameter(torch.randn(cout)) if bias else None
        self.args = (stride, padding, dilation, groups)

    def forward(self, x):
        stride, padding, dilation, groups = self.args
        return F.conv2d(x, self.weight, self.bias, stride, padding, dilation, groups)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_functional_conv2d(bias):
    model = FunctionalConv(4, 6, 3, bias, stride=2, padding=1, dilation=1, groups=2)
    check_module(model, torch.randn(2, 4, 9, 7))


def test_functional_conv2d_keyword_arguments():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(5, 3, 3, 3) * 0.3)

        def forward(self, x):
            return F.conv2d(x, self.w, padding=(1, 0), stride=(1, 2))

    check_module(M(), torch.randn(1, 3, 8, 8))


# (input shape, in features, out features, bias)
LINEAR_CASES = {
    "2d": ((3, 10), 10, 7, True),
    "2d-nobias-batch1": ((1, 10), 10, 7, False),
    "3d": ((2, 5, 6), 6, 4, True),
    "3d-nobias": ((2, 5, 6), 6, 4, False),
    "4d": ((2, 3, 2, 6), 6, 3, True),
    "odd-wide": ((3, 67), 67, 33, True),
    "single-output": ((4, 9), 9, 1, True),
    "larger-parallel": ((16, 300), 300, 257, True),
}


@pytest.mark.parametrize("case", list(LINEAR_CASES))
def test_linear(case):
    shape, fin, fout, bias = LINEAR_CASES[case]
    model = nn.Sequential(nn.Linear(fin, fout, bias=bias))
    check_module(model, torch.randn(shape))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_functional_linear(bias):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(5, 8))
            self.bias = nn.Parameter(torch.randn(5)) if bias else None

        def forward(self, x):
            return F.linear(x, self.weight, self.bias)

    check_module(M(), torch.randn(3, 8))


def test_conv_bias_relu_chain():
    """The fusion the issue names: conv + bias + ReLU as one kernel."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1), nn.ReLU6())
    check_module(model, torch.randn(2, 3, 9, 9))


def _randomize_batchnorms(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("layout", ["default", "blocked", "channels_last"])
def test_expansion_then_depthwise(stride, layout, monkeypatch):
    """MobileNetV2's block: conv1x1 expanding 16 -> 96 channels -> BN -> ReLU6 -> depthwise 3x3 ->
    BN -> ReLU6 -> conv1x1 -> BN. With stride 2 on channel blocks (SOL_LAYOUT=blocked) on an
    AVX-512 host, oneDNN computes the depthwise convolution inside the 1x1 one
    (passes/merge_depthwise_into_pointwise); stride 1 keeps two kernels, and so does NHWC (oneDNN
    2.6's fused kernel computes wrong numbers there). Every way must give eager's numbers."""
    if layout != "default":
        monkeypatch.setenv("SOL_LAYOUT", layout)
    torch.manual_seed(0)
    model = _randomize_batchnorms(nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),  # so the expansion reads a tensor between two kernels
        nn.Conv2d(16, 96, 1, bias=False), nn.BatchNorm2d(96), nn.ReLU6(),
        nn.Conv2d(96, 96, 3, stride, 1, groups=96, bias=False), nn.BatchNorm2d(96), nn.ReLU6(),
        nn.Conv2d(96, 24, 1, bias=False), nn.BatchNorm2d(24)))
    check_module(model, torch.randn(2, 3, 56, 56))
