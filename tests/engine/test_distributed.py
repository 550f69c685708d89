import json
import os
import subprocess
import sys

import pytest

from qaconv.data.synthetic import generate


@pytest.mark.skipif(sys.platform != "linux", reason="gloo over localhost is tested on Linux")
def test_two_process_ddp_training_on_cpu(tmp_path):
    """torchrun with 2 CPU processes (gloo): DDP, the distributed graph sampler and rank-0 checkpoints."""
    generate(tmp_path / "A", num_ids=16, num_cams=3, seed=0, style="A", images_per_id=6, height=64, width=32, workers=1)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533"]
    cmd += ["-m", "qaconv", "train", "--out", str(run_dir), "--dataset", str(tmp_path / "A"), "--testsets", ""]
    cmd += ["--arch", "resnet18", "--final-layer", "layer2", "--neck", "8", "--height", "32", "--width", "16"]
    cmd += ["--pretrained", "none", "--batch-size", "8", "--max-epochs", "2", "--step-factor", "1"]
    cmd += ["--workers", "0", "--device", "cpu", "--eval-batch", "16"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # 8 train classes, one GS batch per class, split over 2 ranks: 4 batches each, 8 in the epoch.
    assert [h["batches"] + h["skipped"] for h in history] == [8, 8]
    assert (run_dir / "checkpoint.pt").is_file()
    assert not list(run_dir.glob(".*.tmp"))
