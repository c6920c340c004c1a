"""pool, conv, unpool and run: their options become stages, the inputs are processed by
``poolcli.batch``, and the report is printed. Nothing here computes: the stage builders hand
loose option values to ``core.ops``, which validates them as torch does.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

from ..core.ops import Stage, create_stage
from ..errors import ExitStatus, UsageError
from .environment import Environment
from .options import SharedOptions

POOL_MODES = {"max": "maxpool", "avg": "avgpool", "min": "minpool", "lp": "lppool", "median": "medianpool"}


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def pool_stage(
    mode: str, kernel: str | None, stride: str | None, padding: str | None, dilation: str | None,
    ceil_mode: bool, count_include_pad: bool, divisor_override: int | None, norm_type: float | None,
    output_size: str | None, global_: bool,
) -> Stage:
    """The one stage ``poolcli pool`` runs, from its options."""
    mode = mode.lower()
    if mode not in POOL_MODES:
        raise UsageError(f"--mode {mode!r}", f"use one of {', '.join(POOL_MODES)}")
    if global_ or output_size is not None:
        if mode not in ("max", "avg"):
            raise UsageError(f"--mode {mode} has no global or adaptive form", "use --mode max or avg")
        if global_ and output_size is not None:
            raise UsageError("--global and --output-size both given", "global pooling is --output-size 1x1: give one")
        given = [f"--{name}" for name, value in (("kernel", kernel), ("stride", stride), ("padding", padding),
                                                  ("dilation", dilation)) if value is not None]
        if given:
            form = "--global" if global_ else "--output-size"
            raise UsageError(f"{form} takes no {', '.join(given)}",
                             "its windows follow from the image's size: leave them out")
        if global_:
            return create_stage(f"global{mode}pool", {})
        return create_stage(f"adaptive{mode}pool", {"output_size": output_size})
    if kernel is None:
        raise UsageError("pool needs --kernel (or --global / --output-size)", "for example poolcli pool img.png -k 2")
    values: dict[str, Any] = _given(kernel_size=kernel, stride=stride)
    if mode in ("max", "min"):
        values.update(_given(padding=padding, dilation=dilation), ceil_mode=ceil_mode)
    elif mode == "avg":
        values.update(_given(padding=padding, divisor_override=divisor_override), ceil_mode=ceil_mode)
        values["count_include_pad"] = count_include_pad
    elif mode == "lp":
        values.update(norm_type=2.0 if norm_type is None else norm_type, ceil_mode=ceil_mode)
    else:
        values.update(_given(dilation=dilation), ceil_mode=ceil_mode)
    _refuse_unused(mode, padding=padding if mode in ("lp", "median") else None,
                   dilation=dilation if mode in ("avg", "lp") else None,
                   divisor_override=divisor_override if mode != "avg" else None,
                   norm_type=norm_type if mode != "lp" else None)
    return create_stage(POOL_MODES[mode], values)


def _refuse_unused(mode: str, **options: Any) -> None:
    for name, value in options.items():
        if value is not None:
            raise UsageError(f"--{name.replace('_', '-')} does not apply to --mode {mode}", "see poolcli pool --help")


def conv_stage(
    filter: str | None, weight: str | None, weight_file: str | None, stride: str | None,
    padding: str | None, dilation: str | None, padding_mode: str, channels: str, bias: float,
) -> Stage:
    """The one stage ``poolcli conv`` runs, its weight file read."""
    from ..io.specs import read_weight_files

    values = _given(filter=filter, weight=weight, weight_file=weight_file, stride=stride, padding=padding, dilation=dilation)
    values.update(padding_mode=padding_mode, channels=channels, bias=bias)
    return read_weight_files([create_stage("conv", values)])[0]


def unpool_stages(kernel: str, stride: str | None, padding: str | None) -> list[Stage]:
    """``poolcli unpool``: a maxpool (with indices) and the maxunpool that undoes it."""
    pool = create_stage("maxpool", _given(kernel_size=kernel, stride=stride, padding=padding))
    return [pool, create_stage("maxunpool", {})]


def pipeline_stages(specs: list[str] | None, pipeline_file: str | None) -> list[Stage]:
    """Stages from ``-S`` specs and/or a ``--pipeline`` file (file first)."""
    from ..io.specs import read_stages

    stages = read_stages(specs, pipeline_file)
    if not stages:
        raise UsageError("no stages", "give -S SPEC (repeatable) or --pipeline FILE")
    return stages


def run_processing(inputs: list[str] | None, build: Callable[[], list[Stage]], suffix: str,
                   shared: SharedOptions) -> ExitStatus:
    """pool / conv / unpool / run: every option, stage and input checked before the first file
    is read, then processed and reported."""
    from ..batch import expand_inputs
    from ..core.plan import Pipeline
    from ..execute.devices import resolve_device

    env = Environment(data_on_stdout=shared.output == "-", quiet=shared.quiet, json=shared.json)
    options = shared.process_options(suffix)
    if options.executor == "ray":
        from ..batch.on_ray import require_ray

        require_ray()
    pipeline = Pipeline(build())
    if options.device != "cpu":
        from dataclasses import replace

        options = replace(options, device=resolve_device(options.device))
    files_from = _read_files_from(shared.files_from, env)
    items = expand_inputs(inputs or [], recursive=options.recursive, files_from=files_from, exclude=options.output)
    if not items:
        raise UsageError("no input files", "give files, folders (-r to descend) or --files-from")
    if sum(1 for item in items if item.path == "-") > 1:
        raise UsageError("stdin (-) can be read once", "give - once")
    if env.stdout_is_terminal and (options.output == "-" or (options.output is None and items[0].path == "-")):
        raise UsageError("refusing to write image data to a terminal",
                         "redirect or pipe it: poolcli ... -o - > out.png, or give -o FILE")
    return _process_and_report(items, pipeline, options, env, shared)


def _read_files_from(source: str | None, env: Environment) -> list[str]:
    if source is None:
        return []
    try:
        if source == "-":
            return env.stdin.read().decode("utf-8", "replace").splitlines()
        with open(source, encoding="utf-8") as handle:
            return handle.read().splitlines()
    except OSError as exc:
        raise UsageError(f"--files-from {source}: {exc.strerror}", "give a readable list of paths") from None


def _process_and_report(items: list[Any], pipeline: Any, options: Any, env: Environment,
                        shared: SharedOptions) -> ExitStatus:
    report_file = _open_report(shared.report)

    def on_outcome(outcome: Any) -> None:
        if outcome.exception is not None:
            if shared.debug:
                raise outcome.exception
            env.error(outcome.exception)
        if env.json or report_file:
            from ..render.records import json_line, record  # here: only --json and --report need json

            line = json_line(record(
                input=outcome.input, output=outcome.output, status=outcome.status, error=outcome.error,
                device=outcome.device, plan=outcome.plan, seconds=outcome.seconds,
                normalize=outcome.normalize, engine=outcome.engine, execution=outcome.execution,
            ))
            if env.json:
                env.data_line(line)
            if report_file:
                report_file.write(line + "\n")
        if progress is not None:
            progress.advance(0)

    def on_start(total: int) -> None:
        if progress is not None:
            progress.start()
            progress.add_task("pooling", total=total)
            env.live = progress

    many_writers = len(items) > 1 or options.executor == "ray"  # threads' decoders, or Ray's own C++ logging
    guard = env.own_stderr() if many_writers and not shared.debug else contextlib.nullcontext()
    with guard:
        progress = _progress(env, len(items))
        try:
            if options.executor == "ray":
                from ..batch.on_ray import process_on_ray

                with env.stdout_for_poolcli_only(others=env.stderr if shared.debug else None):
                    summary = process_on_ray(items, pipeline, options, address=options.ray_address,
                                             on_outcome=on_outcome, on_start=on_start)
            else:
                from ..batch import process_all

                summary = process_all(items, pipeline, options, on_outcome=on_outcome, on_start=on_start,
                                      stdin=env.stdin, stdout=env.stdout_bytes)
        finally:
            if progress is not None:
                progress.stop()  # transient: the bar is cleared before the report and summary
                env.live = None
            if report_file:
                report_file.close()
        _print_report(summary, env, len(items) > 1)
    if summary.interrupted:
        return ExitStatus.TERMINATED if summary.interrupted == 15 else ExitStatus.INTERRUPTED
    failed = [o for o in summary.outcomes if o.status == "error"]
    if not failed:
        return ExitStatus.OK
    if len(items) == 1 and failed[0].exception is not None:
        return failed[0].exception.exit_status
    return ExitStatus.ERROR


def _progress(env: Environment, total: int) -> Any:
    """A progress bar on stderr for many files when stderr is a terminal, else None."""
    if total < 2 or env.quiet or not env.stderr_is_terminal:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed or 0:.1f} img/s")

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
        TimeRemainingColumn(), console=env.console(env.stderr), transient=True,
    )


def _open_report(path: str | None) -> Any:
    if not path:
        return None
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--report {path}: {exc.strerror}", "choose a writable path") from None


def _print_report(summary: Any, env: Environment, many: bool) -> None:
    """One input: its table and where its output went. A batch (DESIGN §4): one table, for the
    first input's shape, a line counting the other shapes, and the summary with the failed files."""
    from ..core.arithmetic import format_shape
    from ..render import report

    if env.report_stream is not None:
        planned = [outcome for outcome in summary.outcomes if outcome.plan is not None]
        if planned:
            first = planned[0]
            shape = first.plan.input_shape
            shapes: dict[tuple[int, ...], int] = {}
            for outcome in planned:
                shapes[outcome.plan.input_shape] = shapes.get(outcome.plan.input_shape, 0) + 1
            extra = [f"device {first.device}", f"engine {first.engine}"]
            if first.normalize and first.normalize != "none":
                extra.append(f"normalize {first.normalize}")
            title = first.input if not many else f"{shapes[shape]} file{'s' * (shapes[shape] != 1)} of {format_shape(shape)}"
            caption = report.plan_caption(first.plan, extra, first.notes)
            env.report(report.plan_table(first.plan, title=title, seconds=first.seconds or (), caption=caption))
            others = report.other_shapes_line(shape, shapes) if many else None
            if others:
                env.info(others)
        if not many:
            for outcome in summary.outcomes:
                if outcome.status == "ok" and outcome.output != "-":
                    env.info(f"wrote {outcome.output}")
        else:
            failures = [outcome.error for outcome in summary.outcomes if outcome.status == "error"]
            env.report(report.summary_table(summary.as_row(), failures))
    if summary.interrupted:
        env.error(f"poolcli: error: interrupted after {len(summary.outcomes)} of {summary.total} input(s) — outputs "
                  "written so far are complete; --skip-existing resumes")
