"""Small networks end to end, the state_dict round trip, call forms and threads."""

import copy
import re
import threading

import pytest
import torch
import torch.nn as nn

import sol
from solcheck import assert_close_rel, check_module, eager, max_rel_error, optimize


def randomize_batchnorms(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.5)
    return model


class SmallCNN(nn.Module):
    """(conv-bn-relu-maxpool) x 2 + linear, for 3x16x16 inputs."""

    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.classifier = nn.Linear(16 * 4 * 4, classes)

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def small_cnn(seed=0):
    torch.manual_seed(seed)
    return randomize_batchnorms(SmallCNN(), seed).eval()


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 16), nn.Tanh(),
                                 nn.Linear(16, 5))

    def forward(self, x):
        return self.net(x)


class LinearRegression(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(7, 1)

    def forward(self, x):
        return self.linear(x)


class LogisticRegression(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(7, 1)

    def forward(self, x):
        return torch.sigmoid(self.linear(x))


NETWORKS = {
    "small-cnn": (small_cnn, (3, 16, 16)),
    "mlp": (MLP, (20,)),
    "linear-regression": (LinearRegression, (7,)),
    "logistic-regression": (LogisticRegression, (7,)),
}


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", list(NETWORKS))
def test_network(name, batch):
    make, shape = NETWORKS[name]
    check_module(make(), torch.randn(batch, *shape))


def test_optimize_accepts_example_tensor():
    check_module(MLP(), torch.randn(2, 20), example="tensor")


def test_result_is_a_module_with_the_same_state_dict_keys():
    model = small_cnn()
    sol_model = optimize(model, torch.randn(2, 3, 16, 16))
    assert isinstance(sol_model, nn.Module)
    assert sorted(sol_model.state_dict()) == sorted(model.state_dict())


def test_state_dict_round_trip():
    """Optimize model A, load B's weights: the output is B's (BatchNorm folding included)."""
    model_a, model_b = small_cnn(seed=1), small_cnn(seed=2)
    x = torch.randn(3, 3, 16, 16)
    ref_a, ref_b = eager(model_a, x), eager(model_b, x)
    assert max_rel_error(ref_a, ref_b) > 1e-2, "test set-up: A and B should differ"

    sol_model = optimize(model_a, x)
    assert_close_rel(sol_model(x), ref_a, name="A's weights")

    # copies: were SOL to share tensors with A, loading B must not change the state we restore
    state_a = copy.deepcopy(model_a.state_dict())
    sol_model.load_state_dict(model_b.state_dict())
    out_b = sol_model(x)
    assert_close_rel(out_b, ref_b, name="after loading B's weights")
    assert max_rel_error(out_b, ref_a) > 1e-2, "output still A's after loading B's weights"

    sol_model.load_state_dict(state_a)
    assert_close_rel(sol_model(x), ref_a, name="after loading A's weights back")


def test_state_dict_round_trip_before_first_call():
    """Loading other weights before the first call: the first result already uses them."""
    model_a, model_b = small_cnn(seed=3), small_cnn(seed=4)
    x = torch.randn(1, 3, 16, 16)
    sol_model = optimize(model_a, x)
    sol_model.load_state_dict(model_b.state_dict())
    assert_close_rel(sol_model(x), eager(model_b, x), name="B's weights")


def test_parameters_are_shared_with_the_model():
    """As with torch.compile, the SOL model holds the model's own parameters and
    buffers (no second copy of the weights), under the same names."""
    model = small_cnn(seed=6)
    sol_model = optimize(model, torch.randn(1, 3, 16, 16))
    mine, theirs = sol_model.state_dict(), model.state_dict()
    assert list(mine) == list(theirs)
    for key in theirs:
        assert mine[key].data_ptr() == theirs[key].data_ptr(), key


def test_inplace_parameter_update_is_seen(parameter_check):
    """Parameters and running statistics changed in place (as an optimizer or a
    manual edit would, here through the original model) change the next
    result: nothing is baked in."""
    model = small_cnn(seed=5)
    x = torch.randn(2, 3, 16, 16)
    sol_model = optimize(model, x)
    before = eager(model, x)
    assert_close_rel(sol_model(x), before, name="before the update")
    with torch.no_grad():
        for key in ("features.1.running_mean", "features.4.weight", "classifier.bias"):
            model.state_dict()[key].add_(0.25)
    after = eager(model, x)
    assert max_rel_error(after, before) > 1e-3, "test set-up: the update should change the output"
    assert_close_rel(sol_model(x), after, name="after the in-place update")


def test_replaced_parameters_and_submodules_are_seen(parameter_check):
    """A parameter assigned anew on the optimized model's module, and a submodule replaced on it,
    are what the next call reads (the tensors are resolved again after any registration)."""
    model = small_cnn(seed=7)
    x = torch.randn(2, 3, 16, 16)
    sol_model = optimize(model, x)
    assert_close_rel(sol_model(x), eager(model, x), name="before")
    torch.manual_seed(8)
    conv = sol_model.get_submodule("features.4")
    conv.weight = nn.Parameter(torch.randn_like(conv.weight))
    model.features[4].weight = conv.weight
    after_weight = eager(model, x)
    assert_close_rel(sol_model(x), after_weight, name="after assigning a new conv weight")
    batchnorm = randomize_batchnorms(nn.Sequential(nn.BatchNorm2d(16)), seed=9)[0].eval()
    sol_model.get_submodule("features").add_module("5", batchnorm)
    model.features[5] = batchnorm
    after_module = eager(model, x)
    assert max_rel_error(after_module, after_weight) > 1e-3, "test set-up: the new BatchNorm should change the output"
    assert_close_rel(sol_model(x), after_module, name="after replacing a BatchNorm")


def test_parameter_of_another_shape_is_refused():
    model = small_cnn(seed=10)
    x = torch.randn(1, 3, 16, 16)
    sol_model = optimize(model, x)
    sol_model(x)
    sol_model.get_submodule("features.4").weight = nn.Parameter(torch.randn(16, 8, 5, 5))
    with pytest.raises(sol.ShapeError, match=r"'features\.4\.weight' has shape \[16, 8, 5, 5\]"):
        sol_model(x)


def test_writes_through_data_are_seen_after_reload_parameters(parameter_check):
    """`.data` writes bypass PyTorch's version counter, so SOL cannot notice them by itself;
    reload_parameters() makes the next call recompute what it derived (folded BatchNorm,
    reordered conv weights)."""
    model = small_cnn(seed=11)
    x = torch.randn(2, 3, 16, 16)
    sol_model = optimize(model, x)
    before = sol_model(x)
    model.features[1].running_var.data.mul_(3.0)
    model.features[4].weight.data.mul_(-0.5)
    after = eager(model, x)
    assert max_rel_error(after, before) > 1e-3, "test set-up: the writes should change the output"
    sol_model.reload_parameters()
    assert_close_rel(sol_model(x), after, name="after .data writes and reload_parameters()")


def test_data_assignment_and_inference_tensors_are_seen(parameter_check):
    """`weight.data = w` keeps the version counter but moves the memory: the next call reads the new
    values. Parameters made in inference mode have no version counter: every call reads them anew,
    so an in-place write to one is seen too."""
    model = small_cnn(seed=14)
    x = torch.randn(2, 3, 16, 16)
    sol_model = optimize(model, x)
    before = sol_model(x)
    torch.manual_seed(15)
    model.features[4].weight.data = torch.randn_like(model.features[4].weight)
    after = eager(model, x)
    assert max_rel_error(after, before) > 1e-3, "test set-up: the new weight should change the output"
    assert_close_rel(sol_model(x), after, name="after weight.data = w")
    with torch.inference_mode():
        mean = torch.randn(8)
    model.features[1]._buffers["running_mean"] = mean
    sol_model.get_submodule("features.1")._buffers["running_mean"] = mean
    assert_close_rel(sol_model(x), eager(model, x), name="with an inference-mode buffer")
    with torch.inference_mode():
        mean.add_(1.0)
    assert_close_rel(sol_model(x), eager(model, x), name="after an in-place write to the inference-mode buffer")


def test_direct_dictionary_writes_and_functional_call_are_seen(parameter_check):
    """Tensors put into a module's dictionaries directly (as Module._apply and
    torch.func.functional_call do) are what the next call reads, in eval and in training mode."""
    model = small_cnn(seed=12)
    x = torch.randn(2, 3, 16, 16)
    sol_model = optimize(model, x)
    sol_model(x)
    new_mean = torch.randn(8)
    sol_model.get_submodule("features.1")._buffers["running_mean"] = new_mean
    model.features[1]._buffers["running_mean"] = new_mean
    assert_close_rel(sol_model(x), eager(model, x), name="after a direct buffer write")
    torch.manual_seed(13)
    swapped = {"features.4.weight": torch.randn(16, 8, 3, 3), "classifier.bias": torch.randn(10)}
    with torch.no_grad():
        expected = torch.func.functional_call(model, swapped, (x,))
        got = torch.func.functional_call(sol_model, swapped, (x,))
    assert max_rel_error(expected, eager(model, x)) > 1e-3, "test set-up: the swapped tensors should matter"
    assert_close_rel(got, expected, name="functional_call")
    assert_close_rel(sol_model(x), eager(model, x), name="after functional_call: the module's own tensors again")
    # Training mode: the gradients belong to the tensors the forward pass used.
    model.train(), sol_model.train()
    weight = swapped["features.4.weight"].clone().requires_grad_()
    expected_loss = torch.func.functional_call(model, {"features.4.weight": weight}, (x,)).square().sum()
    (expected_grad,) = torch.autograd.grad(expected_loss, weight)
    weight_sol = swapped["features.4.weight"].clone().requires_grad_()
    loss = torch.func.functional_call(sol_model, {"features.4.weight": weight_sol}, (x,)).square().sum()
    (grad,) = torch.autograd.grad(loss, weight_sol)
    assert_close_rel(grad, expected_grad, name="gradient through functional_call")


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "grad_enabled"])
def test_call_under_grad_modes(mode):
    model = MLP()
    x = torch.randn(2, 20)
    sol_model = optimize(model, x)
    ref = eager(model, x)
    if mode == "no_grad":
        with torch.no_grad():
            out = sol_model(x)
    elif mode == "inference_mode":
        with torch.inference_mode():
            out = sol_model(x)
    else:
        out = sol_model(x)
    assert_close_rel(out.detach(), ref)


