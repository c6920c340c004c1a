"""poolcli: pool, convolve and unpool images the way torch.nn does, and see why.

The public API is what the CLI itself uses::

    from poolcli import Pipeline, load_image, save_image, parse_stage, run_pipeline

Nothing here imports numpy or torch, and importing or calling it changes no global state of
Python, Pillow, numpy or torch. Names are imported on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Pipeline": ("core.plan", "Pipeline"),
    "Plan": ("core.plan", "Plan"),
    "parse_stage": ("io.specs", "parse_stage"),
    "parse_pipeline_file": ("io.specs", "parse_pipeline_file"),
    "load_image": ("io.reading", "load_image"),
    "read_header": ("io.reading", "read_header"),
    "save_image": ("io.writing", "save_image"),
    "run_pipeline": ("execute.run", "run_pipeline"),
    "process_all": ("batch.scheduler", "process_all"),
    "ProcessOptions": ("batch.options", "ProcessOptions"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """Import on first use, so ``import poolcli`` stays light."""
    if name not in _LAZY:
        raise AttributeError(f"module 'poolcli' has no attribute {name!r}")
    from importlib import import_module

    module, attribute = _LAZY[name]
    return getattr(import_module(f"poolcli.{module}"), attribute)
