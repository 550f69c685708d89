"""`qaconv info`: one line for each version, device and optional extra that a bug report needs."""

import torch

from qaconv import __version__
from qaconv.cli import main
from qaconv.commands.info import OPTIONAL_EXTRAS


def test_info_prints_the_versions_the_devices_and_which_extras_are_installed(capsys):
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    fields = {key.strip(): value for key, value in (line.split(": ", 1) for line in lines)}
    assert fields["qaconv"] == __version__ and fields["torch"] == torch.__version__
    assert {"python", "platform", "numpy", "threads", "cuda", "mps"} <= set(fields)
    assert {fields[f"extra {name}"] for name in OPTIONAL_EXTRAS} <= {"found", "missing"}
