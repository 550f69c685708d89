import json

from qaconv.cli import main


def test_demo_quick_end_to_end(tmp_path, capsys):
    """The README's main job, as CI runs it: data generation, GS training, evaluation on the unseen style."""
    assert main(["demo", "--quick", "--out", str(tmp_path), "--workers", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "unseen style A:" in out and "in-domain (style B test split)" in out
    assert "qaconv serve --index" in out
    assert "training loss: pairwise " in out and " (warm-up), triplet 16." in out and "(margin 16)" in out
    run_dir = tmp_path / "run-quick"
    results = json.loads((run_dir / "results.json").read_text())
    raw = results["synth-A"]["raw"]
    # About 150 unseen test identities: chance Rank-1 is under 1%; the quick demo reaches about 40%.
    assert raw["rank1"] > 0.3 and 0 < raw["mAP"] <= 1
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [h["loss_name"] for h in history] == ["pairwise"] * 11 + ["triplet"]
    assert history[-1]["acc"] > history[0]["acc"] and history[10]["loss"] < 0.7 * history[0]["loss"]
    assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "training_curves.png").is_file()