@pytest.mark.parametrize("layout", ["permuted", "channels_last", "sliced"])
def test_non_contiguous_input(layout):
    """Inputs that are views with unusual strides give the same answer as contiguous ones."""
    model = small_cnn(seed=6)
    x = torch.randn(2, 3, 16, 16)
    sol_model = optimize(model, x)
    if layout == "permuted":
        y = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    elif layout == "channels_last":
        y = x.contiguous(memory_format=torch.channels_last)
    else:
        big = torch.randn(2, 3, 16, 32)
        big[..., ::2] = x
        y = big[..., ::2]
    assert not y.is_contiguous()
    assert torch.equal(y, x)
    assert_close_rel(sol_model(y), eager(model, x))


class NonPersistentBuffer(nn.Module):
    """A buffer outside the state_dict still reaches SOL after load_state_dict."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 4)
        self.register_buffer("scale", torch.rand(4) + 0.5, persistent=False)

    def forward(self, x):
        return self.fc(x) * self.scale


def test_non_persistent_buffer():
    check_module(NonPersistentBuffer(), torch.randn(3, 5))


def test_input_requiring_grad_is_not_silently_detached():
    """Inference only for now; but an output cut off from its input's autograd graph
    would silently drop gradients (saliency maps, adversarial inputs). Either
    gradients flow correctly or SOL says it cannot."""
    model = MLP().eval()
    x = torch.randn(2, 20)
    sol_model = optimize(model, x)
    x_sol = x.clone().requires_grad_()
    x_ref = x.clone().requires_grad_()
    pattern = r"grad|backward|inference|train"
    try:
        out = sol_model(x_sol)
    except Exception as error:
        assert re.search(pattern, str(error), re.IGNORECASE), f"unclear error: {error}"
        return
    assert out.requires_grad, "the output does not require grad although the input does: gradients silently lost"
    try:
        out.sum().backward()
    except Exception as error:
        assert re.search(pattern, str(error), re.IGNORECASE), f"unclear error: {error}"
        return
    model(x_ref).sum().backward()
    assert_close_rel(x_sol.grad, x_ref.grad, name="input gradient")


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        y = self.fc(x)
        return y.relu(), torch.sigmoid(y)


def test_tuple_output():
    check_module(TwoOutputs(), torch.randn(3, 6))


def test_deepcopy_of_optimized_model():
    model = small_cnn(seed=8)
    x = torch.randn(2, 3, 16, 16)
    sol_model = optimize(model, x)
    clone = copy.deepcopy(sol_model)
    with torch.no_grad():
        for tensor in clone.state_dict().values():
            if tensor.is_floating_point():
                tensor.mul_(1.5)
    # the copy has its own parameters: the original is unchanged
    assert_close_rel(sol_model(x), eager(model, x), name="original")
    assert max_rel_error(clone(x), eager(model, x)) > 1e-2, "the deep copy shares parameters with the original"


@pytest.mark.parametrize("batches", [(2, 2, 2, 2), (2, 3, 2, 3)], ids=["same-shape", "mixed-batch"])
def test_threads_share_one_model(batches):
    """4 Python threads call the same SOL model at once, each with its own input.
    With mixed batch sizes, a thread may trigger a compile while others run."""
    model = small_cnn(seed=7)
    sol_model = optimize(model, torch.randn(2, 3, 16, 16))
    inputs = [torch.randn(b, 3, 16, 16) for b in batches]
    refs = [eager(model, x) for x in inputs]
    errors, results = [], {}
    barrier = threading.Barrier(len(inputs))

    def worker(i):
        try:
            barrier.wait()
            for rep in range(10):
                results[(i, rep)] = sol_model(inputs[i])
        except Exception as error:  # reported below, with the thread it came from
            errors.append((i, repr(error)))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    worst = max(max_rel_error(out, refs[i]) for (i, _), out in results.items())
    print(f"threads: worst max rel error {worst:.3e}")
    assert worst <= 1e-4, f"a thread got a wrong answer: max rel error {worst:.3e}"
    assert len(results) == 10 * len(inputs)


def _only_entry(sol_model):
    (entry,) = sol_model._sol.compiled.values()
    return entry.model


def test_autotuning_measures_once_and_can_be_turned_off(tmp_path, monkeypatch):
    """autotuning=True times oneDNN against generated code for each linear layer
    while compiling (then reads the choices from the cache); autotuning=False
    keeps oneDNN without timing. The numbers are right either way."""
    import sol.pytorch as sol
    from sol import _core

    if "dnn (oneDNN" not in _core.info()["backends"]:
        pytest.skip("SOL was built without oneDNN: nothing to choose between")
    monkeypatch.setenv("SOL_CACHE_DIR", str(tmp_path))
    torch.manual_seed(0)
    model = MLP().eval()
    x = torch.randn(8, 20)
    ref = eager(model, x)

    tuned = sol.optimize(model, x.size())
    assert _only_entry(tuned).tuned_calls == 3, "three linear layers, each with both choices"
    assert _only_entry(tuned).measured_calls == 3
    assert_close_rel(tuned(x), ref, name="autotuned")

    again = sol.optimize(model, x.size())
    assert _only_entry(again).measured_calls == 0, "the choices come from the cache"
    assert _only_entry(again).library_calls == _only_entry(tuned).library_calls

    heuristic = sol.optimize(model, x.size(), autotuning=False)
    assert _only_entry(heuristic).tuned_calls == 0
    assert _only_entry(heuristic).library_calls == 3, "oneDNN for every linear layer"
    assert_close_rel(heuristic(x), ref, name="autotuning off")


class TinyDenseNet(nn.Module):
    """DenseNet's shape in miniature: a conv stem, two dense layers (each
    cat(features) -> BatchNorm -> ReLU -> conv), a transition cat -> BN ->
    ReLU -> global average pool -> linear. Every channel count is a multiple
    of 16, so channel blocks (SOL_LAYOUT=blocked) block every concat part alike."""

    def __init__(self, stem=32, growth=16, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, stem, 3, padding=1)
        self.layers = nn.ModuleList()
        channels = stem
        for _ in range(2):
            self.layers.append(nn.ModuleDict({
                "norm": nn.BatchNorm2d(channels),
                "conv": nn.Conv2d(channels, growth, 3, padding=1, bias=False)}))
            channels += growth
        self.norm = nn.BatchNorm2d(channels)
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x):
        features = [self.stem(x)]
        for layer in self.layers:
            features.append(layer["conv"](torch.relu(layer["norm"](torch.cat(features, 1)))))
        out = torch.relu(self.norm(torch.cat(features, 1)))
        out = torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1)
        return self.classifier(out)


@pytest.mark.parametrize("layout", ["blocked", "channels_last"])
def test_densenet_concat_chains_run_depth_first(layout, monkeypatch):
    """Each concat -> BN -> ReLU is one kernel that reads the parts where they
    lie (the concatenated tensor is never stored), and the transition's
    concat -> BN -> ReLU -> global pool is one kernel; SOL_DEPTH_FIRST=off
    stores every concat and gives the same numbers. Channels last (NHWC, the
    default on AVX-512), parts of different widths have different layouts
    (one block each): those concats are stored, only the stem's lone part is
    read in place, and the transition's BN chain runs inside the pool."""
    import sol.pytorch as sol

    monkeypatch.setenv("SOL_LAYOUT", layout)
    torch.manual_seed(0)
    model = randomize_batchnorms(TinyDenseNet(), 1).eval()
    x = torch.randn(1, 3, 32, 32)
    ref = eager(model, x)

    def compile_and_run():
        # Autotuning off: the kernels (and so the numbers) do not depend on timings.
        sol_model = sol.optimize(model, x.size(), autotuning=False)
        sol_model.load_state_dict(model.state_dict())
        return _only_entry(sol_model), sol_model(x)

    compiled, out = compile_and_run()
    assert_close_rel(out, ref, tol=1e-5, name="depth-first")
    kernels = compiled.kernel_descriptions
    listing = "\n  ".join(kernels)

    def starting(prefix):
        return sum(d.startswith(prefix) for d in kernels)

    if layout == "blocked":
        # Both dense layers (the first concatenates the stem alone) and the transition.
        assert starting("concat + mul + add + relu -> ") == 2, listing
        assert starting("concat + mul + add + relu + adaptive_avg_pool2d -> ") == 1, listing
        assert starting("concat -> ") == 0, "no concat is stored:\n  " + listing
        assert compiled.depth_first_calls == 3, listing
    else:
        assert starting("concat + mul + add + relu -> ") == 1, listing
        assert starting("concat -> ") == 2, listing
        # The transition's BN chain still runs inside the global pool.
        assert starting("mul + add + relu + adaptive_avg_pool2d -> ") == 1, listing
        assert compiled.depth_first_calls == 2, listing

    monkeypatch.setenv("SOL_DEPTH_FIRST", "off")
    plain, out_off = compile_and_run()
    assert plain.depth_first_calls == 0, "\n  ".join(plain.kernel_descriptions)
    assert sum(d.startswith("concat -> ") for d in plain.kernel_descriptions) == 3
    assert not any(d.startswith("concat + ") for d in plain.kernel_descriptions)
    assert_close_rel(out_off, ref, tol=1e-5, name="depth-first off")
    assert_close_rel(out, out_off, tol=1e-6, name="depth-first on vs off")
