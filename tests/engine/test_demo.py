import json

from qaconv.cli import main


def test_demo_quick_end_to_end(tmp_path, capsys):
    """The README's main job, as CI runs it: data generation, GS training, evaluation on the unseen style."""
    assert main(["demo", "--quick", "--out", str(tmp_path), "--workers", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "unseen style B: Rank-1" in out
    run_dir = tmp_path / "run-quick"
    results = json.loads((run_dir / "results.json").read_text())
    raw = results["synth-B"]["raw"]
    # 80 unseen test identities: chance Rank-1 is about 1/80; a trained model must do clearly better.
    assert raw["rank1"] > 0.05 and 0 < raw["mAP"] <= 1
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 4 and history[-1]["acc"] > history[0]["acc"]
    assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "training_curves.png").is_file()
