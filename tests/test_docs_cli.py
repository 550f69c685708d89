"""docs/cli.md must be what tools/gen_cli_docs.py writes from the parsers now, and cover every command module."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

from qaconv import commands

ROOT = Path(__file__).resolve().parents[1]
CLI_MD = ROOT / "docs" / "cli.md"


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    """tools/ is not a package: load the generator from its file."""
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "tools" / "gen_cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_md_is_current(gen: ModuleType) -> None:
    assert CLI_MD.read_text(encoding="utf-8") == gen.render(), (
        "docs/cli.md is out of date: run python tools/gen_cli_docs.py"
    )


def test_every_command_module_has_a_section() -> None:
    text = CLI_MD.read_text(encoding="utf-8")
    headings = {line for line in text.splitlines() if line.startswith("#")}
    modules = [m.name for m in pkgutil.iter_modules(commands.__path__)]
    assert len(modules) >= 10
    for name in modules:
        sub = argparse.ArgumentParser(prog="qaconv").add_subparsers()
        importlib.import_module(f"qaconv.commands.{name}").register(sub)
        for command in sub.choices:
            assert f"## qaconv {command}" in headings, f"module commands/{name}.py: no section for qaconv {command}"
    assert "### qaconv index build" in headings
    assert "| `--gallery DIR` | required | folder of gallery images |" in text


def test_intro_covers_help_module_torchrun_and_exit_status() -> None:
    intro = CLI_MD.read_text(encoding="utf-8").split("## Commands")[0]
    for phrase in ("qaconv COMMAND --help", "python -m qaconv", "torchrun --nproc_per_node N -m qaconv train", "2"):
        assert phrase in intro


def _toy_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tool", description="Does <things>.")
    parser.add_argument("image", metavar="IMG", help="an image")
    parser.add_argument("--ckpt", required=True, metavar="RUN|FILE", help="checkpoint")
    parser.add_argument("--mode", choices=["a", "b"], default="a", help="mode (a)")
    parser.add_argument("--tau", type=float, default=100.0, help="window in seconds (100)")
    parser.add_argument("--out", help="output folder (default: next to the input)")
    parser.add_argument("--lr", type=float, default=argparse.SUPPRESS, help="learning rate (default: 0.005)")
    parser.add_argument(
        "--bn", action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help="x (default: True)"
    )
    parser.add_argument("--fast", action="store_true", help="k of %(default)s")
    parser.add_argument("--secret", help=argparse.SUPPRESS)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("go", help="go now").add_argument("--query", nargs="+", metavar="Q", required=True, help="q")
    return parser


def test_render_command_on_a_toy_parser(gen: ModuleType) -> None:
    expected = [
        "## tool",
        "",
        "Run the tool.",
        "",
        "Does &lt;things>.",
        "",
        "```",
        "tool IMG --ckpt RUN|FILE [OPTIONS] ACTION ...",
        "```",
        "",
        "| Option | Default | Description |",
        "|---|---|---|",
        "| `IMG` | required | an image |",
        r"| `--ckpt RUN\|FILE` | required | checkpoint |",
        "| `--mode {a,b}` | `a` | mode |",
        "| `--tau TAU` | `100.0` | window in seconds |",
        "| `--out OUT` | next to the input | output folder |",
        "| `--lr LR` | `0.005` | learning rate |",
        "| `--[no-]bn` | on | x |",
        "| `--fast` | off | k of False |",
        "",
        "| Command | What it does |",
        "|---|---|",
        "| [`tool go`](#tool-go) | go now |",
        "",
        "### tool go",
        "",
        "Go now.",
        "",
        "```",
        "tool go --query Q [Q ...]",
        "```",
        "",
        "| Option | Default | Description |",
        "|---|---|---|",
        "| `--query Q [Q ...]` | required | q |",
        "",
    ]
    assert gen.render_command("tool", _toy_parser(), "run the tool") == expected


def test_check_flags_a_stale_file(gen: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "cli.md"
    assert gen.main(["--check", "--output", str(target)]) == 1  # missing
    target.write_text(gen.render() + "stale line\n", encoding="utf-8")
    assert gen.main(["--check", "--output", str(target)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert gen.main(["--output", str(target)]) == 0
    assert gen.main(["--check", "--output", str(target)]) == 0
