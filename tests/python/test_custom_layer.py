"""sol.nn.CustomLayer: a layer written in C (below), compiled by the test, inside a CNN.

The layer is a per-channel scaled softsign, Y = A[c] * X / (1 + |X|), with the
same maths in its Python forward. Inside the optimized model SOL calls the C
functions; the reference is the same model under PyTorch eager and autograd,
which runs the Python forward. Tolerances: outputs max relative error 1e-5,
training parity relative L2 1e-4 (as for the other small models).
"""

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from solcheck import assert_close_rel, sol
from test_deploy import build_program, relative_l2, run_program
from test_training import OPTIMIZERS, assert_trains_like_pytorch

LAYER_SOURCE = r"""
#include <math.h>
#include <sol/custom_layer.h>

/* X: [N, C, H, W], A: [C] */
static void extents(void* ctx, int64_t* n, int64_t* c, int64_t* hw) {
    const sol_tensor_info* x = sol_input(ctx, 0);
    *n = x->shape[0];
    *c = x->shape[1];
    *hw = x->numel / (x->shape[0] * x->shape[1]);
}

void FwdX86(void* ctx, const float* X, const float* A, float* Y) {
    int64_t n, c, hw;
    extents(ctx, &n, &c, &hw);
    for (int64_t i = 0; i < n * c * hw; ++i) Y[i] = A[(i / hw) % c] * X[i] / (1.0f + fabsf(X[i]));
}

void BwdX86(void* ctx, const float* dY, const float* X, const float* A, float* dX, float* dA) {
    int64_t n, c, hw;
    extents(ctx, &n, &c, &hw);
    for (int64_t i = 0; i < n * c * hw; ++i) {
        const int64_t k = (i / hw) % c;
        const float d = 1.0f + fabsf(X[i]);
        dX[i] = dY[i] * A[k] / (d * d);
        dA[k] += dY[i] * X[i] / d;
    }
}
"""


@pytest.fixture(scope="module")
def layer_library(tmp_path_factory):
    folder = tmp_path_factory.mktemp("custom_layer")
    source = folder / "softsign.c"
    source.write_text(LAYER_SOURCE)
    library = folder / "libSoftsignX86.so"
    compiler = shutil.which("cc")
    assert compiler, "no C compiler on PATH"
    result = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-Wall", "-Werror", f"-I{sol.nn.include_dir()}",
                             str(source), "-o", str(library), "-lm"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return library


def scaled_softsign(library, symbols=("FwdX86", "BwdX86")):
    class ScaledSoftsign(sol.nn.CustomLayer):
        def __init__(self, channels):
            super().__init__({sol.device.x86: [str(library), *symbols]})
            self.ParamA = nn.Parameter(torch.rand(channels) + 0.5)

        def forward(self, X):
            return self.ParamA.view(1, -1, 1, 1) * X / (1 + X.abs())

    return ScaledSoftsign


def cnn(layer_class):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)  # BatchNorm follows
            self.bn = nn.BatchNorm2d(8)
            self.custom = layer_class(8)
            self.conv2 = nn.Conv2d(8, 4, 3, stride=2, padding=1)
            self.fc = nn.Linear(4 * 4 * 4, 5)

        def forward(self, x):
            x = self.custom(F.relu(self.bn(self.conv1(x))))
            return self.fc(torch.flatten(F.relu(self.conv2(x)), 1))

    return Net()


def test_inference_runs_the_c_kernel_and_matches_the_python_forward(layer_library):
    model = cnn(scaled_softsign(layer_library)).eval()
    x = torch.randn(2, 3, 8, 8)
    sol_model = sol.optimize(model, x.size())
    descriptions = next(iter(sol_model._sol.compiled.values())).model.kernel_descriptions
    assert any(d.startswith("[custom] custom") for d in descriptions), descriptions
    with torch.no_grad():
        assert_close_rel(sol_model(x), model(x), tol=1e-5)


def test_the_python_forward_runs_outside_sol(layer_library):
    layer = scaled_softsign(layer_library)(3)
    x = torch.randn(1, 3, 2, 2)
    assert torch.equal(layer(x), layer.ParamA.view(1, -1, 1, 1) * x / (1 + x.abs()))


def test_gradients_reach_the_parameter_and_the_input(layer_library):
    model = cnn(scaled_softsign(layer_library)).train()
    reference = copy.deepcopy(model)
    x = torch.randn(4, 3, 8, 8)
    sol_model = sol.optimize(model, x.size())
    x_sol, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    sol_model(x_sol).square().sum().backward()
    reference(x_ref).square().sum().backward()
    assert_close_rel(x_sol.grad, x_ref.grad, tol=1e-4, name="input gradient")
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
        assert p.grad is not None, name
        assert_close_rel(p.grad, q.grad, tol=1e-4, name=f"{name}.grad")
    assert model.custom.ParamA.grad.abs().sum() > 0


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_training_parity(layer_library, optimizer):
    torch.manual_seed(3)
    batches = [(torch.randn(8, 3, 8, 8), torch.randint(0, 5, (8,))) for _ in range(5)]
    assert_trains_like_pytorch(cnn(scaled_softsign(layer_library)).train(), batches, OPTIMIZERS[optimizer],
                               lambda out, t: F.cross_entropy(out, t))


