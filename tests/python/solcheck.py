"""Helpers shared by SOL's Python tests: import, optimize, compare with eager.

`sol` is imported lazily so that the suite still collects on a machine where
the extension is not built yet; every test that touches `sol` then fails (not
skips) with the original ImportError.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import torch

TINY = 1e-30
HERE = Path(__file__).resolve().parent
CHILD = HERE / "_child.py"


class _MissingSol:
    def __init__(self, error):
        self._error = error

    def __getattr__(self, name):
        raise ImportError(f"`import sol.pytorch` failed: {self._error!r}") from self._error


try:
    import sol.pytorch as sol  # noqa: F401  (re-exported for the tests)
except Exception as error:  # ImportError, or an extension that fails to load
    sol = _MissingSol(error)


def max_rel_error(out, ref):
    """max|out - ref| / max(max|ref|, tiny), computed in float64."""
    a = out.detach().to("cpu", torch.float64)
    b = ref.detach().to("cpu", torch.float64)
    if b.numel() == 0:
        return 0.0
    scale = max(b.abs().max().item(), TINY)
    return (a - b).abs().max().item() / scale


def assert_close_rel(out, ref, tol=1e-4, name="output"):
    """SOL's fp32 criterion: max relative error (scaled by max|ref|) <= tol."""
    assert isinstance(out, torch.Tensor), f"{name}: SOL returned {type(out).__name__}, not a Tensor"
    assert tuple(out.shape) == tuple(ref.shape), (
        f"{name}: shape {tuple(out.shape)} from SOL, {tuple(ref.shape)} from PyTorch")
    assert out.dtype == ref.dtype, f"{name}: dtype {out.dtype} from SOL, {ref.dtype} from PyTorch"
    assert out.device == ref.device, f"{name}: device {out.device} from SOL, {ref.device} from PyTorch"
    err = max_rel_error(out, ref)
    print(f"{name}: max rel error {err:.3e} (tol {tol:.0e}, max|ref| {ref.abs().max().item():.3e})")
    # written as `not <=` so that a NaN error fails too
    assert not (err > tol or err != err), f"{name}: max relative error {err:.3e} > {tol:.0e}"
    return err


def assert_outputs_close(out, ref, tol=1e-4, name="output"):
    """Tensors, or tuples/lists of tensors, compared element by element."""
    if isinstance(ref, torch.Tensor):
        return assert_close_rel(out, ref, tol, name)
    assert isinstance(out, (tuple, list)), f"{name}: SOL returned {type(out).__name__}, expected {type(ref).__name__}"
    assert len(out) == len(ref), f"{name}: SOL returned {len(out)} outputs, PyTorch {len(ref)}"
    return max(assert_outputs_close(o, r, tol, f"{name}[{i}]") for i, (o, r) in enumerate(zip(out, ref)))


def eager(model, x):
    model.eval()  # a training-mode BatchNorm would use (and update) batch statistics
    with torch.no_grad():
        return model(x.clone())


def optimize(model, x, example="size"):
    """What the user does: eval(), sol.optimize, load_state_dict."""
    model.eval()
    sol_model = sol.optimize(model, x.size() if example == "size" else x)
    assert isinstance(sol_model, torch.nn.Module), f"sol.optimize returned {type(sol_model).__name__}"
    sol_model.load_state_dict(model.state_dict())
    return sol_model


def check_module(model, x, tol=1e-4, make_input=None, example="size"):
    """Optimize `model` for x's shape and compare it with PyTorch eager.

    Two calls with different inputs: both results are checked after the second
    call, so an output buffer reused between calls is caught, and the inputs
    must come back unmodified.
    """
    model.eval()
    if make_input is None:
        make_input = lambda: torch.randn_like(x)  # noqa: E731
    x2 = make_input()
    sol_model = optimize(model, x, example)
    ref1, ref2 = eager(model, x), eager(model, x2)
    x_before, x2_before = x.clone(), x2.clone()
    out1 = sol_model(x)
    out2 = sol_model(x2)
    assert_outputs_close(out1, ref1, tol, "call 1")
    assert_outputs_close(out2, ref2, tol, "call 2")
    assert torch.equal(x, x_before), "SOL modified its input (call 1)"
    assert torch.equal(x2, x2_before), "SOL modified its input (call 2)"
    return sol_model


class Lambda(torch.nn.Module):
    """A tiny module around one expression: Lambda(lambda x: x * 2)."""

    def __init__(self, fn, name=None):
        super().__init__()
        self.fn = fn
        self.name = name

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self):
        return self.name or ""


def shape_regex(shape):
    """Matches a whole shape written as [2, 3, 8, 8], (2, 3, 8, 8) or 2x3x8x8 (not a part of a longer one)."""
    dims = [str(int(d)) for d in shape]
    listed = r"[\[\(]\s*" + r"\s*,\s*".join(dims) + r"\s*,?\s*[\]\)]"
    crossed = r"(?<![\dx])" + "x".join(dims) + r"(?![\dx])"
    return f"(?:{listed})|(?:{crossed})"


def message_has_shape(message, shape):
    return re.search(shape_regex(shape), message) is not None


def run_child(mode, cache_dir, extra_env=None, timeout=300, args=()):
    """Runs tests/python/_child.py MODE in a fresh interpreter."""
    env = dict(os.environ)
    env.pop("SOL_LOG", None)
    env["SOL_CACHE_DIR"] = str(cache_dir)
    env.update(extra_env or {})
    return subprocess.run([sys.executable, str(CHILD), mode, *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def cache_files(cache_dir):
    """{relative path: (size, mtime_ns)} of every file under the cache folder."""
    root = Path(cache_dir)
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def shared_objects(cache_dir):
    return sorted(p for p in Path(cache_dir).rglob("*.so") if p.is_file())
