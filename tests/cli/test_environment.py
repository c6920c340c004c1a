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
