"""EvalResult: the last stage computed and the JSON entry."""

import numpy as np

from qaconv.engine.evaluate import EvalResult
from qaconv.metrics import evaluate_rank


def test_final_stage_and_the_json_entry():
    dist = np.array([[0.1, 0.5, 0.3], [0.4, 0.2, 0.6]])
    res = evaluate_rank(dist, [1, 2], [1, 2, 1], [0, 0], [1, 1, 2], max_rank=3)
    result = EvalResult(metrics={"raw": res, "tlift": res}, seconds={"score": 1.23456})
    assert result.final_stage == "tlift"
    entry = result.to_dict()
    assert set(entry) == {"raw", "tlift", "seconds"} and entry["seconds"] == {"score": 1.235}
    assert entry["raw"] == res.to_dict() and entry["raw"]["num_valid"] == 2
    result.notes.append("TLift skipped")
    assert result.to_dict()["notes"] == ["TLift skipped"]
