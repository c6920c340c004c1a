"""The command-line options, declared once, and the typed objects they become.

``pool``, ``conv``, ``unpool`` and ``run`` share some thirty options (output, format, device,
batch settings...). ``@processing_options`` adds them to a command, as sqlite-utils'
``@output_options`` does, and hands the command one ``SharedOptions`` instead of thirty
parameters; ``SharedOptions.process_options`` turns it into the library's ``ProcessOptions``,
checked, once.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, fields
from typing import Annotated, Any, Callable, Optional

import typer

from ..errors import UsageError

PROCESSING = "Processing options"
OUTPUT = "Output options"
BATCH = "Many inputs"

Inputs = Annotated[Optional[list[str]], typer.Argument(help="Image or array files, folders, or - for stdin.", show_default=False, metavar="INPUT...")]
NoOrientOpt = Annotated[bool, typer.Option("--no-orient", help="Keep the stored orientation (ignore EXIF).", rich_help_panel=PROCESSING)]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON Lines on stdout, one object per input.", rich_help_panel=OUTPUT)]
JsonFiltersOpt = Annotated[bool, typer.Option("--json", help="JSON Lines on stdout, one object per filter.", rich_help_panel=OUTPUT)]
JsonPlanOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout: the plan.", rich_help_panel=OUTPUT)]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.", rich_help_panel=OUTPUT)]
SpecsOpt = Annotated[Optional[list[str]], typer.Option("-S", "--stage", help="A stage spec (repeat): maxpool:k=2,s=2 or 'nn.MaxPool2d(2)'.", metavar="SPEC")]
PipelineOpt = Annotated[Optional[str], typer.Option("--pipeline", help="A TOML or JSON pipeline file.", metavar="FILE")]


def _option(*names: str, help: str, panel: str, metavar: str | None = None) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=panel, metavar=metavar)


# name: (annotation, default, option): the options every image-processing command takes.
SHARED: dict[str, tuple[Any, Any, Any]] = {
    "output": (Optional[str], None, _option("-o", "--output", help="Output FILE, DIR, or - for stdout.", panel=OUTPUT, metavar="FILE|DIR|-")),
    "format": (Optional[str], None, _option("--format", help="png, jpeg, webp, tiff, bmp, gif, npy, pt or csv.", panel=OUTPUT, metavar="FORMAT")),
    "device": (str, "auto", _option("--device", help="auto, cpu, cuda or cuda:N.", panel=PROCESSING, metavar="DEVICE")),
    "engine": (str, "auto", _option("--engine", help="auto (numpy on the CPU when it can), numpy or torch.", panel=PROCESSING, metavar="ENGINE")),
    "scale": (str, "unit", _option("--scale", help="unit: values in [0, 1]; raw: 0..255 / 0..65535.", panel=PROCESSING, metavar="unit|raw")),
    "normalize": (str, "auto", _option("--normalize", help="Out-of-range outputs: auto, clip, minmax or abs.", panel=OUTPUT, metavar="MODE")),
    "alpha": (str, "premultiply", _option("--alpha", help="premultiply (averages ignore transparent colour) or separate.", panel=PROCESSING, metavar="MODE")),
    "no_orient": (bool, False, _option("--no-orient", help="Keep the stored orientation (ignore EXIF).", panel=PROCESSING)),
    "frames": (str, "first", _option("--frames", help="first, or all frames as N.", panel=PROCESSING, metavar="first|all")),
    "json": (bool, False, _option("--json", help="JSON Lines on stdout, one object per input.", panel=OUTPUT)),
    "report": (Optional[str], None, _option("--report", help="Also write the JSON Lines to FILE.", panel=OUTPUT, metavar="FILE")),
    "quiet": (bool, False, _option("-q", "--quiet", help="Print nothing but data and errors.", panel=OUTPUT)),
    "debug": (bool, False, _option("--debug", help="Show tracebacks.", panel=OUTPUT)),
    "max_pixels": (Optional[int], None, _option("--max-pixels", help="Refuse images over this many pixels (0: no limit).", panel=PROCESSING, metavar="N")),
    "quality": (Optional[int], None, _option("--quality", help="JPEG/WebP quality 0-100 (default: Pillow's, 75 and 80).", panel=OUTPUT, metavar="0-100")),
    "compress_level": (Optional[int], None, _option("--compress-level", help="PNG compression 0-9.", panel=OUTPUT, metavar="0-9")),
    "seed": (int, 0, _option("--seed", help="Seed for random weights and fractional windows.", panel=PROCESSING, metavar="N")),
    "save_stages": (Optional[str], None, _option("--save-stages", help="Write each stage's output into DIR.", panel=OUTPUT, metavar="DIR")),
    "montage": (Optional[str], None, _option("--montage", help="Write the input and every stage side by side.", panel=OUTPUT, metavar="FILE")),
    "recursive": (bool, False, _option("-r", "--recursive", help="Descend into folders.", panel=BATCH)),
    "files_from": (Optional[str], None, _option("--files-from", help="Read input paths from FILE or - (one per line).", panel=BATCH, metavar="FILE|-")),
    "workers": (Optional[int], None, _option("--workers", help="Threads: decode/encode for many inputs, compute for one (default: the core count).", panel=BATCH, metavar="N")),
    "batch_size": (int, 16, _option("--batch-size", help="Same-size images stacked per batch.", panel=BATCH, metavar="N")),
    "skip_existing": (bool, False, _option("--skip-existing", help="Skip inputs whose output exists.", panel=BATCH)),
    "fail_fast": (bool, False, _option("--fail-fast", help="Stop at the first failed file.", panel=BATCH)),
    "executor": (str, "local", _option("--executor", help="local (threads here) or ray (a Ray cluster; pip install 'poolcli[ray]').", panel=BATCH, metavar="local|ray")),
    "ray_address": (Optional[str], None, _option("--ray-address", help="With --executor ray: auto or HOST:PORT (default: a Ray started here for the run).", panel=BATCH, metavar="ADDR")),
    "fsync": (bool, False, _option("--fsync", help="Flush every output to the disk (survives a power loss; slower).", panel=OUTPUT)),
    "memory": (Optional[str], None, _option("--memory", help="Memory budget, e.g. 2G or 512M (default: half the available RAM); bigger images run tiled.", panel=PROCESSING, metavar="SIZE")),
}


@dataclass(frozen=True)
class SharedOptions:
    """The shared options as given on the command line (text, numbers, flags), before checking."""

    output: str | None = None
    format: str | None = None
    device: str = "auto"
    engine: str = "auto"
    scale: str = "unit"
    normalize: str = "auto"
    alpha: str = "premultiply"
    no_orient: bool = False
    frames: str = "first"
    json: bool = False
    report: str | None = None
    quiet: bool = False
    debug: bool = False
    max_pixels: int | None = None
    quality: int | None = None
    compress_level: int | None = None
    seed: int = 0
    save_stages: str | None = None
    montage: str | None = None
    recursive: bool = False
    files_from: str | None = None
    workers: int | None = None
    batch_size: int = 16
    skip_existing: bool = False
    fail_fast: bool = False
    executor: str = "local"
    ray_address: str | None = None
    fsync: bool = False
    memory: str | None = None

    def process_options(self, suffix: str) -> Any:
        """The library's ``ProcessOptions``: every choice checked, ``--format`` resolved."""
        from ..batch.options import ProcessOptions
        from ..execute.quantize import NORMALIZE_MODES
        from ..io.formats import format_named

        if self.json and self.output == "-":
            raise UsageError("--json with -o - would mix JSON and image bytes on stdout", "use --report FILE")
        return ProcessOptions(
            output=self.output,
            format=format_named(self.format).name if self.format is not None else None,
            suffix=suffix,
            device=self.device,
            raw_scale=choice("scale", self.scale, ("unit", "raw")) == "raw",
            normalize=choice("normalize", self.normalize, NORMALIZE_MODES),
            alpha=choice("alpha", self.alpha, ("premultiply", "separate")),
            orient=not self.no_orient,
            frames=choice("frames", self.frames, ("first", "all")),
            max_pixels=self.max_pixels,
            quality=self.quality,
            compress_level=self.compress_level,
            seed=self.seed,
            save_stages=self.save_stages,
            montage=self.montage,
            skip_existing=self.skip_existing,
            fail_fast=self.fail_fast,
            recursive=self.recursive,
            engine=choice("engine", self.engine, ("auto", "numpy", "torch")),
            workers=positive("workers", self.workers),
            batch_size=positive("batch-size", self.batch_size) or 16,
            executor=choice("executor", self.executor, ("local", "ray")),
            ray_address=self._ray_address(),
            fsync=self.fsync,
            memory=self.memory,
        )


    def _ray_address(self) -> str | None:
        if self.ray_address is not None and self.executor.lower() != "ray":
            raise UsageError("--ray-address without --executor ray", "add --executor ray, or leave the address out")
        return self.ray_address


assert [f.name for f in fields(SharedOptions)] == list(SHARED), "SharedOptions and SHARED list the same options"


def processing_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared options to ``command``, which receives them as ``shared: SharedOptions``."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "shared"]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[kind, option], default=default)
        for name, (kind, default, option) in SHARED.items()
    ]

    @functools.wraps(command)
    def with_shared(**given: Any) -> Any:
        shared = SharedOptions(**{name: given.pop(name) for name in SHARED})
        return command(shared=shared, **given)

    parameters = own + added
    with_shared.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    with_shared.__annotations__ = {p.name: p.annotation for p in parameters}
    return with_shared


def choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    value = value.lower()
    if value not in choices:
        raise UsageError(f"--{name} {value!r}", f"use one of {', '.join(choices)}")
    return value


def positive(name: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise UsageError(f"--{name} {value}", "use a number ≥ 1")
    return value
