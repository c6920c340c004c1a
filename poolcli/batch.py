"""Inputs to outputs: discovery, output paths, planning per shape, processing, failures.

The library function behind every command that processes images: ``process`` takes the
inputs, a pipeline and ``ProcessOptions`` and returns one record per input; the CLI only
parses and reports. ``poolcli pool img.png -k 2`` writes ``img_pooled.png`` beside the input;
several inputs or a folder write into ``-o DIR`` at mirrored paths.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import OutputError, PoolcliError, UsageError
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
    engine: str = "auto"
    workers: int | None = None
    batch_size: int = 16
    memory: Any = None  # --memory: "2G", "512M" or bytes; None: half of the RAM available
    tile: tuple[int, int] | None = None  # force tiled runs at this output tile size (library, tests)


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
    engine: str | None = None
    exception: PoolcliError | None = None
    megapixels: float = 0.0
    execution: dict[str, Any] | None = None  # tiling.Execution.record(): whole or tiled, and why


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
        found = [InputItem(p, given) for p in _walk(given, recursive, excluded)] if given != "-" and os.path.isdir(given) else []
        # A folder with nothing to read stays an input of its own, so that it fails naming itself.
        items.extend(found or [InputItem(given)])
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
            try:
                is_dir = entry.is_dir()
            except OSError:  # a symlink loop (ELOOP): it fails as a file, naming itself
                is_dir = False
            if is_dir:
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
    """The output's extension: ``--format``'s, else the input's where poolcli writes that format
    (``.jpg`` stays ``.jpg``), else ``.png`` (an ``.ico``, ``.tga`` or ``.ppm`` input)."""
    if fmt is not None:
        return EXTENSIONS.get(fmt, "." + fmt)
    from .images import output_format

    try:
        output_format("x" + current)
    except UsageError:
        return ".png"
    return current


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


@dataclass
class Decoded:
    """A decoded input waiting for the compute step, or the reason it cannot go on."""

    item: InputItem
    out: str
    image: Any = None
    plan: Plan | None = None
    outcome: Outcome | None = None  # set when decoding failed or the input was skipped
    execution: Any = None  # tiling.Execution: whole-image or tiled, from the memory estimate

    @property
    def group_key(self) -> tuple:
        """Images that can share one batch tensor: same shape, dtype, scale and alpha handling.
        A tiled image runs alone (its mode is part of the key, and no other input has it twice)."""
        image = self.image
        mode = self.execution.mode if self.execution is not None else "whole"
        alone = id(self) if mode == "tiled" else None
        return (image.array.shape, image.array.dtype.str, image.maxval, image.has_alpha, image.is_array, image.bit_depth, mode, alone)


class Processor:
    """Decode → plan → compute → encode for one input or a stacked batch of same-size inputs.

    Decoding and encoding are thread-safe (Pillow and numpy release the GIL); the compute step
    runs in the caller's thread. Plans are made once per distinct input shape.
    """

    def __init__(self, pipeline: Pipeline, options: ProcessOptions):
        from .tiling import default_memory_budget, parse_memory_size

        self.pipeline = pipeline
        self.options = options
        self.plans: dict[tuple[int, ...], Plan] = {}
        self.executions: dict[tuple, Any] = {}
        self.budget = parse_memory_size(options.memory) if options.memory is not None else default_memory_budget()
        self.largest_resident = 0  # the biggest per-input estimate seen: bounds how many are in flight
        self._lock = threading.Lock()
        self._engine_imports: threading.Thread | None = None
        self.compute_threads = 1  # the numpy kernels' threads: the cores, when nothing else runs (process_all)

    @property
    def keep_stages(self) -> bool:
        return bool(self.options.save_stages or self.options.montage)

    def execution_for(self, plan: Plan, input_itemsize: int, fmt: str, name: str) -> Any:
        """Whole-image or tiled for this plan, from its memory estimate and ``--memory`` (once per
        shape); a tiled plan gets a note under its table. Raises MemoryBudgetError before any
        pixel is decoded when even tiled the input cannot fit."""
        from .tiling import choose_execution

        key = (plan.input_shape, input_itemsize, fmt)
        with self._lock:
            if key not in self.executions:
                execution = choose_execution(
                    plan, budget=self.budget, input_itemsize=input_itemsize,
                    output_itemsize=_output_itemsize(fmt, input_itemsize), keep_stages=self.keep_stages,
                    tile=self.options.tile, name=name,
                )
                if execution.mode == "tiled" and execution.note() not in plan.notes:
                    plan.notes.append(execution.note())
                self.executions[key] = execution
                self.largest_resident = max(self.largest_resident, execution.resident_bytes)
            return self.executions[key]

    def inputs_in_memory(self) -> int:
        """How many inputs may be decoded or waiting at once within ``--memory`` (1 until one is seen)."""
        with self._lock:
            return max(1, self.budget // self.largest_resident) if self.largest_resident else 1

    def plan_for(self, shape: tuple[int, ...], fmt: str) -> Plan:
        shape = tuple(int(d) for d in shape)
        with self._lock:
            if shape not in self.plans:
                plan = self.pipeline.plan(shape)
                _check_writable(plan, fmt)
                self.plans[shape] = plan
            return self.plans[shape]

    def output_format(self, out: str) -> str:
        from .images import output_format

        return output_format(None if out == "-" else out, self.options.format)

    def decode(self, item: InputItem, out: str, stdin: Any = None) -> Decoded:
        """Header → plan (so a bad pipeline fails before pixels are read) → pixels."""
        from .images import read_header, refuse_over_max_pixels

        options = self.options
        if options.skip_existing and out != "-" and os.path.exists(out):
            return Decoded(item, out, outcome=Outcome(item.path, out, "skipped"))
        fmt = self.output_format(out)
        try:
            if item.path != "-":
                header = read_header(item.path, orient=options.orient)
                frames = header.frames if options.frames == "all" else 1
                if not header.is_array:
                    refuse_over_max_pixels(item.path, header.width, header.height, frames, self.max_pixels)
                plan = self.plan_for((frames, *header.shape[1:]), fmt)
                self.execution_for(plan, _itemsize(header.bit_depth), fmt, item.path)
            self._import_engine_meanwhile()
            image = self._load(item, stdin)
            plan = self.plan_for(image.array.shape, fmt)
            execution = self.execution_for(plan, image.array.dtype.itemsize, fmt, item.path)
        except PoolcliError as exc:
            return Decoded(item, out, outcome=_failed(item, exc))
        return Decoded(item, out, image, plan, execution=execution)

    def _import_engine_meanwhile(self) -> None:
        """Before the first decode: the engine's imports start on a thread (``import_engine_in_background``)."""
        with self._lock:
            if self._engine_imports is None:
                self._engine_imports = import_engine_in_background(self.pipeline, self.options)

    def compute(self, group: list[Decoded]) -> list[tuple[Decoded, Any]]:
        """Run the pipeline once on the stacked group; returns each input with its result view,
        or with the PoolcliError that stopped it.

        The one place that decides how pixels are computed: a group whose stacked estimate is
        over ``--memory`` is split; an image planned tiled runs tile by tile; an out-of-memory
        (CUDA's or the host's) splits the group and retries, and an image that fails alone is
        retried tiled where its stages allow, then reported in one line.
        """
        if len(group) > 1 and not self._fits_stacked(group):
            return self._split(group)
        try:
            return self._compute(group)
        except Exception as exc:  # noqa: BLE001 — only out-of-memory is handled; the rest re-raised
            from .engine import is_out_of_memory, release_device_memory

            if not is_out_of_memory(exc):
                raise
            del exc  # its traceback holds the tensors that ran out
            release_device_memory(self.options.device)
            if len(group) > 1:
                return self._split(group)
            return [(group[0], self._retry_tiled(group[0]))]

    def _split(self, group: list[Decoded]) -> list[tuple[Decoded, Any]]:
        half = len(group) // 2
        return self.compute(group[:half]) + self.compute(group[half:])

    def _fits_stacked(self, group: list[Decoded]) -> bool:
        from .tiling import whole_image_bytes

        first = group[0]
        shape = (sum(len(d.image.array) for d in group), *first.image.array.shape[1:])
        itemsize = first.image.array.dtype.itemsize
        fmt = self.output_format(first.out)
        estimate = whole_image_bytes(
            self.pipeline.plan(shape), itemsize, _output_itemsize(fmt, itemsize), stacked=len(group),
            keep_stages=self.keep_stages,
        )
        return estimate <= self.budget

    def _compute(self, group: list[Decoded]) -> list[tuple[Decoded, Any]]:
        import numpy as np

        from .engine import run_pipeline, run_tiled

        options = self.options
        first = group[0]
        common = dict(
            maxval=first.image.maxval,
            raw_scale=options.raw_scale,
            premultiply=first.image.has_alpha and not first.image.is_array and options.alpha == "premultiply",
            device=options.device,
            engine=options.engine,
            seed=options.seed,
            threads=self.compute_threads,
        )
        if len(group) == 1 and first.execution is not None and first.execution.mode == "tiled":
            fmt = self.output_format(first.out)
            result = run_tiled(
                self.pipeline, first.image.array, first.execution.tile, plan=first.plan,
                bit_depth=_output_depth(first.image, fmt), normalize=options.normalize, **common,
            )
            return [(first, result)]
        array = first.image.array if len(group) == 1 else np.concatenate([d.image.array for d in group])
        plan = first.plan if len(group) == 1 else self.pipeline.plan(array.shape)
        result = run_pipeline(
            self.pipeline, array, plan=plan, keep_stages=self.keep_stages,
            bit_depth=_output_depth(first.image, self.output_format(first.out)), normalize=options.normalize, **common,
        )
        if len(group) == 1:
            return [(first, result)]
        return [(decoded, result.slice(i)) for i, decoded in enumerate(group)]

    def _retry_tiled(self, decoded: Decoded) -> Any:
        """After an out-of-memory on one whole image: tiled, each tile a quarter of the whole run's
        working set, where its stages allow; otherwise (or when that runs out too) the one-line error."""
        from .engine import is_out_of_memory, release_device_memory
        from .tiling import MemoryBudgetError, format_bytes, smaller_execution, tiling_obstacle

        plan, execution = decoded.plan, decoded.execution
        device = self.options.device
        shape = "×".join(map(str, plan.input_shape))
        estimate = f" (estimate {format_bytes(execution.estimate_bytes)})" if execution is not None else ""
        error = MemoryBudgetError(
            f"{decoded.item.path}: out of memory on {device} running {shape}{estimate}",
            "use --device cpu, a smaller --batch-size or --memory" if device.startswith("cuda") else "give a smaller --memory (smaller tiles) or free some memory",
        )
        if (execution is not None and execution.mode == "tiled") or tiling_obstacle(plan) is not None or self.keep_stages:
            return error
        itemsize = decoded.image.array.dtype.itemsize
        fmt = self.output_format(decoded.out)
        try:
            decoded.execution = smaller_execution(plan, execution, itemsize, _output_itemsize(fmt, itemsize))
            [(_, result)] = self._compute([decoded])
            return result
        except MemoryBudgetError:
            return error
        except Exception as again:  # noqa: BLE001
            if not is_out_of_memory(again):
                raise
            release_device_memory(device)
            return error

    def encode(self, decoded: Decoded, result: Any, stdout: Any = None) -> Outcome:
        """Write one output (atomically) and its stage pictures; failures become the outcome."""
        item, out, image = decoded.item, decoded.out, decoded.image
        fmt = self.output_format(out)
        try:
            normalize = self._save(image, result, out, fmt, stdout)
            self._save_stages(item, image, result)
        except PoolcliError as exc:
            return _failed(item, exc)
        except Exception as exc:  # noqa: BLE001 — a CUDA result runs out while it is normalized
            from .engine import is_out_of_memory
            from .tiling import MemoryBudgetError

            if not is_out_of_memory(exc):
                raise
            return _failed(item, MemoryBudgetError(f"{item.path}: out of memory on {result.device} writing the output", "use --device cpu or a smaller --batch-size"))
        shape = decoded.plan.input_shape
        seconds = [s / result.batch_size for s in result.seconds]
        return Outcome(
            item.path, out, "ok", None, result.device, decoded.plan, seconds, normalize, engine=result.engine,
            megapixels=shape[0] * shape[-1] * shape[-2] / 1e6,
            execution=decoded.execution.record() if decoded.execution is not None else None,
        )

    def process(self, item: InputItem, out: str, stdin: Any = None, stdout: Any = None) -> Outcome:
        """One input start to finish, in this thread (used for stdin and by tests)."""
        decoded = self.decode(item, out, stdin)
        if decoded.outcome is not None:
            return decoded.outcome
        try:
            [(decoded, result)] = self.compute([decoded])
        except PoolcliError as exc:
            return _failed(item, exc)
        if isinstance(result, PoolcliError):
            return _failed(item, result)
        return self.encode(decoded, result, stdout)

    @property
    def max_pixels(self) -> int | None:
        """``--max-pixels``: Pillow's limit when not given, None (no limit) for 0."""
        from .images import DEFAULT_MAX_PIXELS

        given = self.options.max_pixels
        return DEFAULT_MAX_PIXELS if given is None else (given or None)

    def _load(self, item: InputItem, stdin: Any) -> Any:
        from .images import load_image

        options = self.options
        return load_image(item.path, orient=options.orient, frames=options.frames, max_pixels=self.max_pixels, stdin=stdin)

    def _save(self, image: Any, result: Any, out: str, fmt: str, stdout: Any) -> str | None:
        from .engine import quantize
        from .images import save_image

        options = self.options
        dest = stdout if out == "-" else out
        if out != "-":
            self._refuse_outside_output(out)
            _make_parent(out)
        try:
            bit_depth = _output_depth(image, fmt)
            if bit_depth is None:
                save_image(result.values(), dest, format=fmt)
                return None
            quantized = quantize(result, bit_depth, options.normalize)
            save_image(
                quantized.array, dest, format=fmt, bit_depth=bit_depth,
                quality=options.quality, compress_level=options.compress_level,
            )
            return quantized.normalize
        except OSError as exc:
            raise OutputError(f"{out}: cannot write: {exc.strerror or exc}", "check the folder and free space") from None

    def _refuse_outside_output(self, out: str) -> None:
        """An output inside ``-o DIR`` must stay there: a symlinked folder below DIR (out/sub →
        /elsewhere) would lead it outside, so its nearest existing folder is resolved and checked."""
        root = self.options.output
        if not root or root == "-" or os.path.abspath(out) == os.path.abspath(root):
            return
        top, folder = os.path.abspath(root), os.path.dirname(os.path.abspath(out))
        while folder != top and not os.path.exists(folder):
            folder = os.path.dirname(folder)
        real_root, real_folder = os.path.realpath(top), os.path.realpath(folder)
        if os.path.commonpath([real_root, real_folder]) != real_root:
            raise OutputError(
                f"{out}: a symlink below -o {root} leads to {real_folder}, outside it",
                "remove the link or choose another -o",
            )

    def _save_stages(self, item: InputItem, image: Any, result: Any) -> None:
        if not (self.options.save_stages or self.options.montage):
            return
        from .pictures import save_montage, save_stage_pictures

        if self.options.save_stages:
            save_stage_pictures(item.path, image, result, self.options)
        if self.options.montage:
            save_montage(item.path, image, result, self.options)


