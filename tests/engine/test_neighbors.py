import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from qaconv.data.samplers import GraphSampler
from qaconv.engine.neighbors import embedding_neighbors_fn, neighbor_table, qaconv_neighbors_fn
from qaconv.errors import QAConvError
from qaconv.matching import QAConv
from tests.matching.test_topk import dense_topk


def random_maps(num, channels=8, height=3, width=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(num, channels, height, width, generator=g), dim=1)


def random_matcher(channels=8, height=3, width=2, seed=0):
    torch.manual_seed(seed)
    matcher = QAConv(channels, height, width)
    with torch.no_grad():
        matcher.fc.weight.normal_()
        matcher.fc.bias.normal_()
        matcher.bn.running_mean.fill_(0.3)
        matcher.bn.running_var.fill_(2.0)
        matcher.logit_bn.weight.fill_(1.5)
        matcher.logit_bn.running_mean.fill_(-0.2)
    return matcher.train()  # the builder must score in eval mode whatever the mode


def dense_qaconv(matcher, maps):
    with torch.no_grad():
        return matcher.eval()(maps, maps).numpy()


def dense_cosine(feats):
    emb = F.normalize(feats.flatten(2).mean(2) if feats.dim() == 4 else feats, dim=1)
    return (emb @ emb.T).numpy()


def test_neighbor_table_refuses_a_k_beyond_the_classes():
    with pytest.raises(QAConvError, match="k must be"):
        neighbor_table(5, 5, lambda lo, hi: [], torch.device("cpu"))


@pytest.mark.parametrize("block_size", [1, 4, 7, 64])
def test_qaconv_neighbors_equal_dense_topk_of_the_eval_matcher(block_size):
    maps, matcher = random_maps(30), random_matcher()
    dense = dense_qaconv(matcher, maps)
    matcher.train()
    fn = qaconv_neighbors_fn(lambda idx: maps[idx], matcher, block_size=block_size)
    table = fn(torch.arange(30), 5)
    assert table.dtype == torch.int64 and table.shape == (30, 5)
    assert matcher.training  # the caller's mode is left alone
    np.testing.assert_array_equal(table.numpy(), dense_topk(dense, 5))


def test_qaconv_neighbors_pass_the_sample_indices_to_extract_fn():
    maps, matcher = random_maps(12), random_matcher()
    seen = []

    def extract(idx):
        seen.append(idx)
        return maps[idx]

    order = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    table = qaconv_neighbors_fn(extract, matcher, block_size=5)(order, 3)
    assert torch.equal(seen[0], order)
    np.testing.assert_array_equal(table.numpy(), dense_topk(dense_qaconv(matcher, maps[order]), 3))


@pytest.mark.parametrize("shape", [(25, 6, 3, 2), (25, 6)])
def test_embedding_neighbors_equal_dense_cosine_topk(shape):
    feats = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    table = embedding_neighbors_fn(lambda idx: feats[idx], block_size=6)(torch.arange(25), 4)
    np.testing.assert_array_equal(table.numpy(), dense_topk(dense_cosine(feats), 4))


def test_builders_reject_bad_extract_output():
    maps, matcher = random_maps(6), random_matcher()
    with pytest.raises(QAConvError, match="one row per sample"):
        qaconv_neighbors_fn(lambda idx: maps[:3], matcher)(torch.arange(6), 2)
    with pytest.raises(QAConvError, match="matcher expects"):
        qaconv_neighbors_fn(lambda idx: maps[:, :4], matcher)(torch.arange(6), 2)
    with pytest.raises(QAConvError, match=r"\[C, D\]"):
        embedding_neighbors_fn(lambda idx: maps[:, 0, 0, 0])(torch.arange(6), 2)
    with pytest.raises(QAConvError, match="block_size must be a positive"):
        embedding_neighbors_fn(lambda idx: maps, block_size=0)
    with pytest.raises(QAConvError, match="block_size must be a positive"):
        qaconv_neighbors_fn(lambda idx: maps, matcher, block_size=0)


def test_graph_sampler_with_embedding_neighbours_groups_nearby_classes():
    """Classes on a circle: each batch is its anchor plus the classes beside it."""
    num_classes, per_class = 16, 3
    labels = np.repeat(np.arange(num_classes) * 10, per_class)
    angle = torch.from_numpy(np.repeat(np.arange(num_classes), per_class) * (2 * np.pi / num_classes))
    feats = torch.stack([angle.cos(), angle.sin()], dim=1).float()
    feats = feats + 0.01 * torch.randn(feats.shape, generator=torch.Generator().manual_seed(0))
    sampler = GraphSampler(labels, embedding_neighbors_fn(lambda idx: feats[idx]), batch_size=6, num_instances=2)
    for batch in sampler:
        classes = labels[batch][::2] // 10
        anchor = classes[-1]
        assert sorted((c - anchor) % num_classes for c in classes) == [0, 1, num_classes - 1]


# ---------------------------------------------------------------- torch.distributed (gloo, 2 CPU processes)


def _ddp_worker(rank, world_size, store, out):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    try:
        torch.set_num_threads(1)
        maps, matcher = random_maps(11), random_matcher()
        tables = {
            "qaconv": qaconv_neighbors_fn(lambda idx: maps[idx], matcher, block_size=4)(torch.arange(11), 3),
            "embedding": embedding_neighbors_fn(lambda idx: maps[idx], block_size=4)(torch.arange(11), 3),
        }
        scored = []

        def score_rows(lo, hi):
            scored.append((lo, hi))
            return [(0, 0, torch.zeros(hi - lo, 11))]

        neighbor_table(11, 2, score_rows, torch.device("cpu"))
        tables["rows"] = torch.tensor(scored)
        torch.save(tables, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_gather_the_single_process_table(tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "store"), str(tmp_path / "table")), nprocs=2, join=True)
    maps, matcher = random_maps(11), random_matcher()
    single = {
        "qaconv": qaconv_neighbors_fn(lambda idx: maps[idx], matcher, block_size=4)(torch.arange(11), 3),
        "embedding": embedding_neighbors_fn(lambda idx: maps[idx], block_size=4)(torch.arange(11), 3),
    }
    for rank in range(2):
        tables = torch.load(tmp_path / f"table.{rank}", weights_only=True)
        assert tables.pop("rows").tolist() == [[0, 5], [5, 11]][rank : rank + 1]  # each rank scores its share
        for name, table in single.items():
            assert torch.equal(tables[name], table), (rank, name)
