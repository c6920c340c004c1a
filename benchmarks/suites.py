"""The suites: each returns its tables. Peers and poolcli run in the same session, one after
another, on the same inputs, so their ratios compare like with like on this machine."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import inprocess
import make_inputs
from measure import Command, CommandFailed, empty_dir, measure, run_once
from paired import Paired, time_paired
from peers import (
    CORES, POOLCLI, Peer, device_peers, file_peers, folder_peers, png_peers, pillow_script, poolcli_argv, poolcli_peers,
)
from pixels import Difference, compare, image_size, output_problem
from tables import Row, Table, timing_table

OUT = Path(__file__).resolve().parent / "out"  # git-ignored


@dataclass(frozen=True)
class Settings:
    runs: int
    count: int
    tasks: tuple[str, ...]  # pooling tasks to time: "avg", "max"
    log: Callable[[str], None]
    pairs: int = 10  # the paired suite's timed pairs per comparison
    before: Path | None = None  # a snapshot of poolcli to pair with (run.py --before REV)


def _slug(*words: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", " ".join(words).lower()).strip("-")


def _half(size: tuple[int, int]) -> tuple[int, int]:
    return size[0] // 2, size[1] // 2


@dataclass(frozen=True)
class Job:
    """What a suite hands every peer: the input (file or folder), where outputs go, how many
    images that is, and the output size every peer must produce."""

    src: Path
    out: Path
    images: int
    size: tuple[int, int]
    suffix: str = ".jpg"  # a single file's output

    @property
    def folder(self) -> bool:
        return self.src.is_dir()


def _time_peer(peer: Peer, task: str, job: Job, settings: Settings) -> Row:
    dst = job.out / _slug(peer.label, task)
    if not job.folder:
        dst = dst.with_suffix(job.suffix)
    command = Command(peer.label, task, peer.argv(task, job.src, dst), dst if job.folder else None)
    try:
        timing = measure(command, settings.runs)
    except CommandFailed as exc:
        settings.log(f"  {peer.label} {task}: FAILED {exc}")
        return Row(peer.label, task, None, job.images, f"failed: {exc}", peer.baseline)
    settings.log(f"  {peer.label} {task}: {timing.median_s:.3f} s")
    problem = output_problem(dst, job.images, job.size) if peer.writes else ""
    return Row(peer.label, task, timing, job.images, problem, peer.baseline)


def time_peers(peers: list[Peer], tasks: tuple[str, ...], job: Job, settings: Settings) -> list[Row]:
    """Every available peer on every task it can do, grouped by task; one row per missing peer."""
    empty_dir(job.out)
    available = [p for p in peers if p.missing() is None]
    rows = [_time_peer(p, task, job, settings) for task in tasks for p in available if task in p.tasks]
    rows += [Row(p.label, "–", None, 0, f"skipped: {p.missing()}") for p in peers if p.missing()]
    return rows


# ------------------------------------------------------------------------------------ pixel check


def _difference_cells(difference: Difference | str) -> list[str]:
    if isinstance(difference, str):
        return ["–", "–", "–", f"DIFFERENT: {difference}"]
    d = difference
    return [str(d.max_abs), f"{d.mean_abs:.3f}", f"{d.share_differing:.2%}", d.verdict()]


def pixel_check(peers: list[Peer], src: Path, tasks: tuple[str, ...], settings: Settings) -> Table:
    """Each peer once more with a PNG output, compared with poolcli's PNG (see pixels.py)."""
    out = OUT / "check"
    empty_dir(out)
    table = Table(f"pixel check: PNG outputs from {src.name}, compared with poolcli's",
                  ["tool", "task", "max abs Δ", "mean abs Δ", "samples differing", "verdict"],
                  notes=["Lossless outputs, so differences are the pooling (and each tool's JPEG decoder)."
                         " poolcli rounds averages half to even (torch.round); the others round half up."])
    for task in tasks:
        reference = out / f"poolcli-{task}.png"
        try:
            run_once(poolcli_argv(task, src, reference))
        except CommandFailed as exc:
            table.notes.append(f"{task}: poolcli failed, nothing to compare with: {exc}")
            continue
        for peer in peers:
            if peer.baseline or task not in peer.tasks or peer.missing():
                continue
            candidate = out / f"{_slug(peer.label, task)}.png"
            try:
                run_once(peer.argv(task, src, candidate))
            except CommandFailed as exc:
                table.rows.append([peer.label, task, "–", "–", "–", f"failed: {exc}"])
                continue
            table.rows.append([peer.label, task] + _difference_cells(compare(reference, candidate)))
    return table