def _output_depth(image: Any, fmt: str) -> int | None:
    """The bit depth an output is quantized to: 16 for a 16-bit input written as PNG/TIFF, else 8;
    None for array formats, which hold the exact floats."""
    if fmt in ARRAY_FORMATS:
        return None
    return 16 if image.bit_depth == 16 and fmt in SIXTEEN_BIT_FORMATS else 8


def _output_itemsize(fmt: str, input_itemsize: int) -> int:
    """Bytes per output element: float32 for arrays, 2 for 16-bit pictures, else 1."""
    if fmt in ARRAY_FORMATS:
        return 4
    return 2 if input_itemsize == 2 and fmt in SIXTEEN_BIT_FORMATS else 1


def _itemsize(bit_depth: int) -> int:
    """Bytes per decoded element for a header's bit depth (8 → uint8, 16 → uint16, else float32)."""
    return {8: 1, 16: 2}.get(bit_depth, 4)


def _failed(item: InputItem, exc: PoolcliError) -> Outcome:
    return Outcome(item.path, None, "error", str(exc), exception=exc)


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
    total: int = 0
    seconds: float = 0.0
    interrupted: int = 0  # the signal that stopped the batch (SIGINT 2, SIGTERM 15), else 0

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def as_row(self) -> dict[str, Any]:
        ok = self.count("ok")
        megapixels = sum(o.megapixels for o in self.outcomes)
        seconds = max(self.seconds, 1e-9)
        return {
            "ok": ok,
            "skipped": self.count("skipped"),
            "failed": self.count("error"),
            "seconds": f"{self.seconds:.2f}",
            "images/s": f"{ok / seconds:.1f}",
            "MP/s": f"{megapixels / seconds:.1f}",
        }


