"""Every command and subcommand has help text, reachable with -h, that shows an example."""

import click
import pytest

from geryon.cli import COMMANDS, LazyGroup, geryon
from support import geryon as run_geryon


def all_commands():
    ctx = click.Context(geryon)
    out = []

    def visit(cmd, path):
        out.append((path, cmd))
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                visit(cmd.get_command(ctx, name), [*path, name])

    visit(geryon, [])
    return out


def test_every_listed_command_exists():
    ctx = click.Context(geryon)
    assert isinstance(geryon, LazyGroup)
    for name in COMMANDS:
        assert geryon.get_command(ctx, name) is not None, name


@pytest.mark.parametrize("path,cmd", all_commands(), ids=lambda v: " ".join(v) if
                         isinstance(v, list) else "")
def test_help_has_an_example(path, cmd):
    assert cmd.help and cmd.help.strip(), f"geryon {' '.join(path)} has no help"
    assert "Example" in cmd.help, f"geryon {' '.join(path)}: help shows no example"


def test_dash_h_works_from_the_real_command(tmp_path):
    for path in (["-h"], ["regquery", "-h"], ["ca", "sign", "-h"]):
        result = run_geryon(tmp_path, *path)
        assert result.returncode == 0
        assert "Usage: geryon" in result.stdout
