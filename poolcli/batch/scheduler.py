"""Many inputs through one process: decode and encode threads around the compute, in order.

``process_all`` is the library function behind every command that processes images: it takes
the inputs, a pipeline and ``ProcessOptions`` and returns a ``Summary`` with one ``Outcome``
per input; the CLI only parses and reports. Signals stop a batch cleanly: what is being written
is finished (writes are atomic), nothing new is started, and the summary says what was done.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from typing import Any, Callable

from ..core.plan import Pipeline
from ..errors import PoolcliError
from .discovery import InputItem
from .flow import Decoded, Flow
from .naming import Target, output_targets
from .options import ProcessOptions
from .outcome import Outcome, Summary


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
    targets = output_targets(items, options)
    flow = Flow(pipeline, options)
    summary = Summary(total=len(items))
    on_start(len(items))
    start = time.perf_counter()

    def emit(outcome: Outcome) -> bool:
        summary.outcomes.append(outcome)
        on_outcome(outcome)
        return outcome.status == "error" and options.fail_fast

    with _signals_as_exceptions():
        try:
            if len(items) == 1 or any(item.path == "-" for item in items):
                flow.compute_threads = options.threads  # no decode or encode thread to share the cores with
                for item, target in zip(items, targets):
                    outcome = (Outcome.failed(item.path, target) if isinstance(target, PoolcliError)
                               else flow.process(item, target, stdin=stdin, stdout=stdout))
                    if emit(outcome):
                        break
            else:
                _run_pipelined(flow, list(zip(items, targets)), emit)
        except KeyboardInterrupt:
            summary.interrupted = signal.SIGINT
        except Terminated:
            summary.interrupted = signal.SIGTERM
    summary.seconds = time.perf_counter() - start
    return summary


def _run_pipelined(flow: Flow, pairs: list[tuple[InputItem, Target | PoolcliError]],
                   emit: Callable[[Outcome], bool]) -> None:
    """Decode ahead in threads, compute batches here, encode behind in threads.

    Outcomes are emitted in input order: a failed or skipped input waits in the encode queue
    behind the outputs before it. With ``--fail-fast`` nothing after the first failure is
    computed; outputs already being written are finished and reported.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    options = flow.options
    workers = options.threads
    batch_size = max(1, options.batch_size if _batchable(flow.pipeline, options) else 1)
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

    def read(item: InputItem, target: Target | PoolcliError) -> Decoded | Outcome:
        if isinstance(target, PoolcliError):
            return Outcome.failed(item.path, target)
        job = flow.prepare(item, target)
        return job if isinstance(job, Outcome) else flow.decode(job)

    def emit_ready(everything: bool, limit: int = encode_limit) -> None:
        nonlocal stop
        while encoding and (everything or len(encoding) > limit or encoding[0].done()):
            stop = emit(encoding.popleft().result()) or stop

    try:
        while not stop:
            in_memory = flow.inputs_in_memory()
            waiting = sum(1 for future in encoding if not future.done())
            while len(decoding) < max(1, min(decode_ahead, in_memory - waiting)):
                pair = next(pending, None)
                if pair is None:
                    break
                decoding.append(pool.submit(read, *pair))
            if not decoding:
                break
            group = _next_group(decoding, batch_size)
            if isinstance(group[0], Outcome):
                encoding.append(settled(group[0]))
                failed = group[0].status == "error"
            else:
                try:
                    results = flow.compute(group)
                except PoolcliError as exc:
                    results = [(decoded, exc) for decoded in group]
                failed = False
                for decoded, result in results:
                    if isinstance(result, PoolcliError):
                        encoding.append(settled(Outcome.failed(decoded.job.item.path, result)))
                        failed = True
                    else:
                        encoding.append(pool.submit(flow.encode, decoded, result))
            emit_ready(everything=failed and options.fail_fast, limit=max(1, min(encode_limit, flow.inputs_in_memory())))
        emit_ready(everything=True)
    finally:
        for future in decoding:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _next_group(decoding: deque, batch_size: int) -> list[Any]:
    """The next run of decoded inputs that share a group key (failures travel alone)."""
    group = [decoding.popleft().result()]
    if isinstance(group[0], Outcome):
        return group
    key = group[0].group_key
    while len(group) < batch_size and decoding and decoding[0].done():
        candidate = decoding[0].result()
        if isinstance(candidate, Outcome) or candidate.group_key != key:
            break
        group.append(decoding.popleft().result())
    return group


def _batchable(pipeline: Pipeline, options: ProcessOptions) -> bool:
    """Stacking changes nothing for deterministic stages; random ones stay per image. The numpy
    engine gains nothing from a stack (its kernels loop over kernel offsets, not images) and
    np.concatenate would copy every image into one planar block: it takes images one by one."""
    from ..execute.engines import choose_engine

    if choose_engine(options.engine, options.device, pipeline.stages) == "numpy":
        return False
    return pipeline.deterministic


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
