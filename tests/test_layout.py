"""The tests mirror the sources: tests/<path>/test_<name>.py tests src/qaconv/<path>/<name>.py or the package
src/qaconv/<path>/<name>/ (tests/benchmarks/ mirrors benchmarks/), and every command of src/qaconv/commands/ has
its tests/commands/test_<command>.py. The scenario tests that span several modules, and so have no module to be
named after, are listed in SCENARIOS, each with the reason."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SRC = ROOT / "src" / "qaconv"

# tests/<first folder>/ -> the folder whose modules it tests; every other test module tests src/qaconv/.
SOURCES = {"": SRC, "benchmarks": ROOT / "benchmarks"}

SCENARIOS = {
    "test_layout.py": "this check: the layout of tests/ against src/",
    "test_architecture.py": "the import graph of every module of src/qaconv: layers, no circle",
    "test_docs_cli.py": "docs/cli.md against every command's parser, written by tools/gen_cli_docs.py",
    "inference/test_docs.py": "the examples of docs/api.md and docs/inference.md run as written",
    "serve/test_browser.py": "the page of qaconv serve in a real browser: app, static files and server together",
    "serve/test_load.py": "qaconv serve under load on loopback: app, service, guard and server together",
    "data/synthetic/test_pinned_output.py": "the generator's output pinned byte for byte: every synthetic module",
}


def namesakes(test: Path, tests: Path, sources: dict[str, Path]) -> list[Path]:
    """The files whose presence makes `test` rightly named: <source>/<path>/<name>.py and the package
    <source>/<path>/<name>/__init__.py for tests/<path>/test_<name>.py."""
    parts = test.relative_to(tests).parts[:-1]
    if parts and parts[0] in sources and parts[0]:
        base, parts = sources[parts[0]], parts[1:]
    else:
        base = sources[""]
    name = test.name.removeprefix("test_").removesuffix(".py")
    folder = base.joinpath(*parts)
    return [folder / f"{name}.py", folder / name / "__init__.py"]


def misnamed(tests: Path, sources: dict[str, Path], allowed: dict[str, str]) -> list[str]:
    """The test modules under `tests` (as pytest finds them: test_*.py and *_test.py) that are named after no
    module and are not in `allowed`, as paths relative to `tests`."""
    found = []
    for test in sorted(tests.rglob("*.py")):
        rel = test.relative_to(tests).as_posix()
        if not (test.name.startswith("test_") or test.name.endswith("_test.py")) or rel in allowed:
            continue
        if not test.name.startswith("test_") or not any(p.is_file() for p in namesakes(test, tests, sources)):
            found.append(rel)
    return found


def test_every_test_module_is_named_after_the_module_it_tests():
    assert misnamed(TESTS, SOURCES, SCENARIOS) == [], (
        "name a test module tests/<path>/test_<name>.py after src/qaconv/<path>/<name>.py (or the package "
        "<path>/<name>/), or list a scenario test that spans several modules in SCENARIOS with the reason"
    )


def test_every_command_has_its_test_module():
    commands = sorted(p.stem for p in (SRC / "commands").glob("*.py") if p.stem != "__init__")
    assert "train" in commands
    assert [c for c in commands if not (TESTS / "commands" / f"test_{c}.py").is_file()] == []


def test_the_scenario_tests_exist_and_have_no_module_to_be_named_after():
    for rel, reason in SCENARIOS.items():
        test = TESTS / rel
        assert test.is_file(), f"{rel} is listed in SCENARIOS but does not exist"
        assert not any(p.is_file() for p in namesakes(test, TESTS, SOURCES)), f"{rel} is named after a module"
        assert reason and "\n" not in reason


def test_a_test_module_named_after_no_module_is_found(tmp_path):
    src, tests = tmp_path / "src", tmp_path / "tests"
    for rel in ("io.py", "data/__init__.py", "data/loader.py", "data/datasets/__init__.py"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).touch()
    right = ["test_io.py", "data/test_loader.py", "data/test_datasets.py", "data/conftest.py", "data/helpers.py"]
    wrong = ["data/datasets/test_loader.py", "data/loader_test.py", "data/test_loaders.py", "test_misc.py"]
    for rel in right + wrong:
        (tests / rel).parent.mkdir(parents=True, exist_ok=True)
        (tests / rel).touch()
    assert misnamed(tests, {"": src}, {}) == wrong
    assert misnamed(tests, {"": src}, {"test_misc.py": "a scenario"}) == wrong[:3]
