"""Small evaluation problems shared by the evaluation tests: a matcher with non-trivial weights and maps
that cluster by identity."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qaconv.engine.evaluate import Side
from qaconv.matching import QAConv

C, H, W = 8, 3, 2


def make_matcher(seed=0):
    torch.manual_seed(seed)
    matcher = QAConv(C, H, W)
    with torch.no_grad():
        matcher.fc.weight.normal_()
        matcher.bn.running_mean.fill_(0.3)
        matcher.bn.running_var.fill_(2.0)
        matcher.logit_bn.weight.fill_(1.5)
        matcher.logit_bn.running_mean.fill_(0.5)  # centres the logits: some are negative, some positive
    return matcher.eval()


def make_problem(num_query=13, num_gallery=29, num_ids=5, seed=0):
    """Maps that cluster by identity, so the metrics are neither 0 nor 1."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(num_ids + 1, C, H, W, generator=g)
    q_pids = torch.randint(1, num_ids + 1, (num_query,), generator=g)
    g_pids = torch.randint(0, num_ids + 1, (num_gallery,), generator=g)
    q_cams = torch.randint(0, 3, (num_query,), generator=g)
    g_cams = torch.randint(0, 3, (num_gallery,), generator=g)

    def maps(pids):
        return F.normalize(protos[pids] + 1.5 * torch.randn(len(pids), C, H, W, generator=g), dim=1)

    return maps(q_pids), maps(g_pids), q_pids.numpy(), q_cams.numpy(), g_pids.numpy(), g_cams.numpy()


def sides(q_pids, q_cams, g_pids, g_cams, q_times=None, g_times=None):
    return Side.of("q", len(q_pids), q_pids, q_cams, q_times), Side.of("g", len(g_pids), g_pids, g_cams, g_times)


def dense_scores(matcher, prob, gal):
    with torch.no_grad():
        return matcher.eval()(prob, gal).numpy()


def assert_same_metrics(a, b):
    np.testing.assert_array_equal(a.cmc, b.cmc)
    assert a.mAP == pytest.approx(b.mAP, abs=1e-12)
    assert a.mINP == pytest.approx(b.mINP, abs=1e-12)
    assert a.num_valid == b.num_valid