# ------------------------------------------------------------------------------------ suites


def single(settings: Settings) -> list[Table]:
    """One 12 MP JPEG → 2000×1500 JPEG: what `poolcli pool photo.jpg` costs against one command
    of each peer (start-up included: that is what a user waits for)."""
    photo = make_inputs.ensure_photo(settings.log)
    job = Job(photo, OUT / "single", 1, _half(image_size(photo)))
    peers = file_peers() + poolcli_peers()
    rows = time_peers(peers, settings.tasks + ("floor",), job, settings)
    title = f"single: one 12 MP JPEG ({photo.name}, 4000×3000) → 2000×1500 JPEG, median of {settings.runs}"
    return [timing_table(title, rows), pixel_check(peers, photo, settings.tasks, settings)]


def batch(settings: Settings) -> list[Table]:
    """A folder of 1080p JPEGs: throughput with one process (poolcli, mogrify, the scripts) or
    one process per image (the shell loops)."""
    folder = make_inputs.ensure_batch(settings.count, settings.log)
    first = next(iter(sorted(folder.glob("*.jpg"))))
    job = Job(folder, OUT / "batch", settings.count, _half(image_size(first)))
    rows = time_peers(folder_peers() + poolcli_peers(), settings.tasks + ("floor",), job, settings)
    title = f"batch: {settings.count} 1080p JPEGs ({folder.name}/) → 960×540 JPEGs, median of {settings.runs}"
    return [timing_table(title, rows, ["peak MB is the largest single process (xargs runs several at once)"])]


def huge(settings: Settings) -> list[Table]:
    """One ~100 MP JPEG: wall time and, above all, peak memory."""
    path = make_inputs.ensure_huge(settings.log)
    size = image_size(path)
    job = Job(path, OUT / "huge", 1, _half(size))
    peers = file_peers() + poolcli_peers(extra=("--max-pixels", "0"))
    rows = time_peers(peers, ("avg", "floor"), job, settings)
    megapixels = size[0] * size[1] / 1e6
    title = f"huge: one {megapixels:.0f} MP JPEG ({size[0]}×{size[1]}) → JPEG, 2×2 avg, median of {settings.runs}"
    notes = ["poolcli runs with `--max-pixels 0`: its default limit guards against decompression bombs",
             "ImageMagick runs under the system policy.xml (Debian: memory 256 MiB, disk 1 GiB)"]
    return [timing_table(title, rows, notes)]


def startup(settings: Settings) -> list[Table]:
    """`poolcli --help` against the interpreter and the CLI framework alone: the fixed cost every
    command pays before it reads a pixel."""
    commands = [
        ("python -c pass", [sys.executable, "-c", "pass"], False),
        ("python -c 'import typer'", [sys.executable, "-c", "import typer"], False),
        ("poolcli --help", [POOLCLI, "--help"], True),
        ("poolcli pool --help", [POOLCLI, "pool", "--help"], False),
    ]
    rows = []
    for label, argv, baseline in commands:
        try:
            timing, note = measure(Command(label, "startup", argv), max(settings.runs, 5)), ""
        except CommandFailed as exc:
            timing, note = None, f"failed: {exc}"
        rows.append(Row(label, "startup", timing, 0, note, baseline))
    return [timing_table(f"startup: median of {max(settings.runs, 5)}", rows)]


def memory(settings: Settings) -> list[Table]:
    return [inprocess.memory_table(max(settings.runs, 5))]


def gpu(settings: Settings) -> list[Table]:
    """Batch throughput on CUDA against the CPU, and pooling bandwidth in device memory."""
    import torch

    if not torch.cuda.is_available():
        return [Table("gpu", ["suite"], [["skipped"]], ["torch sees no CUDA device"])]
    folder = make_inputs.ensure_batch(settings.count, settings.log)
    first = next(iter(sorted(folder.glob("*.jpg"))))
    job = Job(folder, OUT / "gpu", settings.count, _half(image_size(first)))
    rows = time_peers(device_peers(), settings.tasks, job, settings)
    title = f"gpu: {settings.count} 1080p JPEGs, CUDA against CPU, median of {settings.runs}"
    return [timing_table(title, rows), inprocess.gpu_memory_table(max(settings.runs, 5))]


