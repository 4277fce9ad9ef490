"""Session set-up for SOL's numerics and must-fail tests.

The compile cache goes to one temporary folder for the whole session, set
before anything imports `sol`, so the run neither reads nor litters the user's
own cache and identical kernels compile once per session.
"""

import os
import shutil
import tempfile

import pytest

_SESSION_CACHE = tempfile.mkdtemp(prefix="sol-test-cache-")
os.environ["SOL_CACHE_DIR"] = _SESSION_CACHE
os.environ.pop("SOL_LOG", None)  # pass dumps would drown pytest's output


def pytest_report_header(config):
    return f"SOL_CACHE_DIR={_SESSION_CACHE}"


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="no NVIDIA GPU on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def session_cache_dir():
    return _SESSION_CACHE


@pytest.fixture(autouse=True)
def _seed_and_device():
    """Every test starts from the same random state on the host CPU device."""
    import torch

    from solcheck import sol

    torch.manual_seed(0)
    sol.device.set(sol.device.x86, 0)
    yield


@pytest.fixture(params=["tensor reader", "python attributes"])
def parameter_check(request):
    """Runs a test twice: SolModule's parameter check reading the tensors through the compiled
    tensor reader, and through their Python attributes (where the reader is not installed)."""
    from sol._loader import core
    from sol.pytorch import tensor_reader

    tensor_reader.ensure_installed()
    assert core().tensor_reader_path(), "the tensor reader should be installed by now"
    if request.param == "tensor reader":
        yield request.param
        return
    core().remove_tensor_reader()
    try:
        yield request.param
    finally:
        tensor_reader.install()
