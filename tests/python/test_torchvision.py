"""Real torchvision networks (random weights, randomized BatchNorm statistics) against eager.

Deep networks use DESIGN.md's criterion for them: relative L2 error <= 1e-4.
Small images and batch 2 keep the run short; the shapes still pass every layer.
"""

import pytest
import torch
import torchvision

from solcheck import eager, optimize

NETWORKS = ["resnet18", "mobilenet_v3_small", "squeezenet1_1", "efficientnet_b0", "regnet_x_400mf", "densenet121"]


def relative_l2(out, ref):
    out, ref = out.detach().double(), ref.detach().double()
    return ((out - ref).norm() / max(ref.norm().item(), 1e-30)).item()


@pytest.mark.parametrize("name", NETWORKS)
def test_torchvision_network(name):
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
    model.eval()
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
