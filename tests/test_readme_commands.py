"""README.md's command reference is generated from the commands and cannot drift; every
command and option has help text."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from evidence.cli import main
from evidence.docs import BEGIN, END, command_context, reference

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _every_command(
    command: click.Command, ctx: click.Context
) -> Iterator[tuple[click.Command, str]]:
    yield command, ctx.command_path
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None
            yield from _every_command(sub, command_context(sub, name, ctx))


def test_readme_holds_the_reference_the_commands_make() -> None:
    readme = README.read_text(encoding="utf-8")
    generated = reference(main)
    assert readme.count(BEGIN) == readme.count(END) == 1
    assert generated in readme, "README.md has drifted: run scripts/readme-commands"
    # One row per command that does something, none left out.
    context = command_context(main, "evidence", None)
    leaves = [p for c, p in _every_command(main, context) if not isinstance(c, click.Group)]
    lines = generated.splitlines()[4:-2]
    assert len(lines) == len(leaves)
    rows = {}
    for path in leaves:
        [rows[path]] = [row for row in lines if row.startswith((f"| `{path} ", f"| `{path}` "))]
    # What the hand-written table had missed is there now.
    assert "[--cafile FILE]" in rows["evidence import imap"]
    assert "[--note TEXT]" in rows["evidence incident start"]
    assert "[--attach FILE]..." in rows["evidence incident start"]
    assert "[--attach FILE]..." in rows["evidence incident end"]


def test_the_script_rewrites_a_drifted_readme_and_check_fails_on_it(tmp_path: Path) -> None:
    ok = subprocess.run(
        [str(ROOT / "scripts/readme-commands"), "--check"],
        capture_output=True,
        text=True,
        env={"BIN": str(Path(sys.executable).parent), "PATH": "/usr/bin:/bin"},
    )
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")

    drifted = tmp_path / "README.md"
    drifted.write_text(
        README.read_text(encoding="utf-8").replace(" [--cafile FILE]", "", 1), encoding="utf-8"
    )
    command = [sys.executable, "-m", "evidence.docs"]
    check = subprocess.run([*command, "--check", str(drifted)], capture_output=True, text=True)
    assert check.returncode == 1
    assert "run scripts/readme-commands" in check.stderr
    fixed = subprocess.run([*command, str(drifted)], capture_output=True, text=True, check=True)
    assert fixed.stdout == f"{drifted}: command reference updated\n"
    assert drifted.read_text(encoding="utf-8") == README.read_text(encoding="utf-8")


def test_every_command_and_option_has_help() -> None:
    missing = []
    for command, path in _every_command(main, command_context(main, "evidence", None)):
        if not (command.help or "").strip():
            missing.append(path)
        for param in command.params:
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"{path} {param.opts[0]}")
    assert missing == []
