"""Which device runs the pixels: ``--device auto|cpu|cuda|cuda:N`` resolved, without numpy.

The CLI resolves the device before any file is read, so this module imports nothing heavy:
torch only when an NVIDIA driver is loaded (without one torch cannot see CUDA either).
"""

from __future__ import annotations

import os

from ..errors import DeviceError, UsageError


def nvidia_driver_present() -> bool:
    """Whether an NVIDIA driver is loaded: without one torch cannot see CUDA, so ``--device
    auto`` can pick the CPU without importing torch."""
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")


def cuda_available() -> bool:
    if not nvidia_driver_present():
        return False
    import torch

    return torch.cuda.is_available()


def resolve_device(device: str = "auto") -> str:
    """'auto' → 'cuda' when torch sees a GPU, else 'cpu'; 'cuda[:N]' must exist."""
    device = (device or "auto").strip().lower()
    if device == "cpu":
        return "cpu"
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        if not cuda_available():
            raise DeviceError(f"--device {device}: torch sees no CUDA device", "use --device cpu or auto")
        import torch

        index = device.split(":", 1)[1] if ":" in device else "0"
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise DeviceError(
                f"--device {device}: there are {torch.cuda.device_count()} CUDA device(s)", "use --device cuda:0"
            )
        return device
    raise UsageError(f"--device {device!r} is not a device", "use auto, cpu, cuda or cuda:N")
