"""The PyTorch tensor reader: compiled at run time against the PyTorch that runs, it reads what
SolModule's parameter check compares (data pointer, in-place version) from the tensors' C++
objects. It must read exactly what the Python attributes read, and SOL must stay correct where
it is off or does not build. (The change-detection tests in test_networks.py run with both.)"""

import logging
import os
import subprocess
import sys

import pytest
import torch

from sol._loader import core
from sol.pytorch import tensor_reader
from solcheck import assert_close_rel, eager, optimize


@pytest.fixture
def installed_reader():
    tensor_reader.ensure_installed()
    path = core().tensor_reader_path()
    assert path, "optimizing a model installs the tensor reader"
    yield path
    tensor_reader.install()


def test_reader_reads_what_the_python_attributes_read(installed_reader):
    """The same fingerprint, read through the reader and then through the attributes, is unchanged
    for every kind of tensor a model holds; each kind of change is seen through the reader."""
    base = torch.randn(6, 5)
    tensors = [torch.nn.Parameter(torch.randn(4, 3)), torch.randn(8), base[2:], base.t(), torch.tensor(1.5),
               torch.empty(0)]
    fingerprint = core().TensorFingerprint()
    assert fingerprint.changed(tensors), "the first call is a change"
    assert not fingerprint.changed(tensors)
    core().remove_tensor_reader()
    assert core().tensor_reader_path() == ""
    assert not fingerprint.changed(tensors), "the attributes read what the reader read"
    tensor_reader.install()
    assert not fingerprint.changed(tensors), "the reader reads what the attributes read"
    with torch.no_grad():
        tensors[0].add_(1.0)
    assert fingerprint.changed(tensors), "an in-place write bumps the version"
    tensors[1].data = torch.randn(8)
    assert fingerprint.changed(tensors), "`.data = t` moves the memory"
    tensors[2] = base[1:]
    assert fingerprint.changed(tensors), "another view of the same storage"
    assert not fingerprint.changed(tensors)


def test_inference_tensors_count_as_changed_on_every_call(installed_reader):
    with torch.inference_mode():
        inference = torch.randn(3)
    fingerprint = core().TensorFingerprint()
    assert fingerprint.changed([inference])
    assert fingerprint.changed([inference]), "an inference tensor has no version: read anew on every call"


def test_tensor_subclasses_are_read_through_their_attributes(installed_reader):
    """A subclass may redefine data_ptr(): the reader reads exact torch.Tensor and Parameter only."""

    class Shifted(torch.Tensor):
        pointer = 1000

        def data_ptr(self):
            return Shifted.pointer

    tensor = torch.randn(4).as_subclass(Shifted)
    fingerprint = core().TensorFingerprint()
    assert fingerprint.changed([tensor])
    assert not fingerprint.changed([tensor])
    Shifted.pointer = 2000
    assert fingerprint.changed([tensor]), "the subclass's own data_ptr() is what counts"


def test_reader_refuses_probes_whose_tensorimpl_it_cannot_find(installed_reader):
    """The reader finds where tensor objects keep their TensorImpl pointer from probes; addresses
    found nowhere are an error, and the reader installed before stays."""
    tensor = torch.empty(2)
    with pytest.raises(core().Error, match="TensorImpl pointer"):
        core().install_tensor_reader(tensor_reader.compile_flags(), list(tensor_reader.READ_TYPES),
                                     [(tensor, tensor._cdata + 8)])
    assert core().tensor_reader_path() == installed_reader


def test_reader_is_off_with_SOL_TENSOR_READER_0():
    script = ("import torch, sol.pytorch as sol\nfrom sol._loader import core\n"
              "m = torch.nn.Linear(4, 2)\ns = sol.optimize(m, (1, 4))\nx = torch.randn(1, 4)\n"
              "assert (s(x) - m(x)).abs().max() < 1e-5\nprint(repr(core().tensor_reader_path()))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "SOL_TENSOR_READER": "0"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "''", result.stdout


def test_a_reader_that_does_not_build_warns_and_calls_stay_right(installed_reader, monkeypatch, caplog):
    core().remove_tensor_reader()
    monkeypatch.setattr(tensor_reader, "_attempted", False)
    monkeypatch.setattr(tensor_reader, "compile_flags", lambda: ["-I/nonexistent", "-nostdinc"])
    with caplog.at_level(logging.WARNING, logger="sol"):
        tensor_reader.ensure_installed()
    assert "the PyTorch tensor reader is not available" in caplog.text
    assert core().tensor_reader_path() == ""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    x = torch.randn(2, 3, 8, 8)
    sol_model = optimize(model, x)
    assert_close_rel(sol_model(x), eager(model, x), name="without the reader")
    with torch.no_grad():
        model[1].running_mean.add_(0.5)
    assert_close_rel(sol_model(x), eager(model, x), name="after an in-place write, without the reader")
