"""poolcli.devices: ``--device`` resolved before any file is read, without numpy or (no driver) torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from poolcli.execute import devices
from poolcli.errors import DeviceError, UsageError


def test_cpu_is_cpu_and_auto_is_cpu_without_a_driver(monkeypatch):
    monkeypatch.setattr(devices, "nvidia_driver_present", lambda: False)
    assert devices.resolve_device("cpu") == "cpu"
    assert devices.resolve_device(" AUTO ") == "cpu"
    assert devices.resolve_device("") == "cpu"


def test_cuda_without_a_gpu_is_a_device_error(monkeypatch):
    monkeypatch.setattr(devices, "nvidia_driver_present", lambda: False)
    with pytest.raises(DeviceError, match="--device cuda:1: torch sees no CUDA device"):
        devices.resolve_device("cuda:1")


def test_anything_else_is_a_usage_error():
    with pytest.raises(UsageError, match="'tpu' is not a device"):
        devices.resolve_device("tpu")


def test_resolving_imports_neither_numpy_nor_torch_without_a_driver():
    code = ("import sys; from poolcli.execute import devices\n"
            "devices.nvidia_driver_present = lambda: False\n"
            "assert devices.resolve_device('auto') == 'cpu'\n"
            "assert not {'numpy', 'torch'} & set(sys.modules), sorted({'numpy', 'torch'} & set(sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
