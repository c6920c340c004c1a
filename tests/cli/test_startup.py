"""poolcli.cli.startup: the shortcuts of poolcli's own process (typer's option coercion, one
command built, the fast exit, process-wide settings), each tested both ways: in place, and with
the package it reaches into changed, where the plain path must still work."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PIL import Image

from conftest import SAMPLES


def _buffered() -> dict[str, str]:
    """The environment without PYTHONUNBUFFERED: stdout keeps what is written until a flush."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}


def test_exit_now_flushes_both_streams_and_keeps_the_status():
    code = ("import sys; from poolcli.cli.startup import exit_now\n"
            "sys.stdout.write('data'); sys.stderr.write('line')\n"
            "import atexit; atexit.register(lambda: print('teardown ran'))\n"
            "exit_now(3)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=_buffered())
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "data", "line")


def test_exit_now_with_the_reader_gone_still_exits_with_the_status():
    code = ("import sys; from poolcli.cli.startup import exit_now\n"
            "sys.stdout.write('buffered'); sys.stdin.readline()\n"
            "exit_now(0)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_buffered())
    proc.stdout.close()  # the reader goes away before the final flush, which meets a broken pipe
    proc.stdin.write(b"go\n")
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert proc.stderr.read() == b""


def test_a_run_converts_its_options_without_pydantic(tmp_path):
    """typer's pydantic coercion costs ~0.2 s a run; poolcli's plain options need none of it."""
    out = tmp_path / "out.png"
    code = (
        "import sys; from poolcli.cli import main\n"
        f"try:\n main(['pool', {str(SAMPLES / 'coffee.png')!r}, '-k', '2', '-m', 'lp', '--norm-type', '2.5', "
        f"'--quality', '90', '-q', '-o', {str(out)!r}])\nexcept SystemExit as exit:\n assert exit.code == 0, exit.code\n"
        "assert 'pydantic' not in sys.modules, 'pydantic imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
    assert out.exists()


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--quality", "abc", "'--quality': 'abc' is not a valid integer"),
    ("--quality", "3.5", "'--quality': '3.5' is not a valid integer"),
    ("--norm-type", "x", "'--norm-type': 'x' is not a valid number"),
])
def test_option_values_of_the_wrong_type_are_one_usage_error(invoke, option, value, expected):
    result = invoke("pool", str(SAMPLES / "coffee.png"), "-m", "lp", option, value)
    assert result.exit_code == 2
    assert result.stderr.startswith("poolcli: error: Invalid value for ") and expected in result.stderr


@pytest.mark.parametrize(("args", "narrowed"), [
    (["pool", "photo.jpg", "-k", "2"], ["pool"]),
    (["shape", "1x1x4x4", "-S", "maxpool:2"], ["shape"]),
    (["--help"], None),
    (["pol", "photo.jpg"], None),  # a typo keeps every command, for click's suggestions
    ([], None),
])
def test_app_for_builds_only_the_command_it_is_given(args, narrowed):
    from poolcli.cli import app
    from poolcli.cli.startup import app_for

    chosen = app_for(app, args)
    if narrowed is None:
        assert chosen is app
    else:
        assert [info.callback.__name__ for info in chosen.registered_commands] == narrowed
        assert len(app.registered_commands) == 8  # the app itself is left whole


@pytest.mark.parametrize(("args", "status", "fragment"), [
    (["pool", str(SAMPLES / "coffee.png"), "-k", "2", "-q"], 0, b""),
    (["pool", "missing.png", "-k", "2"], 1, b"poolcli: error: missing.png"),
    (["pool", str(SAMPLES / "coffee.png"), "-k", "0"], 2, b"kernel_size=0"),
    (["pol", "x.png"], 2, b"Did you mean 'pool'"),
])
def test_the_process_exits_with_the_command_status(tmp_path, args, status, fragment):
    """`python -m poolcli` ends through startup.exit_now: the same statuses, stderr flushed."""
    out = ["-o", str(tmp_path / "out.png")] if args[0] == "pool" and status == 0 else []
    proc = subprocess.run([sys.executable, "-m", "poolcli", *args, *out], capture_output=True, timeout=120)
    assert proc.returncode == status, proc.stderr.decode()
    assert fragment in proc.stderr
    if out:
        assert Image.open(out[1]).size == (180, 120)


