"""Stages from what a user hands over: spec text, pipeline files, and the weight files they name.

Parsing is ``poolcli.core.spec`` (text only); this module adds what reads files: a ``.toml`` or
``.json`` pipeline file, and each ``conv:weight_file=`` matrix, read by the array readers and
given to its stage before planning. This is the public ``poolcli.parse_stage``.

    >>> parse_stage("nn.MaxPool2d(2)").label()
    'maxpool:k=2'
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..core.ops import Stage
from ..core.spec import parse_pipeline_text
from ..core.spec import parse_stage as parse_stage_text
from ..errors import SpecError


def read_weight_files(stages: Iterable[Stage]) -> list[Stage]:
    """The stages, each one that names a ``weight_file`` given that file's matrix."""
    from .arrays import read_weight_matrix

    result = []
    for stage in stages:
        path = getattr(stage, "weight_file", None)
        if path is not None and stage.kernel is None:  # type: ignore[attr-defined]
            stage = stage.with_file_weight(read_weight_matrix(path, stage))  # type: ignore[attr-defined]
        result.append(stage)
    return result


def parse_stage(text: str) -> Stage:
    """One stage from a compact spec (``avgpool:3,p=1``) or a torch call (``nn.AvgPool2d(3)``),
    with its weight file read."""
    return read_weight_files([parse_stage_text(text)])[0]


def parse_pipeline_file(path: str | Path) -> list[Stage]:
    """Stages from a ``.toml`` or ``.json`` pipeline file, with their weight files read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = (exc.strerror or str(exc)) if isinstance(exc, OSError) else "not UTF-8 text"
        raise SpecError(f"pipeline file {path}: {why}", "give a TOML or JSON pipeline file, like examples/lenet.toml") from None
    kind = "json" if path.suffix.lower() == ".json" or text.lstrip().startswith("{") else "toml"
    return read_weight_files(parse_pipeline_text(text, kind, str(path)))


def read_stages(specs: Iterable[str] | None, pipeline_file: str | None) -> list[Stage]:
    """Stages from a ``--pipeline`` file and ``-S`` specs, the file's first."""
    stages: list[Stage] = []
    if pipeline_file:
        stages.extend(parse_pipeline_file(pipeline_file))
    stages.extend(parse_stage(spec) for spec in specs or [])
    return stages
