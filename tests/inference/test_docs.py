"""The examples of docs/api.md (every python block, in order) and docs/inference.md (every `$ qaconv` line) run."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from qaconv.cli import main

DOCS = Path(__file__).resolve().parents[2] / "docs"


def python_blocks(text: str) -> list[str]:
    """The python blocks, each padded with blank lines so that tracebacks give the line in the page."""
    return [
        "\n" * text[: m.start(1)].count("\n") + m.group(1)
        for m in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    ]


def test_api_examples_run(workdir, capsys):
    blocks = python_blocks((DOCS / "api.md").read_text())
    assert len(blocks) >= 8
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)
    assert (workdir / "match.png").is_file() and (workdir / "gallery.idx" / "manifest.json").is_file()
    assert (workdir / "exported" / "matcher.pt").is_file()
    assert "score" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_inference_commands_run(workdir, capsys):
    commands = [line[2:] for line in (DOCS / "inference.md").read_text().splitlines() if line.startswith("$ qaconv ")]
    assert len(commands) >= 6
    for command in commands:
        argv = shlex.split(command)[1:]
        if "onnx" in argv and importlib.util.find_spec("onnx") is None:
            assert main(argv) == 2
            assert "pip install onnx" in capsys.readouterr().err
            continue
        assert main([*argv, "--device", "cpu"] if argv[0] in ("match", "search") else argv) == 0, command
    assert (workdir / "results.html").is_file() and (workdir / "results.json").is_file()
    assert (workdir / "match.json").is_file() and (workdir / "exported" / "export.json").is_file()
