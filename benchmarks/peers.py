"""The tools people would use instead of poolcli, and poolcli itself, as commands.

Each peer does the benchmark's task, "2x2 pooling → JPEG", on one file or on a folder of
files; its script lives in benchmarks/scripts/. All JPEGs are written at the
same quality (``QUALITY``, with each tool's default 4:2:0 chroma subsampling at that quality), so
no tool wins by encoding less.

Tasks: ``avg`` and ``max`` (2x2, stride 2), and ``floor`` for the decode+encode-only script.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "scripts"
QUALITY = 85  # below 90, where libvips and ImageMagick would switch chroma subsampling off
CORES = len(os.sched_getaffinity(0))
CONVERT = "/usr/bin/convert-im6.q16"  # Debian's ImageMagick 6; /usr/local/bin/convert may be another
MOGRIFY = "/usr/bin/mogrify-im6.q16"
POOLCLI = str(Path(sys.executable).with_name("poolcli"))

Argv = Callable[[str, Path, Path], list[str]]


@dataclass(frozen=True)
class Peer:
    """A row of the tables: ``argv(task, src, dst)`` runs it; ``needs`` are executables and
    ``modules`` Python modules it cannot run without."""

    label: str
    tasks: tuple[str, ...]
    argv: Argv
    needs: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    baseline: bool = False  # the row every ratio divides by
    writes: bool = True  # False for the decode-only floor, which writes no output to check

    def missing(self) -> str | None:
        """Why it cannot run here ("vips not found"), or None."""
        for program in self.needs:
            if shutil.which(program) is None:
                return f"{program} not found"
        for module in self.modules:
            if importlib.util.find_spec(module) is None:
                return f"Python module {module} not installed"
        return None


def _script(name: str) -> str:
    return str(SCRIPTS / name)


def _python(script: str, src: Path, dst: Path, *options: str) -> list[str]:
    return [sys.executable, _script(script), str(src), str(dst), "--quality", str(QUALITY), *options]


def pillow_script(script: str, src: Path, dst: Path, *options: str) -> list[str]:
    """One of the Python peer scripts in benchmarks/scripts/ as a command (JPEG quality as every peer)."""
    return _python(script, src, dst, *options)


def snapshot_of(revision: str) -> Path:
    """poolcli's package as committed at ``revision``, extracted under /tmp once (put it first on
    PYTHONPATH to run that poolcli). A revision that has the compiled kernel's source gets the
    working tree's built module when the source is the same, as its install would build it."""
    import tempfile

    repo = HERE.parent
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", revision], check=True,
                            capture_output=True, text=True).stdout.strip()
    snapshot = Path(tempfile.gettempdir()) / f"poolcli-bench-{commit}"
    if not (snapshot / "poolcli").is_dir():
        partial = Path(tempfile.mkdtemp(prefix=f"poolcli-bench-{commit}-"))
        archive = subprocess.run(["git", "-C", str(repo), "archive", commit, "poolcli"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(partial)], input=archive, check=True)
        native = Path("poolcli/kernels/native")
        source = partial / native / "_pool.c"
        if source.exists() and source.read_bytes() == (repo / native / "_pool.c").read_bytes():
            for built in (repo / native).glob("_pool*.so"):
                shutil.copy(built, partial / native / built.name)
        os.replace(partial, snapshot)
    return snapshot


def _each_file(jobs: int, src: Path, dst: Path, *command: str) -> list[str]:
    return [_script("each_file.sh"), str(jobs), str(src), str(dst), *command]


def _vips(task: str) -> list[str]:
    return [_script("vips_pool.sh"), task, str(QUALITY)]


def _convert(task: str) -> list[str]:
    return [_script("magick_pool.sh"), CONVERT, task, str(QUALITY)]


# ------------------------------------------------------------------------------------ poolcli


def engine_flag_supported() -> bool:
    """Whether this poolcli has ``--engine`` (issue 7), read from ``poolcli pool --help``."""
    result = subprocess.run([POOLCLI, "pool", "--help"], capture_output=True, text=True)
    return "--engine" in result.stdout


def poolcli_argv(task: str, src: Path, dst: Path, engine: str | None = None, device: str = "cpu",
                 extra: tuple[str, ...] = ()) -> list[str]:
    """``poolcli pool SRC -m TASK -k 2 -s 2 -q --device DEVICE -o DST``; JPEG quality as the peers."""
    argv = [POOLCLI, "pool", str(src), "-m", task, "-k", "2", "-s", "2", "-q", "--device", device, "-o", str(dst)]
    if dst.suffix.lower() != ".png":
        argv += ["--quality", str(QUALITY)]
    if engine:
        argv += ["--engine", engine]
    return argv + list(extra)


