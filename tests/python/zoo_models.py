"""The model zoo of issue 3: every network the talks list, shared by tests/python/test_zoo.py
and bench/zoo_table.py.

Networks are the real torchvision definitions with random weights (no downloads), in eval
mode, with randomized BatchNorm running statistics and affine parameters (a trained network's
are not the 0/1 defaults, and folding them must be exercised). torchvision has no MobileNet v1,
so a standard depthwise-separable one (Howard et al., 2017) is defined here, as are the three
small non-convolutional models (MLP, linear and logistic regression).

    from zoo_models import ZOO, build, make_input
    model = build("resnet50")                       # seeded, BN randomized, eval()
    x = make_input("resnet50", batch=1, size=(32, 32))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

# --------------------------------------------------------------------- extra models


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _conv_dw(cin: int, cout: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 (groups = channels) + BN + ReLU, then pointwise 1x1 + BN + ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class MobileNetV1(nn.Module):
    """Standard MobileNet v1 (width 1.0): 3x3 conv, 13 depthwise-separable blocks, global
    average pooling and a linear classifier; 4.2 M parameters for 1000 classes."""

    # (output channels, stride) of the 13 depthwise-separable blocks
    BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
              (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]

    def __init__(self, num_classes: int = 1000, width: float = 1.0):
        super().__init__()
        c = int(32 * width)
        layers = [_conv_bn(3, c, 2)]
        for cout, stride in self.BLOCKS:
            layers.append(_conv_dw(c, int(cout * width), stride))
            c = int(cout * width)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class MLP(nn.Module):
    """A multi-layer perceptron: 3 hidden layers, ReLU, dropout (identity in eval)."""

    def __init__(self, features: int = 64, hidden: int = 128, classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Dropout(0.1),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(0.1),
            nn.Linear(hidden, hidden // 2), nn.ReLU(inplace=True),
            nn.Linear(hidden // 2, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LinearRegression(nn.Module):
    def __init__(self, features: int = 13, outputs: int = 1):
        super().__init__()
        self.linear = nn.Linear(features, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class LogisticRegression(nn.Module):
    """Multinomial logistic regression: class probabilities (softmax of a linear map)."""

    def __init__(self, features: int = 30, classes: int = 4):
        super().__init__()
        self.linear = nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(x), dim=-1)


# --------------------------------------------------------------------- the zoo


def _tv(name: str, **kwargs) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import torchvision

        return torchvision.models.get_model(name, weights=None, **kwargs)

    make.__name__ = f"torchvision.models.{name}"
    return make


@dataclass(frozen=True)
class Net:
    """One zoo network.

    ci: the two CI configurations, (batch, height, width) for images or (batch, *feature
    shape) for the non-image models: batch 1 at a square size and batch > 1 at a non-square
    size, each close to the smallest size PyTorch accepts for the network, to keep CI short.
    bench: the (height, width) of the 224x224 table (299 for inception_v3), or the feature
    shape of the non-image models.
    """

    name: str
    family: str
    make: Callable[[], nn.Module]
    ci: tuple[tuple[int, ...], tuple[int, ...]]
    bench: tuple[int, ...] = (224, 224)
    image: bool = True
    notes: str = ""


def _nets() -> list[Net]:
    S32 = ((1, 32, 32), (2, 32, 48))  # five stride-2 stages: 32 px leaves a 1x1 map
    nets = [
        # AlexNet: conv 11/4 and three 3/2 max pools; 63 px is the smallest input
        Net("alexnet", "AlexNet", _tv("alexnet"), ((1, 63, 63), (2, 63, 79))),
        Net("squeezenet1_0", "SqueezeNet", _tv("squeezenet1_0"), ((1, 35, 35), (2, 35, 51))),
        Net("squeezenet1_1", "SqueezeNet", _tv("squeezenet1_1"), ((1, 35, 35), (2, 35, 51))),
    ]
    for depth in (11, 13, 16, 19):
        for bn in ("", "_bn"):
            name = f"vgg{depth}{bn}"
            nets.append(Net(name, "VGG", _tv(name), S32))
    for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
        nets.append(Net(name, "ResNet", _tv(name), S32))
    for name in ("densenet121", "densenet161", "densenet169", "densenet201"):
        nets.append(Net(name, "DenseNet", _tv(name), S32))
    # Inception v3: its stem and the stride-2 reductions need 75 px. init_weights=True
    # avoids torchvision's FutureWarning about the default init changing.
    for aux in (True, False):
        suffix = "" if aux else "_noaux"
        nets.append(Net(f"inception_v3{suffix}", "Inception / GoogLeNet",
                        _tv("inception_v3", aux_logits=aux, init_weights=True),
                        ((1, 75, 75), (2, 75, 91)), bench=(299, 299),
                        notes="eval mode; aux heads " + ("built (unused in eval)" if aux else "not built")))
        nets.append(Net(f"googlenet{suffix}", "Inception / GoogLeNet",
                        _tv("googlenet", aux_logits=aux, init_weights=True),
                        ((1, 32, 32), (2, 32, 48)),
                        notes="eval mode; aux heads " + ("built (unused in eval)" if aux else "not built")))
    nets += [
        Net("mobilenet_v1", "MobileNet", MobileNetV1, S32, notes="defined in tests/python/zoo_models.py"),
        Net("mobilenet_v2", "MobileNet", _tv("mobilenet_v2"), S32),
        Net("mobilenet_v3_small", "MobileNet", _tv("mobilenet_v3_small"), S32),
        Net("mobilenet_v3_large", "MobileNet", _tv("mobilenet_v3_large"), S32),
    ]
    for name in ("mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"):
        nets.append(Net(name, "MNasNet", _tv(name), S32))
    for name in ("shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"):
        nets.append(Net(name, "ShuffleNet V2", _tv(name), S32))
    nets += [
        Net("resnext50_32x4d", "ResNeXt", _tv("resnext50_32x4d"), S32),
        Net("resnext101_32x8d", "ResNeXt", _tv("resnext101_32x8d"), S32),
        Net("wide_resnet50_2", "WideResNet", _tv("wide_resnet50_2"), S32),
        Net("wide_resnet101_2", "WideResNet", _tv("wide_resnet101_2"), S32),
        # non-image models: (batch, features) and (batch, extra dim, features) — nn.Linear
        # maps the last dimension, so a 3-D input is the "other shape" here
        Net("mlp", "others", MLP, ((1, 64), (3, 5, 64)), bench=(64,), image=False),
        Net("linear_regression", "others", LinearRegression, ((1, 13), (3, 7, 13)), bench=(13,), image=False),
        Net("logistic_regression", "others", LogisticRegression, ((1, 30), (3, 7, 30)), bench=(30,), image=False),
    ]
    return nets


ZOO: dict[str, Net] = {net.name: net for net in _nets()}


def randomize_batchnorms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random running statistics and affine parameters for every BatchNorm (1d/2d/3d):
    what a trained network has, instead of the 0/1 defaults that make BN the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                if m.running_mean is not None:
                    m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                    m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
                    m.bias.copy_(torch.randn(c, generator=g) * 0.1)
    return model


def build(name: str, seed: int = 0) -> nn.Module:
    """The zoo network `name`: seeded random weights, randomized BatchNorm, eval mode."""
    torch.manual_seed(seed)
    model = ZOO[name].make()
    return randomize_batchnorms(model, seed).eval()


def input_shape(name: str, batch: int, size: tuple[int, ...]) -> tuple[int, ...]:
    """(batch, 3, h, w) for image networks, (batch, *size) for the others."""
    return (batch, 3, *size) if ZOO[name].image else (batch, *size)


def make_input(name: str, batch: int, size: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = input_shape(name, batch, size)
    if ZOO[name].image:
        return torch.rand(shape, generator=g)  # an image in [0, 1)
    return torch.randn(shape, generator=g)


def relative_l2(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref||_2 / ||ref||_2 in float64."""
    a, b = out.detach().double(), ref.detach().double()
    return ((a - b).norm() / max(b.norm().item(), 1e-30)).item()


def max_relative(out: torch.Tensor, ref: torch.Tensor) -> float:
    """max|out - ref| / max|ref| in float64 (SOL's per-op criterion)."""
    a, b = out.detach().double(), ref.detach().double()
    return ((a - b).abs().max() / max(b.abs().max().item(), 1e-30)).item()