class Terminated(BaseException):
    """Raised in the main thread by the SIGTERM handler, like KeyboardInterrupt for SIGINT."""


def process_all(
    items: list[InputItem],
    pipeline: Pipeline,
    options: ProcessOptions,
    *,
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
    on_start: Callable[[int], None] = lambda total: None,
    stdin: Any = None,
    stdout: Any = None,
) -> Summary:
    """Process every input: decoding and encoding in worker threads overlap the compute in this
    thread; consecutive same-size inputs are stacked into one batch (``options.batch_size``).

    Queues are bounded (at most a few batches decoded ahead, a few encodes in flight), so memory
    stays flat over any number of files. SIGINT/SIGTERM stop the batch: in-flight outputs are
    finished (writes are atomic), nothing else is started, and the summary says what was done.
    """
    many = len(items) > 1 or any(item.root is not None for item in items)
    pairs = [(item, output_path(item, options, many)) for item in items]
    check_outputs(pairs)
    processor = Processor(pipeline, options)
    summary = Summary(total=len(pairs))
    on_start(len(pairs))
    start = time.perf_counter()

    def emit(outcome: Outcome) -> bool:
        summary.outcomes.append(outcome)
        on_outcome(outcome)
        return outcome.status == "error" and options.fail_fast

    with _signals_as_exceptions():
        try:
            if len(pairs) == 1 or any(item.path == "-" for item, _ in pairs):
                processor.compute_threads = _workers(options)  # no decode or encode thread to share the cores with
                for item, out in pairs:
                    if emit(processor.process(item, out, stdin=stdin, stdout=stdout)):
                        break
            else:
                _run_pipelined(processor, pairs, options, emit)
        except KeyboardInterrupt:
            summary.interrupted = signal.SIGINT
        except Terminated:
            summary.interrupted = signal.SIGTERM
    summary.seconds = time.perf_counter() - start
    return summary


