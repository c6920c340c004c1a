"""poolcli.batch.on_ray: the same batch on a real Ray cluster on this machine (loopback only): the
same outputs, byte for byte, and the same records as a local run; resume; a node lost mid-run;
Ctrl-C; no Ray process left behind. Marked ``ray`` (``make test-fast`` leaves them out)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES
from poolcli.batch.on_ray import LOCAL_ADDRESS, connection_hint

pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("ray")]


def poolcli(*args: str) -> list[str]:
    return [sys.executable, "-m", "poolcli", *args]


def _ray_processes() -> set[int]:
    """The pids of Ray's own daemons (raylet, gcs_server) on this machine."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() in ("raylet", "gcs_server"):
                    found.add(int(pid))
        except OSError:
            pass
    return found


def _cluster(workers: int, head_cpus: int):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": head_cpus, "node_ip_address": LOCAL_ADDRESS, "include_dashboard": False})
    nodes = [cluster.add_node(num_cpus=1, node_ip_address=LOCAL_ADDRESS) for _ in range(workers)]
    return cluster, nodes


@pytest.fixture(scope="module")
def cluster():
    """A head and one more node on 127.0.0.2, shared by this module's tests."""
    before = _ray_processes()
    cluster, _ = _cluster(workers=1, head_cpus=1)
    yield cluster
    cluster.shutdown()
    deadline = time.time() + 30
    while _ray_processes() - before and time.time() < deadline:
        time.sleep(0.2)
    assert not _ray_processes() - before, "Ray processes left behind"


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> Path:
    """Pictures of several sizes and formats, same stems, a 1-pixel one and two bad files."""
    folder = tmp_path_factory.mktemp("messy")
    rng = np.random.default_rng(3)
    for i in range(14):
        size = (24 + 3 * (i % 5), 18 + 2 * (i % 4))
        Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(folder / f"p{i:02d}.jpg", quality=90)
    Image.open(SAMPLES / "coffee.png").convert("RGB").resize((40, 30)).save(folder / "same.png")
    Image.open(SAMPLES / "coffee.png").convert("RGB").resize((40, 30)).save(folder / "same.tga")
    Image.new("L", (9, 1)).save(folder / "tiny.png")
    (folder / "bad.png").write_bytes(b"not a picture")
    (folder / "empty.jpg").write_bytes(b"")
    return folder


