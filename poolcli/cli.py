"""The Typer app: options → Pipeline → process → report. No arithmetic, no pixel work here."""

from __future__ import annotations

import copy
import os
import sys
from typing import Annotated, Any, Callable, Optional

import typer
from typer.core import TyperGroup

from .environment import Environment, exit_now
from .errors import ExitStatus, PoolcliError, UsageError, format_error

_PLAIN_NAMES = {int: "integer", float: "number"}


def _plain_value(kind: type, value: Any, param: Any, ctx: Any) -> Any:
    """``value`` as ``kind`` (str, int, float or bool), or click's BadParameter in words; flags
    arrive from click as bools already."""
    from typer._click.exceptions import BadParameter

    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind in _PLAIN_NAMES and isinstance(value, (str, int)) and not isinstance(value, bool):
        try:
            return kind(value)
        except ValueError:
            pass
    expected = _PLAIN_NAMES.get(kind, kind.__name__)
    raise BadParameter(f"{value!r} is not a valid {expected}", ctx=ctx, param=param)


def use_plain_coercion() -> None:
    """Convert str/int/float/bool options (and lists of str) with ``_plain_value`` instead of
    typer's pydantic ``TypeAdapter``; any other annotation keeps typer's own conversion.

    Why: typer 0.2x imports pydantic and builds one adapter per option before a command runs,
    about 0.2 s for ``pool``'s 40 options, as long as Pillow takes to halve a 12 MP JPEG.
    poolcli's options are all plain types. A typer without ``typer._coercion`` is left as it is.
    """
    try:
        import typer.core as typer_core
        from typer._coercion import RuntimeParam
    except ImportError:
        return
    typers_own = getattr(typer_core, "build_runtime_param", None)
    if typers_own is None or getattr(typers_own, "plain", False):
        return

    class PlainParam(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            kind = str if self.annotation == list[str] else self.annotation
            if isinstance(value, (list, tuple)):
                return [_plain_value(kind, item, param, ctx) for item in value]
            return _plain_value(kind, value, param, ctx)

    def build_runtime_param(descriptor: Any) -> Any:
        info = descriptor.parameter_info
        if (descriptor.annotation in (str, int, float, bool, list[str]) and not descriptor.file_annotation
                and getattr(info, "parser", None) is None and getattr(info, "click_type", None) is None
                and getattr(info, "min", None) is None and getattr(info, "max", None) is None):
            return PlainParam(parameter_info=info, annotation=descriptor.annotation)
        return typers_own(descriptor)

    build_runtime_param.plain = True  # type: ignore[attr-defined]
    typer_core.build_runtime_param = build_runtime_param


class PoolcliGroup(TyperGroup):
    """Every error, click's own usage errors included, as the one ``poolcli: error:`` line."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        from typer._click import exceptions as click_exceptions

        use_plain_coercion()
        try:
            result = super().main(args, prog_name or "poolcli", complete_var, standalone_mode=False, **extra)
            status = result if isinstance(result, int) else int(ExitStatus.OK)
        except click_exceptions.NoArgsIsHelpError as exc:
            sys.stdout.write(exc.format_message() + "\n")
            status = int(ExitStatus.OK)
        except click_exceptions.ClickException as exc:
            sys.stderr.write(format_error(UsageError(exc.format_message(), "see poolcli --help")) + "\n")
            status = int(ExitStatus.USAGE)
        except (typer.Abort, KeyboardInterrupt):
            sys.stderr.write("poolcli: error: interrupted\n")
            status = int(ExitStatus.INTERRUPTED)
        if standalone_mode:
            sys.exit(status)
        return status


app = typer.Typer(
    cls=PoolcliGroup,
    name="poolcli",
    help=(
        "Pool, convolve and unpool images the way torch.nn does, and see why the output has "
        "the size it has.\n\nExample: poolcli pool photo.jpg --kernel 2 --stride 2"
    ),
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

PROCESSING = "Processing options"
OUTPUT = "Output options"
BATCH = "Many inputs"

Inputs = Annotated[Optional[list[str]], typer.Argument(help="Image or array files, folders, or - for stdin.", show_default=False)]
OutputOpt = Annotated[Optional[str], typer.Option("-o", "--output", help="Output FILE, DIR, or - for stdout.", rich_help_panel=OUTPUT)]
FormatOpt = Annotated[Optional[str], typer.Option("--format", help="png, jpeg, webp, tiff, bmp, gif, npy, pt or csv.", rich_help_panel=OUTPUT)]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.", rich_help_panel=PROCESSING)]
EngineOpt = Annotated[str, typer.Option("--engine", help="auto (numpy on the CPU when it can), numpy or torch.", rich_help_panel=PROCESSING)]
ScaleOpt = Annotated[str, typer.Option("--scale", help="unit: values in [0, 1]; raw: 0..255 / 0..65535.", rich_help_panel=PROCESSING)]
NormalizeOpt = Annotated[str, typer.Option("--normalize", help="Out-of-range outputs: auto, clip, minmax or abs.", rich_help_panel=OUTPUT)]
AlphaOpt = Annotated[str, typer.Option("--alpha", help="premultiply (averages ignore transparent colour) or separate.", rich_help_panel=PROCESSING)]
NoOrientOpt = Annotated[bool, typer.Option("--no-orient", help="Keep the stored orientation (ignore EXIF).", rich_help_panel=PROCESSING)]
FramesOpt = Annotated[str, typer.Option("--frames", help="first, or all frames as N.", rich_help_panel=PROCESSING)]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON Lines on stdout, one object per input.", rich_help_panel=OUTPUT)]
ReportOpt = Annotated[Optional[str], typer.Option("--report", help="Also write the JSON Lines to FILE.", rich_help_panel=OUTPUT)]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="Print nothing but data and errors.", rich_help_panel=OUTPUT)]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.", rich_help_panel=OUTPUT)]
MaxPixelsOpt = Annotated[Optional[int], typer.Option("--max-pixels", help="Refuse images over this many pixels (0: no limit).", rich_help_panel=PROCESSING)]
QualityOpt = Annotated[Optional[int], typer.Option("--quality", help="JPEG/WebP quality 1-100.", rich_help_panel=OUTPUT)]
CompressOpt = Annotated[Optional[int], typer.Option("--compress-level", help="PNG compression 0-9.", rich_help_panel=OUTPUT)]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for random weights and fractional windows.", rich_help_panel=PROCESSING)]
SaveStagesOpt = Annotated[Optional[str], typer.Option("--save-stages", help="Write each stage's output into DIR.", rich_help_panel=OUTPUT)]
MontageOpt = Annotated[Optional[str], typer.Option("--montage", help="Write the input and every stage side by side.", rich_help_panel=OUTPUT)]
RecursiveOpt = Annotated[bool, typer.Option("-r", "--recursive", help="Descend into folders.", rich_help_panel=BATCH)]
FilesFromOpt = Annotated[Optional[str], typer.Option("--files-from", help="Read input paths from FILE or - (one per line).", rich_help_panel=BATCH)]
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", help="Threads: decode/encode for many inputs, compute for one (default: the core count).", rich_help_panel=BATCH)]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", help="Same-size images stacked per batch.", rich_help_panel=BATCH)]
MemoryOpt = Annotated[Optional[str], typer.Option("--memory", help="Memory budget, e.g. 2G or 512M (default: half the available RAM); bigger images run tiled.", rich_help_panel=PROCESSING)]
SkipExistingOpt = Annotated[bool, typer.Option("--skip-existing", help="Skip inputs whose output exists.", rich_help_panel=BATCH)]
FailFastOpt = Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failed file.", rich_help_panel=BATCH)]
SpecsOpt = Annotated[Optional[list[str]], typer.Option("-S", "--stage", help="A stage spec (repeat): maxpool:k=2,s=2 or 'nn.MaxPool2d(2)'.")]
PipelineOpt = Annotated[Optional[str], typer.Option("--pipeline", help="A TOML or JSON pipeline file.")]


def _process_command(
    inputs: list[str],
    stages: list[Any],
    suffix: str,
    common: dict[str, Any],
) -> None:
    """Shared by pool, conv, unpool and run: validate, process, report, exit."""
    from .commands import run_processing

    run_processing(inputs, stages, suffix, common)


@app.command()
def pool(
    inputs: Inputs = None,
    mode: Annotated[str, typer.Option("-m", "--mode", help="max, avg, min, lp or median.")] = "max",
    kernel: Annotated[Optional[str], typer.Option("-k", "--kernel", help="Kernel size: K, HxW or H,W.")] = None,
    stride: Annotated[Optional[str], typer.Option("-s", "--stride", help="Stride (default: the kernel).")] = None,
    padding: Annotated[Optional[str], typer.Option("-p", "--padding", help="Implicit padding on each side.")] = None,
    dilation: Annotated[Optional[str], typer.Option("-d", "--dilation", help="Spacing of the window's cells (max, min, median).")] = None,
    ceil_mode: Annotated[bool, typer.Option("--ceil-mode", help="Round the output size up (torch's ceil_mode).")] = False,
    count_include_pad: Annotated[bool, typer.Option("--count-include-pad/--exclude-pad", help="avg: count padded zeros in the mean.")] = True,
    divisor_override: Annotated[Optional[int], typer.Option("--divisor-override", help="avg: divide every window sum by N.")] = None,
    norm_type: Annotated[Optional[float], typer.Option("--norm-type", help="lp: the p of the p-norm.")] = None,
    output_size: Annotated[Optional[str], typer.Option("--output-size", help="Adaptive pooling to HxW.")] = None,
    global_: Annotated[bool, typer.Option("--global", help="Global pooling: one value per channel.")] = False,
    output: OutputOpt = None, format: FormatOpt = None, device: DeviceOpt = "auto", engine: EngineOpt = "auto", scale: ScaleOpt = "unit",
    normalize: NormalizeOpt = "auto", alpha: AlphaOpt = "premultiply", no_orient: NoOrientOpt = False,
    frames: FramesOpt = "first", json_: JsonOpt = False, report: ReportOpt = None, quiet: QuietOpt = False,
    debug: DebugOpt = False, max_pixels: MaxPixelsOpt = None, quality: QualityOpt = None,
    compress_level: CompressOpt = None, seed: SeedOpt = 0, save_stages: SaveStagesOpt = None,
    montage: MontageOpt = None, recursive: RecursiveOpt = False, files_from: FilesFromOpt = None,
    workers: WorkersOpt = None, batch_size: BatchSizeOpt = 16, skip_existing: SkipExistingOpt = False,
    fail_fast: FailFastOpt = False,
    memory: MemoryOpt = None,
) -> None:
    """One pooling stage: max, avg, min, lp or median windows, adaptive, or global.

    Example: poolcli pool photo.jpg --kernel 2 --stride 2   (writes photo_pooled.jpg)
    """
    from .commands import pool_stage

    common = dict(locals())
    stage = lambda: pool_stage(  # noqa: E731
        mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
        divisor_override, norm_type, output_size, global_,
    )
    _process_command(inputs, [stage], "_pooled", common)


@app.command()
def conv(
    inputs: Inputs = None,
    filter: Annotated[Optional[str], typer.Option("-f", "--filter", help="A named filter (see poolcli filters).")] = None,
    weight: Annotated[Optional[str], typer.Option("-w", "--weight", help="A kernel matrix: '0 1; 2 3' or '[[0,1],[2,3]]'.")] = None,
    weight_file: Annotated[Optional[str], typer.Option("--weight-file", help="A kernel from .npy or .csv.")] = None,
    stride: Annotated[Optional[str], typer.Option("-s", "--stride", help="Stride.")] = None,
    padding: Annotated[Optional[str], typer.Option("-p", "--padding", help="Padding: K, HxW or same.")] = None,
    dilation: Annotated[Optional[str], typer.Option("-d", "--dilation", help="Dilation.")] = None,
    padding_mode: Annotated[str, typer.Option("--padding-mode", help="zeros, reflect, replicate or circular.")] = "zeros",
    channels: Annotated[str, typer.Option("--channels", help="depthwise (C stays) or sum (one channel).")] = "depthwise",
    bias: Annotated[float, typer.Option("--bias", help="Added to every output.")] = 0.0,
    output: OutputOpt = None, format: FormatOpt = None, device: DeviceOpt = "auto", engine: EngineOpt = "auto", scale: ScaleOpt = "unit",
    normalize: NormalizeOpt = "auto", alpha: AlphaOpt = "premultiply", no_orient: NoOrientOpt = False,
    frames: FramesOpt = "first", json_: JsonOpt = False, report: ReportOpt = None, quiet: QuietOpt = False,
    debug: DebugOpt = False, max_pixels: MaxPixelsOpt = None, quality: QualityOpt = None,
    compress_level: CompressOpt = None, seed: SeedOpt = 0, save_stages: SaveStagesOpt = None,
    montage: MontageOpt = None, recursive: RecursiveOpt = False, files_from: FilesFromOpt = None,
    workers: WorkersOpt = None, batch_size: BatchSizeOpt = 16, skip_existing: SkipExistingOpt = False,
    fail_fast: FailFastOpt = False,
    memory: MemoryOpt = None,
) -> None:
    """One cross-correlation stage with a named filter or your own kernel.

    Example: poolcli conv photo.jpg -f sobel-x -p 1 --normalize abs   (writes photo_conv.jpg)
    """
    from .commands import conv_stage

    common = dict(locals())
    stage = lambda: conv_stage(filter, weight, weight_file, stride, padding, dilation, padding_mode, channels, bias)  # noqa: E731
    _process_command(inputs, [stage], "_conv", common)


@app.command()
def unpool(
    inputs: Inputs = None,
    kernel: Annotated[str, typer.Option("-k", "--kernel", help="Kernel size of the maxpool.")] = "2",
    stride: Annotated[Optional[str], typer.Option("-s", "--stride", help="Stride (default: the kernel).")] = None,
    padding: Annotated[Optional[str], typer.Option("-p", "--padding", help="Padding.")] = None,
    output: OutputOpt = None, format: FormatOpt = None, device: DeviceOpt = "auto", engine: EngineOpt = "auto", scale: ScaleOpt = "unit",
    normalize: NormalizeOpt = "auto", alpha: AlphaOpt = "premultiply", no_orient: NoOrientOpt = False,
    frames: FramesOpt = "first", json_: JsonOpt = False, report: ReportOpt = None, quiet: QuietOpt = False,
    debug: DebugOpt = False, max_pixels: MaxPixelsOpt = None, quality: QualityOpt = None,
    compress_level: CompressOpt = None, seed: SeedOpt = 0, save_stages: SaveStagesOpt = None,
    montage: MontageOpt = None, recursive: RecursiveOpt = False, files_from: FilesFromOpt = None,
    workers: WorkersOpt = None, batch_size: BatchSizeOpt = 16, skip_existing: SkipExistingOpt = False,
    fail_fast: FailFastOpt = False,
    memory: MemoryOpt = None,
) -> None:
    """Max pooling with indices, then max unpooling: each maximum back in its place, zeros elsewhere.

    Example: poolcli unpool photo.jpg -k 2   (writes photo_unpooled.png: the sparse picture)
    """
    from .commands import unpool_stages

    common = dict(locals())
    _process_command(inputs, [lambda: unpool_stages(kernel, stride, padding)], "_unpooled", common)


@app.command()
def run(
    inputs: Inputs = None,
    stage: SpecsOpt = None,
    pipeline: PipelineOpt = None,
    output: OutputOpt = None, format: FormatOpt = None, device: DeviceOpt = "auto", engine: EngineOpt = "auto", scale: ScaleOpt = "unit",
    normalize: NormalizeOpt = "auto", alpha: AlphaOpt = "premultiply", no_orient: NoOrientOpt = False,
    frames: FramesOpt = "first", json_: JsonOpt = False, report: ReportOpt = None, quiet: QuietOpt = False,
    debug: DebugOpt = False, max_pixels: MaxPixelsOpt = None, quality: QualityOpt = None,
    compress_level: CompressOpt = None, seed: SeedOpt = 0, save_stages: SaveStagesOpt = None,
    montage: MontageOpt = None, recursive: RecursiveOpt = False, files_from: FilesFromOpt = None,
    workers: WorkersOpt = None, batch_size: BatchSizeOpt = 16, skip_existing: SkipExistingOpt = False,
    fail_fast: FailFastOpt = False,
    memory: MemoryOpt = None,
) -> None:
    """Any pipeline of stages, from -S specs or a --pipeline file.

    Example: poolcli run photo.jpg -S grayscale -S conv:filter=sobel-x,p=1 -S relu -S maxpool:2
    """
    from .commands import pipeline_stages

    common = dict(locals())
    _process_command(inputs, [lambda: pipeline_stages(stage, pipeline)], "_out", common)


@app.command()
def shape(
    input: Annotated[str, typer.Argument(help="A shape (1x3x224x224, 3x224x224, 224x224) or an image (header only).", show_default=False)],
    stage: SpecsOpt = None,
    pipeline: PipelineOpt = None,
    no_orient: NoOrientOpt = False,
    json_: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """The plan only: every stage's shapes and formulas, no pixels computed, torch not imported.

    Example: poolcli shape 1x1x28x28 -S "nn.Conv2d(1, 6, kernel_size=5, padding=2)" -S avgpool:2
    """
    from .commands import shape_command

    _guard(debug, lambda: shape_command(input, stage, pipeline, not no_orient, json_))


@app.command()
def info(
    inputs: Inputs,
    no_orient: NoOrientOpt = False,
    json_: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Mode, bit depth, NCHW shape and frames of each input, from its header.

    Example: poolcli info photo.jpg gray16.png
    """
    from .commands import info_command

    _guard(debug, lambda: info_command(inputs, not no_orient, json_))


@app.command()
def explain(
    array: Annotated[Optional[str], typer.Argument(help="An .npy/.csv array or a small image (see --crop).", show_default=False)] = None,
    matrix: Annotated[Optional[str], typer.Option("--matrix", "-M", help="A literal matrix: '0 1 2; 3 4 5; 6 7 8'.")] = None,
    stage: SpecsOpt = None,
    pipeline: PipelineOpt = None,
    crop: Annotated[Optional[str], typer.Option("--crop", help="X,Y,W,H region of an image to explain.")] = None,
    step: Annotated[Optional[int], typer.Option("--step", help="Explain only output element N (row-major).")] = None,
    only: Annotated[Optional[str], typer.Option("--only", help="Explain only output element i,j.")] = None,
    debug: DebugOpt = False,
) -> None:
    """The textbook's walkthrough: every window, its cells and the arithmetic with its numbers.

    Example: poolcli explain --matrix "0 1 2; 3 4 5; 6 7 8" -S maxpool:2,s=1
    """
    from .explain import explain_command

    _guard(debug, lambda: explain_command(matrix, array, stage, pipeline, crop, step, only, Environment()))


@app.command()
def filters(json_: JsonOpt = False, debug: DebugOpt = False) -> None:
    """The named conv filters and their matrices.

    Example: poolcli filters   then   poolcli conv photo.jpg -f sobel-x
    """
    from .commands import filters_command

    _guard(debug, lambda: filters_command(json_))


def _guard(debug: bool, action: Callable[[], Any]) -> None:
    """Run a command body; PoolcliError becomes the one line and its exit status."""
    env = Environment()
    try:
        status = action()
    except PoolcliError as exc:
        if debug:
            raise
        env.error(exc)
        raise typer.Exit(int(exc.exit_status)) from None
    if status:
        raise typer.Exit(int(status))


def app_for(args: list[str]) -> typer.Typer:
    """``app``, or a copy that holds only the command ``args`` starts with.

    Why: click builds every registered command's options before it parses anything; for
    ``poolcli pool photo.jpg`` one command's 40 options are enough (about 30 ms less each run).
    Anything else (``--help``, a mistyped command) keeps all eight, for the list and the suggestions.
    """
    first = args[0] if args else None
    chosen = [info for info in app.registered_commands
              if (info.name or typer.main.get_command_name(info.callback.__name__)) == first]
    if not chosen:
        return app
    narrowed = copy.copy(app)
    narrowed.registered_commands = chosen
    return narrowed


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: a group of the named command (see ``app_for``), run.

    OpenBLAS gets one thread unless the user says otherwise: its pool would start a busy thread
    per core as numpy is imported, taking the second core from the first decode, and poolcli's
    only BLAS call is ``linear`` on LeNet-sized features. Run as the process itself (``argv``
    None) poolcli ends without the interpreter's teardown (``environment.exit_now``).
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = sys.argv[1:] if argv is None else argv
    try:
        typer.main.get_group(app_for(args))(args=args, prog_name="poolcli")
        status = int(ExitStatus.OK)
    except SystemExit as exc:
        if argv is not None or not isinstance(exc.code, (int, type(None))):
            raise
        status = exc.code or 0
    exit_now(status)
