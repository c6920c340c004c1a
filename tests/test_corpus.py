"""The corpus of broken, hostile and odd files (tests/corpus/make_corpus.py) through ``poolcli pool``.

One by one (in-process, a per-file timeout) and as one batch (a real process, so that what C
decoders write to file descriptor 2 would show): every file is either pooled into a valid
output or gives exactly one ``poolcli: error: FILE: reason`` line with exit status 1; nothing
prints a traceback, nothing hangs, nothing leaves a temporary file, every good file is done.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from corpus import make_corpus

ROOT, ENTRIES = make_corpus.ensure()
BY_NAME = {entry.name: entry for entry in ENTRIES}
ERROR_LINE = re.compile(r"^poolcli: error: (?P<what>.+)$")
TIMEOUT_S = 60


NONFINITE = {entry.name for entry in ENTRIES if "nan" in entry.name or "huge" in entry.name}


def _names_file(line: str, path: str, name: str) -> bool:
    """Whether an error line is about ``path`` in the FILE: reason form."""
    return line.startswith(f"poolcli: error: {path}: ")


def _params() -> list:
    return [pytest.param(entry, id=entry.name) for entry in ENTRIES]


def _expected_output_size(entry: make_corpus.Entry, path: Path) -> tuple[int, int] | None:
    """(width, height) after -k 2 for a file whose size the generator knew, or None."""
    if entry.size is None:
        return None
    width, height = entry.size
    return width // 2, height // 2


def _check_output(entry: make_corpus.Entry, output: Path) -> None:
    assert output.is_file(), f"{entry.name}: exit 0 but no output"
    if output.suffix == ".npy":
        assert np.load(output, allow_pickle=False).ndim == 4
        return
    if output.suffix == ".pt":
        import torch

        assert torch.load(output, weights_only=True).ndim == 4
        return
    if output.suffix in (".csv", ".txt"):
        assert np.loadtxt(output, delimiter=",", ndmin=2).size > 0
        return
    with Image.open(output) as written:
        written.load()
        expected = _expected_output_size(entry, output)
        if expected is not None and written.format != "ICO":
            assert written.size == expected, f"{entry.name}: output {written.size}, expected {expected}"


def _check_one_line(entry: make_corpus.Entry, stderr: str, path: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"{entry.name}: expected one error line, got {lines}"
    match = ERROR_LINE.match(lines[0])
    assert match, f"{entry.name}: not a poolcli error line: {lines[0]!r}"
    assert match["what"].startswith(f"{path}: "), f"{entry.name}: the line does not name the file: {lines[0]!r}"
    if entry.reason:
        assert re.search(entry.reason, lines[0]), f"{entry.name}: {lines[0]!r} does not match {entry.reason!r}"
    return lines[0]


def test_corpus_is_a_few_hundred_files_of_every_kind():
    assert 200 <= len(ENTRIES) <= 600
    kinds = {entry.name.split("/")[0] for entry in ENTRIES}
    assert kinds >= {"truncated", "flipped", "lies", "bombs", "empty", "text", "special", "modes", "formats", "arrays",
                     "samestem", "sizes"}
    assert sum(entry.name.startswith("samestem/hopper.") for entry in ENTRIES) >= 5
    assert sum(entry.expect == "ok" for entry in ENTRIES) >= 50
    assert sum(entry.expect == "error" for entry in ENTRIES) >= 100
    for entry in ENTRIES:
        assert os.path.lexists(ROOT / entry.name), entry.name


def test_generator_is_deterministic(tmp_path):
    first = make_corpus.build(tmp_path / "a")
    second = make_corpus.build(tmp_path / "b")
    assert first == second == ENTRIES
    for entry in first:
        a, b = tmp_path / "a" / entry.name, tmp_path / "b" / entry.name
        if a.is_file() and not a.is_symlink() and a.stat().st_mode & 0o400 and not a.is_fifo():
            assert a.read_bytes() == b.read_bytes(), entry.name


@pytest.mark.timeout(TIMEOUT_S)
@pytest.mark.parametrize("entry", _params())
def test_each_file_alone(invoke, entry, tmp_path):
    path = str(ROOT / entry.name)
    output = tmp_path / "out.png"
    result = invoke("pool", path, "-k", "2", "-o", str(output))
    everything = result.stdout + result.stderr
    assert "Traceback" not in everything
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, entry.exit_alone), f"{entry.name}: exit {result.exit_code}: {result.stderr}"
    if result.exit_code == 0:
        assert entry.expect in ("ok", "either"), f"{entry.name} ({entry.note}) should have failed"
        assert "poolcli: error" not in everything
        _check_output(entry, output)
    else:
        assert entry.expect in ("error", "either"), f"{entry.name} ({entry.note}) failed: {result.stderr}"
        _check_one_line(entry, result.stderr, path)
        assert not output.exists()
    assert [p.name for p in tmp_path.iterdir()] == (["out.png"] if result.exit_code == 0 else [])


def _run_batch(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "poolcli", "pool", *args, "-o", str(out), "-k", "2", "--json"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONWARNINGS": "default"},
    )
    return proc, out


def _check_batch(proc: subprocess.CompletedProcess, out: Path, output_extension: str | None,
                 chosen: list[make_corpus.Entry] | None = None, quiet: bool = True) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.returncode == 1, proc.stderr[-2000:]
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    walked = {os.path.relpath(record["input"], ROOT): record for record in records}
    assert len(walked) == len(records)
    expected = {entry.name for entry in (chosen if chosen is not None else ENTRIES) if entry.in_batch}
    assert set(walked) == expected
    lines = proc.stderr.splitlines()
    error_lines = [line for line in lines if ERROR_LINE.match(line)]
    if quiet:  # -q: the error lines are all there is
        assert error_lines == lines, [line for line in lines if not ERROR_LINE.match(line)][:5]
    else:  # the report's tables go to stderr with --json; no warning or decoder line among them
        assert not [line for line in lines if re.search(r"Warning|libtiff|Decode|Traceback", line)
                    and not ERROR_LINE.match(line)]
    failed = [record for record in records if record["status"] == "error"]
    assert len(error_lines) == len(failed)
    for name, record in walked.items():
        entry = BY_NAME[name]
        if entry.expect == "ok":
            assert record["status"] == "ok", f"{name}: {record['error']}"
        if entry.expect == "error":
            assert record["status"] == "error", f"{name} ({entry.note}) should have failed"
        if record["status"] == "ok":
            output = Path(record["output"])
            assert output.is_relative_to(out)
            if output_extension:
                assert output.suffix == output_extension
            _check_output(entry, output)
        else:
            assert any(_names_file(line, record["input"], name) for line in error_lines), name
    written = {p for p in out.rglob("*") if p.is_file()}
    assert written == {Path(r["output"]) for r in records if r["status"] == "ok"}
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]
    assert not [p for p in ROOT.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.timeout(600)
def test_whole_corpus_listed_as_one_batch(tmp_path):
    """Every file in one batch (worker threads, stacking) through --files-from: all good files pooled,
    every bad one named once on stderr, and nothing else on stderr (libtiff and Python warnings included)."""
    listing = tmp_path / "list.txt"
    chosen = [entry for entry in ENTRIES if entry.in_batch and entry.name not in NONFINITE]
    listing.write_text("".join(f"{ROOT / entry.name}\n" for entry in chosen))
    proc, out = _run_batch(tmp_path, "--files-from", str(listing), "--format", "png", "-q")
    _check_batch(proc, out, ".png", chosen)


@pytest.mark.timeout(120)
def test_nonfinite_values_print_no_warnings(tmp_path):
    chosen = [entry for entry in ENTRIES if entry.name in NONFINITE]
    assert len(chosen) >= 3
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{ROOT / entry.name}\n" for entry in chosen))
    proc, out = _run_batch(tmp_path, "--files-from", str(listing), "--format", "png", "-q")
    assert "Traceback" not in proc.stderr and proc.returncode in (0, 1)
    assert all(ERROR_LINE.match(line) for line in proc.stderr.splitlines()), proc.stderr[-1000:]


@pytest.mark.timeout(600)
def test_whole_corpus_walked_as_one_batch_in_png(tmp_path):
    proc, out = _run_batch(tmp_path, str(ROOT), "-r", "--format", "png", "-q")
    _check_batch(proc, out, ".png")


@pytest.mark.timeout(600)
def test_what_is_ok_alone_is_ok_in_the_batch(invoke, tmp_path):
    """A file's fate does not depend on its neighbours: walked as one batch, every file ends as it
    does alone (the mutations that may go either way included), and same stems all get written."""
    proc, out = _run_batch(tmp_path, str(ROOT), "-r", "--format", "png", "-q")
    batch = {os.path.relpath(r["input"], ROOT): r["status"] for r in map(json.loads, proc.stdout.splitlines())}
    for entry in ENTRIES:
        if not entry.in_batch or entry.expect != "either":
            continue
        alone = invoke("pool", str(ROOT / entry.name), "-k", "2", "-o", str(tmp_path / "alone" / "x.png"), "-q")
        assert batch[entry.name] == ("ok" if alone.exit_code == 0 else "error"), entry.name
    for entry in ENTRIES:  # an error alone is an error in the batch, a 1-pixel picture's too
        if entry.in_batch and entry.expect == "error":
            assert batch[entry.name] == "error", entry.name
    written = {p.name for p in (out / "samestem").iterdir()}
    stems = {os.path.basename(e.name) for e in ENTRIES if e.name.startswith("samestem/")}
    assert written == {f"{name}.png" for name in stems}


@pytest.mark.timeout(600)
def test_whole_corpus_as_one_batch(tmp_path):
    """``poolcli pool DIR -r -o OUT -k 2 --json`` exactly as a user types it."""
    proc, out = _run_batch(tmp_path, str(ROOT), "-r")
    _check_batch(proc, out, None, quiet=False)


def test_max_pixels_refuses_the_zlib_bomb_from_its_header(invoke, tmp_path):
    bomb = ROOT / "bombs" / "zlib-6000.png"
    result = invoke("pool", str(bomb), "-k", "2", "-o", str(tmp_path / "x.png"), "--max-pixels", "1000000")
    assert result.exit_code == 1
    assert re.fullmatch(rf"poolcli: error: {re.escape(str(bomb))}: 6000×6000 = 36,000,000 pixels is over "
                        r"--max-pixels 1,000,000 — raise --max-pixels if you trust this file\n", result.stderr)


NOISY = [entry for entry in ENTRIES if entry.name.endswith(".tif") and entry.expect != "ok"]


@pytest.mark.timeout(300)
def test_c_decoders_print_nothing_to_fd2_one_file_at_a_time(tmp_path):
    """libtiff writes straight to fd 2 for broken TIFFs; in a real process, one TIFF per run (the
    main-thread path), stderr holds at most the one error line."""
    script = (
        "import sys\nfrom poolcli.cli import main\n"
        "for index, path in enumerate(sys.argv[1:]):\n"
        "    try:\n"
        "        main(['pool', path, '-k', '2', '-q', '-o', f'out{index}.png'])\n"
        "    except SystemExit as exc:\n"
        "        print(f'exit {exc.code}', file=sys.stdout, flush=True)\n"
        "    print('---', file=sys.stderr, flush=True)\n"
    )
    paths = [str(ROOT / entry.name) for entry in NOISY]
    assert len(paths) >= 20
    proc = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True, text=True, timeout=280,
                          cwd=tmp_path)
    chunks = proc.stderr.split("---\n")
    assert len(chunks) == len(paths) + 1 and chunks[-1] == ""
    for path, chunk in zip(paths, chunks):
        lines = chunk.splitlines()
        name = os.path.relpath(path, ROOT)
        assert len(lines) <= 1 and all(_names_file(line, path, name) for line in lines), (path, lines)
    assert any("libtiff" in chunk for chunk in chunks), "libtiff's messages should reach the one line"
