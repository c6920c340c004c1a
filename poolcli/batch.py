"""Inputs to outputs: discovery, output paths, planning per shape, processing, failures.

The library function behind every command that processes images: ``process`` takes the
inputs, a pipeline and ``ProcessOptions`` and returns one record per input; the CLI only
parses and reports. ``poolcli pool img.png -k 2`` writes ``img_pooled.png`` beside the input;
several inputs or a folder write into ``-o DIR`` at mirrored paths.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import InputError, OutputError, PoolcliError, UsageError
from .pipeline import Pipeline, Plan

ARRAY_FORMATS = ("npy", "pt", "csv")
EXTENSIONS = {"jpeg": ".jpg", "tiff": ".tif"}
SIXTEEN_BIT_FORMATS = ("png", "tiff")


@dataclass
class ProcessOptions:
    """Everything the processing of one input needs besides the pipeline."""

    output: str | None = None
    format: str | None = None
    suffix: str = "_out"
    device: str = "auto"
    raw_scale: bool = False
    normalize: str = "auto"
    alpha: str = "premultiply"
    orient: bool = True
    frames: str = "first"
    max_pixels: int | None = None
    quality: int | None = None
    compress_level: int | None = None
    seed: int = 0
    save_stages: str | None = None
    montage: str | None = None
    skip_existing: bool = False
    fail_fast: bool = False
    recursive: bool = False


@dataclass
class InputItem:
    """One input: its path (or '-') and the folder its output path is mirrored from."""

    path: str
    root: str | None = None  # set for files found in a folder or listed by --files-from


@dataclass
class Outcome:
    """What happened to one input: the JSON record's fields, plus the plan for the report."""

    input: str
    output: str | None
    status: str
    error: str | None = None
    device: str | None = None
    plan: Plan | None = None
    seconds: list[float] | None = None
    normalize: str | None = None
    exception: PoolcliError | None = None
    megapixels: float = 0.0


# --------------------------------------------------------------------------- discovery


def expand_inputs(
    inputs: Iterable[str], *, recursive: bool = False, files_from: Iterable[str] = (), exclude: str | None = None
) -> list[InputItem]:
    """Files from arguments, folders (``-r`` to descend; hidden entries skipped) and a list.

    A folder argument's files mirror their path relative to that folder; ``--files-from``
    entries mirror their path relative to the entries' common folder.
    """
    items: list[InputItem] = []
    excluded = os.path.realpath(exclude) if exclude else None
    for given in inputs:
        if given != "-" and os.path.isdir(given):
            items.extend(InputItem(p, given) for p in _walk(given, recursive, excluded))
        else:
            items.append(InputItem(given))
    listed = [line.strip() for line in files_from if line.strip()]
    if listed:
        common = os.path.commonpath([os.path.dirname(os.path.abspath(p)) or "/" for p in listed])
        items.extend(InputItem(p, common) for p in listed)
    return items


def _walk(folder: str, recursive: bool, excluded: str | None) -> Iterator[str]:
    seen: set[str] = set()
    stack = [folder]
    while stack:
        current = stack.pop()
        real = os.path.realpath(current)
        if real in seen or real == excluded:
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if recursive:
                    subfolders.append(entry.path)
            else:
                yield entry.path
        stack.extend(reversed(subfolders))


# --------------------------------------------------------------------------- output paths


def output_path(item: InputItem, options: ProcessOptions, many: bool) -> str:
    """Where one input's output goes.

    One input: ``-o FILE``, ``-o -``, ``-o DIR/`` (keeps the name) or ``NAME{suffix}.EXT``
    beside it. Many inputs: inside ``-o DIR`` at the path mirrored from the input's root.
    """
    out = options.output
    fmt = options.format
    if item.path == "-" and out is None:
        return "-"
    if out == "-":
        return "-"
    source = Path(item.path) if item.path != "-" else Path("stdin.png")
    if many or (out is not None and (out.endswith(os.sep) or os.path.isdir(out))):
        if out is None:
            raise UsageError("several inputs need -o DIR", "name a folder for the outputs, e.g. -o out/")
        relative = _relative(item, source)
        target = Path(out) / relative
        return str(target.with_suffix(_extension(fmt, target.suffix)))
    if out is not None:
        return out
    suffix = _extension(fmt, source.suffix)
    return str(source.with_name(source.stem + options.suffix + suffix))