def import_engine_in_background(pipeline: Pipeline, options: ProcessOptions) -> threading.Thread:
    """Import the engine on a thread while the first input decodes (see ``engine.import_engine``).

    Pillow's decoders release the GIL, so on a second core numpy's import all but disappears
    from ``poolcli pool photo.jpg`` (and torch's from ``--engine torch``). Started any earlier it
    would only take turns on the GIL with the Python that reads the header. A failure here is
    left to the main thread, which imports the same modules again and reports what fails.
    """

    def run() -> None:
        try:
            from .engine import import_engine

            import_engine(options.engine, options.device, pipeline)
        except Exception:  # noqa: BLE001 — reported by the main thread's own import
            pass

    thread = threading.Thread(target=run, name="poolcli-imports", daemon=True)
    thread.start()
    return thread


def _workers(options: ProcessOptions) -> int:
    """``--workers``, by default the core count."""
    return max(1, options.workers or os.cpu_count() or 1)


def _run_pipelined(processor: Processor, pairs: list[tuple[InputItem, str]], options: ProcessOptions, emit) -> None:
    """Decode ahead in threads, compute batches here, encode behind in threads.

    Outcomes are emitted in input order: a failed or skipped input waits in the encode queue
    behind the outputs before it. With ``--fail-fast`` nothing after the first failure is
    computed; outputs already being written are finished and reported.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    workers = _workers(options)
    batch_size = max(1, options.batch_size if _batchable(processor.pipeline, options) else 1)
    decode_ahead = max(2 * workers, 2 * batch_size)
    encode_limit = 2 * workers + batch_size
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="poolcli-io")
    decoding: deque = deque()
    encoding: deque = deque()
    pending = iter(pairs)
    stop = False

    def settled(outcome: Outcome) -> Future:
        future: Future = Future()
        future.set_result(outcome)
        return future

    def emit_ready(everything: bool, limit: int = encode_limit) -> None:
        nonlocal stop
        while encoding and (everything or len(encoding) > limit or encoding[0].done()):
            stop = emit(encoding.popleft().result()) or stop

    try:
        while not stop:
            in_memory = processor.inputs_in_memory()
            waiting = sum(1 for future in encoding if not future.done())
            while len(decoding) < max(1, min(decode_ahead, in_memory - waiting)):
                pair = next(pending, None)
                if pair is None:
                    break
                decoding.append(pool.submit(processor.decode, *pair))
            if not decoding:
                break
            group = _next_group(decoding, batch_size)
            if group[0].outcome is not None:
                encoding.append(settled(group[0].outcome))
                failed = group[0].outcome.status == "error"
            else:
                try:
                    results = processor.compute(group)
                except PoolcliError as exc:
                    results = [(decoded, exc) for decoded in group]
                failed = False
                for decoded, result in results:
                    if isinstance(result, PoolcliError):
                        encoding.append(settled(_failed(decoded.item, result)))
                        failed = True
                    else:
                        encoding.append(pool.submit(processor.encode, decoded, result))
            emit_ready(everything=failed and options.fail_fast, limit=max(1, min(encode_limit, processor.inputs_in_memory())))
        emit_ready(everything=True)
    finally:
        for future in decoding:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _next_group(decoding: deque, batch_size: int) -> list[Decoded]:
    """The next run of decoded inputs that share a group key (failures travel alone)."""
    group = [decoding.popleft().result()]
    if group[0].outcome is not None:
        return group
    key = group[0].group_key
    while len(group) < batch_size and decoding and decoding[0].done():
        candidate = decoding[0].result()
        if candidate.outcome is not None or candidate.group_key != key:
            break
        group.append(decoding.popleft().result())
    return group


def _batchable(pipeline: Pipeline, options: ProcessOptions) -> bool:
    """Stacking changes nothing for deterministic stages; random ones stay per image. The numpy
    engine gains nothing from a stack (its kernels loop over kernel offsets, not images) and
    np.concatenate would copy every image into one planar block: it takes images one by one."""
    from .engine import choose_engine

    if choose_engine(options.engine, options.device, pipeline) == "numpy":
        return False
    return not any(stage.op == "fractionalmaxpool" for stage in pipeline.stages)


class _signals_as_exceptions:
    """SIGTERM raises Terminated in the main thread while a batch runs (SIGINT already raises
    KeyboardInterrupt); the previous handler comes back afterwards."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise Terminated()

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False
