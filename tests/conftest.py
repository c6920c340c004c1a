"""Shared fixtures: the bundled sample images, a CLI runner, and a fixed report width."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_images"

os.environ.setdefault("POOLCLI_WIDTH", "200")


@pytest.fixture
def samples() -> Path:
    return SAMPLES


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture
def invoke(runner):
    """Run the CLI in-process: invoke("pool", "a.png", "-k", "2") → Result (exit_code, stdout, stderr)."""
    from poolcli.cli import app

    def run(*args: str, input: bytes | str | None = None):
        return runner.invoke(app, list(args), input=input)

    return run


@pytest.fixture
def d2l_x(tmp_path) -> Path:
    """d2l's X = [[0, 1, 2], [3, 4, 5], [6, 7, 8]] as an .npy file."""
    path = tmp_path / "x.npy"
    np.save(path, np.arange(9, dtype=np.float32).reshape(3, 3))
    return path


@pytest.fixture
def arange16(tmp_path) -> Path:
    """d2l's X = torch.arange(16).reshape((1, 1, 4, 4)) as an .npy file."""
    path = tmp_path / "x16.npy"
    np.save(path, np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
    return path
