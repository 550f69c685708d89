"""`qaconv demo`: the quick demo end to end, and the closing lines that sum up each loss phase."""

import json

from qaconv.cli import main


def test_demo_quick_end_to_end(tmp_path, capsys):
    """The README's main job, as CI runs it: data generation, GS training, evaluation on the unseen style."""
    assert main(["demo", "--quick", "--out", str(tmp_path), "--workers", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "unseen style A:" in out and "in-domain (style B test split)" in out
    assert "qaconv serve --index" in out
    assert "training loss: pairwise (P x K batches) " in out and ", pairwise (graph-sampled batches) " in out
    assert "batch-hard accuracy: pairwise (P x K batches) " in out and "%, pairwise (graph-sampled batches) " in out
    assert "graph sampling starts at epoch 12: the P x K warm-up ended after epoch 11 (after its 11 epochs)" in out
    run_dir = tmp_path / "run-quick"
    results = json.loads((run_dir / "results.json").read_text())
    raw = results["synth-A"]["raw"]
    # About 150 unseen test identities: chance Rank-1 is under 1%; the quick demo reaches about 40%.
    assert raw["rank1"] > 0.3 and 0 < raw["mAP"] <= 1
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [h["loss_name"] for h in history] == ["pairwise"] * 12  # the scratch recipe's loss, on both kinds
    assert [h["sampling"] for h in history] == ["pk"] * 11 + ["graph"]
    assert history[10]["graph_sampling_from"] == 12 and "val" in history[10]  # validated at the switch
    assert history[-1]["acc"] > history[0]["acc"] and history[10]["loss"] < 0.7 * history[0]["loss"]
    assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "training_curves.png").is_file()


def test_demo_summaries_span_each_phase():
    """The closing lines give first -> last epoch of each phase (its loss on its kind of batches), so a loss on
    graph-sampled batches is never read against the same loss on the easier P x K batches."""
    from qaconv.commands.demo import _accuracy_summary, _loss_summary

    history = [
        {"loss_name": "pairwise", "sampling": "pk", "loss": 4.66, "acc": 0.17},
        {"loss_name": "pairwise", "sampling": "pk", "loss": 1.94, "acc": 0.69},
        {"loss_name": "pairwise", "sampling": "graph", "loss": 3.29, "acc": 0.39},
        {"loss_name": "pairwise", "sampling": "graph", "loss": 2.72, "acc": 0.504},
    ]
    assert _loss_summary(history, 16) == (
        "pairwise (P x K batches) 4.66 -> 1.94, pairwise (graph-sampled batches) 3.29 -> 2.72"
    )
    assert _accuracy_summary(history).startswith(
        "pairwise (P x K batches) 17 -> 69%, pairwise (graph-sampled batches) 39 -> 50% ("
    )
    triplet = [{"loss_name": "triplet", "sampling": "graph", "loss": 16.34, "acc": 0.4}]
    assert _loss_summary(triplet, 16) == "triplet (graph-sampled batches) 16.34 (margin 16)"
