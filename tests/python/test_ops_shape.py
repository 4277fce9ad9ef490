"""Flatten / view / reshape, cat, softmax / log_softmax and Dropout (eval)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from solcheck import Lambda, check_module

X4 = (2, 3, 4, 5)

RESHAPES = {
    "nn.Flatten": lambda: nn.Flatten(),
    "nn.Flatten(2)": lambda: nn.Flatten(2),
    "nn.Flatten(1,2)": lambda: nn.Flatten(1, 2),
    "torch.flatten(x,1)": lambda: Lambda(lambda x: torch.flatten(x, 1)),
    "Tensor.flatten(1)": lambda: Lambda(lambda x: x.flatten(1)),
    "view(x.size(0),-1)": lambda: Lambda(lambda x: x.view(x.size(0), -1)),
    "view(-1,5)": lambda: Lambda(lambda x: x.view(-1, 5)),
    "reshape(2,12,5)": lambda: Lambda(lambda x: x.reshape(2, 12, 5)),
    "reshape(x.shape[0],3,-1)": lambda: Lambda(lambda x: x.reshape(x.shape[0], 3, -1)),
    "torch.reshape(x,(-1,))": lambda: Lambda(lambda x: torch.reshape(x, (-1,))),
}


@pytest.mark.parametrize("name", list(RESHAPES))
def test_reshape(name):
    # a multiply before the reshape, so SOL has to compute something and not just alias
    model = nn.Sequential(Lambda(lambda x: x * 1.5), RESHAPES[name]())
    check_module(model, torch.randn(X4))


class ConvFlattenLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 2 * 3, 6)

    def forward(self, x):
        y = F.relu(self.conv(x))
        return self.fc(y.view(y.size(0), -1))


def test_view_between_conv_and_linear():
    check_module(ConvFlattenLinear(), torch.randn(3, 3, 4, 5))


CATS = {
    "dim1-channels": lambda x: torch.cat([x, x * 2], dim=1),
    "dim0": lambda x: torch.cat([x * 3, x], 0),
    "dim-1-three-inputs": lambda x: torch.cat((x, torch.sigmoid(x), x - 1), dim=-1),
    "dim2": lambda x: torch.cat([x.relu(), x], dim=2),
    "torch.concat-pooled": lambda x: torch.concat([F.max_pool2d(x, 2), F.avg_pool2d(x, 2)], dim=1),
}


@pytest.mark.parametrize("name", list(CATS))
def test_cat(name):
    check_module(Lambda(CATS[name], name), torch.randn(2, 3, 4, 6))


class CatConvBranches(nn.Module):
    """Inception-style: branches with different channel counts concatenated."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 2, 1)
        self.b = nn.Conv2d(3, 5, 3, padding=1)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x), x], 1)


def test_cat_conv_branches():
    check_module(CatConvBranches(), torch.randn(2, 3, 5, 5))


SOFTMAXES = {
    "nn.Softmax(dim=1)-4d": (lambda: nn.Softmax(dim=1), (2, 5, 3, 4)),
    "nn.Softmax(dim=-1)-2d": (lambda: nn.Softmax(dim=-1), (3, 10)),
    "nn.LogSoftmax(dim=1)-2d": (lambda: nn.LogSoftmax(dim=1), (3, 10)),
    "F.softmax(dim=0)": (lambda: Lambda(lambda x: F.softmax(x, dim=0)), (3, 4, 5)),
    "F.log_softmax(dim=-1)-4d": (lambda: Lambda(lambda x: F.log_softmax(x, dim=-1)), (2, 3, 4, 7)),
    "Tensor.softmax(2)": (lambda: Lambda(lambda x: x.softmax(2)), (2, 3, 6, 2)),
    "torch.log_softmax(dim=3)": (lambda: Lambda(lambda x: torch.log_softmax(x, dim=3)), (1, 2, 3, 9)),
    "torch.softmax(dim=1)-3d": (lambda: Lambda(lambda x: torch.softmax(x, 1)), (2, 7, 3)),
}


@pytest.mark.parametrize("name", list(SOFTMAXES))
def test_softmax(name):
    make, shape = SOFTMAXES[name]
    check_module(nn.Sequential(make()), torch.randn(shape) * 3)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_large_inputs(log):
    """Logits near 100: exp() overflows unless the maximum is subtracted first."""
    fn = (lambda x: F.log_softmax(x, dim=1)) if log else (lambda x: F.softmax(x, dim=1))
    make = lambda: torch.randn(3, 10) * 5 + 100  # noqa: E731
    check_module(Lambda(fn), make(), make_input=make)


DROPOUTS = {
    "nn.Dropout": lambda: nn.Dropout(0.5),
    "nn.Dropout(inplace)": lambda: nn.Dropout(0.3, inplace=True),
    "F.dropout(training=self.training)": None,
}


class FunctionalDropout(nn.Module):
    def forward(self, x):
        y = x * 2
        return F.dropout(y, p=0.4, training=self.training)


@pytest.mark.parametrize("name", list(DROPOUTS))
def test_dropout_is_identity_in_eval(name):
    if DROPOUTS[name] is None:
        model = FunctionalDropout()
    else:
        model = nn.Sequential(nn.Linear(6, 6), DROPOUTS[name](), nn.ReLU())
    check_module(model, torch.randn(4, 6))
