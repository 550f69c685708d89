import json
import os
import subprocess
import sys

import pytest
import torch

from qaconv.config import recipe_config
from qaconv.data.synthetic import SynthConfig, generate
from qaconv.engine.assemble import build_trainer
from qaconv.engine.checkpoint import read_checkpoint

TINY = dict(arch="resnet18", final_layer="layer2", neck=8, height=32, width=16, pretrained=None, batch_size=8)
TINY.update(step_factor=1, workers=0, device="cpu", eval_batch=16, testsets=[], gs_warmup=0)  # graph batches at once


def torchrun(*args: str) -> None:
    """`torchrun --standalone --nproc_per_node 2 -m qaconv train ARGS`; its output is shown when it fails. The
    time limit only catches a hang: a busy shared machine can make the two processes 20x slower."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "qaconv", "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"torchrun hung; its output so far:\n{_tail(exc.stdout, 2000)}\n{_tail(exc.stderr, 3000)}")
    assert done.returncode == 0, done.stderr[-3000:]


def _tail(output: str | bytes | None, size: int) -> str:
    text = output.decode(errors="replace") if isinstance(output, bytes) else output or ""
    return text[-size:]


def flags(config: dict) -> list[str]:
    out = []
    for key, value in config.items():
        name = key.replace("_", "-")
        if isinstance(value, bool):
            out.append(f"--{name}" if value else f"--no-{name}")
            continue
        value = ",".join(value) if isinstance(value, list) else "none" if value is None else value
        out += [f"--{name}", str(value)]
    return out


@pytest.mark.skipif(sys.platform != "linux", reason="gloo over localhost is tested on Linux")
@pytest.mark.parametrize(
    ("device", "rel", "numerics"),
    [
        ("cpu", 1e-5, {}),
        # Two ranks on one GPU (gloo), in float32 with deterministic kernels: without them cuDNN's kernel
        # choices part the two runs' weights (BN biases most) beyond the tolerance, in fp16 and float32 alike.
        pytest.param(
            "cuda",
            2e-3,
            {"amp": "off", "deterministic": True},
            marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
        ),
    ],
)
def test_two_processes_equal_one_process_accumulating_two_batches(tmp_path, device, rel, numerics):
    """torchrun with 2 processes trains like 1 process with --accumulate 2: the same GS graph, batches,
    augmentations and averaged gradients; rank 0 alone writes the run; resume works."""
    generate(
        tmp_path / "A",
        SynthConfig(num_ids=16, num_cams=3, seed=0, style="A", images_per_id=6, height=64, width=32),
        workers=1,
    )
    config = {**TINY, "dataset": str(tmp_path / "A"), "max_epochs": 1, "device": device, **numerics}
    torchrun("--out", str(tmp_path / "ddp"), *flags(config))

    torch.set_num_threads(1)  # the same kernels as the single-threaded ranks
    single = build_trainer(recipe_config({**config, "accumulate": 2}), tmp_path / "single", quiet=True)
    single.fit()

    ddp_history = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    # 8 train classes, one GS batch per class: 4 per rank, 4 steps of 2 batches in the single process.
    assert ddp_history[0]["batches"] == single.history[0]["batches"] == 8
    assert ddp_history[0]["loss"] == pytest.approx(single.history[0]["loss"], rel=rel)
    ddp = read_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    for part, module in (("model", single.model), ("matcher", single.matcher)):
        for name, param in module.named_parameters():  # BN running statistics follow rank 0's batches only
            expected = param.detach().cpu()
            torch.testing.assert_close(ddp[part][name], expected, rtol=10 * rel, atol=rel / 10, msg=f"{part}.{name}")

    torchrun("--resume", str(tmp_path / "ddp"), "--max-epochs", "2")
    lines = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert not list((tmp_path / "ddp").glob(".*.tmp"))