def _run(folder: Path, out: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(poolcli("pool", str(folder), "-m", "avg", "-k", "2", "-o", str(out), "--json", *extra),
                          capture_output=True, text=True, timeout=timeout)


def _records(proc: subprocess.CompletedProcess) -> list[dict]:
    records = [json.loads(line) for line in proc.stdout.splitlines()]  # stdout: JSON Lines and nothing else
    for record in records:
        for stage in record["stages"]:
            stage["seconds"] = None  # the one field a second run cannot repeat
    return records


def _outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_same_outputs_and_records_as_a_local_run(cluster, messy, tmp_path):
    """--memory given: its default is half of what each worker's machine has free at the time."""
    local = _run(messy, tmp_path / "local", "--memory", "2G")
    on_ray = _run(messy, tmp_path / "ray", "--executor", "ray", "--ray-address", cluster.address, "--memory", "2G")
    assert (local.returncode, on_ray.returncode) == (1, 1), on_ray.stderr
    assert _records(on_ray) == [
        {**r, "output": r["output"].replace(str(tmp_path / "local"), str(tmp_path / "ray")) if r["output"] else None}
        for r in _records(local)]
    assert _outputs(tmp_path / "ray") == _outputs(tmp_path / "local")
    assert {"same.png.jpg", "same.tga.jpg"} - set(_outputs(tmp_path / "ray")) == {"same.png.jpg", "same.tga.jpg"}
    assert {"same.png.png", "same.tga.png"} <= set(_outputs(tmp_path / "ray"))
    errors = [line for line in on_ray.stderr.splitlines() if line.startswith("poolcli: error: ")]
    assert errors == [line for line in local.stderr.splitlines() if line.startswith("poolcli: error: ")]
    assert len(errors) == 3 and "summary" in on_ray.stderr


def test_skip_existing_resumes(cluster, messy, tmp_path):
    out = tmp_path / "out"
    first = _run(messy, out, "--executor", "ray", "--ray-address", cluster.address)
    written = sorted(out.iterdir())
    for path in written[::2]:
        path.unlink()
    again = _run(messy, out, "--executor", "ray", "--ray-address", cluster.address, "--skip-existing")
    statuses = [r["status"] for r in map(json.loads, again.stdout.splitlines())]
    assert statuses.count("skipped") == len(written) - len(written[::2])
    assert statuses.count("ok") == len(written[::2]) and sorted(out.iterdir()) == written
    assert first.returncode == again.returncode == 1


def test_ray_is_used_as_an_extra(tmp_path):
    """Without Ray, --executor ray is a usage error naming the install command; --help imports no Ray."""
    code = ("import sys\nsys.modules['ray'] = None\nfrom poolcli.cli import main\n"
            f"main(['pool', {str(SAMPLES / 'gray.png')!r}, '-k', '2', '-o', {str(tmp_path / 'o.png')!r}, '--executor', 'ray'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "pip install 'poolcli[ray]'" in proc.stderr and proc.stderr.count("\n") == 1
    code = "import sys\nfrom poolcli.cli import main\ntry:\n main(['pool', '--help'])\nexcept SystemExit: pass\nassert 'ray' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60).returncode == 0


def test_an_address_where_nothing_listens_is_one_line_at_once(tmp_path):
    """Ray itself would retry for minutes, printing its C++ warnings; poolcli says so in one line."""
    proc = subprocess.run(poolcli("pool", str(SAMPLES / "gray.png"), "-k", "2", "-o", str(tmp_path / "o.png"),
                                  "--executor", "ray", "--ray-address", f"{LOCAL_ADDRESS}:1"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"poolcli: error: cannot start or reach --ray-address {LOCAL_ADDRESS}:1: nothing listens at {LOCAL_ADDRESS}:1"
        f" — {connection_hint(LOCAL_ADDRESS + ':1')}"]


def test_stdin_is_refused_before_ray_starts(tmp_path):
    """Ray workers read files, not this process's stdin: a usage error, exit 2, nothing on stdout."""
    with open(SAMPLES / "gray.png", "rb") as image:
        proc = subprocess.run(poolcli("pool", "-", "-k", "2", "-o", str(tmp_path / "o.png"), "--executor", "ray"),
                              stdin=image, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "poolcli: error: --executor ray reads no stdin — give files: Ray workers read them from a shared folder"]
    assert not (tmp_path / "o.png").exists()


def test_the_hint_names_token_authentication_until_it_is_set(monkeypatch):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert "RAY_AUTH_MODE=token" in connection_hint("head:6379")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert "RAY_AUTH_MODE" not in connection_hint("head:6379")
    assert "--executor local" in connection_hint(None)


def test_without_an_address_a_local_ray_comes_and_goes(messy, tmp_path):
    before = _ray_processes()
    proc = _run(messy, tmp_path / "out", "--executor", "ray")
    assert proc.returncode == 1 and len(proc.stdout.splitlines()) == len(list(messy.iterdir()))
    deadline = time.time() + 30
    while _ray_processes() - before and time.time() < deadline:
        time.sleep(0.2)
    assert not _ray_processes() - before


@pytest.fixture
def many(tmp_path) -> Path:
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(9)
    picture = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    for i in range(80):
        picture.save(folder / f"{i:03d}.png", compress_level=1)
    return folder


def test_a_node_lost_mid_run_costs_no_output(many, tmp_path):
    cluster, nodes = _cluster(workers=2, head_cpus=0)  # the work runs on the two worker nodes
    try:
        out = tmp_path / "out"
        proc = subprocess.Popen(poolcli("run", str(many), "-S", "medianpool:3,s=1", "-S", "avgpool:2", "-o", str(out),
                                        "--json", "--executor", "ray", "--ray-address", cluster.address),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline and (not out.exists() or len(list(out.glob("*.png"))) < 10):
            time.sleep(0.05)
        cluster.remove_node(nodes[0])
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        cluster.shutdown()
    assert proc.returncode == 0, stderr[-2000:]
    records = [json.loads(line) for line in stdout.splitlines()]  # nothing but JSON on stdout
    assert len(records) == 80 and all(r["status"] == "ok" for r in records)
    assert sorted(p.name for p in out.iterdir()) == [f"{i:03d}.png" for i in range(80)]
    for path in out.iterdir():
        with Image.open(path) as image:
            image.load()
            assert image.size == (199, 149)


def test_ctrl_c_leaves_no_partial_file_and_resume_finishes(cluster, many, tmp_path):
    out = tmp_path / "out"
    args = poolcli("run", str(many), "-S", "medianpool:3,s=1", "-o", str(out), "--executor", "ray",
                   "--ray-address", cluster.address)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(list(out.glob("*.png"))) < 5):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and b"interrupted" in stderr and b"Traceback" not in stderr
    time.sleep(2)  # workers of the interrupted run finish or stop
    assert not [p.name for p in out.iterdir() if not p.name.endswith(".png") or p.name.startswith(".")]
    for path in out.iterdir():
        with Image.open(path) as image:
            image.load()
    resumed = subprocess.run([*args, "--skip-existing", "-q"], capture_output=True, timeout=300)
    assert resumed.returncode == 0 and len(list(out.glob("*.png"))) == 80
