"""Many inputs across machines: the same per-input work, run by Ray Data.

poolcli grows no scheduler of its own: the driver lists the inputs and names their outputs as a
local run does (``naming.output_targets``: collisions, writing over an input, ``--skip-existing``),
then hands the rest to Ray Data as a dataset of paths, ``map_batches`` over small batches with
streaming execution (memory stays bounded however many files there are). Each Ray worker runs
``flow.Flow.process`` on each input of its batch — header, plan, decode, compute, and the same
atomic write into ``-o``, which every node must reach — and sends back the ``Outcome``. The
driver gathers them in input order, so the report, the JSON records, the summary and the exit
status are a local run's. A task lost with its node is retried elsewhere (Ray's retries; a
retried input is written again, atomically, to the same bytes).

Ray is an optional extra (``pip install 'poolcli[ray]'``), imported only here and only when
``--executor ray`` asks for it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import pickle
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..core.plan import Pipeline
from ..errors import PoolcliError, UsageError
from .discovery import InputItem
from .flow import Flow
from .naming import Target, output_targets
from .options import ProcessOptions
from .outcome import Outcome, Summary

INSTALL_HINT = "install it with pip install 'poolcli[ray]'"
LOCAL_ADDRESS = "127.0.0.2"  # a loopback address Ray keeps (it rewrites 127.0.0.1 to the machine's outward one)
MAX_BATCH = 64  # inputs per Ray task at most, so that a lost task costs little


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or a usage error naming the command that installs it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError("--executor ray needs Ray, which is not installed", INSTALL_HINT) from None
    return ray


def process_on_ray(
    items: list[InputItem],
    pipeline: Pipeline,
    options: ProcessOptions,
    *,
    address: str | None = None,
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
    on_start: Callable[[int], None] = lambda total: None,
) -> Summary:
    """``scheduler.process_all`` on a Ray cluster: ``address`` is ``auto``, ``HOST:PORT``, or None
    for a Ray started on this machine for the run (and shut down after it)."""
    ray = require_ray()
    if any(item.path == "-" for item in items):
        raise UsageError("--executor ray reads no stdin", "give files: Ray workers read them from a shared folder")
    targets = output_targets(items, options)
    summary = Summary(total=len(items))
    settled: dict[int, Outcome] = {}
    work: list[dict[str, Any]] = []
    for index, (item, target) in enumerate(zip(items, targets)):
        if isinstance(target, PoolcliError):
            settled[index] = Outcome.failed(item.path, target)
        elif options.skip_existing and os.path.exists(target.path):
            settled[index] = Outcome(item.path, target.path, "skipped")
        else:
            work.append({"index": index, "path": item.path, "root": item.root or "", "target": target.path,
                         "format": target.format})
    on_start(len(items))
    start = time.perf_counter()
    emitted = 0

    def flush() -> None:
        """Emit every outcome whose turn has come, in input order."""
        nonlocal emitted
        while emitted in settled:
            outcome = settled.pop(emitted)
            summary.outcomes.append(outcome)
            on_outcome(outcome)
            emitted += 1

    def settle(index: int, outcome: Outcome) -> None:
        settled[index] = outcome
        flush()

    try:
        flush()
        if work:
            with ray_session(ray, address, options):
                for row in _results(ray, work, pipeline, options):
                    if options.fail_fast and any(o.status == "error" for o in summary.outcomes):
                        break
                    settle(int(row["index"]), pickle.loads(row["outcome"]))
    except KeyboardInterrupt:
        summary.interrupted = signal.SIGINT
        unfinished = [item["target"] for item in work if item["index"] >= emitted]
        remove_temporary_files(unfinished)
    summary.seconds = time.perf_counter() - start
    return summary


def remove_temporary_files(targets: list[str], settle_seconds: float = 1.0) -> list[str]:
    """After an interrupted run: the temporary files of ``targets`` that workers stopped in the
    middle of a write left behind (``.NAME.RANDOM.tmp`` beside each output, the atomic write's
    names), removed once the workers had time to stop. Returns the removed paths.

    A local run finishes what it is writing; a Ray worker is stopped by the cluster when its
    driver goes, and one stopped mid-write cannot remove its own file.
    """
    import glob

    time.sleep(settle_seconds)
    removed = []
    for target in targets:
        folder, base = os.path.split(target)
        for temp in glob.glob(os.path.join(glob.escape(folder or "."), f".{glob.escape(base)}.*.tmp")):
            if len(os.path.basename(temp)) == len(base) + 18:  # "." + base + "." + 12 hex + ".tmp"
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                    removed.append(temp)
    return removed


def _results(ray: Any, work: list[dict[str, Any]], pipeline: Pipeline, options: ProcessOptions) -> Iterator[dict]:
    """Stream each input's pickled Outcome back, in input order."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = True
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    size = batch_size(len(work), int(ray.cluster_resources().get("CPU", 1)))
    dataset = ray.data.from_items(work, override_num_blocks=max(1, -(-len(work) // size)))
    # Ray Data retries a task (or restarts an actor) lost with its node by default, without limit.
    if options.device.startswith("cuda"):
        gpus = max(1, int(ray.cluster_resources().get("GPU", 0)))
        mapped = dataset.map_batches(
            InputsOnAGpu, fn_constructor_kwargs={"pipeline": pipeline, "options": options},
            batch_size=size, batch_format="numpy", num_gpus=1, concurrency=(1, gpus),
        )
    else:
        mapped = dataset.map_batches(
            functools.partial(process_batch, pipeline=pipeline, options=options), batch_size=size, batch_format="numpy",
        )
    yield from mapped.iter_rows()


def batch_size(inputs: int, cpus: int) -> int:
    """Inputs per Ray task: about four tasks per CPU of the cluster, so that the work spreads and a
    slow node evens out, and no more than MAX_BATCH, so that a lost task costs little.

    >>> batch_size(200, 2), batch_size(1_000_000, 64), batch_size(3, 8)
    (25, 64, 1)
    """
    return max(1, min(MAX_BATCH, inputs // (4 * max(1, cpus))))


def process_batch(batch: dict[str, Any], *, pipeline: Pipeline, options: ProcessOptions, flow: Flow | None = None
                  ) -> dict[str, Any]:
    """On a Ray worker: ``Flow.process`` for each input of ``batch``; the Outcomes pickled."""
    import numpy as np

    _finish_writes_on_sigterm()
    flow = flow or Flow(pipeline, options)
    outcomes = []
    for path, root, target, fmt in zip(batch["path"], batch["root"], batch["target"], batch["format"]):
        outcome = flow.process(InputItem(str(path), str(root) or None), Target(str(target), str(fmt)))
        outcomes.append(pickle.dumps(outcome))
    return {"index": batch["index"], "outcome": np.array(outcomes, dtype=object)}


class InputsOnAGpu:
    """A Ray actor holding one GPU: its Flow (and the torch engine's CUDA context) lives as long as it."""

    def __init__(self, pipeline: Pipeline, options: ProcessOptions):
        self.flow = Flow(pipeline, options)
        self.pipeline, self.options = pipeline, options

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        return process_batch(batch, pipeline=self.pipeline, options=self.options, flow=self.flow)


def _finish_writes_on_sigterm() -> None:
    """A worker stopped with SIGTERM (the run was interrupted) raises in the task, so that an
    atomic write under way removes its temporary file instead of leaving it in ``-o``."""
    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    with contextlib.suppress(ValueError):  # not the worker's main thread: nothing to install
        if signal.getsignal(signal.SIGTERM) is not stop:
            signal.signal(signal.SIGTERM, stop)


def check_listening(address: str, seconds: float = 5.0) -> None:
    """Raise ConnectionError unless something accepts connections at ``HOST:PORT``: Ray itself
    retries an address where nothing listens for minutes, printing a warning every few seconds.

    >>> check_listening("127.0.0.1:1")
    Traceback (most recent call last):
    ...
    ConnectionError: nothing listens at 127.0.0.1:1
    """
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=seconds):
            pass
    except (OSError, ValueError):
        raise ConnectionError(f"nothing listens at {address}") from None


def connection_hint(address: str | None) -> str:
    """What to check when Ray cannot be reached. A cluster started by ``ray start --head`` uses
    token authentication (Ray's default since 2.59), and a driver without ``RAY_AUTH_MODE=token``
    is refused with nothing but "failed to connect"."""
    if address is None:
        return "check that this machine can start Ray (ray start --head works here), or use --executor local"
    hint = "check the address (ray start --head prints it), or leave --ray-address out"
    if os.environ.get("RAY_AUTH_MODE", "") != "token":
        hint += "; a cluster with token authentication needs RAY_AUTH_MODE=token here as on its nodes"
    return hint


@contextlib.contextmanager
def ray_session(ray: Any, address: str | None, options: ProcessOptions) -> Iterator[None]:
    """A Ray connection for the run: to ``address``, or to a Ray started here on loopback for the
    run and shut down after it. A session the caller opened already (a notebook) is used as it is."""
    if ray.is_initialized():
        yield
        return
    settings: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address is None:
            ray.init(address="local", _node_ip_address=LOCAL_ADDRESS, num_cpus=options.threads, **settings)
        else:
            host = address.rsplit(":", 1)[0]
            if host.startswith("127."):
                settings["_node_ip_address"] = host
            if address != "auto":
                check_listening(address)
            ray.init(address=address, **settings)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"--ray-address {address}" if address else "a local Ray"
        raise PoolcliError(f"cannot start or reach {where}: {' '.join(str(exc).split())[:200]}",
                           connection_hint(address)) from None
    try:
        yield
    finally:
        ray.shutdown()
