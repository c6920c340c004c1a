"""poolcli.environment: where the report goes, and how poolcli's own process ends."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from poolcli.cli.environment import Environment


def _buffered() -> dict[str, str]:
    """The environment without PYTHONUNBUFFERED: stdout keeps what is written until a flush."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}


def test_report_goes_to_stderr_when_stdout_carries_data():
    out, err = io.StringIO(), io.StringIO()
    assert Environment(stdout=out, stderr=err).report_stream is out
    assert Environment(stdout=out, stderr=err, data_on_stdout=True).report_stream is err
    assert Environment(stdout=out, stderr=err, json=True).report_stream is err
    assert Environment(stdout=out, stderr=err, quiet=True).report_stream is None


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
