"""Devices and precision, decided in one place."""

import pytest
import torch

from qaconv.device import AMP_MODES, amp_dtype, half_on_cuda, resolve_device
from qaconv.errors import QAConvError

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


@pytest.mark.parametrize("name", [None, "", "auto"])
def test_auto_is_cuda_where_there_is_one_and_the_cpu_elsewhere(name, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(name) == CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(name) == CUDA


def test_a_named_device_is_used_as_given():
    assert resolve_device("cpu") == CPU
    device = torch.device("cuda", 7)
    assert resolve_device(device) is device  # a torch.device is taken on trust


def test_a_device_this_machine_lacks_is_refused_with_a_one_line_error(monkeypatch):
    with pytest.raises(QAConvError, match=r"--device: unknown device 'gpu0' \(use cpu, cuda, cuda:N or mps\)"):
        resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(QAConvError, match="--device cuda: CUDA is not available on this machine"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(QAConvError, match=r"--device cuda:2: this machine has 2 CUDA device\(s\)"):
        resolve_device("cuda:2")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(QAConvError, match="--device mps: MPS is not available on this machine"):
        resolve_device("mps")


def test_stored_features_and_scores_are_half_precision_on_cuda_only():
    assert half_on_cuda(CUDA) == torch.float16
    assert half_on_cuda(torch.device("cuda", 1)) == torch.float16
    assert half_on_cuda(CPU) == torch.float32
    assert half_on_cuda(MPS) == torch.float32


@pytest.mark.parametrize(
    ("mode", "device", "expected"),
    [
        ("auto", CUDA, torch.float16),
        ("auto", CPU, None),
        ("off", CUDA, None),
        ("fp16", CUDA, torch.float16),
        ("bf16", CPU, torch.bfloat16),
        ("bf16", CUDA, torch.bfloat16),
    ],
)
def test_autocast_dtype_of_each_amp_mode(mode, device, expected):
    assert mode in AMP_MODES
    assert amp_dtype(mode, device) == expected


def test_impossible_amp_modes_are_refused():
    with pytest.raises(QAConvError, match="--amp fp16 needs a CUDA device; use --amp bf16 on the CPU"):
        amp_dtype("fp16", CPU)
    with pytest.raises(QAConvError, match="--amp must be one of auto, off, fp16, bf16, got 'float16'"):
        amp_dtype("float16", CUDA)
