"""poolcli at a real terminal (a pseudo-terminal): no image bytes poured into it, error lines
never glued to the progress bar, narrow windows cut nothing (DESIGN §3, §4, §5)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _terminal(columns: int) -> tuple[int, int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    return master, slave


def _read_all(master: int, proc: subprocess.Popen, timeout: float = 120) -> str:
    chunks, deadline = [], time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the other end closed
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks).decode("utf-8", "replace")


def run_at_terminal(args: list[str], *, columns: int = 100, stdout_tty: bool = True, stderr_tty: bool = True,
                    cwd=None) -> tuple[int, str, bytes, bytes]:
    """Run ``poolcli ARGS`` with stdout and/or stderr on a pseudo-terminal ``columns`` wide;
    returns (status, what the terminal showed, stdout bytes, stderr bytes) for the piped ones."""
    master, slave = _terminal(columns)
    env = {k: v for k, v in os.environ.items() if k not in ("POOLCLI_WIDTH", "COLUMNS", "TERM")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "poolcli", *args], stdin=subprocess.DEVNULL,
        stdout=slave if stdout_tty else subprocess.PIPE, stderr=slave if stderr_tty else subprocess.PIPE,
        env=env, cwd=cwd,
    )
    os.close(slave)
    shown = _read_all(master, proc)
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read() if proc.stderr else b""
    status = proc.wait(timeout=60)
    os.close(master)
    return status, shown, out, err


def test_image_data_never_pours_into_a_terminal(tmp_path):
    status, shown, _, _ = run_at_terminal(["pool", str(SAMPLES / "photo.jpg"), "-k", "2", "-o", "-"])
    assert status == 2
    assert "poolcli: error: refusing to write image data to a terminal" in shown
    assert "\x89PNG" not in shown and len(shown) < 400
    status, shown, _, _ = run_at_terminal(["pool", "-", "-k", "2"])  # stdin in, so stdout out
    assert status == 2 and "refusing to write image data to a terminal" in shown


def test_piped_image_data_still_flows(tmp_path):
    status, shown, out, _ = run_at_terminal(["pool", str(SAMPLES / "photo.jpg"), "-k", "2", "-o", "-"], stdout_tty=False)
    assert status == 0 and out.startswith(b"\x89PNG")
    assert "H_out" in shown  # the report went to the terminal on stderr


@pytest.fixture
def messy_folder(tmp_path):
    """50 pictures of 30 sizes, two of them broken."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(50):
        size = (20 + i % 30, 16 + i % 30)
        Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(folder / f"p{i:02d}.png")
    (folder / "p07.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a picture")
    (folder / "p33.png").write_bytes(b"")
    return folder


def test_a_messy_batch_at_a_terminal(messy_folder, tmp_path):
    """The issue's target: one table, the progress, a summary naming the two bad files; every
    error line on a line of its own, never glued to the progress bar."""
    status, shown, _, _ = run_at_terminal(["pool", str(messy_folder), "-k", "2", "-o", str(tmp_path / "out")], columns=120)
    assert status == 1
    lines = [line for raw in ANSI.sub("", shown).replace("\r", "\n").splitlines() if (line := raw.strip())]
    errors = [line for line in lines if "poolcli: error:" in line]
    assert len(errors) == 2 and all(line.startswith("poolcli: error: ") for line in errors), errors
    assert {os.path.basename(line.split(": ")[2]) for line in errors} == {"p07.png", "p33.png"}
    assert sum(1 for line in lines if line.startswith("#  stage")) == 1  # one table
    assert any("more files in 29 other shapes" in line for line in lines)
    assert "summary" in lines and any(line.startswith("failed (2)") for line in lines)
    assert len(list((tmp_path / "out").iterdir())) == 48


@pytest.mark.parametrize("columns", [50, 60, 80])
def test_narrow_terminal_cuts_no_shape(columns, tmp_path):
    status, shown, _, _ = run_at_terminal(
        ["run", str(SAMPLES / "photo.jpg"), "-S", "avgpool:3,s=2,ceil=true,count_include_pad=false",
         "-S", "conv:filter=sobel-x,p=1,padding_mode=reflect", "-o", str(tmp_path / "o.png")], columns=columns)
    assert status == 0, shown
    text = ANSI.sub("", shown).replace("\r", "")
    words = text.split()
    for shape in ("1×3×266×400", "1×3×133×200", "count_include_pad=false", "padding_mode=reflect"):
        assert any(shape in word for word in words), (shape, text)
    assert max(len(line) for line in text.splitlines()) <= columns


@pytest.mark.parametrize("value", ["abc", "-5", "10"])
def test_a_width_that_does_not_parse_is_one_warning(value, tmp_path):
    env = dict(os.environ, POOLCLI_WIDTH=value)
    proc = subprocess.run([sys.executable, "-m", "poolcli", "pool", str(SAMPLES / "photo.jpg"), "-k", "2",
                           "-o", str(tmp_path / "o.png")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"poolcli: warning: POOLCLI_WIDTH='{value}'")
    assert "Traceback" not in proc.stderr and "H_out" in proc.stdout and "wrote" in proc.stdout