def test_main_sets_one_openblas_thread_unless_told_otherwise():
    code = ("import os, sys; from poolcli.cli import main\n"
            "try:\n main(['shape', '1x1x4x4', '-S', 'maxpool:2'])\nexcept SystemExit: pass\n"
            "print(os.environ['OPENBLAS_NUM_THREADS'])")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=60).stdout.splitlines()[-1] == "1"
    env["OPENBLAS_NUM_THREADS"] = "4"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=60).stdout.splitlines()[-1] == "4"


def test_the_plain_coercion_is_in_place_after_a_run():
    import typer.core

    from poolcli.cli.startup import use_plain_coercion

    assert use_plain_coercion() is True
    assert getattr(typer.core.build_runtime_param, "plain", False)


FALLBACK = """
import sys
import typer._coercion
del typer._coercion.RuntimeParam  # a typer whose internals moved: the name the shortcut needs is gone
from poolcli.cli.startup import use_plain_coercion
assert use_plain_coercion() is False
from poolcli.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    print("status", exit.code)
"""


def test_without_typers_coercion_module_the_plain_path_still_converts(tmp_path):
    out = tmp_path / "out.png"
    args = ["pool", str(SAMPLES / "coffee.png"), "-k", "2", "-m", "lp", "--norm-type", "2.5", "--quality", "90",
            "-q", "-o", str(out)]
    proc = subprocess.run([sys.executable, "-c", FALLBACK, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "status 0" in proc.stdout, proc.stderr
    assert out.exists()
    bad = subprocess.run([sys.executable, "-c", FALLBACK, "pool", str(SAMPLES / "coffee.png"), "--quality", "abc"],
                         capture_output=True, text=True, timeout=120)
    assert "status 2" in bad.stdout and bad.stderr.startswith("poolcli: error: Invalid value for ")


def test_only_commands_that_compute_pixels_tune_the_allocator():
    """``pool`` reaches glibc's mallopt through ctypes; ``shape`` and ``--help`` start without it."""
    code = ("import sys; from poolcli.cli import startup\n"
            "startup.configure_process(sys.argv[1:])\nprint('ctypes' in sys.modules)")
    answers = {}
    for args in (["pool", "x.jpg"], ["shape", "1x1x4x4"], ["pool", "--help"]):
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
        answers[args[0] + (" --help" if "--help" in args else "")] = done.stdout.split()[-1]
    assert answers == {"pool": "True", "shape": "False", "pool --help": "False"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_reuse_freed_memory_takes_effect_on_glibc():
    from poolcli.cli.startup import reuse_freed_memory

    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert reuse_freed_memory() is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page faults as Linux counts them")
def test_a_longer_batch_maps_almost_no_fresh_pages(tmp_path):
    """Page faults of a 2-file batch and a 26-file one of the same 1080p picture: the 24 extra
    images reuse the freed blocks (a fresh 8 MiB RGBX block alone would be 2,048 faults)."""
    import numpy as np

    picture = tmp_path / "frame.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)).save(picture, quality=90)
    code = ("import resource, sys; from poolcli.cli import main\n"
            "try:\n main(sys.argv[1:])\nexcept SystemExit: pass\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)")
    faults = {}
    for count in (2, 26):
        folder = tmp_path / f"in{count}"
        folder.mkdir()
        for i in range(count):
            (folder / f"{i:02d}.jpg").write_bytes(picture.read_bytes())
        done = subprocess.run([sys.executable, "-c", code, "pool", str(folder), "-k", "2", "-q", "--workers", "2",
                               "-o", str(tmp_path / f"out{count}")], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        faults[count] = int(done.stdout.split()[-1])
    assert (faults[26] - faults[2]) / 24 < 50, faults  # about 1 here; over 200 without reuse_freed_memory


def test_nothing_before_the_first_decode_imports_numpy(tmp_path):
    """Header, plan and options need no numpy; its import starts on a thread as the decode does."""
    code = ("import sys, threading; from poolcli.cli import main\n"
            "import poolcli.batch.flow as flow, poolcli.io.reading as reading\n"
            "flow.import_engine_in_background = lambda *a: threading.Thread(target=lambda: None)\n"
            "def load_source(*a, **k):\n"
            "    print('numpy' in sys.modules, flush=True); raise SystemExit(0)\n"
            "reading.load_source = load_source\n"
            "try:\n main(sys.argv[1:])\nexcept SystemExit: pass\n")
    done = subprocess.run([sys.executable, "-c", code, "pool", str(SAMPLES / "photo.jpg"), "-k", "2", "-q",
                           "-o", str(tmp_path / "out.jpg")], capture_output=True, text=True, timeout=60)
    assert done.stdout.split()[:1] == ["False"], done.stdout + done.stderr
