"""Many inputs through one process: on the CPU each input's whole work in a worker thread, on a GPU
stacked batches between decode and encode threads; outcomes in input order either way.

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
from .flow import Decoded, Flow, Job
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
    """Process every input. On the CPU each input is decoded, computed and encoded in one worker
    thread (``_run_per_input``); on a GPU, decode and encode threads overlap the compute in this
    thread, which stacks consecutive same-size inputs into one batch (``options.batch_size``).

    What is in flight is bounded (by ``--workers`` and by ``--memory``), so memory stays flat
    over any number of files. SIGINT/SIGTERM stop the batch: in-flight outputs are finished
    (writes are atomic), nothing else is started, and the summary says what was done.
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
            elif _stacks_on_a_device(pipeline, options):
                _run_pipelined(flow, list(zip(items, targets)), emit)
            else:
                _run_per_input(flow, list(zip(items, targets)), emit)
        except KeyboardInterrupt:
            summary.interrupted = signal.SIGINT
        except Terminated:
            summary.interrupted = signal.SIGTERM
    summary.seconds = time.perf_counter() - start
    return summary


class _RunningLimit:
    """At most ``limit()`` holders at once; the limit is read anew each time (it shrinks as bigger
    inputs are planned), so a worker waits here until its input fits."""

    def __init__(self, limit: Callable[[], int]):
        self._limit = limit
        self._running = 0
        self._changed = threading.Condition()

    def __enter__(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._running < max(1, self._limit()))
            self._running += 1

    def __exit__(self, *exc) -> None:
        with self._changed:
            self._running -= 1
            self._changed.notify_all()


def _run_per_input(flow: Flow, pairs: list[tuple[InputItem, Target | PoolcliError]],
                   emit: Callable[[Outcome], bool]) -> None:
    """This thread reads headers and plans (``Flow.prepare``); each planned input goes to a worker
    thread that decodes, computes and encodes it (``Flow.carry_out``), with the GIL released in
    Pillow's codecs and the kernels. At most min(workers, inputs that fit ``--memory``) run at
    once and as many again wait queued, so a worker never idles while this thread reads the next
    header (with ``--fail-fast`` nothing is queued: nothing runs after a failure that need not).

    Outcomes are emitted in input order. With ``--fail-fast`` inputs not yet started are
    cancelled after the first failure; those already running finish and are reported.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    options = flow.options
    workers = options.threads

    def running_limit() -> int:
        return min(workers, flow.inputs_in_memory())

    limit = _RunningLimit(running_limit)

    def work(job: Job) -> Outcome:
        with limit:
            return flow.carry_out(job)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="poolcli-worker")
    waiting: deque[Future] = deque()
    pending = iter(pairs)
    rounds = 1 if options.fail_fast else 2
    stop = exhausted = False
    try:
        while True:
            while not stop and not exhausted and sum(not f.done() for f in waiting) < rounds * running_limit():
                pair = next(pending, None)
                if pair is None:
                    exhausted = True
                    break
                item, target = pair
                job = Outcome.failed(item.path, target) if isinstance(target, PoolcliError) else flow.prepare(item, target)
                waiting.append(_settled(job) if isinstance(job, Outcome) else pool.submit(work, job))
            if not waiting:
                break
            if stop:
                for future in waiting:
                    future.cancel()
                for future in waiting:
                    if not future.cancelled():
                        emit(future.result())
                break
            stop = emit(waiting.popleft().result()) or stop
            while waiting and waiting[0].done() and not stop:
                stop = emit(waiting.popleft().result()) or stop
    finally:
        for future in waiting:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _settled(outcome: Outcome) -> Future:
    from concurrent.futures import Future

    future: Future = Future()
    future.set_result(outcome)
    return future


def _stacks_on_a_device(pipeline: Pipeline, options: ProcessOptions) -> bool:
    """Whether inputs are stacked and computed in this thread: on a GPU, where one batch tensor
    per transfer and kernel launch pays. On the CPU each input runs whole in a worker."""
    from ..execute.devices import resolve_device

    return not resolve_device(options.device).startswith("cpu") and _batchable(pipeline, options)


def _run_pipelined(flow: Flow, pairs: list[tuple[InputItem, Target | PoolcliError]],
                   emit: Callable[[Outcome], bool]) -> None:
    """On a GPU: decode ahead in threads, compute stacked batches here, encode behind in threads.

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
