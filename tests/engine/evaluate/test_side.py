"""Side: the labels of queries or gallery travel together and are checked against the maps."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from qaconv.engine.evaluate import Side
from qaconv.errors import QAConvError


def test_of_accepts_lists_numpy_and_torch_and_names_a_wrong_length():
    side = Side.of("q", 3, [1, 2, 3], np.array([0, 1, 0]), torch.tensor([1.0, 2.0, 3.0]))
    assert side.pids.tolist() == [1, 2, 3] and side.cams.tolist() == [0, 1, 0] and side.times.tolist() == [1, 2, 3]
    assert Side.of("g", 2, [1, 2], [0, 0]).times is None
    with pytest.raises(QAConvError, match="g_camids has 1 entries but there are 2 feature maps"):
        Side.of("g", 2, [1, 2], [0])
    with pytest.raises(QAConvError, match="q_times has 2 entries but there are 3"):
        Side.of("q", 3, [1, 2, 3], [0, 0, 0], [1.0, 2.0])


def test_rows_and_records_keep_pids_cameras_and_times_together():
    records = [SimpleNamespace(pid=p, camid=c, time=t) for p, c, t in ((5, 0, 1.5), (6, 1, 2.5), (7, 2, 3.5))]
    side = Side.from_records(records, with_times=True)
    part = side.rows(1, 3)
    assert (part.pids.tolist(), part.cams.tolist(), part.times.tolist()) == ([6, 7], [1, 2], [2.5, 3.5])
    assert len(part) == 2
    assert Side.from_records(records, with_times=False).rows(0, 2).times is None
