"""sol.deploy: a network as a shared library with a C API, run from plain C and C++ programs.

Each test deploys a network, compiles a program against the written header and
library with the system's C or C++ compiler, runs it in a clean environment (no
Python, no torch libraries on the search path) on an input written by Python, and
compares what it writes with PyTorch eager: relative L2 <= 1e-5.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torchvision

from solcheck import sol
from zoo_models import randomize_batchnorms

REL_L2 = 1e-5

C_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include "NET_HEADER"

/* usage: program input.bin output0.bin ...: raw float32 in, raw float32 out */
int main(int argc, char** argv) {
    static const long sizes[] = PREDICT_OUTPUT_SIZES;
    float* input = malloc(sizeof(float) * PREDICT_INPUT_SIZE);
    float* outputs[PREDICT_OUTPUT_COUNT];
    FILE* in = fopen(argv[1], "rb");
    if (argc != 2 + PREDICT_OUTPUT_COUNT || !in || fread(input, sizeof(float), PREDICT_INPUT_SIZE, in) != PREDICT_INPUT_SIZE)
        return 2;
    fclose(in);
    for (int k = 0; k < PREDICT_OUTPUT_COUNT; ++k) outputs[k] = malloc(sizeof(float) * sizes[k]);
    predict_init(0);
    if (predict_seed(5) != 0 || predict_seed(9) != 5) return 3;
    for (int call = 0; call < 2; ++call) predict(NULL, input, outputs);
    for (int k = 0; k < PREDICT_OUTPUT_COUNT; ++k) {
        FILE* out = fopen(argv[2 + k], "wb");
        if (!out || fwrite(outputs[k], sizeof(float), sizes[k], out) != (size_t)sizes[k]) return 4;
        fclose(out);
        free(outputs[k]);
    }
    free(input);
    return 0;
}
"""

CXX_PROGRAM = r"""
#include <cstdio>
#include <fstream>
#include <vector>
#include "NET_HEADER"

int main(int argc, char** argv) {
    const std::vector<long> sizes = PREDICT_OUTPUT_SIZES;
    std::vector<float> input(PREDICT_INPUT_SIZE);
    std::ifstream(argv[1], std::ios::binary).read(reinterpret_cast<char*>(input.data()), input.size() * sizeof(float));
    std::vector<std::vector<float>> outputs;
    std::vector<float*> pointers;
    for (long size : sizes) outputs.emplace_back(size);
    for (auto& output : outputs) pointers.push_back(output.data());
    predict_init(0);
    predict(nullptr, input.data(), pointers.data());
    for (std::size_t k = 0; k < outputs.size() && int(k) + 2 < argc; ++k)
        std::ofstream(argv[2 + k], std::ios::binary)
            .write(reinterpret_cast<const char*>(outputs[k].data()), outputs[k].size() * sizeof(float));
    return argc == 2 + int(outputs.size()) ? 0 : 2;
}
"""


