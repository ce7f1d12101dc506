"""Every command's --help: its own usage line, the flags CLI.md names, and its exit codes."""

from __future__ import annotations

import pytest

from multitalk_desktop.cli import COMMANDS, main

# Commands with actions below them: (command, action).
ACTIONS = [("jobs", a) for a in ("list", "show", "cancel", "retry", "resume", "move")] + [
    ("models", a) for a in ("check", "download", "make-tiny")]

# The flags CLI.md fixes, per command.
REQUEST_FLAGS = ["--image", "--audio", "--box", "--prompt", "--audio-type", "--resolution", "--mode",
                 "--steps", "--seed", "--text-guidance", "--audio-guidance", "--color-correction",
                 "--max-duration", "--request"]
ENGINE_FLAGS = ["--models", "--device", "--profile"]
CLI_MD_FLAGS = {
    ("generate",): REQUEST_FLAGS + ENGINE_FLAGS + ["--out"],
    ("submit",): REQUEST_FLAGS + ENGINE_FLAGS + ["--json"],
    ("worker",): ENGINE_FLAGS + ["--once"],
    ("jobs", "list"): ["--state", "--search", "--limit", "--offset", "--json"],
    ("jobs", "show"): ["--json"],
    ("jobs", "move"): ["--to"],
    ("doctor",): ["--json"],
    ("serve",): ["--host", "--port"],
    ("api-key",): ["--rotate"],
}


def help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("argv", [(name,) for name in COMMANDS] + ACTIONS, ids=" ".join)
def test_help_has_its_own_usage_and_exit_codes(capsys, argv):
    text = help_text(capsys, *argv)
    assert text.startswith(f"usage: multitalk-desktop {' '.join(argv)} ")
    assert "Exit codes: 0 " in text
    for flag in CLI_MD_FLAGS.get(argv, []):
        assert flag in text, flag
    assert "--test-engine" not in text  # hidden, for tests only


def test_top_level_help_lists_every_command_and_the_general_exit_codes(capsys):
    text = help_text(capsys)
    assert "FILES..." in text
    assert all(name in text for name in COMMANDS)
    assert "Exit codes: 0 success, 1 the work failed, 2 bad usage" in text
