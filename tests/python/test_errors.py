"""Must-fail tests: each bad input is a clear error, never a crash or a silently wrong answer."""

import os
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from solcheck import assert_close_rel, check_module, eager, message_has_shape, optimize, sol

THIS_FILE = os.path.basename(__file__)


def line_of(marker):
    """The line number of the source line that carries `# <marker>` in this file."""
    with open(__file__) as f:
        for number, line in enumerate(f, 1):
            if line.rstrip().endswith("# " + marker):
                return number
    raise AssertionError(f"marker {marker} not found")


# ---------------------------------------------------------------- unsupported ops


class CumsumBlock(nn.Module):
    def forward(self, x):
        y = torch.relu(x)
        return torch.cumsum(y, dim=1)  # UNSUPPORTED-FUNCTION


class FlipBlock(nn.Module):
    def forward(self, x):
        return x.flip(1) * 2  # UNSUPPORTED-METHOD


class WithFunction(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(6, 6)
        self.body = nn.Sequential(nn.ReLU(), CumsumBlock())

    def forward(self, x):
        return self.body(self.stem(x))


class WithMethod(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(nn.Tanh(), FlipBlock())

    def forward(self, x):
        return self.head(x)


class WithModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.seq_encoder = nn.LSTM(6, 4, batch_first=True)

    def forward(self, x):
        y, _ = self.seq_encoder(x)  # UNSUPPORTED-MODULE
        return y


UNSUPPORTED = {
    # model, input shape, op name, module path, marker
    "function-torch.cumsum": (WithFunction, (2, 6), "cumsum", "body.1", "UNSUPPORTED-FUNCTION"),
    "method-Tensor.flip": (WithMethod, (2, 6), "flip", "head.1", "UNSUPPORTED-METHOD"),
    "module-nn.LSTM": (WithModule, (2, 3, 6), "LSTM", "seq_encoder", "UNSUPPORTED-MODULE"),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_unsupported_op_names_op_module_and_line(case):
    make, shape, op, path, marker = UNSUPPORTED[case]
    model = make().eval()
    with pytest.raises(sol.UnsupportedError) as info:
        sol_model = sol.optimize(model, torch.Size(shape))
        # an implementation may defer the error to the first call; it must still come
        sol_model.load_state_dict(model.state_dict())
        sol_model(torch.randn(shape))
    message = str(info.value)
    print(message)
    where = f"{THIS_FILE}:{line_of(marker)}"
    assert op in message, f"the op `{op}` is not named: {message}"
    assert path in message, f"the module path `{path}` is not named: {message}"
    assert where in message, f"the source line `{where}` is not named: {message}"


def test_unsupported_in_plain_sequential_names_no_tracer_internals():
    """A top-level nn.Sequential has no user forward: the message may name torch's
    Sequential.forward or no line, but not torch.fx's own tracing code."""
    model = nn.Sequential(nn.Linear(3, 3), nn.Softplus()).eval()
    with pytest.raises(sol.UnsupportedError) as info:
        sol.optimize(model, (2, 3))
    message = str(info.value)
    print(message)
    assert "Softplus" in message and "1" in message, message
    assert "torch/fx/" not in message.replace("\\", "/"), f"the source line points into torch.fx: {message}"


def test_unsupported_error_is_an_exception_class():
    assert issubclass(sol.UnsupportedError, Exception)


class ReflectPadConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect")

    def forward(self, x):
        return self.conv(x)


class BatchStatsBN(nn.Module):
    """track_running_stats=False: eval mode still normalizes with the batch's statistics."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(3, track_running_stats=False)

    def forward(self, x):
        return self.bn(x)


class ReturnIndicesPool(nn.Module):
    def forward(self, x):
        y, idx = F.max_pool2d(x, 2, return_indices=True)
        return y


class SoftmaxDtype(nn.Module):
    def forward(self, x):
        return F.softmax(x, dim=1, dtype=torch.float64)


SILENT_CANDIDATES = {
    # an attribute SOL might overlook; either the right answer or UnsupportedError naming the op
    "conv-padding_mode-reflect": (ReflectPadConv, (1, 2, 6, 6), "conv"),
    "batchnorm-track_running_stats-False": (BatchStatsBN, (4, 3, 5, 5), "batch"),
    "max_pool2d-return_indices": (ReturnIndicesPool, (1, 2, 4, 4), "max_pool"),
    "softmax-dtype-float64": (SoftmaxDtype, (2, 5), "softmax"),
}


@pytest.mark.parametrize("case", list(SILENT_CANDIDATES))
def test_overlooked_attribute_is_correct_or_unsupported(case):
    make, shape, op = SILENT_CANDIDATES[case]
    try:
        check_module(make(), torch.randn(shape))
    except sol.UnsupportedError as error:
        print(error)
        assert op.lower() in str(error).lower(), f"UnsupportedError does not name `{op}`: {error}"


class ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x))


def test_training_mode_is_right_or_an_error():
    """Inference only for now: a model switched to train() must not silently run as eval()."""
    model = ConvBN().eval()
    with torch.no_grad():
        model.bn.running_mean.fill_(3.0)
        model.bn.running_var.fill_(4.0)
    x = torch.randn(4, 3, 6, 6)
    sol_model = optimize(model, x)
    sol_model.train()
    try:
        out = sol_model(x)
    except Exception as error:
        print(f"{type(error).__name__}: {error}")
        assert re.search(r"train", str(error), re.IGNORECASE), f"the error does not say why: {error}"
        return
    reference = ConvBN()
    reference.load_state_dict(model.state_dict())
    reference.train()
    with torch.no_grad():
        ref = reference(x)  # batch statistics
    assert_close_rel(out.detach(), ref, name="train-mode output")


class TrainOnlyBranchOnValues(nn.Module):
    """Traceable in eval mode only: in train mode it branches on a tensor's value."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)
        if self.training and y.sum() > 0:
            return -y
        return y


def test_model_traceable_in_eval_only_runs_in_eval_and_says_why_not_in_train():
    model = TrainOnlyBranchOnValues().eval()
    x = torch.randn(2, 4)
    sol_model = optimize(model, x)
    with torch.no_grad():
        assert_close_rel(sol_model(x), model(x), name="eval-mode output")
    sol_model.train()
    with pytest.raises(sol.UnsupportedError, match=r"cannot run in training mode \(call \.eval\(\)"):
        sol_model(x)


# ---------------------------------------------------------------- shapes, dtypes, devices


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


class ViewNet(nn.Module):
    """`x.view(x.size(0), -1)`: the batch size must not be baked into the reshape."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 8 * 8, 3)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return self.fc(y.view(y.size(0), -1))


@pytest.mark.parametrize("make", [ConvNet, ViewNet], ids=["flatten", "view-size0"])
def test_other_batch_size_is_right_or_names_both_shapes(make):
    model = make().eval()
    x = torch.randn(2, 3, 8, 8)
    sol_model = optimize(model, x)
    assert_close_rel(sol_model(x), eager(model, x), name="compiled shape")
    for batch in (3, 1):
        y = torch.randn(batch, 3, 8, 8)
        try:
            out = sol_model(y)
        except Exception as error:
            message = str(error)
            assert message_has_shape(message, x.shape) and message_has_shape(message, y.shape), (
                f"the error does not name expected {tuple(x.shape)} and given {tuple(y.shape)}: {message}")
            continue
        assert_close_rel(out, eager(model, y), name=f"batch {batch}")
    # and the compiled shape still works afterwards
    assert_close_rel(sol_model(x), eager(model, x), name="compiled shape again")


def test_other_spatial_size_is_right_or_names_both_shapes():
    model = ConvNet().eval()
    x = torch.randn(1, 3, 8, 8)
    sol_model = optimize(model, x)
    y = torch.randn(1, 3, 11, 7)
    try:
        out = sol_model(y)
    except Exception as error:
        message = str(error)
        assert message_has_shape(message, x.shape) and message_has_shape(message, y.shape), message
        return
    assert_close_rel(out, eager(model, y), name="11x7 input")


def test_empty_batch_is_right_or_names_the_shape():
    """Batch 0 is legal in PyTorch (an empty result)."""
    model = ConvNet().eval()
    x = torch.randn(2, 3, 8, 8)
    sol_model = optimize(model, x)
    y = torch.randn(0, 3, 8, 8)
    try:
        out = sol_model(y)
    except Exception as error:
        message = str(error)
        print(f"{type(error).__name__}: {message}")
        assert message_has_shape(message, y.shape), f"the given shape {tuple(y.shape)} is not named: {message}"
        return
    ref = eager(model, y)
    assert tuple(out.shape) == tuple(ref.shape), f"shape {tuple(out.shape)}, PyTorch {tuple(ref.shape)}"


def test_wrong_channel_count_is_an_error_naming_the_shape():
    model = ConvNet().eval()
    x = torch.randn(2, 3, 8, 8)
    sol_model = optimize(model, x)
    y = torch.randn(2, 5, 8, 8)
    with pytest.raises(Exception) as info:
        sol_model(y)
    message = str(info.value)
    print(message)
    assert message_has_shape(message, y.shape), f"the given shape {tuple(y.shape)} is not named: {message}"


def test_wrong_rank_is_an_error():
    model = ConvNet().eval()
    sol_model = optimize(model, torch.randn(2, 3, 8, 8))
    y = torch.randn(3, 8, 8)
    with pytest.raises(Exception) as info:
        sol_model(y)
    message = str(info.value)
    print(message)
    assert message_has_shape(message, y.shape), f"the given shape {tuple(y.shape)} is not named: {message}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.int64])
def test_wrong_dtype_is_an_error_naming_both(dtype):
    model = ConvNet().eval()
    x = torch.randn(2, 3, 8, 8)
    sol_model = optimize(model, x)
    y = (x * 10).to(dtype)
    with pytest.raises(Exception) as info:
        sol_model(y)
    message = str(info.value)
    print(message)
    given = str(dtype).replace("torch.", "")
    assert "float32" in message, f"the expected dtype float32 is not named: {message}"
    assert given in message, f"the given dtype {given} is not named: {message}"


def test_wrong_device_input_is_an_error_naming_it():
    """A tensor on another device (the `meta` device exists on every machine)."""
    model = ConvNet().eval()
    x = torch.randn(2, 3, 8, 8)
    sol_model = optimize(model, x)
    with pytest.raises(Exception) as info:
        sol_model(x.to("meta"))
    message = str(info.value)
    print(message)
    assert "meta" in message, f"the given device is not named: {message}"


def test_no_input_at_all_is_an_error():
    model = ConvNet().eval()
    sol_model = optimize(model, torch.randn(1, 3, 8, 8))
    with pytest.raises(Exception):
        sol_model()


def test_device_x86_exists_and_set_returns():
    assert hasattr(sol.device, "x86")
    sol.device.set(sol.device.x86, 0)


def test_unavailable_device_is_an_error_naming_it():
    # The name is part of the API even before the device is; skip only once
    # SOL itself offers it (a GPU in the machine alone does not).
    if "nvidia" in sol.device.available():
        pytest.skip("this SOL build has an nvidia device")
    try:
        with pytest.raises(Exception, match=re.compile("nvidia|cuda", re.IGNORECASE)):
            sol.device.set(sol.device.nvidia, 0)
    finally:
        sol.device.set(sol.device.x86, 0)


def test_device_index_out_of_range_is_an_error():
    try:
        with pytest.raises(Exception, match=re.compile(r"x86|index|99", re.IGNORECASE)):
            sol.device.set(sol.device.x86, 99)
    finally:
        sol.device.set(sol.device.x86, 0)
