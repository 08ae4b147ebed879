"""What every `podium` command holds to: `--version`; exit codes 0 (success), 1 (runtime
failure), 2 (usage error); each command's `--help` names the settings it reads; no library's
INFO lines on a command's output."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from service.cli import _parser, main
from service.config import setting_names

PODIUM = str(Path(sys.executable).parent / "podium")


def test_version_names_the_installed_podium(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert re.fullmatch(r"podium \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


@pytest.mark.parametrize(
    "argv", [["bogus"], ["keys", "create", "--tenant", "acme"], ["offsets", "reset", "--to", "x"]]
)
def test_a_malformed_command_line_is_a_usage_error(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv, env={})
    assert done.value.code == 2


def test_a_malformed_setting_is_a_usage_error_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["keys", "list"], env={"PODIUM_DRAIN_SECONDS": "soon"}) == 2
    assert "PODIUM_DRAIN_SECONDS='soon' is not valid" in capsys.readouterr().err


def test_a_schema_to_migrate_first_is_a_runtime_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["keys", "list"], env={"DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}"})
    assert code == 1
    assert "run `podium migrate` first" in capsys.readouterr().err


def commands(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command with its parser (`keys create`, `serve`, ...)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += commands(sub, (*words, name))
    return found or [(words, parser)]


def test_every_command_names_the_settings_it_reads_all_of_them_real() -> None:
    known = set(setting_names())
    listed = commands(_parser())
    assert len(listed) == 15  # serve, run-local, migrate, health, keys x3, dlq x2, ...
    for words, parser in listed:
        epilog = parser.epilog or ""
        assert epilog.startswith("settings (environment): "), words
        named = epilog.removeprefix("settings (environment): ").split(", ")
        assert set(named) <= known, (words, set(named) - known)
        assert {"PODIUM_LOG_FORMAT", "PODIUM_LOG_LEVEL"} <= set(named), words
    serve = dict(listed)[("serve",)]
    assert set((serve.epilog or "").removeprefix("settings (environment): ").split(", ")) == known


def test_the_help_says_what_the_exit_codes_mean(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert "exit codes: 0 success; 1 runtime failure" in said
    assert "2 usage error" in said


def test_commands_print_no_library_info_lines(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'podium.db'}", "PODIUM_LOG_FORMAT": "text"}
    migrated = subprocess.run(
        [PODIUM, "migrate"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert "alembic" not in migrated.stderr
    listed = subprocess.run(
        [PODIUM, "keys", "list"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert (listed.stdout, listed.stderr) == ("", "")
