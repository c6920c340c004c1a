"""What the numbers were measured on, printed above the tables: ratios travel between machines,
absolute times do not."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys

from peers import CONVERT, CORES, POOLCLI


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> str:
    try:
        with open("/proc/meminfo") as meminfo:
            kib = int(meminfo.readline().split()[1])  # MemTotal is the first line
        return f"{kib / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _tool_version(argv: list[str]) -> str:
    """The first line a tool prints about its version, or 'not found'."""
    if shutil.which(argv[0]) is None:
        return "not found"
    result = subprocess.run(argv, capture_output=True, text=True)
    return (result.stdout or result.stderr).strip().splitlines()[0]


def _gpu() -> str:
    try:
        import torch
    except ImportError:
        return "none (torch not installed)"
    if not torch.cuda.is_available():
        return "none visible to torch"
    return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))


def _jpeg_library() -> str:
    """Pillow's bundled libjpeg-turbo: its decoder speed is part of every Pillow and poolcli row."""
    from PIL import features

    return f"libjpeg-turbo {features.version('libjpeg_turbo')}" if features.check("libjpeg_turbo") else "libjpeg"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: on a shared machine they say how noisy the times are."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def _poolcli_source() -> str:
    """Where the poolcli being measured is imported from (PYTHONPATH may point at a snapshot) and its git commit."""
    result = subprocess.run([sys.executable, "-c", "import os, poolcli; print(os.path.dirname(poolcli.__file__))"],
                            capture_output=True, text=True, cwd="/")  # not the checkout: `-c` puts the cwd first
    folder = result.stdout.strip() or "not importable"
    git = subprocess.run(["git", "-C", folder, "describe", "--always", "--dirty"], capture_output=True, text=True)
    commit = git.stdout.strip() if git.returncode == 0 else os.environ.get("POOLCLI_COMMIT", "unknown commit")
    return f"{folder} ({commit})"


def describe() -> list[str]:
    """One 'key: value' line each for the machine and the software in the comparison."""
    return [
        f"CPU: {_cpu_model()}, {CORES} cores usable of {os.cpu_count()}",
        f"RAM: {_memory_gib()}",
        f"GPU: {_gpu()}",
        f"OS: {platform.platform()}",
        f"Python {sys.version.split()[0]}; poolcli {_version('poolcli')}; torch {_version('torch')};"
        f" numpy {_version('numpy')}; Pillow {_version('pillow')} ({_jpeg_library()})",
        f"poolcli: {POOLCLI}, package {_poolcli_source()}",
        f"load average at start: {load_average()} (other jobs on this machine make times noisy)",
        f"libvips: {_tool_version(['vips', '--version'])}",
        f"ImageMagick: {_tool_version([CONVERT, '-version'])}",
        f"hyperfine: {_tool_version(['hyperfine', '--version'])}",
    ]
