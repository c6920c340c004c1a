"""A pipeline of stages, planned for an input shape before any pixel is read.

``Pipeline.plan`` is pure Python: shapes, formulas, receptive fields, costs and every error a
bad pipeline can raise (a dimension reaching 0, a maxunpool without a maxpool). ``poolcli
shape`` prints the plan; ``Pipeline.run`` computes it on a batch (engine.py, torch).

    >>> from poolcli.spec import parse_stage
    >>> plan = Pipeline([parse_stage("nn.MaxPool2d(3, padding=1, stride=2)")]).plan((1, 1, 4, 4))
    >>> plan.output_shape, plan.stages[0].formula["H"]
    ((1, 1, 2, 2), '⌊(4 + 2·1 − 1·(3−1) − 1)/2⌋ + 1 = 2')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from . import arithmetic as ar
from .errors import PlanError
from .stages import PlanContext, Shape, Stage, StagePlan


@dataclass
class Plan:
    """What a pipeline does to one input shape, stage by stage: the data behind the report."""

    input_shape: Shape
    stages: list[StagePlan]
    notes: list[str] = field(default_factory=list)

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

    def peak_elements(self) -> int:
        """The largest tensor the pipeline holds, in elements: for memory estimates."""
        sizes = [_count(self.input_shape)] + [_count(s.output_shape) for s in self.stages]
        return max(sizes)

    def working_bytes(self) -> int:
        """The most float32 bytes any one stage holds at once (its input, output and scratch).

        The run's peak besides the decoded input itself; ``tiling.choose_execution`` compares it
        with ``--memory``. A 2x2 avgpool on 1×3×1000×1000: 4·(3M in + 0.75M out + 3M copy) = 27 MB.
        """
        sizes = [working_elements(s.stage, s.input_shape, s.output_shape) for s in self.stages]
        return FLOAT_BYTES * max(sizes, default=_count(self.input_shape))


FLOAT_BYTES = 4


def working_elements(stage: Stage, input_shape: Shape, output_shape: Shape) -> int:
    """Elements one stage holds while it runs: input, output and the op's own scratch.

    Every stage may first copy its input (to float32, premultiplied, negated for minpool); conv
    also pads a planar copy and keeps a product buffer the size of its output; medianpool stacks
    k_h·k_w values per output. An upper bound, so that a run that fits the estimate fits memory.
    """
    inputs, outputs = _count(input_shape), _count(output_shape)
    scratch = inputs
    if stage.op == "conv" and len(input_shape) == 4:
        n, c, h, w = input_shape
        left, right, top, bottom = stage.padding_lrtb()  # type: ignore[attr-defined]
        scratch = n * c * (h + top + bottom) * (w + left + right) + outputs
    elif stage.op == "medianpool":
        kh, kw = stage.kernel_size  # type: ignore[attr-defined]
        scratch = inputs + outputs * (kh * kw + 1)
    return inputs + outputs + scratch


def _count(shape: Iterable[int]) -> int:
    total = 1
    for d in shape:
        total *= d
    return total


class Pipeline:
    """An ordered list of stages, as ``nn.Sequential``.

    Build it from specs (``Pipeline.from_specs(["maxpool:2", "relu"])``), a pipeline file
    (``Pipeline.from_file("lenet.toml")``) or stage objects.
    """

    def __init__(self, stages: Sequence[Stage]):
        self.stages = list(stages)

    @classmethod
    def from_specs(cls, specs: Iterable[str]) -> "Pipeline":
        from .spec import parse_stage

        return cls([parse_stage(spec) for spec in specs])

    @classmethod
    def from_file(cls, path: str) -> "Pipeline":
        from .spec import parse_pipeline_file

        return cls(parse_pipeline_file(path))

    def __len__(self) -> int:
        return len(self.stages)

    def __repr__(self) -> str:
        return f"Pipeline([{', '.join(s.label() for s in self.stages)}])"

    def plan(self, input_shape: Sequence[int]) -> Plan:
        """Shapes, formulas, receptive fields and costs for ``input_shape`` (N, C, H, W).

        Raises PlanError, with the formula that went to zero, for a pipeline that cannot run.
        """
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 4 or min(shape) < 1:
            raise PlanError(f"input shape {ar.format_shape(shape)} is not N×C×H×W with sizes ≥ 1", "")
        ctx = PlanContext()
        field_h, field_w = ar.Field(), ar.Field()
        plans: list[StagePlan] = []
        for index, stage in enumerate(self.stages):
            ctx.index = index
            inference = stage.infer(shape, ctx)
            if inference.windows is not None:
                (span_h, stride_h), (span_w, stride_w) = inference.windows
                field_h = field_h.through(span_h, stride_h)
                field_w = field_w.through(span_w, stride_w)
            plans.append(
                StagePlan(
                    index=index,
                    stage=stage,
                    input_shape=shape,
                    output_shape=inference.output_shape,
                    formula=inference.formula,
                    receptive_field=(ar.number(field_h.size), ar.number(field_w.size)),
                    jump=(ar.number(field_h.jump), ar.number(field_w.jump)),
                    params_count=inference.params_count,
                    ops=inference.ops,
                    notes=inference.notes,
                    pairs_with=inference.pairs_with,
                )
            )
            shape = inference.output_shape
        return Plan(tuple(int(d) for d in input_shape), plans)

    def run(self, batch: Any, **options: Any) -> Any:
        """Compute the pipeline on a batch; see ``engine.run_plan`` for the options."""
        from .engine import run_pipeline

        return run_pipeline(self, batch, **options)