def test_output_shape_falls_back_to_example_tensors_and_can_be_overridden(layer_library):
    base = scaled_softsign(layer_library)

    class NumpyForward(base):  # meta tensors have no data: forward runs on zeros instead
        def forward(self, X):
            return torch.from_numpy(super().forward(X).detach().numpy())

    class Declared(base):  # neither works: the layer states its shape
        def forward(self, X):
            if not X.any():
                raise ValueError("needs data")
            return super().forward(X)

        def output_shape(self, X):
            return X.shape

    assert tuple(NumpyForward(8).output_shape(torch.empty(2, 8, 4, 4, device="meta"))) == (2, 8, 4, 4)
    for layer_class in (NumpyForward, Declared):
        model = cnn(layer_class).eval()
        x = torch.randn(2, 3, 8, 8)
        with torch.no_grad():
            assert_close_rel(sol.optimize(model, x.size())(x), model(x), tol=1e-5, name=layer_class.__name__)


def test_missing_library_fails_at_optimize_naming_the_file(tmp_path, layer_library):
    missing = tmp_path / "libNowhere.so"
    with pytest.raises(sol.Error, match=f"custom layer 'custom'.*cannot load {missing}"):
        sol.optimize(cnn(scaled_softsign(missing)).eval(), [1, 3, 8, 8])


@pytest.mark.parametrize("symbols, missing", [(("FwdNone", "BwdX86"), "FwdNone"), (("FwdX86", "BwdNone"), "BwdNone")])
def test_missing_symbol_fails_at_optimize_naming_symbol_and_file(layer_library, symbols, missing):
    with pytest.raises(sol.Error, match=f"symbol '{missing}' not found in {layer_library}"):
        sol.optimize(cnn(scaled_softsign(layer_library, symbols)).eval(), [1, 3, 8, 8])


def test_training_without_a_backward_function_is_refused_with_the_reason(layer_library):
    model = cnn(scaled_softsign(layer_library, ("FwdX86",))).train()
    sol_model = sol.optimize(model, [2, 3, 8, 8])
    with pytest.raises(sol.UnsupportedError, match="custom layer 'custom'.*has no backward function"):
        sol_model(torch.randn(2, 3, 8, 8)).sum().backward()


def test_deployed_model_with_the_custom_layer(tmp_path, layer_library):
    private = tmp_path / "build" / layer_library.name
    private.parent.mkdir()
    shutil.copy(layer_library, private)
    model = cnn(scaled_softsign(private)).eval()
    x = torch.randn(2, 3, 8, 8)
    library, header = sol.deploy(model, x.size(), lib_name="Net", func_name="predict", path=tmp_path / "out")
    assert (tmp_path / "out" / layer_library.name).exists(), "the layer's library travels beside the deployed one"
    private.unlink()  # the deployed library must use the copy beside it
    binary = build_program(tmp_path, library, header, "c")
    (output,) = run_program(binary, tmp_path, x, 1)
    with torch.no_grad():
        assert relative_l2(output, model(x)) <= 1e-5


DEPLOY_BY_SEARCH_PATH = r"""
import sys, torch
sys.path.insert(0, sys.argv[1])
import test_custom_layer as t
import sol.pytorch as sol
torch.manual_seed(0)
model = t.cnn(t.scaled_softsign("libSoftsignX86.so")).eval()  # a bare name: the library search finds it
x = torch.randn(2, 3, 8, 8)
with torch.no_grad():
    model(x).numpy().tofile("expected.bin")
x.numpy().tofile("x.bin")
sol.deploy(model, x.size(), lib_name="Net", func_name="predict", path="out")
"""


def test_deployed_layer_found_through_the_library_search_path(tmp_path, layer_library, session_cache_dir):
    """A layer naming its library without a folder (found through LD_LIBRARY_PATH, which the
    dynamic loader reads when a process starts: hence a child process) deploys with that file."""
    env = dict(os.environ, LD_LIBRARY_PATH=str(layer_library.parent), SOL_CACHE_DIR=session_cache_dir)
    result = subprocess.run([sys.executable, "-c", DEPLOY_BY_SEARCH_PATH, str(Path(__file__).parent)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / layer_library.name).exists()
    library, header = tmp_path / "out" / "libNet.so", tmp_path / "out" / "Net.h"
    x = torch.from_file(str(tmp_path / "x.bin"), size=2 * 3 * 8 * 8).reshape(2, 3, 8, 8)
    expected = torch.from_file(str(tmp_path / "expected.bin"), size=2 * 5)
    (output,) = run_program(build_program(tmp_path, library, header, "c"), tmp_path, x, 1)
    assert relative_l2(output, expected) <= 1e-5