def png(settings: Settings) -> list[Table]:
    """PNG outputs (zlib at Pillow's default level 6 for every row): one 12 MP JPEG, and a small
    folder of 1080p JPEGs (PNG encoding of a noisy photo takes ten times the JPEG's)."""
    photo = make_inputs.ensure_photo(settings.log)
    job = Job(photo, OUT / "png-single", 1, _half(image_size(photo)), suffix=".png")
    rows = time_peers(png_peers(folder=False), settings.tasks + ("floor",), job, settings)
    tables = [timing_table(f"png: one 12 MP JPEG → 2000×1500 PNG, median of {settings.runs}", rows)]
    count = max(1, min(20, settings.count))
    folder = make_inputs.ensure_batch(count, settings.log)
    first = next(iter(sorted(folder.glob("*.jpg"))))
    job = Job(folder, OUT / "png-batch", count, _half(image_size(first)))
    rows = time_peers(png_peers(folder=True), settings.tasks + ("floor",), job, settings)
    tables.append(timing_table(f"png: {count} 1080p JPEGs → 960×540 PNGs, median of {settings.runs}", rows))
    return tables


# ------------------------------------------------------------------------------------ paired


@dataclass(frozen=True)
class Pairing:
    """Two commands to alternate: A (the one measured) and B (the yardstick), with their output folders."""

    label: str
    a: str
    b: str
    a_argv: list[str]
    b_argv: list[str]
    a_out: Path | None = None
    b_out: Path | None = None


def _pairings(settings: Settings) -> list[Pairing]:
    folder = make_inputs.ensure_batch(settings.count, settings.log)
    photo = make_inputs.ensure_photo(settings.log)
    out = OUT / "paired"
    script, floor, decode = (f"Pillow reduce(2), {CORES} threads", f"floor: Pillow decode+encode, {CORES} threads",
                             f"floor: Pillow decode only, {CORES} threads")
    threads = ("--threads", str(CORES))
    batch_script = pillow_script("pillow_reduce.py", folder, out / "script", *threads)
    pairings = []
    for task in settings.tasks:
        pairings.append(Pairing(f"batch {task}", f"poolcli {task}", script,
                                poolcli_argv(task, folder, out / f"poolcli-{task}"), batch_script,
                                out / f"poolcli-{task}", out / "script"))
    pairings += [
        Pairing("batch", floor, script, pillow_script("pillow_floor.py", folder, out / "floor", *threads), batch_script,
                out / "floor", out / "script"),
        Pairing("batch", decode, script, pillow_script("pillow_decode.py", folder, out / "decode", *threads),
                batch_script, None, out / "script"),
    ]
    single_script = pillow_script("pillow_reduce.py", photo, out / "script.jpg")
    for task in settings.tasks:
        pairings.append(Pairing(f"single {task}", f"poolcli {task}", "Pillow reduce(2)",
                                poolcli_argv(task, photo, out / f"poolcli-{task}.jpg"), single_script))
    pairings.append(Pairing("single", "floor: Pillow decode+encode", "Pillow reduce(2)",
                            pillow_script("pillow_floor.py", photo, out / "floor.jpg"), single_script))
    if settings.before is not None:
        before = ["env", f"PYTHONPATH={settings.before}"]
        for task in settings.tasks:
            pairings.append(Pairing(f"batch {task}", "poolcli", f"poolcli at {settings.before.name}",
                                    poolcli_argv(task, folder, out / f"now-{task}"),
                                    before + poolcli_argv(task, folder, out / f"before-{task}"),
                                    out / f"now-{task}", out / f"before-{task}"))
            pairings.append(Pairing(f"single {task}", "poolcli", f"poolcli at {settings.before.name}",
                                    poolcli_argv(task, photo, out / f"now-{task}.jpg"),
                                    before + poolcli_argv(task, photo, out / f"before-{task}.jpg")))
        pairings.append(Pairing("single avg → PNG", "poolcli", f"poolcli at {settings.before.name}",
                                poolcli_argv("avg", photo, out / "now.png"), before + poolcli_argv("avg", photo, out / "before.png")))
        huge = make_inputs.ensure_huge(settings.log)
        unlimited = ("--max-pixels", "0")
        pairings.append(Pairing("huge avg (100 MP)", "poolcli", f"poolcli at {settings.before.name}",
                                poolcli_argv("avg", huge, out / "now-huge.jpg", extra=unlimited),
                                before + poolcli_argv("avg", huge, out / "before-huge.jpg", extra=unlimited)))
        for label, argv in (("--help", ["--help"]), ("shape", ["shape", "1x3x1080x1920", "-S", "avgpool:2"])):
            pairings.append(Pairing(label, "poolcli", f"poolcli at {settings.before.name}", [POOLCLI, *argv],
                                    before + [POOLCLI, *argv]))
    return pairings


