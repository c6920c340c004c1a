"""Command bodies: turn parsed options into stages and options, call the library, report.

cli.py declares the options (Typer); this module does what each command does with them, so
the logic is testable without a command line and cli.py stays a list of signatures.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, Iterable

from .environment import Environment
from .errors import ExitStatus, PoolcliError, UsageError
from .stages import Stage, create_stage

POOL_MODES = {"max": "maxpool", "avg": "avgpool", "min": "minpool", "lp": "lppool", "median": "medianpool"}
IMAGE_OUTPUT_FORMATS = ("png", "jpeg", "jpg", "webp", "tiff", "tif", "bmp", "gif", "npy", "pt", "csv")


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
    """The one stage ``poolcli conv`` runs."""
    values = _given(filter=filter, weight=weight, weight_file=weight_file, stride=stride, padding=padding, dilation=dilation)
    values.update(padding_mode=padding_mode, channels=channels, bias=bias)
    return create_stage("conv", values)


def unpool_stages(kernel: str, stride: str | None, padding: str | None) -> list[Stage]:
    """``poolcli unpool``: a maxpool (with indices) and the maxunpool that undoes it."""
    pool = create_stage("maxpool", _given(kernel_size=kernel, stride=stride, padding=padding))
    return [pool, create_stage("maxunpool", {})]


def pipeline_stages(specs: list[str] | None, pipeline_file: str | None) -> list[Stage]:
    """Stages from ``-S`` specs and/or a ``--pipeline`` file (file first)."""
    from .spec import parse_pipeline_file, parse_stage

    stages: list[Stage] = []
    if pipeline_file:
        stages.extend(parse_pipeline_file(pipeline_file))
    stages.extend(parse_stage(spec) for spec in specs or [])
    if not stages:
        raise UsageError("no stages", "give -S SPEC (repeatable) or --pipeline FILE")
    return stages


def _stages(builders: Iterable[Callable[[], Any]]) -> list[Stage]:
    stages: list[Stage] = []
    for build in builders:
        made = build()
        stages.extend(made if isinstance(made, list) else [made])
    return stages


def _choice(name: str, value: str, choices: Iterable[str]) -> str:
    value = value.lower()
    if value not in choices:
        raise UsageError(f"--{name} {value!r}", f"use one of {', '.join(choices)}")
    return value


def _options(common: dict[str, Any], suffix: str) -> Any:
    from .batch import ProcessOptions

    fmt = common.get("format")
    if fmt is not None:
        fmt = _choice("format", fmt, IMAGE_OUTPUT_FORMATS)
        fmt = {"jpg": "jpeg", "tif": "tiff"}.get(fmt, fmt)
    if common.get("json_") and common.get("output") == "-":
        raise UsageError("--json with -o - would mix JSON and image bytes on stdout", "use --report FILE")
    return ProcessOptions(
        output=common.get("output"),
        format=fmt,
        suffix=suffix,
        device=common.get("device", "auto"),
        raw_scale=_choice("scale", common.get("scale", "unit"), ("unit", "raw")) == "raw",
        normalize=_choice("normalize", common.get("normalize", "auto"), ("auto", "clip", "minmax", "abs")),
        alpha=_choice("alpha", common.get("alpha", "premultiply"), ("premultiply", "separate")),
        orient=not common.get("no_orient", False),
        frames=_choice("frames", common.get("frames", "first"), ("first", "all")),
        max_pixels=common.get("max_pixels"),
        quality=common.get("quality"),
        compress_level=common.get("compress_level"),
        seed=common.get("seed", 0),
        save_stages=common.get("save_stages"),
        montage=common.get("montage"),
        skip_existing=common.get("skip_existing", False),
        fail_fast=common.get("fail_fast", False),
        recursive=common.get("recursive", False),
        engine=_choice("engine", common.get("engine", "auto"), ("auto", "numpy", "torch")),
        workers=_positive("workers", common.get("workers")),
        batch_size=_positive("batch-size", common.get("batch_size", 16)) or 16,
        memory=common.get("memory"),
    )


def _positive(name: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise UsageError(f"--{name} {value}", "use a number ≥ 1")
    return value


def run_processing(inputs: list[str], builders: list[Callable[[], Any]], suffix: str, common: dict[str, Any]) -> None:
    """pool / conv / unpool / run: everything checked before the first file, then processed."""
    from .batch import expand_inputs, process_all
    from .pipeline import Pipeline

    debug = common.get("debug", False)
    env = Environment(
        data_on_stdout=common.get("output") == "-",
        quiet=common.get("quiet", False),
        json=common.get("json_", False),
    )
    try:
        options = _options(common, suffix)
        pipeline = Pipeline(_stages(builders))
        if options.device != "cpu":
            from .devices import resolve_device

            options.device = resolve_device(options.device)
        files_from = _read_files_from(common.get("files_from"), env)
        items = expand_inputs(inputs or [], recursive=options.recursive, files_from=files_from, exclude=options.output)
        if not items:
            raise UsageError("no input files", "give files, folders (-r to descend) or --files-from")
        if sum(1 for item in items if item.path == "-") > 1:
            raise UsageError("stdin (-) can be read once", "give - once")
        status = _process_and_report(items, pipeline, options, env, common)
    except PoolcliError as exc:
        if debug:
            raise
        env.error(exc)
        sys.exit(int(exc.exit_status))
    sys.exit(int(status))


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


def _process_and_report(items, pipeline, options, env: Environment, common: dict[str, Any]) -> ExitStatus:
    from .batch import process_all
    from .report import json_line, record

    report_file = _open_report(common.get("report"))
    debug = common.get("debug", False)

    def on_outcome(outcome: Any) -> None:
        if outcome.exception is not None:
            if debug:
                raise outcome.exception
            env.error(outcome.exception)
        if env.json or report_file:
            line = json_line(
                record(
                    input=outcome.input, output=outcome.output, status=outcome.status, error=outcome.error,
                    device=outcome.device, plan=outcome.plan, seconds=outcome.seconds,
                    normalize=outcome.normalize, engine=outcome.engine, execution=outcome.execution,
                )
            )
            if env.json:
                env.data_line(line)
            if report_file:
                report_file.write(line + "\n")

    progress = _progress(env, len(items))

    def on_start(total: int) -> None:
        if progress is not None:
            progress.start()
            progress.add_task("pooling", total=total)

    def on_outcome_with_progress(outcome: Any) -> None:
        on_outcome(outcome)
        if progress is not None:
            progress.advance(0)

    try:
        summary = process_all(
            items, pipeline, options, on_outcome=on_outcome_with_progress, on_start=on_start,
            stdin=env.stdin, stdout=env.stdout_bytes,
        )
    finally:
        if progress is not None:
            progress.stop()
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
    """One table per distinct input shape (timed by its first file), then a batch summary."""
    from . import report

    if env.report_stream is None:
        return
    shown: set[tuple[int, ...]] = set()
    for outcome in summary.outcomes:
        if outcome.plan is None or outcome.plan.input_shape in shown:
            continue
        shown.add(outcome.plan.input_shape)
        for stage, seconds in zip(outcome.plan.stages, outcome.seconds or []):
            stage.seconds = seconds
        extra = [f"device {outcome.device}", f"engine {outcome.engine}"]
        if outcome.normalize and outcome.normalize != "none":
            extra.append(f"normalize {outcome.normalize}")
        title = outcome.input if not many else f"{sum(1 for o in summary.outcomes if o.plan and o.plan.input_shape == outcome.plan.input_shape)} file(s) of {report.ar.format_shape(outcome.plan.input_shape)}"
        env.report(report.plan_table(outcome.plan, title=title, timed=True, caption=report.plan_caption(outcome.plan, extra)))
    if not many:
        for outcome in summary.outcomes:
            if outcome.status == "ok" and outcome.output != "-":
                env.info(f"wrote {outcome.output}")
    else:
        env.report(report.summary_table(summary.as_row()))
    if summary.interrupted:
        env.error(f"poolcli: error: interrupted after {len(summary.outcomes)} of {summary.total} input(s) — outputs written so far are complete; --skip-existing resumes")


# --------------------------------------------------------------------------- shape, info, filters


def parse_shape_text(text: str) -> tuple[int, ...] | None:
    """'1x3x224x224', '3x224x224' or '224x224' → N×C×H×W; None when it is not a shape."""
    parts = text.lower().replace("*", "x").replace(",", "x").split("x")
    if not all(p.strip().isdigit() for p in parts) or not 2 <= len(parts) <= 4:
        return None
    dims = tuple(int(p) for p in parts)
    return (1,) * (4 - len(dims)) + dims


def shape_command(input: str, specs: list[str] | None, pipeline_file: str | None, orient: bool, as_json: bool) -> None:
    """``poolcli shape``: the plan and its table; torch is never imported."""
    from . import report
    from .pipeline import Pipeline

    env = Environment(json=as_json)
    pipeline = Pipeline(pipeline_stages(specs, pipeline_file))
    shape = parse_shape_text(input)
    if shape is None:
        if not os.path.exists(input) and any(c.isdigit() for c in input) and "x" in input.lower():
            raise UsageError(f"{input!r} is not a shape", "write N×C×H×W as 1x3x224x224, 3x224x224 or 224x224")
        from .images import read_header

        shape = read_header(input, orient=orient).shape
    plan = pipeline.plan(shape)
    if as_json:
        env.data_line(report.json_line(report.record(input=input, output=None, device=None, plan=plan)))
        return
    env.report(report.plan_table(plan, title=input, caption=report.plan_caption(plan)))


def info_command(inputs: list[str], orient: bool, as_json: bool) -> int:
    """``poolcli info``: mode, bit depth, NCHW shape and frames from each header."""
    from rich.table import Table

    from .images import read_header

    env = Environment(json=as_json)
    table = Table()
    table.add_column("file", overflow="fold")
    for name in ("format", "mode", "bits", "N×C×H×W", "frames", "orientation"):
        table.add_column(name, no_wrap=True)
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
            table.add_row(
                path, header.format, header.mode if header.mode == header.source_mode else f"{header.source_mode} → {header.mode}",
                str(header.bit_depth), "×".join(map(str, shape)), str(header.frames), str(header.orientation or "-"),
            )
    if not as_json and table.row_count:
        env.report(table)
    return int(ExitStatus.ERROR) if failed else 0


def filters_command(as_json: bool) -> None:
    """``poolcli filters``: every named kernel with its matrix."""
    from rich.table import Table

    from .filters import DESCRIPTIONS, named_filter

    env = Environment(json=as_json)
    if as_json:
        for name in DESCRIPTIONS:
            env.data_line(json.dumps({"name": name, "description": DESCRIPTIONS[name], "matrix": named_filter(name)}))
        return
    table = Table("name", "matrix", "what it does", show_lines=True)
    for name, text in DESCRIPTIONS.items():
        matrix = "\n".join(" ".join(_cell(v) for v in row) for row in named_filter(name))
        table.add_row(name, matrix, text)
    env.report(table)


def _cell(value: float) -> str:
    return f"{value:>6.3f}" if value != int(value) else f"{int(value):>3d}"
