"""explain's walkthrough as data: for each stage, the items a reader goes through, in order.

A stage's walk is its output (computed by ``core.textbook``'s loops) and a lazy sequence of items:
``Heading``, ``Text`` lines, ``Grid`` (a plane, its padding, marked cells), ``Vector`` and ``Step``
(one output element: the cells it read, its value, and its arithmetic as terms). Items are made
as they are read, so a big plane's windows are never all held; ``render.explain`` prints them and
``render.animate`` draws them, and neither computes anything. d2l's first window::

    >>> from poolcli.core.spec import parse_stage
    >>> walk = walk_stage(parse_stage("maxpool:2,s=1"), [[[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]]])
    >>> walk.output
    [[[[4.0, 5.0], [7.0, 8.0]]]]
    >>> step = next(item for item in walk.items() if isinstance(item, Step))
    >>> plain(step.line), [cell.value for cell in step.cells]
    ('Y[0, 0] = max(0, 1, 3, 4) = 4', [0.0, 1.0, 3.0, 4.0])

How an op is walked through is the op's own statement: its class names a walker of ``WALKERS`` in
``walkthrough`` (None refuses it, giving ``unexplained`` as the reason), and the walker reads what
it needs from the stage: ``reduction`` (max, min, avg, lp, median) for window pools,
``element()`` and ``definition()`` for activations, ``Grayscale.pixel`` and its constants for luma.
A new op plugs in by setting those attributes; an op unlike any walker here adds one function to
``WALKERS`` (``walker(stage, x, plan, context, select) -> (output, items)``) and names it. Nothing
here or in ``render`` reads op names.
"""

from __future__ import annotations

from typing import Any, Iterator

from ...errors import UsageError
from ..arithmetic import format_shape
from .items import (
    LINEAR_MAX_FEATURES, Canvas, Grid, Heading, Item, Line, PlaneView, Segment, Select, StageWalk, Step, Terms, Text,
    Vector, WalkContext, WeightSource, as_select, plain, shape_of,
)
from .walkers import WALKERS


# ------------------------------------------------------------------------------ entry points


def refusal(stage_plan: Any) -> tuple[str, str] | None:
    """Why a planned stage cannot be walked through, and a hint (None: it can), said before any output."""
    stage = stage_plan.stage
    if stage.walkthrough not in WALKERS:
        reason = f": {stage.unexplained}" if stage.unexplained else ""
        return (f"stage {stage_plan.index} {stage.op} has no window-by-window explanation{reason}",
                "poolcli shape shows its sizes; poolcli run computes it")
    if stage.walkthrough == "linear" and stage_plan.input_shape[-1] > LINEAR_MAX_FEATURES:
        return (f"stage {stage_plan.index} linear on {stage_plan.input_shape[-1]} features is too big to "
                f"explain term by term (at most {LINEAR_MAX_FEATURES})",
                "explain the stages before it; poolcli shape shows the whole pipeline")
    return None


def walk_stage(stage: Any, x: Any, *, plan: Any = None, context: WalkContext | None = None, select: Any = None,
               position: str = "") -> StageWalk:
    """Walk through one stage on an N×C×H×W input (N×F for linear) as nested lists of floats.

    ``plan`` is the stage's StagePlan (planned here when None); ``context`` carries maxpool
    indices to a later maxunpool and the weight source; ``select`` as ``as_select`` takes it.
    """
    context = context or WalkContext()
    if plan is None:
        from ..plan import Pipeline

        plan = Pipeline([stage]).plan(shape_of(x)).stages[0]
    walker = WALKERS.get(stage.walkthrough)  # type: ignore[arg-type]
    if walker is None:
        reason = f": {stage.unexplained}" if stage.unexplained else ""
        raise UsageError(f"{stage.op} has no window-by-window explanation{reason}", "poolcli shape shows its sizes")
    output, body = walker(stage, x, plan, context, as_select(select))
    heading = Heading(f"{position}{stage.label()}   {format_shape(plan.input_shape)} → {format_shape(plan.output_shape)}")
    context.integer = context.integer and stage.dtype_policy == "native"
    return StageWalk(stage, plan, output, heading, body)


def walk(plan: Any, x: Any, *, context: WalkContext | None = None, select: Any = None) -> Iterator[StageWalk]:
    """Every stage of a planned pipeline in turn, each output feeding the next stage."""
    context = context or WalkContext()
    total = len(plan.stages)
    for stage_plan in plan.stages:
        context.index = stage_plan.index
        step = walk_stage(stage_plan.stage, x, plan=stage_plan, context=context, select=select,
                          position=f"#{stage_plan.index}  " if total > 1 else "")
        yield step
        x = step.output


__all__ = [
    "WALKERS", "Canvas", "Grid", "Heading", "Item", "Line", "PlaneView", "Segment", "Select", "StageWalk", "Step", "Terms",
    "Text", "Vector", "WalkContext", "WeightSource", "as_select", "plain", "refusal", "walk", "walk_stage",
]