def poolcli_peers(extra: tuple[str, ...] = ()) -> list[Peer]:
    """poolcli as it starts by default (the baseline row, labelled "poolcli"), then each engine."""
    engines = [None] + (["numpy", "torch"] if engine_flag_supported() else [])
    return [
        Peer(
            "poolcli" if engine is None else f"poolcli --engine {engine}",
            ("avg", "max"),
            lambda task, src, dst, engine=engine: poolcli_argv(task, src, dst, engine, extra=extra),
            needs=(POOLCLI,),
            baseline=engine is None,
        )
        for engine in engines
    ]


# ------------------------------------------------------------------------------------ peers


def file_peers() -> list[Peer]:
    """One image in, one image out."""
    return [
        Peer("vips", ("avg", "max"), lambda t, s, d: _vips(t) + [str(s), str(d)], ("vips", "vipsheader")),
        Peer("ImageMagick convert", ("avg", "max"), lambda t, s, d: _convert(t) + [str(s), str(d)],
             (CONVERT,)),
        Peer("Pillow reduce(2)", ("avg",), lambda t, s, d: _python("pillow_reduce.py", s, d)),
        Peer("torch script", ("avg", "max"), lambda t, s, d: _python("torch_pool.py", s, d, "--mode", t),
             modules=("torch",)),
        Peer("floor: Pillow decode+encode", ("floor",), lambda t, s, d: _python("pillow_floor.py", s, d)),
        Peer("floor: Pillow decode only", ("floor",), lambda t, s, d: _python("pillow_decode.py", s, d), writes=False),
    ]


def folder_peers() -> list[Peer]:
    """A folder of images in, a folder out; ``CORES`` is the parallelism of the parallel variants."""
    threads = ("--threads", str(CORES))
    return [
        Peer("vips, shell loop", ("avg", "max"), lambda t, s, d: _each_file(1, s, d, *_vips(t)),
             ("vips", "vipsheader")),
        Peer(f"vips, xargs -P {CORES}", ("avg", "max"),
             lambda t, s, d: _each_file(CORES, s, d, *_vips(t)), ("vips", "vipsheader", "xargs")),
        Peer("ImageMagick convert, shell loop", ("avg", "max"),
             lambda t, s, d: _each_file(1, s, d, *_convert(t)), (CONVERT,)),
        Peer("ImageMagick mogrify", ("avg", "max"),
             lambda t, s, d: [_script("mogrify_pool.sh"), MOGRIFY, t, str(QUALITY), str(s), str(d)], (MOGRIFY,)),
        Peer("Pillow reduce(2), 1 thread", ("avg",), lambda t, s, d: _python("pillow_reduce.py", s, d)),
        Peer(f"Pillow reduce(2), {CORES} threads", ("avg",),
             lambda t, s, d: _python("pillow_reduce.py", s, d, *threads)),
        Peer("torch script", ("avg", "max"),
             lambda t, s, d: _python("torch_pool.py", s, d, "--mode", t), modules=("torch",)),
        Peer(f"floor: Pillow decode+encode, {CORES} threads", ("floor",),
             lambda t, s, d: _python("pillow_floor.py", s, d, *threads)),
        Peer(f"floor: Pillow decode only, {CORES} threads", ("floor",),
             lambda t, s, d: _python("pillow_decode.py", s, d, *threads), writes=False),
    ]


def png_peers(folder: bool) -> list[Peer]:
    """The PNG suite's rows: poolcli (``--format png`` for a folder), the Pillow script and the
    decode+encode floor, all writing PNG at Pillow's default compression (level 6)."""
    threads = ("--threads", str(CORES)) if folder else ()
    ext = ("--ext", "png") if folder else ()
    to_png = ("--format", "png") if folder else ()
    return [
        Peer("Pillow reduce(2)" + (f", {CORES} threads" if folder else ""), ("avg",),
             lambda t, s, d: _python("pillow_reduce.py", s, d, *threads, *ext)),
        Peer("floor: Pillow decode+encode" + (f", {CORES} threads" if folder else ""), ("floor",),
             lambda t, s, d: _python("pillow_floor.py", s, d, *threads, *ext)),
        Peer("poolcli", ("avg", "max"), lambda t, s, d: poolcli_argv(t, s, d, extra=to_png), needs=(POOLCLI,),
             baseline=True),
    ]


def device_peers() -> list[Peer]:
    """poolcli on the CPU (the baseline) and on CUDA, for the gpu suite."""
    return [
        Peer("poolcli --device cpu", ("avg", "max"), lambda t, s, d: poolcli_argv(t, s, d), (POOLCLI,), baseline=True),
        Peer("poolcli --device cuda", ("avg", "max"), lambda t, s, d: poolcli_argv(t, s, d, device="cuda"), (POOLCLI,)),
    ]
