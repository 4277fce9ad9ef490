"""Real torchvision networks (random weights, randomized BatchNorm statistics) against eager.

Deep networks use DESIGN.md's criterion for them: relative L2 error <= 1e-4.
Small images and batch 2 keep the run short; the shapes still pass every layer.
"""

import pytest
import torch
import torchvision

from solcheck import eager, optimize
from zoo_models import randomize_batchnorms, relative_l2

NETWORKS = ["resnet18", "mobilenet_v3_small", "squeezenet1_1", "efficientnet_b0", "regnet_x_400mf", "densenet121"]


@pytest.mark.parametrize("name", NETWORKS)
def test_torchvision_network(name):
    torch.manual_seed(0)
    model = randomize_batchnorms(torchvision.models.get_model(name, weights=None)).eval()
    x = torch.rand(2, 3, 64, 64)
    sol_model = optimize(model, x)
    with torch.no_grad():
        out = sol_model(x)
    ref = eager(model, x)
    assert tuple(out.shape) == tuple(ref.shape)
    err = relative_l2(out, ref)
    max_rel = (out.double() - ref.double()).abs().max().item() / ref.abs().max().item()
    print(f"{name}: relative L2 {err:.3e}, max rel {max_rel:.3e}")
    assert err <= 1e-4, f"{name}: relative L2 error {err:.3e} > 1e-4"