def clean_environment():
    """What a program outside Python sees: no torch or Python libraries preloaded or on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONPATH")}
    env["OMP_NUM_THREADS"] = "2"
    return env


def build_program(tmp_path, library, header, language):
    compiler = shutil.which("cc" if language == "c" else "c++")
    assert compiler, f"no {language} compiler on PATH"
    source = tmp_path / ("main.c" if language == "c" else "main.cpp")
    source.write_text((C_PROGRAM if language == "c" else CXX_PROGRAM).replace("NET_HEADER", header.name))
    binary = tmp_path / f"main_{language}"
    standard = "-std=c11" if language == "c" else "-std=c++17"
    name = library.name[len("lib"):-len(".so")]
    result = subprocess.run([compiler, standard, "-Wall", "-Wextra", "-Werror", str(source), f"-I{header.parent}",
                             f"-L{library.parent}", f"-l{name}", f"-Wl,-rpath,{library.parent}", "-o", str(binary)],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"{compiler} failed on {source.name}:\n{result.stderr}"
    return binary


def run_program(binary, tmp_path, x, output_count):
    (tmp_path / "input.bin").write_bytes(x.contiguous().numpy().tobytes())
    outputs = [tmp_path / f"output{k}.bin" for k in range(output_count)]
    result = subprocess.run([str(binary), str(tmp_path / "input.bin"), *map(str, outputs)], env=clean_environment(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{binary.name} exited {result.returncode}: {result.stderr}"
    return [torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.float32) for path in outputs]


def relative_l2(out, ref):
    ref = ref.detach().double().flatten()
    return ((out.double() - ref).norm() / ref.norm()).item()


def deploy_and_check(tmp_path, model, x, languages=("c",)):
    with torch.no_grad():
        was_training = model.training
        model.eval()
        expected = model(x)
        model.train(was_training)
    expected = list(expected) if isinstance(expected, (tuple, list)) else [expected]
    library, header = sol.deploy(model, x.size(), target=sol.deployment.SharedLib, device=sol.device.x86,
                                 lib_name="Net", func_name="predict", path=tmp_path / "out")
    assert (library, header) == (tmp_path / "out" / "libNet.so", tmp_path / "out" / "Net.h")
    for language in languages:
        binary = build_program(tmp_path, library, header, language)
        outputs = run_program(binary, tmp_path, x, len(expected))
        for k, (out, ref) in enumerate(zip(outputs, expected)):
            assert out.numel() == ref.numel()
            error = relative_l2(out, ref)
            print(f"{language} output {k}: rel L2 {error:.2e}")
            assert error <= REL_L2, f"{language} program, output {k}: relative L2 {error:.2e} > {REL_L2:.0e}"
    return library, header


class SmallCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                      nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1, groups=2), nn.BatchNorm2d(32),
                                      nn.ReLU(), nn.Dropout(0.3))
        self.head = nn.Linear(32 * 8 * 8, 10)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


class TwoHeadMlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.Tanh())
        self.scores, self.value = nn.Linear(32, 5), nn.Linear(32, 1)

    def forward(self, x):
        h = self.body(x)
        return torch.softmax(self.scores(h), dim=1), self.value(h)


def test_small_cnn_from_c_and_cxx(tmp_path):
    model = randomize_batchnorms(SmallCnn(), seed=1).train()  # deployed as eval() computes it
    library, header = deploy_and_check(tmp_path, model, torch.randn(2, 3, 16, 16), languages=("c", "c++"))
    assert model.training, "deploy left the user's model in eval mode"
    text = header.read_text()
    for line in ("#define PREDICT_INPUT_SHAPE {2, 3, 16, 16}", "#define PREDICT_OUTPUT0_SHAPE {2, 10}",
                 "void predict_init(const int deviceIdx);", "int predict_seed(const int seed);",
                 "void predict(void* ctx, const float* input, float** output);"):
        assert line in text, f"{line!r} not in the header:\n{text}"


def test_mlp_with_two_outputs(tmp_path):
    deploy_and_check(tmp_path, TwoHeadMlp(), torch.randn(3, 20))


def test_depthwise_convolution_fused_into_the_expansion(tmp_path, monkeypatch):
    """MobileNetV2's stride-2 expansion on channel blocks: on AVX-512 hosts one oneDNN call
    computes the 1x1 and the depthwise convolution (passes/merge_depthwise_into_pointwise), and
    the library makes that call with both convolutions' weights."""
    monkeypatch.setenv("SOL_LAYOUT", "blocked")
    model = randomize_batchnorms(nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 96, 1, bias=False), nn.BatchNorm2d(96), nn.ReLU6(),
        nn.Conv2d(96, 96, 3, 2, 1, groups=96, bias=False), nn.BatchNorm2d(96), nn.ReLU6(),
        nn.Conv2d(96, 24, 1)), seed=3)
    deploy_and_check(tmp_path, model, torch.randn(2, 3, 56, 56))


def test_resnet18(tmp_path):
    model = randomize_batchnorms(torchvision.models.resnet18(weights=None), seed=2)
    deploy_and_check(tmp_path, model, torch.rand(1, 3, 64, 64))


def test_library_depends_on_neither_python_nor_torch(tmp_path):
    library, _ = sol.deploy(TwoHeadMlp(), [1, 20], lib_name="Deps", path=tmp_path)
    listing = subprocess.run(["ldd", str(library)], check=True, capture_output=True, text=True,
                             env=clean_environment()).stdout
    print(listing)
    assert "not found" not in listing, listing
    for forbidden in ("python", "torch", "libc10", "_core"):
        assert forbidden not in listing.lower(), f"{library.name} depends on {forbidden}:\n{listing}"
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(library)], check=True, capture_output=True,
                             text=True).stdout
    assert " T predict_init" in symbols and " T predict_seed" in symbols and " T predict\n" in symbols


def test_later_weights_are_not_in_an_earlier_library(tmp_path):
    """The library holds the weights as they were when deployed."""
    model = TwoHeadMlp()
    x = torch.randn(1, 20)
    library, header = sol.deploy(model, x.size(), lib_name="Net", func_name="predict", path=tmp_path / "out")
    with torch.no_grad():
        before = model(x)[1]
        model.value.bias.add_(1.0)
    binary = build_program(tmp_path, library, header, "c")
    outputs = run_program(binary, tmp_path, x, 2)
    assert relative_l2(outputs[1], before) <= REL_L2


def test_unsupported_op_fails_at_deploy_time_naming_it(tmp_path):
    class UsesFft(nn.Module):
        def forward(self, x):
            return torch.fft.rfft(x).abs()

    with pytest.raises(sol.UnsupportedError, match="fft"):
        sol.deploy(UsesFft(), [2, 8], lib_name="Fft", path=tmp_path)
    assert not any(tmp_path.iterdir()), "a failed deploy left files behind"


def test_two_inputs_fail_at_deploy_time_with_the_reason(tmp_path):
    class Pair(nn.Module):
        def forward(self, a, b):
            return a * b

    with pytest.raises(sol.Error, match=r"takes 2 inputs \(a, b\); a deployed library's C API takes exactly one"):
        sol.deploy(Pair(), [[3], [3]], lib_name="Pair", path=tmp_path)


@pytest.mark.parametrize("name, message", [("My-Net", "lib_name 'My-Net' is not a C identifier"),
                                           ("9lives", "lib_name '9lives' is not a C identifier")])
def test_bad_library_names_are_refused(tmp_path, name, message):
    with pytest.raises(sol.Error, match=message):
        sol.deploy(TwoHeadMlp(), [1, 20], lib_name=name, path=tmp_path)
