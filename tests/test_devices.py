"""A device torch cannot use is an InputError naming it, before any model moves there."""

from __future__ import annotations

import pytest
import torch

from mlff_distiller import InputError, StudentCalculator, load_student
from mlff_distiller.devices import torch_device
from mlff_distiller.teachers.registry import load_teacher
from mlff_distiller.training.distributed import setup_distributed
from tests.conftest import perturbed_student

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


def test_cpu_devices_pass_through():
    assert torch_device("cpu") == torch.device("cpu")
    assert torch_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize(("device", "message"), [
    ("gpu", "device='gpu' is not a torch device"),
    ("mps", "only 'cpu' and 'cuda'"),
])
def test_unknown_devices_are_input_errors(device, message):
    with pytest.raises(InputError, match=message):
        torch_device(device)


@no_cuda
def test_cuda_without_a_gpu_is_an_input_error_everywhere_a_device_is_taken():
    with pytest.raises(InputError, match=r"--device='cuda:1'.*sees no CUDA device"):
        torch_device("cuda:1", "--device")
    with pytest.raises(InputError, match="device='cuda'.*sees no CUDA device"):
        StudentCalculator(perturbed_student("ultra-tiny"), device="cuda")
    with pytest.raises(InputError, match="sees no CUDA device"):
        load_teacher("xtb", device="cuda")
    with pytest.raises(InputError, match="sees no CUDA device"):
        load_student("sevennet-organic-ultra-tiny", device="cuda")
    with pytest.raises(InputError, match="train.device='cuda'"):
        setup_distributed("cuda")
    assert setup_distributed("auto").device == torch.device("cpu")
