"""Every command has help with an example, and the README shows every pool option."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT
from poolcli.cli import app


def command_names() -> list[str]:
    import typer.main

    return sorted(typer.main.get_command(app).commands)


@pytest.mark.parametrize("name", command_names())
def test_every_command_has_help_with_an_example(invoke, name):
    result = invoke(name, "--help")
    assert result.exit_code == 0, result.stderr
    assert "Example:" in result.stdout
    assert f"poolcli {name}" in result.stdout


def test_top_level_help_lists_every_command(invoke):
    result = invoke("--help")
    assert result.exit_code == 0
    for name in command_names():
        assert name in result.stdout


def test_readme_shows_every_pool_option():
    import typer.main

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = typer.main.get_command(app).commands["pool"]
    for param in command.params:
        for option in param.opts:
            if option.startswith("--"):
                assert re.search(re.escape(option) + r"\b", readme), f"README does not show {option}"


@pytest.mark.parametrize(
    "args",
    [
        ["shape", "1x1x28x28", "--pipeline", "../examples/lenet.toml"],
        ["explain", "--matrix", "0 1 2; 3 4 5; 6 7 8", "-S", "maxpool:2,s=1", "--only", "0,0"],
        ["shape", "coffee.png", "--pipeline", "../examples/conv_encoder_decoder.toml"],
        ["shape", "1x3x240x360", "-S", "nn.Conv2d(3, 8, 3, stride=2, padding=1)", "-S",
         "nn.ConvTranspose2d(8, 3, 3, stride=2, padding=1)"],
    ],
)
def test_readme_examples_are_what_the_command_prints(invoke, monkeypatch, args):
    """The README's untimed examples, run from sample_images/ at the README's 100 columns."""
    monkeypatch.setenv("POOLCLI_WIDTH", "100")
    monkeypatch.chdir(ROOT / "sample_images")
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr
    printed = "\n".join(line.rstrip() for line in result.stdout.splitlines())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert printed in readme, "README example out of date: rerun it and paste the output"


def test_version_and_completion(invoke):
    from poolcli import __version__

    version = invoke("--version")
    assert version.exit_code == 0 and version.stdout == f"poolcli {__version__}\n"
    shown = invoke("--show-completion", "bash")
    assert shown.exit_code == 0 and "complete" in shown.stdout and "poolcli" in shown.stdout
    top = invoke("--help")
    assert "--install-completion" in top.stdout and "--version" in top.stdout


@pytest.mark.parametrize("name", command_names())
def test_help_shows_no_type_placeholders(invoke, name):
    """Options and arguments show what to write (FILE, K|HxW, INPUT...), not typer's <list[str]>."""
    text = invoke(name, "--help").stdout
    assert not re.search(r"<(list\[)?(str|int|float|bool)\]?>", text), text


def test_help_says_what_the_commands_do():
    from typer.testing import CliRunner as Runner

    runner = Runner()
    unpool = runner.invoke(app, ["unpool", "--help"]).stdout
    assert "photo_unpooled.jpg" in unpool and "_unpooled.png" not in unpool
    assert "0-100" in runner.invoke(app, ["pool", "--help"]).stdout
    assert "per filter" in runner.invoke(app, ["filters", "--help"]).stdout
