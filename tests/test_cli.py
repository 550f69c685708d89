"""The command-line dispatcher: one sub-command per module, user errors as one `error:` line with exit status 2."""

import pytest

from qaconv import __version__
from qaconv.cli import main
from qaconv.commands import info
from qaconv.errors import QAConvError

COMMANDS = ("datasets", "demo", "evaluate", "export", "index", "info", "match", "search", "serve", "synth", "train")


def test_no_command_prints_the_help_with_every_command_and_succeeds(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: qaconv")
    listed = {line.split()[0] for line in out.split("COMMAND\n", 2)[-1].splitlines() if line.startswith("    ")}
    assert set(COMMANDS) <= listed


def test_help_and_version_exit_at_once(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and "Generalizable person re-identification" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"qaconv {__version__}\n"


def test_an_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as done:
        main(["trian"])
    assert done.value.code == 2
    assert "invalid choice: 'trian'" in capsys.readouterr().err


def test_a_user_error_is_one_error_line_with_status_2(monkeypatch, capsys):
    def fail(args):
        raise QAConvError("--out runs/x: not a folder")

    monkeypatch.setattr(info, "run", fail)
    assert main(["info"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "qaconv info: error: --out runs/x: not a folder\n" and captured.out == ""


def test_other_exceptions_are_not_swallowed(monkeypatch):
    def bug(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(info, "run", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["info"])


def test_an_interrupt_exits_with_130_and_the_command_status_is_passed_on(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(info, "run", interrupted)
    assert main(["info"]) == 130
    assert capsys.readouterr().err == "qaconv info: interrupted\n"
    monkeypatch.setattr(info, "run", lambda args: None)
    assert main(["info"]) == 0
    monkeypatch.setattr(info, "run", lambda args: 3)
    assert main(["info"]) == 3
