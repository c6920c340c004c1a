"""JSON Lines records (DESIGN.md §4): one object per input, or one for ``shape``, from a plan
and what its run measured (seconds per stage) passed beside it.

    >>> from poolcli.core.plan import Pipeline
    >>> record(input="4x4", plan=Pipeline.from_specs(["maxpool:2"]).plan((1, 1, 4, 4)))["output_shape"]
    [1, 1, 2, 2]
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from ..core.plan import Plan, StagePlan


def stage_record(stage: StagePlan, seconds: float | None = None) -> dict[str, Any]:
    """One stage as DESIGN.md §4's JSON object."""
    record = {
        "index": stage.index,
        "op": stage.op,
        "params": stage.stage.params(),
        "input_shape": list(stage.input_shape),
        "output_shape": list(stage.output_shape),
        "formula": stage.formula,
        "receptive_field": list(stage.receptive_field),
        "jump": list(stage.jump),
        "params_count": stage.params_count,
        "ops": stage.ops,
        "seconds": None if seconds is None else round(seconds, 6),
    }
    if any(j.denominator != 1 for j in stage.jump_fraction):  # 1/3 exactly, beside the rounded number
        record["jump_fraction"] = [str(j) for j in stage.jump_fraction]
    if not all(stage.field_exact):  # receptive_field is an upper bound on these axes
        record["receptive_field_exact"] = list(stage.field_exact)
    return record


def record(
    *,
    input: str,
    output: str | None = None,
    status: str = "ok",
    error: str | None = None,
    device: str | None = None,
    plan: Plan | None = None,
    seconds: Iterable[float] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The JSON Lines object for one input (or for ``shape``): DESIGN.md §4's keys, in order."""
    stages = []
    if plan is not None:
        times = list(seconds) if seconds is not None else [None] * len(plan.stages)
        stages = [stage_record(stage, took) for stage, took in zip(plan.stages, times)]
    result = {
        "input": input,
        "output": output,
        "status": status,
        "error": error,
        "device": device,
        "input_shape": list(plan.input_shape) if plan else None,
        "output_shape": list(plan.output_shape) if plan else None,
        "stages": stages,
    }
    result.update(extra)
    return result


def json_line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False)
