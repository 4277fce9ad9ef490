"""Runs in a fresh interpreter for the tests that need one (see test_cache_and_tools.py).

    python _child.py check   optimize a small CNN, compare with eager, print RESULT lines
    python _child.py clear   like check, then sol.cache.clear(), then optimize again

Exit status: 0 correct, 3 wrong numbers; an exception exits 1 with its traceback.
"""

import json
import sys

import torch
import torch.nn as nn

import sol.pytorch as sol


def build_model():
    torch.manual_seed(1234)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 5))
    bn = model[1]
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return model.eval()


def check_once(model, x):
    sol_model = sol.optimize(model, x.size())
    sol_model.load_state_dict(model.state_dict())
    sol.device.set(sol.device.x86, 0)
    out = sol_model(x)
    with torch.no_grad():
        ref = model(x)
    err = (out.double() - ref.double()).abs().max().item() / max(ref.abs().max().item(), 1e-30)
    return sol_model, err


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "check"
    model = build_model()
    x = torch.randn(2, 3, 8, 8)
    result = {"cache_dir": sol.cache.dir()}
    sol_model, err = check_once(model, x)
    result["max_rel_error"] = err
    # The shared objects the model runs (the cache also keeps layouts that lost the timing).
    result["libraries"] = [entry.model.library_path for entry in sol_model._sol.compiled.values()]
    if mode == "clear":
        result["cleared"] = sol.cache.clear()
        # the model built before the clear still runs (its code is loaded)
        with torch.no_grad():
            ref = model(x)
        out = sol_model(x)
        result["after_clear_error"] = (out - ref).abs().max().item() / ref.abs().max().item()
        import os
        result["files_after_clear"] = sorted(
            os.path.join(d, f) for d, _, fs in os.walk(sol.cache.dir()) for f in fs)
        _, result["rebuilt_error"] = check_once(model, x)
    print("RESULT " + json.dumps(result), flush=True)
    errors = [v for k, v in result.items() if k.endswith("error")]
    return 0 if all(e <= 1e-4 for e in errors) else 3


if __name__ == "__main__":
    sys.exit(main())
