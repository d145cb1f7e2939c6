"""Every command explains itself: a one-line purpose and a runnable example in its help."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from refledger.cli import cli


def _commands(group: click.Group, prefix=()):
    for name, command in sorted(group.commands.items()):
        path = prefix + (name,)
        yield path, command
        if isinstance(command, click.Group):
            yield from _commands(command, path)


COMMANDS = list(_commands(cli))


def test_the_public_commands_of_the_spec_exist():
    names = {path[0] for path, _ in COMMANDS}
    assert {"ingest", "produce", "consume", "balances", "explain", "quarantine"} <= names


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p))
def test_help_names_the_purpose_and_gives_an_example(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    example = [line for line in result.output.splitlines() if "Example" in line]
    assert example, f"refledger {' '.join(path)} --help has no example:\n{result.output}"
    assert "refledger" in result.output.split("Example", 1)[1], "the example shows a refledger command line"


def test_the_readme_command_table_lists_every_command():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("## The command line", 1)[1].split("\n## ", 1)[0]
    listed = {line.split("`refledger ", 1)[1].split()[0].rstrip("`") for line in table.splitlines()
              if line.startswith("| `refledger ")}
    assert listed == set(cli.commands), f"README lists {sorted(listed)}, the CLI has {sorted(cli.commands)}"
