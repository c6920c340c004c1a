"""shape, info and filters: commands that read headers and plans and print them; no pixel is
computed, and neither numpy nor torch is imported."""

from __future__ import annotations

import json
import os

from ..errors import ExitStatus, PoolcliError, UsageError
from .environment import Environment


def parse_shape_text(text: str) -> tuple[int, ...] | None:
    """'1x3x224x224', '3x224x224' or '224x224' → N×C×H×W; None when it is not a shape.

    >>> parse_shape_text("3x224x224"), parse_shape_text("photo.jpg")
    ((1, 3, 224, 224), None)
    """
    parts = text.lower().replace("*", "x").replace(",", "x").split("x")
    if not all(p.strip().isdigit() for p in parts) or not 2 <= len(parts) <= 4:
        return None
    dims = tuple(int(p) for p in parts)
    return (1,) * (4 - len(dims)) + dims


def shape_command(input: str, specs: list[str] | None, pipeline_file: str | None, orient: bool, as_json: bool) -> ExitStatus:
    """``poolcli shape``: the plan and its table."""
    from ..core.plan import Pipeline
    from ..io.specs import read_stages
    from ..render import report
    from ..render.records import json_line, record

    env = Environment(json=as_json)
    stages = read_stages(specs, pipeline_file)
    if not stages:
        raise UsageError("no stages", "give -S SPEC (repeatable) or --pipeline FILE")
    shape = parse_shape_text(input)
    if shape is None:
        if not os.path.exists(input) and any(c.isdigit() for c in input) and "x" in input.lower():
            raise UsageError(f"{input!r} is not a shape", "write N×C×H×W as 1x3x224x224, 3x224x224 or 224x224")
        from ..io.reading import read_header

        shape = read_header(input, orient=orient).shape
    plan = Pipeline(stages).plan(shape)
    if as_json:
        env.data_line(json_line(record(input=input, output=None, device=None, plan=plan)))
    else:
        env.report(report.plan_table(plan, title=input, caption=report.plan_caption(plan)))
    return ExitStatus.OK


def info_command(inputs: list[str], orient: bool, as_json: bool) -> ExitStatus:
    """``poolcli info``: mode, bit depth, NCHW shape and frames from each header."""
    from ..io.reading import read_header
    from ..render.report import FileTable

    env = Environment(json=as_json)
    rows: list[list[str]] = []
    failed = 0
    for path in inputs:
        try:
            header = read_header(path, orient=orient)
        except PoolcliError as exc:
            env.error(exc)
            failed += 1
            if as_json:
                env.data_line(json.dumps({"input": path, "status": "error", "error": str(exc)}))
            continue
        shape = list(header.shape)
        if as_json:
            env.data_line(json.dumps({
                "input": path, "status": "ok", "format": header.format, "mode": header.mode,
                "source_mode": header.source_mode, "bit_depth": header.bit_depth, "shape": shape,
                "frames": header.frames, "orientation": header.orientation,
            }))
        else:
            rows.append([
                path, header.format, header.mode if header.mode == header.source_mode else f"{header.source_mode} → {header.mode}",
                str(header.bit_depth), "×".join(map(str, shape)), str(header.frames), str(header.orientation or "-"),
            ])
    if not as_json and rows:
        env.report(FileTable(["file", "format", "mode", "bits", "N×C×H×W", "frames", "orientation"], rows))
    return ExitStatus.ERROR if failed else ExitStatus.OK


def filters_command(as_json: bool) -> ExitStatus:
    """``poolcli filters``: every named kernel with its matrix."""
    from rich.table import Table

    from ..core.filters import DESCRIPTIONS, named_filter

    env = Environment(json=as_json)
    if as_json:
        for name in DESCRIPTIONS:
            env.data_line(json.dumps({"name": name, "description": DESCRIPTIONS[name], "matrix": named_filter(name)}))
        return ExitStatus.OK
    table = Table("name", "matrix", "what it does", show_lines=True)
    for name, text in DESCRIPTIONS.items():
        matrix = "\n".join(" ".join(_cell(v) for v in row) for row in named_filter(name))
        table.add_row(name, matrix, text)
    env.report(table)
    return ExitStatus.OK


def _cell(value: float) -> str:
    return f"{value:>6.3f}" if value != int(value) else f"{int(value):>3d}"
