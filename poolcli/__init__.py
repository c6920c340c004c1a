"""poolcli: pool, convolve and unpool images the way torch.nn does, and see why.

The public API is what the CLI itself uses::

    from poolcli import Pipeline, load_image, save_image, parse_stage

Nothing here imports torch; it is imported only where pixels are computed.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Pipeline": ("pipeline", "Pipeline"),
    "Plan": ("pipeline", "Plan"),
    "parse_stage": ("spec", "parse_stage"),
    "parse_pipeline_file": ("spec", "parse_pipeline_file"),
    "load_image": ("images", "load_image"),
    "save_image": ("images", "save_image"),
    "read_header": ("images", "read_header"),
    "run_pipeline": ("engine", "run_pipeline"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """Import on first use, so ``import poolcli`` stays light."""
    if name not in _LAZY:
        raise AttributeError(f"module 'poolcli' has no attribute {name!r}")
    from importlib import import_module

    module, attribute = _LAZY[name]
    return getattr(import_module(f"poolcli.{module}"), attribute)
