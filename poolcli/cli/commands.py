"""The Typer app: each command is its options and one call into ``processing`` or ``queries``.

Commands return an ``ExitStatus``; ``PoolcliGroup.main`` is the one exit path: a PoolcliError
becomes the one ``poolcli: error:`` line and its status (a traceback with ``--debug``), click's
own usage errors the same line with status 2.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from ..errors import ExitStatus, PoolcliError, UsageError, format_error
from .options import (
    DebugOpt, Inputs, JsonFiltersOpt, JsonOpt, JsonPlanOpt, NoOrientOpt, PipelineOpt, SharedOptions, SpecsOpt,
    processing_options,
)
from .startup import use_plain_coercion


class PoolcliGroup(TyperGroup):
    """Every error, click's own usage errors included, as the one ``poolcli: error:`` line."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        from typer._click import exceptions as click_exceptions

        args = list(sys.argv[1:] if args is None else args)
        use_plain_coercion()
        try:
            result = super().main(args, prog_name or "poolcli", complete_var, standalone_mode=False, **extra)
            status = int(result) if isinstance(result, int) else int(ExitStatus.OK)
        except PoolcliError as exc:
            if "--debug" in args:
                raise
            sys.stderr.write(format_error(exc) + "\n")
            status = int(exc.exit_status)
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

    def get_command(self, ctx: Any, name: str) -> Any:
        """A command whose arguments show their metavar alone in the help (``INPUT...``), not
        followed by typer's type placeholder (``<list[str]>``)."""
        command = super().get_command(ctx, name)
        for param in getattr(command, "params", ()):
            if getattr(param, "param_type_name", None) == "argument" and hasattr(param, "display_type_rich"):
                param.display_type_rich = lambda ctx: None
        return command


app = typer.Typer(
    cls=PoolcliGroup,
    name="poolcli",
    help=(
        "Pool, convolve and unpool images the way torch.nn does, and see why the output has "
        "the size it has.\n\nExample: poolcli pool photo.jpg --kernel 2 --stride 2"
    ),
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        sys.stdout.write(f"poolcli {__version__}\n")
        raise typer.Exit()


@app.callback()
def poolcli(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                          callback=_print_version)] = False,
) -> None:
    """Pool, convolve and unpool images the way torch.nn does, and see why the output has the size it has.

    Example: poolcli pool photo.jpg --kernel 2 --stride 2
    """


@app.command()
@processing_options
def pool(
    inputs: Inputs = None,
    mode: Annotated[str, typer.Option("-m", "--mode", help="max, avg, min, lp or median.", metavar="MODE")] = "max",
    kernel: Annotated[Optional[str], typer.Option("-k", "--kernel", help="Kernel size: K, HxW or H,W.", metavar="K|HxW")] = None,
    stride: Annotated[Optional[str], typer.Option("-s", "--stride", help="Stride (default: the kernel).", metavar="S|HxW")] = None,
    padding: Annotated[Optional[str], typer.Option("-p", "--padding", help="Implicit padding on each side.", metavar="P|HxW")] = None,
    dilation: Annotated[Optional[str], typer.Option("-d", "--dilation", help="Spacing of the window's cells (max, min, median).", metavar="D|HxW")] = None,
    ceil_mode: Annotated[bool, typer.Option("--ceil-mode", help="Round the output size up (torch's ceil_mode).")] = False,
    count_include_pad: Annotated[bool, typer.Option("--count-include-pad/--exclude-pad", help="avg: count padded zeros in the mean.")] = True,
    divisor_override: Annotated[Optional[int], typer.Option("--divisor-override", help="avg: divide every window sum by N.", metavar="N")] = None,
    norm_type: Annotated[Optional[float], typer.Option("--norm-type", help="lp: the p of the p-norm.", metavar="P")] = None,
    output_size: Annotated[Optional[str], typer.Option("--output-size", help="Adaptive pooling to HxW.", metavar="HxW")] = None,
    global_: Annotated[bool, typer.Option("--global", help="Global pooling: one value per channel.")] = False,
    *,
    shared: SharedOptions,
) -> ExitStatus:
    """One pooling stage: max, avg, min, lp or median windows, adaptive, or global.

    Example: poolcli pool photo.jpg --kernel 2 --stride 2   (writes photo_pooled.jpg)
    """
    from .processing import pool_stage, run_processing

    def build() -> list[Any]:
        return [pool_stage(mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
                           divisor_override, norm_type, output_size, global_)]

    return run_processing(inputs, build, "_pooled", shared)


@app.command()
@processing_options
def conv(
    inputs: Inputs = None,
    filter: Annotated[Optional[str], typer.Option("-f", "--filter", help="A named filter (see poolcli filters).", metavar="NAME")] = None,
    weight: Annotated[Optional[str], typer.Option("-w", "--weight", help="A kernel matrix: '0 1; 2 3' or '[[0,1],[2,3]]'.", metavar="MATRIX")] = None,
    weight_file: Annotated[Optional[str], typer.Option("--weight-file", help="A kernel from .npy or .csv.", metavar="FILE")] = None,
    stride: Annotated[Optional[str], typer.Option("-s", "--stride", help="Stride.", metavar="S|HxW")] = None,
    padding: Annotated[Optional[str], typer.Option("-p", "--padding", help="Padding: K, HxW or same.", metavar="P|HxW|same")] = None,
    dilation: Annotated[Optional[str], typer.Option("-d", "--dilation", help="Dilation.", metavar="D|HxW")] = None,
    padding_mode: Annotated[str, typer.Option("--padding-mode", help="zeros, reflect, replicate or circular.", metavar="MODE")] = "zeros",
    channels: Annotated[str, typer.Option("--channels", help="depthwise (C stays) or sum (one channel).", metavar="depthwise|sum")] = "depthwise",
    bias: Annotated[float, typer.Option("--bias", help="Added to every output.", metavar="B")] = 0.0,
    *,
    shared: SharedOptions,
) -> ExitStatus:
    """One cross-correlation stage with a named filter or your own kernel.

    Example: poolcli conv photo.jpg -f sobel-x -p 1 --normalize abs   (writes photo_conv.jpg)
    """
    from .processing import conv_stage, run_processing

    def build() -> list[Any]:
        return [conv_stage(filter, weight, weight_file, stride, padding, dilation, padding_mode, channels, bias)]

    return run_processing(inputs, build, "_conv", shared)


