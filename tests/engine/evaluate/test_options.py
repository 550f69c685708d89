"""The scoring dtype an evaluation's options ask for on a device."""

import pytest
import torch

from qaconv.config.tree import EVAL_DTYPES
from qaconv.engine.evaluate.options import DTYPES, resolve_eval_dtype
from qaconv.errors import QAConvError


def test_every_dtype_name_of_the_options_is_a_torch_dtype_here():
    assert set(DTYPES) | {"auto"} == set(EVAL_DTYPES)


def test_auto_is_float32_on_the_cpu_and_float16_needs_cuda():
    cpu = torch.device("cpu")
    assert resolve_eval_dtype("auto", cpu) == torch.float32
    assert resolve_eval_dtype("bfloat16", cpu) == torch.bfloat16
    with pytest.raises(QAConvError, match="--dtype float16 needs a CUDA device"):
        resolve_eval_dtype("float16", cpu)
