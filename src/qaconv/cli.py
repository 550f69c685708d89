"""Command line: `qaconv <command>`. Each module in qaconv.commands adds one sub-command."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings

from qaconv import commands
from qaconv.errors import QAConvError
from qaconv.version import __version__


def build_parser() -> argparse.ArgumentParser:
    """Parser with one sub-command per module of qaconv.commands (each exposes `register(subparsers)`)."""
    parser = argparse.ArgumentParser(
        prog="qaconv", description="Generalizable person re-identification with QAConv and Graph Sampling."
    )
    parser.add_argument("--version", action="version", version=f"qaconv {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"qaconv.commands.{info.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; user errors print a one-line message and exit with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    python_format = warnings.formatwarning
    _one_line_warnings(args.command)
    try:
        return int(args.func(args) or 0)
    except QAConvError as exc:
        print(f"qaconv {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"qaconv {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = python_format


def _one_line_warnings(command: str) -> None:
    """Show warnings as `qaconv COMMAND: warning: ...` lines, like errors (not Python's file:line form)."""

    def one_line(message: Warning | str, category: type, filename: str, lineno: int, line: str | None = None) -> str:
        return f"qaconv {command}: warning: {message}\n"

    warnings.formatwarning = one_line


if __name__ == "__main__":
    raise SystemExit(main())
