import json

from qaconv.cli import main


def test_demo_quick_end_to_end(tmp_path, capsys):
    """The README's main job, as CI runs it: data generation, GS training, evaluation on the unseen style."""
    assert main(["demo", "--quick", "--out", str(tmp_path), "--workers", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "unseen style A:" in out and "in-domain (style B test split)" in out
    assert "qaconv serve --index" in out
    assert "training loss: pairwise " in out and " (warm-up), triplet 16." in out and "(margin 16)" in out
    assert "batch-hard accuracy: pairwise " in out and "%, triplet " in out
    run_dir = tmp_path / "run-quick"
    results = json.loads((run_dir / "results.json").read_text())
    raw = results["synth-A"]["raw"]
    # About 150 unseen test identities: chance Rank-1 is under 1%; the quick demo reaches about 40%.
    assert raw["rank1"] > 0.3 and 0 < raw["mAP"] <= 1
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [h["loss_name"] for h in history] == ["pairwise"] * 11 + ["triplet"]
    assert history[-1]["acc"] > history[0]["acc"] and history[10]["loss"] < 0.7 * history[0]["loss"]
    assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "training_curves.png").is_file()


def test_demo_summaries_span_each_loss_phase():
    """The closing lines give first -> last epoch of each loss, so a triplet loss near its margin is read
    beside the accuracy that graph-sampled batches allow."""
    from qaconv.commands.demo import _accuracy_summary, _loss_summary

    history = [
        {"loss_name": "pairwise", "loss": 4.66, "acc": 0.17},
        {"loss_name": "pairwise", "loss": 1.94, "acc": 0.69},
        {"loss_name": "triplet", "loss": 16.34, "acc": 0.39},
        {"loss_name": "triplet", "loss": 15.96, "acc": 0.504},
    ]
    assert _loss_summary(history, 16) == "pairwise 4.66 -> 1.94 (warm-up), triplet 16.34 -> 15.96 (margin 16)"
    assert _accuracy_summary(history).startswith("pairwise 17 -> 69%, triplet 39 -> 50% (")
    assert _loss_summary(history[2:3], 16) == "triplet 16.34 (margin 16)"