def paired(settings: Settings) -> list[Table]:
    """The targets' comparisons as paired runs (A B A B …, ratios pair by pair; see paired.py),
    and the targets with the floors beside them: a target that asks for more than the floor
    allows says so instead of reading as a slow poolcli."""
    table = Table(f"paired: A and B in turn, {settings.pairs} pairs each after one warm-up pair; medians",
                  ["what", "A", "B", "A s", "B s", "A CPU/wall", "B CPU/wall", "A/B wall [min–max]", "A/B CPU",
                   "peak MB A / B"],
                  notes=["A/B below 1: A is faster. Each ratio is taken within a pair, so drift between minutes"
                         " on this shared machine cancels; min–max shows how much it moved."])
    results: dict[tuple[str, str, str], Paired] = {}
    for pairing in _pairings(settings):
        settings.log(f"  {pairing.label}: {pairing.a} against {pairing.b}")
        try:
            result = time_paired(pairing.a_argv, pairing.b_argv, settings.pairs, (pairing.a_out, pairing.b_out))
        except CommandFailed as exc:
            table.rows.append([pairing.label, pairing.a, pairing.b, "–", "–", "–", "–", f"failed: {exc}", "–", "–"])
            continue
        results[(pairing.label, pairing.a, pairing.b)] = result
        table.rows.append([pairing.label, pairing.a, pairing.b, *result.cells()])
    return [table, _targets(results, settings)]


def _targets(results: dict[tuple[str, str, str], Paired], settings: Settings) -> Table:
    """Issue 15's timed targets against the paired ratios, each with its floor."""
    table = Table("targets (issue 15), from the paired runs", ["target", "needs A/B", "measured", "floor", "met?"],
                  notes=["floor: the same comparison for Pillow decode+encode with no pooling at all; when the floor's"
                         " ratio is already above what the target needs, no pooling can meet it on this machine."])
    script = f"Pillow reduce(2), {CORES} threads"
    batch_floor = results.get(("batch", f"floor: Pillow decode+encode, {CORES} threads", script))
    single_floor = results.get(("single", "floor: Pillow decode+encode", "Pillow reduce(2)"))
    goals = [(f"batch {task}", f"poolcli {task}", script, 1 / 1.1, batch_floor,
              f"{settings.count} × 1080p {task} ≥ 1.1× the {CORES}-thread script's images/s") for task in settings.tasks]
    goals += [(f"single {task}", f"poolcli {task}", "Pillow reduce(2)", 1.3, single_floor,
               f"one 12 MP JPEG {task} ≤ 1.3× the script's wall") for task in settings.tasks if task == "avg"]
    for label, a, b, needed, floor, words in goals:
        result = results.get((label, a, b))
        if result is None:
            continue
        met = result.wall_ratio <= needed
        below_floor = floor is not None and floor.wall_ratio > needed
        verdict = "yes" if met else ("no: the target is below the floor" if below_floor else "no")
        table.rows.append([words, f"≤ {needed:.3f}", f"{result.wall_ratio:.3f}",
                           f"{floor.wall_ratio:.3f}" if floor else "–", verdict])
    for task in settings.tasks:
        result = results.get((f"batch {task}", f"poolcli {task}", script))
        if result is not None:
            cores = result.a_cpu / result.a_wall
            table.rows.append([f"batch {task} CPU/wall ≥ 1.9 on {CORES} cores", "–", f"{cores:.2f}", "–",
                               "yes" if cores >= 1.9 else "no"])
    return table


SUITES = {"startup": startup, "memory": memory, "single": single, "batch": batch, "huge": huge, "png": png,
          "paired": paired, "gpu": gpu}
