"""Issue 3's model zoo: every network the talks list, through `sol.optimize` as a user calls it.

Real torchvision definitions (plus a standard MobileNet v1, an MLP, linear and logistic
regression from zoo_models.py) with seeded random weights and randomized BatchNorm running
statistics and affine parameters, in eval mode. Each network runs two configurations:

* batch 1 at a square size, through `sol.optimize(model, x.size())` + `load_state_dict`;
* batch 2 at a non-square size, through the same SOL model (a new shape compiles on first use),
  or, for the non-image models, a rank-3 input through a second `sol.optimize`.

Sizes are close to the smallest that PyTorch accepts for each network (see zoo_models.ZOO),
to keep CI short; the full 224x224 run is bench/zoo_table.py. Criterion for deep networks:
relative L2 error <= 1e-4 and the same arg-max as PyTorch eager.
"""

import pytest
import torch

from solcheck import eager, optimize
from zoo_models import ZOO, build, make_input, max_relative, relative_l2

TOL = 1e-4


def _check_config(name, model, sol_model, x, label):
    """Run SOL and eager on x; return (sol_model used, list of failure messages)."""
    if sol_model is None or sol_model._sol.ranks != [x.dim()]:
        sol_model = optimize(model, x)  # eval(), sol.optimize(model, x.size()), load_state_dict
    ref = eager(model, x)
    x_before = x.clone()
    with torch.no_grad():
        out = sol_model(x)
    problems = []
    if not torch.equal(x, x_before):
        problems.append(f"{label}: SOL modified its input")
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(ref.shape) or out.dtype != ref.dtype:
        got = f"{tuple(out.shape)} {out.dtype}" if isinstance(out, torch.Tensor) else type(out).__name__
        return sol_model, problems + [f"{label}: SOL returned {got}, PyTorch {tuple(ref.shape)} {ref.dtype}"]
    l2, mx = relative_l2(out, ref), max_relative(out, ref)
    entry = next(e for k, e in sol_model._sol.compiled.items() if k[0] == (tuple(x.shape),))
    print(f"{name} {label}: rel L2 {l2:.2e}, max rel {mx:.2e}, "
          f"{entry.model.unique_kernels} unique kernels / {entry.model.kernel_calls} calls")
    if not l2 <= TOL:  # `not <=`: a NaN fails too
        problems.append(f"{label}: relative L2 error {l2:.3e} > {TOL:.0e} (max rel {mx:.3e})")
    same = torch.equal(out.argmax(-1), ref.argmax(-1))
    if not same:
        top2 = ref.topk(2, dim=-1).values if ref.shape[-1] > 1 else None
        gap = (top2[..., 0] - top2[..., 1]).min().item() if top2 is not None else float("nan")
        problems.append(f"{label}: arg-max differs: SOL {out.argmax(-1).tolist()}, PyTorch {ref.argmax(-1).tolist()}"
                        f" (smallest top-2 gap in PyTorch's output {gap:.3e})")
    return sol_model, problems


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_network(name):
    """Two configurations (batch 1 square, batch > 1 non-square) against eager; both run
    even if the first fails, and every failure is reported."""
    net = ZOO[name]
    model = build(name)  # one construction per test: seeded weights, randomized BN, eval()
    sol_model, problems = None, []
    for i, (batch, *size) in enumerate(net.ci):
        x = make_input(name, batch, tuple(size), seed=i)
        label = f"input {list(x.shape)}"
        try:
            sol_model, found = _check_config(name, model, sol_model, x, label)
        except Exception as error:  # noqa: BLE001  (collect, then fail with both configs' reasons)
            found = [f"{label}: {type(error).__name__}: {error}"]
            sol_model = None
        problems += found
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


def test_identical_layers_compile_once():
    """ResNet-50 repeats identical bottleneck layers: each distinct kernel is generated and
    compiled once, so the compiled model has fewer unique kernels than kernel calls."""
    model = build("resnet50")
    x = make_input("resnet50", 1, (32, 32))
    sol_model = optimize(model, x)
    (entry,) = sol_model._sol.compiled.values()
    unique, calls = entry.model.unique_kernels, entry.model.kernel_calls
    print(f"resnet50: {unique} unique kernels for {calls} kernel calls")
    assert 0 < unique < calls, f"resnet50: {unique} unique kernels for {calls} calls: identical layers compiled anew"
    assert relative_l2(sol_model(x), eager(model, x)) <= TOL