def _relative(item: InputItem, source: Path) -> Path:
    """The input's path below its root; never escaping it (no '..', no absolute path)."""
    if item.root is not None:
        relative = Path(os.path.relpath(os.path.abspath(source), os.path.abspath(item.root)))
    else:
        relative = Path(source.name)
    parts = [p for p in relative.parts if p not in ("..", ".", "", os.sep)]
    return Path(*parts) if parts else Path(source.name)


def _extension(fmt: str | None, current: str) -> str:
    if fmt is None:
        return current or ".png"
    return EXTENSIONS.get(fmt, "." + fmt)


def check_outputs(pairs: list[tuple[InputItem, str]]) -> None:
    """Before any work: no output over an input, no two inputs mapping to one output."""
    inputs = {os.path.realpath(i.path) for i, _ in pairs if i.path != "-"}
    seen: dict[str, str] = {}
    for item, out in pairs:
        if out == "-":
            continue
        real = os.path.realpath(out)
        if real in inputs:
            raise OutputError(f"{out}: would write over an input file", "choose another -o or --format")
        if real in seen:
            raise UsageError(
                f"{item.path} and {seen[real]} would both write {out}", "use --format or separate folders"
            )
        seen[real] = item.path


# --------------------------------------------------------------------------- processing


class Processor:
    """Processes inputs one by one with a pipeline, planning once per distinct input shape."""

    def __init__(self, pipeline: Pipeline, options: ProcessOptions):
        self.pipeline = pipeline
        self.options = options
        self.plans: dict[tuple[int, ...], Plan] = {}

    def plan_for(self, shape: tuple[int, ...], fmt: str) -> Plan:
        if shape not in self.plans:
            plan = self.pipeline.plan(shape)
            _check_writable(plan, fmt)
            self.plans[shape] = plan
        return self.plans[shape]

    def process(self, item: InputItem, out: str, stdin: Any = None, stdout: Any = None) -> Outcome:
        """One input → one output; every failure becomes an Outcome with the one-line error."""
        from .images import output_format, read_header

        options = self.options
        if options.skip_existing and out != "-" and os.path.exists(out):
            return Outcome(item.path, out, "skipped")
        fmt = output_format(None if out == "-" else out, options.format)
        try:
            if item.path == "-":
                image = self._load(item, stdin)
                plan = self.plan_for(image.array.shape, fmt)
            else:
                header = read_header(item.path, orient=options.orient)
                shape = header.shape if options.frames == "first" else (header.frames, *header.shape[1:])
                plan = self.plan_for(tuple(shape), fmt)
                image = self._load(item, stdin)
                if tuple(image.array.shape) != plan.input_shape:
                    plan = self.plan_for(tuple(image.array.shape), fmt)
            result = self._run(image, plan)
            normalize = self._save(image, result, out, fmt, stdout)
            self._save_stages(item, image, result, fmt)
        except PoolcliError as exc:
            return Outcome(item.path, None, "error", str(exc), exception=exc)
        megapixels = plan.input_shape[0] * plan.input_shape[-1] * plan.input_shape[-2] / 1e6
        return Outcome(item.path, out, "ok", None, result.device, plan, result.seconds, normalize, megapixels=megapixels)

    def _load(self, item: InputItem, stdin: Any) -> Any:
        from .images import DEFAULT_MAX_PIXELS, load_image

        options = self.options
        return load_image(
            item.path,
            orient=options.orient,
            frames=options.frames,
            max_pixels=DEFAULT_MAX_PIXELS if options.max_pixels is None else (options.max_pixels or None),
            stdin=stdin,
        )

    def _run(self, image: Any, plan: Plan) -> Any:
        from .engine import run_pipeline

        options = self.options
        return run_pipeline(
            self.pipeline,
            image.array,
            maxval=image.maxval,
            raw_scale=options.raw_scale,
            premultiply=image.has_alpha and not image.is_array and options.alpha == "premultiply",
            device=options.device,
            seed=options.seed,
            plan=plan,
            keep_stages=bool(options.save_stages or options.montage),
        )

    def _save(self, image: Any, result: Any, out: str, fmt: str, stdout: Any) -> str | None:
        from .engine import quantize
        from .images import save_image

        options = self.options
        dest = stdout if out == "-" else out
        if out != "-":
            _make_parent(out)
        try:
            if fmt in ARRAY_FORMATS:
                save_image(result.values(), dest, format=fmt)
                return None
            bit_depth = 16 if image.bit_depth == 16 and fmt in SIXTEEN_BIT_FORMATS else 8
            quantized = quantize(result.data, result.scale, result.value_max, bit_depth, options.normalize)
            save_image(
                quantized.array, dest, format=fmt, bit_depth=bit_depth,
                quality=options.quality, compress_level=options.compress_level,
            )
            return quantized.normalize
        except OSError as exc:
            raise OutputError(f"{out}: cannot write: {exc.strerror or exc}", "check the folder and free space") from None

    def _save_stages(self, item: InputItem, image: Any, result: Any, fmt: str) -> None:
        if not (self.options.save_stages or self.options.montage):
            return
        from .pictures import save_montage, save_stage_pictures

        if self.options.save_stages:
            save_stage_pictures(item.path, image, result, self.options)
        if self.options.montage:
            save_montage(item.path, image, result, self.options)


