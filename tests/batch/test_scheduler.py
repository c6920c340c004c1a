"""Batches: discovery, mirrored outputs, failures, resume, pipes and signals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES
from poolcli.batch import InputItem, ProcessOptions, expand_inputs, output_path


@pytest.fixture
def tree(tmp_path) -> Path:
    """photos/a.png, photos/sub/b.jpg, photos/sub/deeper/c.png, a bad file and a hidden one."""
    root = tmp_path / "photos"
    (root / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(SAMPLES / "coffee.png", root / "a.png")
    shutil.copy(SAMPLES / "photo.jpg", root / "sub" / "b.jpg")
    shutil.copy(SAMPLES / "gray.png", root / "sub" / "deeper" / "c.png")
    (root / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / ".hidden.png").write_bytes(b"")
    return root


def test_expand_inputs_walks_and_skips_hidden(tree):
    flat = [Path(i.path).name for i in expand_inputs([str(tree)])]
    assert flat == ["a.png"]
    deep = sorted(Path(i.path).relative_to(tree).as_posix() for i in expand_inputs([str(tree)], recursive=True))
    assert deep == ["a.png", "sub/b.jpg", "sub/broken.png", "sub/deeper/c.png"]


def test_symlink_loop_is_safe(tmp_path):
    root = tmp_path / "loop"
    root.mkdir()
    shutil.copy(SAMPLES / "gray.png", root / "g.png")
    os.symlink(root, root / "again")
    assert [Path(i.path).name for i in expand_inputs([str(root)], recursive=True)] == ["g.png"]


def test_output_paths_mirror_and_never_escape(tmp_path):
    options = ProcessOptions(output=str(tmp_path / "out"), format="png")
    item = InputItem(str(tmp_path / "in" / "x" / "a.jpg"), str(tmp_path / "in"))
    assert output_path(item, options, True) == str(tmp_path / "out" / "x" / "a.png")
    sneaky = InputItem("../../etc/passwd.png")
    assert output_path(sneaky, options, True) == str(tmp_path / "out" / "passwd.png")
    single = ProcessOptions(suffix="_pooled")
    assert output_path(InputItem("dir/photo.jpg"), single, False) == "dir/photo_pooled.jpg"


def test_nested_folder_batch(invoke, tree, tmp_path):
    out = tmp_path / "small"
    result = invoke("pool", str(tree), "-r", "-o", str(out), "-k", "2", "--json")
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 4
    statuses = {Path(r["input"]).name: r["status"] for r in records}
    assert statuses == {"a.png": "ok", "b.jpg": "ok", "broken.png": "error", "c.png": "ok"}
    assert (out / "a.png").exists() and (out / "sub" / "b.jpg").exists() and (out / "sub" / "deeper" / "c.png").exists()
    assert "broken.png" in result.stderr and result.stderr.count("poolcli: error:") == 1
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    with Image.open(out / "a.png") as small, Image.open(tree / "a.png") as big:
        assert small.size == (big.width // 2, big.height // 2)


def test_skip_existing_and_fail_fast(invoke, tree, tmp_path):
    out = tmp_path / "small"
    invoke("pool", str(tree), "-r", "-o", str(out), "-k", "2", "-q")
    result = invoke("pool", str(tree), "-r", "-o", str(out), "-k", "2", "--json", "--skip-existing")
    statuses = [json.loads(line)["status"] for line in result.stdout.splitlines()]
    assert statuses.count("skipped") == 3
    result = invoke("pool", str(tree), "-r", "-o", str(tmp_path / "ff"), "-k", "2", "--json", "--fail-fast", "--workers", "1", "--batch-size", "1")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[-1]["status"] == "error" and len(records) < 4 and result.exit_code == 1


def test_files_from_stdin(invoke, tree, tmp_path):
    listing = "\n".join([str(tree / "a.png"), str(tree / "sub" / "b.jpg")]) + "\n"
    out = tmp_path / "listed"
    result = invoke("pool", "--files-from", "-", "-o", str(out), "-k", "2", "-q", input=listing)
    assert result.exit_code == 0, result.stderr
    assert (out / "a.png").exists() and (out / "sub" / "b.jpg").exists()


@pytest.mark.parametrize("engine", ["numpy", "torch"])
@pytest.mark.parametrize("mode", ["avg", "max"])
def test_batched_equals_one_by_one(invoke, tmp_path, engine, mode):
    folder = tmp_path / "same"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    for name, size in (("b", "4"), ("s", "1")):
        result = invoke("pool", str(folder), "-o", str(tmp_path / name), "-m", mode, "-k", "2", "-q",
                        "--batch-size", size, "--engine", engine)
        assert result.exit_code == 0, result.stderr
    for i in range(5):
        a = np.asarray(Image.open(tmp_path / "b" / f"{i}.png"))
        b = np.asarray(Image.open(tmp_path / "s" / f"{i}.png"))
        assert np.array_equal(a, b)


def poolcli(*args: str) -> list[str]:
    return [sys.executable, "-m", "poolcli", *args]


def test_three_processes_chained_equal_one_run(tmp_path):
    source = (SAMPLES / "coffee.png").read_bytes()
    first = subprocess.Popen(poolcli("pool", "-", "-k", "2", "-o", "-", "-q"), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    second = subprocess.Popen(poolcli("run", "-", "-S", "avgpool:2", "-o", "-", "-q"), stdin=first.stdout, stdout=subprocess.PIPE)
    third = subprocess.Popen(poolcli("run", "-", "-S", "minpool:2", "-o", "-", "-q"), stdin=second.stdout, stdout=subprocess.PIPE)
    first.stdin.write(source)
    first.stdin.close()
    chained, _ = third.communicate(timeout=180)
    assert third.returncode == 0 and chained.startswith(b"\x89PNG")
    one = tmp_path / "one.png"
    proc = subprocess.run(
        poolcli("run", str(SAMPLES / "coffee.png"), "-S", "maxpool:2", "-S", "avgpool:2", "-S", "minpool:2", "-o", str(one), "-q"),
        capture_output=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    import io

    assert np.array_equal(np.asarray(Image.open(io.BytesIO(chained))), np.asarray(Image.open(one)))


def test_stdout_holds_only_image_bytes(tmp_path):
    proc = subprocess.run(
        poolcli("pool", str(SAMPLES / "coffee.png"), "-k", "2", "-o", "-", "--format", "png"),
        capture_output=True, timeout=120,
    )
    assert proc.returncode == 0
    Image.open(__import__("io").BytesIO(proc.stdout)).load()
    assert b"H_out" in proc.stderr


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_batch(tmp_path, sig, status):
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (600, 800, 3), dtype=np.uint8))
    for i in range(300):
        picture.save(folder / f"{i:03d}.png", compress_level=1)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        poolcli("pool", str(folder), "-o", str(out), "-m", "avg", "-k", "2", "--workers", "2"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(list(out.glob("*.png"))) < 3):
        time.sleep(0.05)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == status, stderr.decode()
    assert b"interrupted" in stderr and b"Traceback" not in stderr
    assert b"summary" in stdout
    written = sorted(out.glob("*.png"))
    assert 0 < len(written) < 300
    leftovers = [p.name for p in out.iterdir() if p.suffix != ".png" or p.name.startswith(".")]
    assert leftovers == [], leftovers  # no .NAME.RANDOM.tmp, no partial file under any name
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:03d}.png" for i in range(300)]
    reference = tmp_path / "reference.png"  # the same input pooled alone, after the interrupted run
    subprocess.run(poolcli("pool", str(folder / "000.png"), "-o", str(reference), "-m", "avg", "-k", "2", "-q"),
                   check=True, timeout=120)
    expected = np.asarray(Image.open(reference))
    for path in written:  # every output that exists is complete: it decodes fully, to the right pixels
        with Image.open(path) as image:
            image.load()
            assert image.size == (400, 300)
            assert np.array_equal(np.asarray(image), expected), path.name


def test_the_engine_imports_start_once_just_before_the_first_decode(monkeypatch, tmp_path):
    """numpy (or torch) is imported on a thread while Pillow decodes, not before the decode."""
    import poolcli.batch as batch
    import poolcli.batch.flow as flow
    import poolcli.io.reading as reading
    from poolcli.core.plan import Pipeline

    events: list[str] = []
    started = flow.import_engine_in_background
    loading = reading.load_source
    monkeypatch.setattr(flow, "import_engine_in_background",
                        lambda pipeline, options: events.append("imports") or started(pipeline, options))
    monkeypatch.setattr(reading, "load_source", lambda *a, **k: events.append("decode") or loading(*a, **k))
    pictures = [SAMPLES / "coffee.png", SAMPLES / "photo.jpg", SAMPLES / "gray.png"]
    summary = batch.process_all([InputItem(str(p)) for p in pictures], Pipeline.from_specs(["avgpool:2"]),
                                ProcessOptions(output=str(tmp_path), workers=2))
    assert [o.status for o in summary.outcomes] == ["ok"] * 3
    assert events[0] == "imports" and events.count("imports") == 1 and events.count("decode") == 3


def test_a_failed_background_import_is_left_to_the_main_thread(monkeypatch, tmp_path):
    import poolcli.execute.engines as engines
    from poolcli.batch.flow import Flow
    from poolcli.core.plan import Pipeline

    def broken(*args):
        raise ImportError("no module named numpy, say")

    monkeypatch.setattr(engines, "import_engine", broken)
    processor = Flow(Pipeline.from_specs(["maxpool:2"]), ProcessOptions())
    outcome = processor.process(InputItem(str(SAMPLES / "coffee.png")), str(tmp_path / "out.png"))
    processor.engine_imports.join(timeout=60)
    assert outcome.status == "ok" and Image.open(tmp_path / "out.png").size == (180, 120)


def test_one_input_computes_on_every_worker_and_a_batch_on_one(monkeypatch, tmp_path):
    """A lone picture has the cores to itself; in a batch the decode and encode threads use them."""
    import poolcli.execute.run as engine
    from poolcli.batch import process_all
    from poolcli.core.plan import Pipeline

    seen: list[int] = []
    real = engine.run_pipeline
    monkeypatch.setattr(engine, "run_pipeline", lambda *a, threads=1, **k: seen.append(threads) or real(*a, threads=threads, **k))
    pipeline = Pipeline.from_specs(["avgpool:2"])
    one = process_all([InputItem(str(SAMPLES / "coffee.png"))], pipeline,
                      ProcessOptions(output=str(tmp_path / "one.png"), workers=3))
    many = process_all([InputItem(str(SAMPLES / name)) for name in ("coffee.png", "gray.png")], pipeline,
                       ProcessOptions(output=str(tmp_path / "many"), workers=3))
    assert [o.status for o in one.outcomes + many.outcomes] == ["ok"] * 3
    assert seen == [3, 1, 1]


# ------------------------------------------------------------------------------------ workers


def _photos(tmp_path, count: int) -> list:
    """``count`` small pictures (copies of the samples), as inputs."""
    from poolcli.batch import InputItem

    folder = tmp_path / "in"
    folder.mkdir()
    names = ["coffee.png", "gray.png", "photo.jpg", "odd.png"]
    paths = []
    for i in range(count):
        source = SAMPLES / names[i % len(names)]
        path = folder / f"{i:02d}{source.suffix}"
        shutil.copy(source, path)
        paths.append(path)
    return [InputItem(str(p)) for p in paths]


def _recording(monkeypatch, record, delay=None):
    """Wrap each step of Flow so that ``record`` gets (step, input name, thread name)."""
    import threading

    from poolcli.batch.flow import Flow

    for step in ("prepare", "decode", "compute", "encode"):
        real = getattr(Flow, step)

        def wrapped(self, first, *args, _real=real, _step=step, **kwargs):
            name = (first[0].job.item.path if _step == "compute" else
                    first.job.item.path if _step == "encode" else
                    first.item.path if _step == "decode" else first.path)
            record.append((_step, Path(name).name, threading.current_thread().name))
            if delay is not None and _step == "decode":
                delay(Path(name).name)
            return _real(self, first, *args, **kwargs)

        monkeypatch.setattr(Flow, step, wrapped)


def test_on_the_cpu_the_main_thread_plans_and_one_worker_does_each_input_whole(monkeypatch, tmp_path):
    from poolcli.batch import process_all
    from poolcli.core.plan import Pipeline

    record: list = []
    _recording(monkeypatch, record)
    items = _photos(tmp_path, 6)
    summary = process_all(items, Pipeline.from_specs(["avgpool:2"]),
                          ProcessOptions(output=str(tmp_path / "out"), workers=2, device="cpu"))
    assert [o.status for o in summary.outcomes] == ["ok"] * 6
    for item in items:
        name = Path(item.path).name
        threads = {step: thread for step, n, thread in record if n == name}
        assert threads["prepare"] == "MainThread"
        assert threads["decode"].startswith("poolcli-worker")
        assert threads["decode"] == threads["compute"] == threads["encode"]


def test_outcomes_come_in_input_order_when_a_later_input_finishes_first(monkeypatch, tmp_path):
    from poolcli.batch import process_all
    from poolcli.core.plan import Pipeline

    items = _photos(tmp_path, 5)
    _recording(monkeypatch, [], delay=lambda name: time.sleep(0.4) if name.startswith("00") else None)
    seen: list[str] = []
    summary = process_all(items, Pipeline.from_specs(["maxpool:2"]),
                          ProcessOptions(output=str(tmp_path / "out"), workers=2, device="cpu"),
                          on_outcome=lambda outcome: seen.append(outcome.input))
    assert seen == [item.path for item in items] == [o.input for o in summary.outcomes]


@pytest.mark.parametrize("fits, workers", [(1, 3), (2, 3), (5, 2)])
def test_at_most_the_inputs_that_fit_run_at_once_and_as_many_again_wait(monkeypatch, tmp_path, fits, workers):
    import threading

    from poolcli.batch import process_all
    from poolcli.batch.flow import Flow
    from poolcli.core.plan import Pipeline

    monkeypatch.setattr(Flow, "inputs_in_memory", lambda self: fits)
    lock = threading.Lock()
    state = {"running": 0, "most": 0, "prepared": 0, "done": 0, "ahead": 0}
    real_prepare, real_carry_out = Flow.prepare, Flow.carry_out

    def prepare(self, *args, **kwargs):
        with lock:
            state["prepared"] += 1
            state["ahead"] = max(state["ahead"], state["prepared"] - state["done"])
        return real_prepare(self, *args, **kwargs)

    def carry_out(self, *args, **kwargs):
        with lock:
            state["running"] += 1
            state["most"] = max(state["most"], state["running"])
        try:
            time.sleep(0.05)
            return real_carry_out(self, *args, **kwargs)
        finally:
            with lock:
                state["running"] -= 1
                state["done"] += 1

    monkeypatch.setattr(Flow, "prepare", prepare)
    monkeypatch.setattr(Flow, "carry_out", carry_out)
    summary = process_all(_photos(tmp_path, 8), Pipeline.from_specs(["avgpool:2"]),
                          ProcessOptions(output=str(tmp_path / "out"), workers=workers, device="cpu"))
    assert [o.status for o in summary.outcomes] == ["ok"] * 8
    limit = min(fits, workers)
    assert state["most"] == limit
    assert state["ahead"] <= 2 * limit


def test_fail_fast_starts_nothing_after_the_failure_beyond_what_was_running(monkeypatch, tmp_path):
    from poolcli.batch import process_all
    from poolcli.core.plan import Pipeline

    items = _photos(tmp_path, 8)
    truncated = Path(items[1].path)
    truncated.write_bytes(truncated.read_bytes()[:200])  # the header reads, the pixels do not
    record: list = []
    _recording(monkeypatch, record)
    summary = process_all(items, Pipeline.from_specs(["avgpool:2"]),
                          ProcessOptions(output=str(tmp_path / "out"), workers=2, device="cpu", fail_fast=True))
    statuses = [o.status for o in summary.outcomes]
    assert statuses[:2] == ["ok", "error"] and len(statuses) <= 3
    decoded = {name for step, name, _ in record if step == "decode"}
    assert decoded <= {Path(item.path).name for item in items[:3]}
