import atexit
import os
import shutil
import tempfile

import pytest
import torch

# compiled chunks of the tests' own networks are kept for this run only, not in the user's cache
# (the process that makes the folder removes it at exit; pytest-xdist's workers inherit it)
if "SAPICORE_COMPILE_CACHE" not in os.environ:
    os.environ["SAPICORE_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="sapicore-chunks-")
    atexit.register(shutil.rmtree, os.environ["SAPICORE_COMPILE_CACHE"], ignore_errors=True)

if not torch.cuda.is_available():  # the Triton kernel's tests run in its interpreter; set before triton loads
    os.environ.setdefault("TRITON_INTERPRET", "1")

if os.environ.get("PYTEST_XDIST_WORKER"):  # one thread per worker: workers share the cores
    os.environ["OMP_NUM_THREADS"] = "1"  # for the commands the tests start, too
    torch.set_num_threads(1)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Each test that takes ``device`` runs on the CPU and, where a GPU is present, on CUDA."""
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