def _make_parent(path: str) -> None:
    parent = os.path.dirname(path)
    if parent:
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{parent}: cannot create the output folder: {exc.strerror}", "") from None


def _check_writable(plan: Plan, fmt: str) -> None:
    """An image format holds N×1..4×H×W; flatten/linear outputs and other channel counts need .npy/.pt."""
    shape = plan.output_shape
    if fmt in ARRAY_FORMATS:
        if fmt == "csv" and (len(shape) != 4 or shape[0] * shape[1] != 1):
            raise UsageError(f"--format csv holds one 2-D matrix, the output is {'×'.join(map(str, shape))}", "use .npy")
        return
    if len(shape) != 4 or not 1 <= shape[1] <= 4:
        raise UsageError(
            f"the output {'×'.join(map(str, shape))} is not an image (N×C×H×W with C ≤ 4)",
            "write it with -o out.npy or --format npy/pt",
        )


@dataclass
class Summary:
    """Counts for the end of a batch and the exit status."""

    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def as_row(self) -> dict[str, Any]:
        ok = self.count("ok")
        megapixels = sum(o.megapixels for o in self.outcomes)
        rate = ok / self.seconds if self.seconds else 0.0
        return {
            "ok": ok,
            "skipped": self.count("skipped"),
            "failed": self.count("error"),
            "seconds": f"{self.seconds:.2f}",
            "images/s": f"{rate:.1f}",
            "MP/s": f"{megapixels / self.seconds:.1f}" if self.seconds else "0.0",
        }


def process_all(
    items: list[InputItem],
    pipeline: Pipeline,
    options: ProcessOptions,
    *,
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
    stdin: Any = None,
    stdout: Any = None,
) -> Summary:
    """Process every input, calling ``on_outcome`` after each; stops early on --fail-fast."""
    many = len(items) > 1 or any(item.root is not None for item in items)
    pairs = [(item, output_path(item, options, many)) for item in items]
    check_outputs(pairs)
    processor = Processor(pipeline, options)
    summary = Summary()
    start = time.perf_counter()
    try:
        for item, out in pairs:
            outcome = processor.process(item, out, stdin=stdin, stdout=stdout)
            summary.outcomes.append(outcome)
            on_outcome(outcome)
            if outcome.status == "error" and options.fail_fast:
                break
    except KeyboardInterrupt:
        summary.interrupted = True
    summary.seconds = time.perf_counter() - start
    return summary


__all__ = [
    "InputError",
    "InputItem",
    "Outcome",
    "ProcessOptions",
    "Processor",
    "Summary",
    "check_outputs",
    "expand_inputs",
    "output_path",
    "process_all",
]
