"""Shared by the matching tests: the published matcher's reference fixture and random feature maps."""

import numpy as np
import torch
import torch.nn.functional as F

from qaconv.matching import QAConv
from tests.conftest import load_reference

REF = load_reference("qaconv_matcher.npz")


def reference_matcher() -> QAConv:
    matcher = QAConv(*REF["prob"].shape[1:])
    state = {k.removeprefix("state."): torch.from_numpy(v) for k, v in REF.items() if k.startswith("state.")}
    matcher.load_state_dict(state)
    return matcher


def random_maps(n, c=16, h=6, w=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, c, h, w, generator=g), dim=1)


def assert_close_rel(actual, expected, rel=1e-4):
    actual, expected = np.asarray(actual), np.asarray(expected)
    np.testing.assert_allclose(actual, expected, rtol=rel, atol=rel * np.abs(expected).mean())
