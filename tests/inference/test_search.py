"""Search on feature maps: exhaustive QAConv with a running top-k, the descriptor shortlist (torch or faiss)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qaconv.errors import QAConvError
from qaconv.inference import global_descriptors, search
from qaconv.inference.search import shortlist
from qaconv.matching import QAConv


def test_search_function_on_plain_maps():
    g = torch.Generator().manual_seed(0)
    matcher = QAConv(8, 3, 2).eval()
    gallery = torch.nn.functional.normalize(torch.randn(50, 8, 3, 2, generator=g), dim=1)
    query = gallery[[7, 31]] + 0.01
    indices, scores = search(matcher, query, gallery, topk=3, gal_block=16)
    assert indices[:, 0].tolist() == [7, 31]
    desc = global_descriptors(gallery)
    torch.testing.assert_close(desc.norm(dim=1), torch.ones(50))
    torch.testing.assert_close(desc[0], torch.nn.functional.normalize(gallery[0].mean(dim=(1, 2)), dim=0))
    assert search(matcher, query, gallery, topk=3, shortlist_size=50)[0].tolist() == indices.tolist()


def test_faiss_shortlist_equals_the_torch_one(monkeypatch):
    pytest.importorskip("faiss")
    import builtins

    g = torch.Generator().manual_seed(3)
    gallery = torch.nn.functional.normalize(torch.randn(300, 16, generator=g), dim=1)
    query = torch.nn.functional.normalize(torch.randn(5, 16, generator=g), dim=1)
    with_faiss = shortlist(query, gallery, 20)
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    without = shortlist(query, gallery, 20)
    assert with_faiss.sort(dim=1).values.tolist() == without.sort(dim=1).values.tolist()


def test_ties_go_to_the_lower_gallery_index_in_both_modes():
    matcher = QAConv(8, 3, 2).eval()
    gallery = torch.nn.functional.normalize(torch.randn(6, 8, 3, 2, generator=torch.Generator().manual_seed(1)), dim=1)
    gallery = torch.cat([gallery, gallery])  # entries j and j + 6 are equal, so are their scores
    query = gallery[[2]]
    indices, scores = search(matcher, query, gallery, topk=2, gal_block=5)
    assert indices.tolist() == [[2, 8]] and scores[0, 0] == scores[0, 1]
    assert search(matcher, query, gallery, topk=2, shortlist_size=12)[0].tolist() == [[2, 8]]


def test_nan_maps_are_refused():
    matcher = QAConv(8, 3, 2).eval()
    gallery = torch.full((4, 8, 3, 2), float("nan"))
    with pytest.raises(QAConvError, match="NaN"):
        search(matcher, torch.ones(1, 8, 3, 2), gallery, topk=2)


def test_judged_ranks_leave_out_the_ignored_and_break_ties_by_position():
    from qaconv.inference.search import judged_ranks

    scores = np.array([0.9, 0.5, 0.7, 0.7, 0.1], dtype=np.float32)
    # by score: 0 (0.9), 2 and 3 (0.7, tie: position 2 first), 1 (0.5), 4; position 0 ignored
    assert judged_ranks(scores, np.array([3, 1]), np.array([0])).tolist() == [2, 3]
    assert judged_ranks(scores, np.array([3, 1]), np.array([], dtype=np.int64)).tolist() == [3, 4]
