"""A pipeline of stages, planned for an input shape before any pixel is read.

``Pipeline.plan`` is pure Python: shapes, formulas, receptive fields, costs and every error a
bad pipeline can raise (a dimension reaching 0, a maxunpool without a maxpool). ``poolcli
shape`` prints the plan; ``poolcli.execute.run_pipeline`` computes it. A plan is made once and
never written to: plans are cached per input shape and shared between inputs, so what a run
measures (seconds per stage, how the output was normalised) travels beside it.

    >>> from poolcli.core.spec import parse_stage
    >>> plan = Pipeline([parse_stage("nn.MaxPool2d(3, padding=1, stride=2)")]).plan((1, 1, 4, 4))
    >>> plan.output_shape, plan.stages[0].formula["H"]
    ((1, 1, 2, 2), '⌊(4 + 2·1 − 1·(3−1) − 1)/2⌋ + 1 = 2')
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterable, Sequence

from ..errors import PlanError
from . import arithmetic as ar
from .ops import PlanContext, Shape, Stage

FLOAT_BYTES = 4


@dataclass(frozen=True)
class StagePlan:
    """What one stage does to one input shape: the data behind a table row and a JSON stage."""

    index: int
    stage: Stage
    input_shape: Shape
    output_shape: Shape
    formula: dict[str, str] | None
    receptive_field: tuple[Any, Any]
    jump: tuple[Any, Any]
    params_count: int
    ops: int
    notes: tuple[str, ...] = ()
    pairs_with: int | None = None  # for maxunpool: the index of its maxpool
    jump_fraction: tuple[Fraction, Fraction] = (Fraction(1), Fraction(1))  # the jump exactly (1/2 after a 2x upsample)
    field_exact: tuple[bool, bool] = (True, True)  # False: receptive_field is an upper bound (the table writes ≤)

    @property
    def op(self) -> str:
        return self.stage.op

    def working_elements(self) -> int:
        return working_elements(self.stage, self.input_shape, self.output_shape)


@dataclass(frozen=True)
class Plan:
    """What a pipeline does to one input shape, stage by stage: the data behind the report."""

    input_shape: Shape
    stages: tuple[StagePlan, ...]

    @property
    def output_shape(self) -> Shape:
        return self.stages[-1].output_shape if self.stages else self.input_shape

    @property
    def unpool_pairs(self) -> dict[int, int]:
        """maxunpool index → the index of the maxpool whose indices it uses."""
        return {s.index: s.pairs_with for s in self.stages if s.pairs_with is not None}

    @property
    def params_count(self) -> int:
        return sum(s.params_count for s in self.stages)

    @property
    def ops(self) -> int:
        return sum(s.ops for s in self.stages)

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(note for stage in self.stages for note in stage.notes)

    def working_bytes(self) -> int:
        """The most float32 bytes any one stage holds at once (its input, output and scratch).

        The run's peak besides the decoded input itself; ``execute.memory.choose_execution``
        compares it with ``--memory``. A 2x2 avgpool on 1×3×1000×1000: 4·(3M in + 0.75M out + 3M copy) = 27 MB.
        """
        sizes = [stage.working_elements() for stage in self.stages]
        return FLOAT_BYTES * max(sizes, default=_count(self.input_shape))


def working_elements(stage: Stage, input_shape: Shape, output_shape: Shape) -> int:
    """Elements one stage holds while it runs on ``input_shape`` (a whole image or a tile): its
    input, its output and its kernels' scratch (``Stage.scratch_elements``)."""
    return _count(input_shape) + _count(output_shape) + stage.scratch_elements(input_shape, output_shape)


def _count(shape: Iterable[int]) -> int:
    total = 1
    for d in shape:
        total *= d
    return total


class Pipeline:
    """An ordered list of stages, as ``nn.Sequential``.

    Build it from stage objects or specs (``Pipeline.from_specs(["maxpool:2", "relu"])``);
    ``poolcli.parse_pipeline_file`` reads a TOML or JSON pipeline file.
    """

    def __init__(self, stages: Sequence[Stage]):
        self.stages = tuple(stages)

    @classmethod
    def from_specs(cls, specs: Iterable[str]) -> "Pipeline":
        from .spec import parse_stage

        return cls([parse_stage(spec) for spec in specs])

    def __len__(self) -> int:
        return len(self.stages)

    def __repr__(self) -> str:
        return f"Pipeline([{', '.join(s.label() for s in self.stages)}])"

    @property
    def keeps_range(self) -> bool:
        """Whether every stage maps values in [0, 1] into [0, 1] (pools, unpool, pad, activations):
        an image's output then leaves its range only by float round-off, never to be stretched."""
        return all(stage.keeps_range for stage in self.stages)

    @property
    def deterministic(self) -> bool:
        """Whether every stage gives an image the same result alone or stacked with others."""
        return all(stage.deterministic for stage in self.stages)

    def plan(self, input_shape: Sequence[int]) -> Plan:
        """Shapes, formulas, receptive fields and costs for ``input_shape`` (N, C, H, W).

        Raises PlanError, with the formula that went to zero, for a pipeline that cannot run.
        """
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 4 or min(shape) < 1:
            raise PlanError(f"input shape {ar.format_shape(shape)} is not N×C×H×W with sizes ≥ 1", "")
        ctx = PlanContext()
        field_h, field_w = ar.Field(), ar.Field()
        steps: list[tuple[Any, Any]] = []
        plans: list[StagePlan] = []
        for index, stage in enumerate(self.stages):
            ctx.index = index
            inference = stage.infer(shape, ctx)
            if inference.field_step is not None:
                (span_h, stride_h), (span_w, stride_w) = inference.field_step
                field_h = field_h.through(span_h, stride_h)
                field_w = field_w.through(span_w, stride_w)
                steps.append(inference.field_step)
            sizes, exact = _receptive_field(steps, (field_h, field_w))
            plans.append(StagePlan(
                index=index,
                stage=stage,
                input_shape=shape,
                output_shape=inference.output_shape,
                formula=inference.formula,
                receptive_field=sizes,
                jump=(ar.number(field_h.jump), ar.number(field_w.jump)),
                params_count=inference.params_count,
                ops=inference.ops,
                notes=tuple(inference.notes),
                pairs_with=inference.pairs_with,
                jump_fraction=(field_h.jump, field_w.jump),
                field_exact=exact,
            ))
            shape = inference.output_shape
        return Plan(tuple(int(d) for d in input_shape), tuple(plans))


def _receptive_field(steps: list[tuple[Any, Any]], fields: tuple[ar.Field, ar.Field]) -> tuple[tuple[Any, Any], tuple[bool, bool]]:
    """The receptive field (h, w) after ``steps`` and whether each is exact.

    Through shrinking stages only, DESIGN §2's chain rule r += (k_eff − 1)·j (``ar.Field``). Once a
    stage has enlarged (a jump below 1) the chain rule can fall short, so the field is walked back
    from one output through every stage (``ar.receptive_field``): a bound where not exact.
    """
    if not any(Fraction(stride) < 1 or isinstance(stride, ar.Ratio) for step in steps for _, stride in step):
        return (ar.number(fields[0].size), ar.number(fields[1].size)), (True, True)
    h, exact_h = ar.receptive_field([step[0] for step in steps])
    w, exact_w = ar.receptive_field([step[1] for step in steps])
    return (h, w), (exact_h, exact_w)