@app.command()
@processing_options
def unpool(
    inputs: Inputs = None,
    kernel: Annotated[str, typer.Option("-k", "--kernel", help="Kernel size of the maxpool.", metavar="K|HxW")] = "2",
    stride: Annotated[Optional[str], typer.Option("-s", "--stride", help="Stride (default: the kernel).", metavar="S|HxW")] = None,
    padding: Annotated[Optional[str], typer.Option("-p", "--padding", help="Padding.", metavar="P|HxW")] = None,
    *,
    shared: SharedOptions,
) -> ExitStatus:
    """Max pooling with indices, then max unpooling: each maximum back in its place, zeros elsewhere.

    Example: poolcli unpool photo.jpg -k 2   (writes photo_unpooled.jpg: the sparse picture)
    """
    from .processing import run_processing, unpool_stages

    return run_processing(inputs, lambda: unpool_stages(kernel, stride, padding), "_unpooled", shared)


@app.command()
@processing_options
def run(
    inputs: Inputs = None,
    stage: SpecsOpt = None,
    pipeline: PipelineOpt = None,
    *,
    shared: SharedOptions,
) -> ExitStatus:
    """Any pipeline of stages, from -S specs or a --pipeline file.

    Example: poolcli run photo.jpg -S grayscale -S conv:filter=sobel-x,p=1 -S relu -S maxpool:2
    """
    from .processing import pipeline_stages, run_processing

    return run_processing(inputs, lambda: pipeline_stages(stage, pipeline), "_out", shared)


@app.command()
def shape(
    input: Annotated[str, typer.Argument(help="A shape (1x3x224x224, 3x224x224, 224x224) or an image (header only).", show_default=False, metavar="SHAPE|IMAGE")],
    stage: SpecsOpt = None,
    pipeline: PipelineOpt = None,
    no_orient: NoOrientOpt = False,
    json_: JsonPlanOpt = False,
    debug: DebugOpt = False,
) -> ExitStatus:
    """The plan only: every stage's shapes and formulas, no pixels computed, torch not imported.

    Example: poolcli shape 1x1x28x28 -S "nn.Conv2d(1, 6, kernel_size=5, padding=2)" -S avgpool:2
    """
    from .queries import shape_command

    return shape_command(input, stage, pipeline, not no_orient, json_)


@app.command()
def info(
    inputs: Inputs,
    no_orient: NoOrientOpt = False,
    json_: JsonOpt = False,
    debug: DebugOpt = False,
) -> ExitStatus:
    """Mode, bit depth, NCHW shape and frames of each input, from its header.

    Example: poolcli info photo.jpg gray16.png
    """
    from .queries import info_command

    return info_command(inputs or [], not no_orient, json_)


@app.command()
def explain(
    array: Annotated[Optional[str], typer.Argument(help="An .npy/.csv array or a small image (see --crop).", show_default=False, metavar="ARRAY")] = None,
    matrix: Annotated[Optional[str], typer.Option("--matrix", "-M", help="A literal matrix: '0 1 2; 3 4 5; 6 7 8'.", metavar="MATRIX")] = None,
    stage: SpecsOpt = None,
    pipeline: PipelineOpt = None,
    crop: Annotated[Optional[str], typer.Option("--crop", help="X,Y,W,H region of an image to explain.", metavar="X,Y,W,H")] = None,
    step: Annotated[Optional[int], typer.Option("--step", help="Explain only output element N (row-major).", metavar="N")] = None,
    only: Annotated[Optional[str], typer.Option("--only", help="Explain only output element i,j.", metavar="I,J")] = None,
    animate: Annotated[Optional[str], typer.Option("--animate", help="Also draw the walkthrough as an animated .gif or .png (APNG).", metavar="FILE")] = None,
    fps: Annotated[Optional[float], typer.Option("--fps", help="Window frames per second of --animate (default 1, at most 50).", metavar="N")] = None,
    debug: DebugOpt = False,
) -> ExitStatus:
    """The textbook's walkthrough: every window, its cells and the arithmetic with its numbers.

    Example: poolcli explain --matrix "0 1 2; 3 4 5; 6 7 8" -S maxpool:2,s=1 --animate d2l.gif
    """
    from .explaining import explain_command
    from .environment import Environment

    return ExitStatus(explain_command(matrix, array, stage, pipeline, crop, step, only, Environment(),
                                      animate=animate, fps=fps))


@app.command()
def filters(json_: JsonFiltersOpt = False, debug: DebugOpt = False) -> ExitStatus:
    """The named conv filters and their matrices.

    Example: poolcli filters   then   poolcli conv photo.jpg -f sobel-x
    """
    from .queries import filters_command

    return filters_command(json_)
