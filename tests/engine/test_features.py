"""Feature-map extraction: the one batch loop, in eval mode, without progress bars outside a terminal."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from qaconv.engine.features import feature_map_batches


def test_batches_come_in_order_with_their_fields_in_eval_mode_and_the_mode_is_restored(capsys):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.Dropout(0.9)).train()
    images = torch.rand(5, 3, 4, 2)
    dataset = TensorDataset(images, torch.arange(5))
    batches = list(feature_map_batches(model, dataset, batch_size=2, device="cpu", progress="maps"))
    assert [len(maps) for maps, _ in batches] == [2, 2, 1]
    assert torch.cat([fields[0] for _, fields in batches]).tolist() == [0, 1, 2, 3, 4]
    with torch.no_grad():
        expected = model.eval()(images)  # dropout off: eval mode during extraction
    torch.testing.assert_close(torch.cat([maps for maps, _ in batches]), expected)
    model.train()
    list(feature_map_batches(model, dataset, batch_size=2, device="cpu"))
    assert model.training
    assert capsys.readouterr().err == ""  # stderr is not a terminal here: no bar in logs
