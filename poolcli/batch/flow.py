"""One input's way through poolcli: header → plan → execution → decode → compute → write.

``Flow.process`` is that whole way for one input, in the caller's thread: the function an
executor (local threads, Ray workers) calls per input. The scheduler splits it where threads
help: on the CPU, ``prepare`` (header and plan) in the main thread and ``carry_out`` (decode,
then ``finish``: compute and encode) in one worker thread per input; on a GPU, ``prepare`` and
``decode`` in worker threads, ``compute`` on stacked same-size inputs in the main thread,
``encode`` in worker threads again. Each input's plan, memory choice and
target are made once, from its header, before its pixels are read; plans and memory choices
are shared by inputs of one shape (they are never written to).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace
from typing import Any

from ..core.plan import Pipeline, Plan
from ..errors import OutputError, PoolcliError, UsageError
from ..execute.memory import Execution
from ..io.records import ImageData
from ..io.sources import Source
from .discovery import InputItem
from .naming import Target
from .options import ProcessOptions
from .outcome import Outcome

SIXTEEN_BIT_FORMATS = ("png", "tiff")


@dataclass(frozen=True)
class Job:
    """One input planned from its header: where it goes, how it runs."""

    item: InputItem
    target: Target
    source: Source
    plan: Plan
    execution: Execution
    itemsize: int  # bytes per decoded element the header promises
    depth: int | None  # the output's bit depth (8 or 16), None for array formats


@dataclass(frozen=True)
class Decoded:
    """A job with its pixels, waiting for the compute step."""

    job: Job
    image: ImageData

    @property
    def group_key(self) -> tuple:
        """Images that can share one batch tensor: same shape, dtype, scale and alpha handling.
        A tiled image runs alone (no other input has its id)."""
        image, execution = self.image, self.job.execution
        alone = id(self) if execution.mode == "tiled" else None
        return (image.array.shape, image.array.dtype.str, image.maxval, image.has_alpha, image.is_array,
                image.bit_depth, self.job.depth, execution.mode, alone)


def output_depth(bit_depth: int, target: Target) -> int | None:
    """The bit depth an output is quantized to: 16 for a 16-bit input written as PNG/TIFF, else 8;
    None for array formats, which hold the exact floats."""
    if target.exact:
        return None
    return 16 if bit_depth == 16 and target.format in SIXTEEN_BIT_FORMATS else 8


def _itemsize(bit_depth: int) -> int:
    """Bytes per decoded element for a bit depth (8 → uint8, 16 → uint16, else float32)."""
    return {8: 1, 16: 2}.get(bit_depth, 4)


def _output_itemsize(depth: int | None) -> int:
    """Bytes per output element: float32 for arrays, 2 for 16-bit pictures, else 1."""
    return 4 if depth is None else depth // 8


class Flow:
    """The per-input steps, with what inputs share: plans and memory choices per shape, the
    memory budget, and the engine's imports (started once, during the first decode)."""

    def __init__(self, pipeline: Pipeline, options: ProcessOptions):
        from ..execute.memory import default_memory_budget, parse_memory_size

        self.pipeline = pipeline
        self.options = options
        self.budget = parse_memory_size(options.memory) if options.memory is not None else default_memory_budget()
        self.largest_resident = 0  # the biggest per-input estimate seen: bounds how many are in flight
        self.compute_threads = 1  # the numpy kernels' threads: the cores, when nothing else runs
        self.engine_imports: threading.Thread | None = None
        self._plans: dict[tuple[int, ...], Plan] = {}
        self._executions: dict[tuple, Execution] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ one input, start to finish

    def process(self, item: InputItem, target: Target | str, stdin: Any = None, stdout: Any = None) -> Outcome:
        """One input start to finish, in this thread; ``target`` may be a path (its format from
        its extension or ``--format``)."""
        if isinstance(target, str):
            from ..io.formats import output_format

            target = Target(target, output_format(None if target == "-" else target, self.options.format))
        step = self.prepare(item, target, stdin)
        if isinstance(step, Outcome):
            return step
        return self.carry_out(step, stdout)

    def carry_out(self, job: Job, stdout: Any = None) -> Outcome:
        """A planned input's pixels: decode, then ``finish``; what a worker thread runs per input."""
        decoded = self.decode(job)
        return decoded if isinstance(decoded, Outcome) else self.finish(decoded, stdout)

    def finish(self, decoded: Decoded, stdout: Any = None) -> Outcome:
        """Compute one decoded input alone and write its output; failures become the outcome."""
        try:
            [(decoded, result)] = self.compute([decoded])
        except PoolcliError as exc:
            return Outcome.failed(decoded.job.item.path, exc)
        if isinstance(result, PoolcliError):
            return Outcome.failed(decoded.job.item.path, result)
        return self.encode(decoded, result, stdout)

    # ------------------------------------------------------------------ the steps

    def prepare(self, item: InputItem, target: Target, stdin: Any = None) -> Job | Outcome:
        """Header → plan → memory choice, so that a bad pipeline or a bomb fails before any pixel
        is decoded; a finished output with ``--skip-existing`` is skipped."""
        from ..io.pictures import refuse_over_max_pixels
        from ..io.reading import header_of
        from ..io.sources import open_source

        options = self.options
        if options.skip_existing and target.path != "-" and os.path.exists(target.path):
            return Outcome(item.path, target.path, "skipped")
        try:
            source = open_source(item.path, None, stdin)
            header = header_of(source, orient=options.orient)
            shape = header.shape
            if not header.is_array:
                frames = header.frames if options.frames == "all" else 1
                refuse_over_max_pixels(item.path, header.width, header.height, frames, options.pixel_limit)
                shape = (frames, *shape[1:])
            depth = output_depth(header.bit_depth, target)
            itemsize = _itemsize(header.bit_depth)
            plan = self.plan_for(shape, target)
            execution = self.execution_for(plan, itemsize, depth, item.path)
        except PoolcliError as exc:
            return Outcome.failed(item.path, exc)
        return Job(item, target, source, plan, execution, itemsize, depth)

    def decode(self, job: Job) -> Decoded | Outcome:
        """The pixels. A header can only guess a 32-bit integer image's depth (its values decide
        between 16 bits and float), so a decoded shape or depth it did not foresee is planned again."""
        from ..io.reading import load_source

        options = self.options
        self._import_engine_meanwhile()
        try:
            image = load_source(job.source, orient=options.orient, frames=options.frames, max_pixels=options.pixel_limit)
            depth = output_depth(image.bit_depth, job.target)
            itemsize = image.array.dtype.itemsize
            if image.array.shape != job.plan.input_shape or depth != job.depth or itemsize != job.itemsize:
                plan = self.plan_for(image.array.shape, job.target)
                execution = self.execution_for(plan, itemsize, depth, job.item.path)
                job = Job(job.item, job.target, job.source, plan, execution, itemsize, depth)
        except PoolcliError as exc:
            return Outcome.failed(job.item.path, exc)
        return Decoded(job, image)

    def compute(self, group: list[Decoded]) -> list[tuple[Decoded, Any]]:
        """Run the pipeline once on the stacked group; returns each input with its result view,
        or with the PoolcliError that stopped it.

        The one place that decides how pixels are computed: a group whose stacked estimate is
        over ``--memory`` is split; an image planned tiled runs tile by tile; an out-of-memory
        (CUDA's or the host's) splits the group and retries, and an image that fails alone is
        retried tiled where its stages allow, then reported in one line.
        """
        from ..execute.memory import is_out_of_memory, release_device_memory

        if len(group) > 1 and not self._fits_stacked(group):
            return self._split(group)
        try:
            return self._compute(group)
        except Exception as exc:  # noqa: BLE001 — only out-of-memory is handled; the rest re-raised
            if not is_out_of_memory(exc):
                raise
            del exc  # its traceback holds the tensors that ran out
            release_device_memory(self.options.device)
            if len(group) > 1:
                return self._split(group)
            return [self._retry_tiled(group[0])]

    def encode(self, decoded: Decoded, result: Any, stdout: Any = None) -> Outcome:
        """Write one output (atomically) and its stage pictures; failures become the outcome."""
        from ..execute.memory import MemoryBudgetError, is_out_of_memory

        job = decoded.job
        try:
            normalize = self._save(decoded, result, stdout)
            self._save_stages(decoded, result)
        except PoolcliError as exc:
            return Outcome.failed(job.item.path, exc)
        except Exception as exc:  # noqa: BLE001 — a CUDA result runs out while it is normalized
            if not is_out_of_memory(exc):
                raise
            return Outcome.failed(job.item.path, MemoryBudgetError(
                f"{job.item.path}: out of memory on {result.device} writing the output",
                "use --device cpu or a smaller --batch-size"))
        shape = job.plan.input_shape
        return Outcome(
            job.item.path, job.target.path, "ok", None, result.device, job.plan,
            tuple(s / result.batch_size for s in result.seconds), normalize, engine=result.engine,
            megapixels=shape[0] * shape[-1] * shape[-2] / 1e6,
            execution=job.execution.record(),
            notes=(job.execution.note(),) if job.execution.mode == "tiled" else (),
        )

    # ------------------------------------------------------------------ shared per shape

    def plan_for(self, shape: tuple[int, ...], target: Target) -> Plan:
        shape = tuple(int(d) for d in shape)
        with self._lock:
            plan = self._plans.get(shape)
        if plan is None:
            plan = self.pipeline.plan(shape)
            with self._lock:
                plan = self._plans.setdefault(shape, plan)
        _check_writable(plan, target)
        return plan

    def execution_for(self, plan: Plan, input_itemsize: int, depth: int | None, name: str) -> Execution:
        """Whole-image or tiled for this plan, from its memory estimate and ``--memory`` (once per
        shape). Raises MemoryBudgetError before any pixel is decoded when even tiled the input
        cannot fit."""
        from ..execute.memory import choose_execution

        key = (plan.input_shape, input_itemsize, depth)
        with self._lock:
            known = self._executions.get(key)
        if known is not None:
            return known
        execution = choose_execution(
            plan, budget=self.budget, input_itemsize=input_itemsize, output_itemsize=_output_itemsize(depth),
            keep_stages=self.options.keep_stages, tile=self.options.tile, name=name,
        )
        with self._lock:
            execution = self._executions.setdefault(key, execution)
            self.largest_resident = max(self.largest_resident, execution.resident_bytes)
        return execution

    def inputs_in_memory(self) -> int:
        """How many inputs may be decoded or waiting at once within ``--memory`` (1 until one is seen)."""
        with self._lock:
            return max(1, self.budget // self.largest_resident) if self.largest_resident else 1

    # ------------------------------------------------------------------ inside the steps

    def _import_engine_meanwhile(self) -> None:
        """Before the first decode: the engine's imports start on a thread (``import_engine_in_background``)."""
        with self._lock:
            if self.engine_imports is None:
                self.engine_imports = import_engine_in_background(self.pipeline, self.options)

    def _split(self, group: list[Decoded]) -> list[tuple[Decoded, Any]]:
        half = len(group) // 2
        return self.compute(group[:half]) + self.compute(group[half:])

    def _fits_stacked(self, group: list[Decoded]) -> bool:
        from ..execute.memory import whole_image_bytes

        first = group[0]
        shape = (sum(len(d.image.array) for d in group), *first.image.array.shape[1:])
        estimate = whole_image_bytes(
            self.pipeline.plan(shape), first.image.array.dtype.itemsize, _output_itemsize(first.job.depth),
            stacked=len(group), keep_stages=self.options.keep_stages,
        )
        return estimate <= self.budget

    def _compute(self, group: list[Decoded]) -> list[tuple[Decoded, Any]]:
        import numpy as np

        from ..execute import run

        options = self.options
        first = group[0]
        image, job = first.image, first.job
        execution = job.execution
        common = dict(
            maxval=image.maxval,
            raw_scale=options.raw_scale,
            premultiply=image.has_alpha and not image.is_array and options.alpha == "premultiply",
            device=options.device,
            engine=options.engine,
            seed=options.seed,
            threads=self.compute_threads,
        )
        if len(group) == 1 and execution.mode == "tiled":
            result = run.run_tiled(self.pipeline, image.array, execution.tile, plan=job.plan, bit_depth=job.depth,
                                   normalize=options.normalize, keeps_range=self._keeps_range(image), **common)
            return [(first, result)]
        array = image.array if len(group) == 1 else np.concatenate([d.image.array for d in group])
        plan = job.plan if len(group) == 1 else self.pipeline.plan(array.shape)
        result = run.run_pipeline(self.pipeline, array, plan=plan, keep_stages=options.keep_stages,
                                  bit_depth=job.depth, normalize=options.normalize, **common)
        if len(group) == 1:
            return [(first, result)]
        return [(decoded, result.slice(i)) for i, decoded in enumerate(group)]

    def _retry_tiled(self, decoded: Decoded) -> tuple[Decoded, Any]:
        """After an out-of-memory on one whole image: tiled, each tile a quarter of the whole run's
        working set, where its stages allow (the input then carries that execution); otherwise, or
        when that runs out too, the one-line error."""
        from ..execute.memory import (
            MemoryBudgetError, format_bytes, is_out_of_memory, release_device_memory, smaller_execution,
        )
        from ..execute.tiling import tiling_obstacle

        job = decoded.job
        plan, execution = job.plan, job.execution
        device = self.options.device
        shape = "×".join(map(str, plan.input_shape))
        error = MemoryBudgetError(
            f"{job.item.path}: out of memory on {device} running {shape} (estimate {format_bytes(execution.estimate_bytes)})",
            "use --device cpu, a smaller --batch-size or --memory" if device.startswith("cuda") else "give a smaller --memory (smaller tiles) or free some memory",
        )
        if execution.mode == "tiled" or tiling_obstacle(plan) is not None or self.options.keep_stages:
            return decoded, error
        try:
            smaller = smaller_execution(plan, execution, decoded.image.array.dtype.itemsize, _output_itemsize(job.depth))
            retried = replace(decoded, job=replace(job, execution=smaller))
            return self._compute([retried])[0]
        except MemoryBudgetError:
            return decoded, error
        except Exception as again:  # noqa: BLE001
            if not is_out_of_memory(again):
                raise
            release_device_memory(device)
            return decoded, error

    def _save(self, decoded: Decoded, result: Any, stdout: Any) -> str | None:
        from ..execute.quantize import quantize
        from ..io.writing import save_image

        options, job = self.options, decoded.job
        out = job.target.path
        dest = stdout if out == "-" else out
        if out != "-":
            self._refuse_outside_output(out)
            _make_parent(out)
        try:
            if job.depth is None:
                save_image(result.values(), dest, format=job.target.format, fsync=options.fsync)
                return None
            quantized = quantize(result, job.depth, options.normalize, keeps_range=self._keeps_range(decoded.image))
            save_image(quantized.array, dest, format=job.target.format, bit_depth=job.depth,
                       quality=options.quality, compress_level=options.compress_level, fsync=options.fsync)
            return quantized.normalize
        except OSError as exc:
            raise OutputError(f"{out}: cannot write: {exc.strerror or exc}", "check the folder and free space") from None

    def _keeps_range(self, image: ImageData) -> bool:
        """A picture (values in [0, 1]) through stages that keep that range: never stretched."""
        return not image.is_array and self.pipeline.keeps_range

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

    def _save_stages(self, decoded: Decoded, result: Any) -> None:
        options = self.options
        if not options.keep_stages:
            return
        from ..render.pictures import save_montage, save_stage_pictures

        name = decoded.job.item.path
        if options.save_stages:
            save_stage_pictures(name, decoded.image, result, options.save_stages, options.normalize)
        if options.montage:
            save_montage(decoded.image, result, options.montage, options.normalize)


def import_engine_in_background(pipeline: Pipeline, options: ProcessOptions) -> threading.Thread:
    """Import the engine on a thread while the first input decodes (see ``execute.engines.import_engine``).

    Pillow's decoders release the GIL, so on a second core numpy's import all but disappears
    from ``poolcli pool photo.jpg`` (and torch's from ``--engine torch``). Started any earlier it
    would only take turns on the GIL with the Python that reads the header. A failure here is
    left to the main thread, which imports the same modules again and reports what fails.
    """

    def imports() -> None:
        try:
            from ..execute import engines

            engines.import_engine(options.engine, options.device, pipeline.stages)
        except Exception:  # noqa: BLE001 — reported by the main thread's own import
            pass

    thread = threading.Thread(target=imports, name="poolcli-imports", daemon=True)
    thread.start()
    return thread


def _make_parent(path: str) -> None:
    parent = os.path.dirname(path)
    if parent:
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{parent}: cannot create the output folder: {exc.strerror}", "") from None


def _check_writable(plan: Plan, target: Target) -> None:
    """An image format holds N×1..4×H×W; flatten/linear outputs and other channel counts need .npy/.pt."""
    shape = plan.output_shape
    if target.exact:
        if target.format == "csv" and (len(shape) != 4 or shape[0] * shape[1] != 1):
            raise UsageError(f"--format csv holds one 2-D matrix, the output is {'×'.join(map(str, shape))}", "use .npy")
        return
    if len(shape) != 4 or not 1 <= shape[1] <= 4:
        raise UsageError(
            f"the output {'×'.join(map(str, shape))} is not an image (N×C×H×W with C ≤ 4)",
            "write it with -o out.npy or --format npy/pt",
        )
