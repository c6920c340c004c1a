"""Hostile input never runs code or escapes (issue 5, DESIGN.md §5).

Each payload would create a marker file if it ran; every test asserts the marker does not
exist, and the exit status and the one error line. The payloads are checked to be real: the
loaders poolcli refuses to use (``np.load(allow_pickle=True)``, ``torch.load(weights_only=False)``,
``eval``) do create the marker in a throwaway process.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES

ERROR_LINE = re.compile(r"^poolcli: error: .+$")


class Payload:
    """Unpickling this runs ``touch MARKER`` (os.system is what a real exploit would call)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _one_error_line(result, *, exit_code: int) -> str:
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and ERROR_LINE.match(lines[0]), lines
    return lines[0]


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "a payload ran"


@pytest.fixture
def pickled_npy(tmp_path, marker) -> Path:
    path = tmp_path / "payload.npy"
    np.save(path, np.array([Payload(marker), 1], dtype=object), allow_pickle=True)
    return path


@pytest.fixture
def pickled_pt(tmp_path, marker) -> Path:
    torch = pytest.importorskip("torch")
    path = tmp_path / "payload.pt"
    torch.save({"weights": torch.zeros(2), "boom": Payload(marker)}, path)
    return path


def _payload_runs(code: str, marker: Path) -> bool:
    """Whether ``code`` (a loader poolcli does not use) creates the marker; it is removed again."""
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, cwd=marker.parent,
                   env={**os.environ, "PYTHONPATH": os.path.dirname(__file__)})
    ran = marker.exists()
    if ran:
        marker.unlink()
    return ran


def test_the_payloads_are_real(pickled_npy, pickled_pt, marker):
    assert _payload_runs(f"import numpy; numpy.load({str(pickled_npy)!r}, allow_pickle=True)", marker)
    assert _payload_runs(f"import torch; torch.load({str(pickled_pt)!r}, weights_only=False)", marker)
    assert _payload_runs(f"eval({SPEC_PAYLOADS[0].format(marker=marker)!r})", marker)


# ------------------------------------------------------------------------------ arrays


def test_pickled_npy_is_refused_everywhere(invoke, pickled_npy, tmp_path, marker):
    out = str(tmp_path / "out.png")
    for args in (["pool", str(pickled_npy), "-k", "2", "-o", out], ["info", str(pickled_npy)],
                 ["shape", str(pickled_npy), "-S", "maxpool:2"], ["explain", str(pickled_npy), "-S", "maxpool:2"]):
        line = _one_error_line(invoke(*args), exit_code=1)
        assert str(pickled_npy) in line and re.search(r"pickle|object", line), line
    for args in (["conv", str(SAMPLES / "odd.png"), "--weight-file", str(pickled_npy), "-o", out],
                 ["run", str(SAMPLES / "odd.png"), "-S", f"conv:weight_file={pickled_npy}", "-o", out]):
        line = _one_error_line(invoke(*args), exit_code=2)
        assert str(pickled_npy) in line, line
    assert not Path(out).exists()


def test_pickled_npy_through_stdin(invoke, pickled_npy, marker):
    result = invoke("pool", "-", "-k", "2", "-o", "-", input=pickled_npy.read_bytes())
    assert "refused: pickled .npy" in _one_error_line(result, exit_code=1)


def test_pickled_pt_is_refused(invoke, pickled_pt, tmp_path, marker):
    for args in (["pool", str(pickled_pt), "-k", "2", "-o", str(tmp_path / "out.png")], ["info", str(pickled_pt)]):
        line = _one_error_line(invoke(*args), exit_code=1)
        assert f"{pickled_pt}: refused: loading this .pt would call posix.system (weights_only=True)" in line, line


def test_plain_pickle_named_pt_is_refused(invoke, tmp_path, marker):
    path = tmp_path / "legacy.pt"
    path.write_bytes(pickle.dumps(Payload(marker), protocol=2))
    line = _one_error_line(invoke("pool", str(path), "-k", "2", "-o", str(tmp_path / "o.png")), exit_code=1)
    assert "refused" in line and "weights_only=True" in line, line


def test_pickled_pt_through_stdin_is_refused(invoke, pickled_pt, marker):
    result = invoke("pool", "-", "-k", "2", "-o", "-", input=pickled_pt.read_bytes())
    assert "refused: loading this .pt would call" in _one_error_line(result, exit_code=1)


# ------------------------------------------------------------------------------ specs

SPEC_PAYLOADS = [
    "__import__('os').system('touch {marker}')",
    "nn.MaxPool2d(__import__('os').system('touch {marker}'))",
    "nn.MaxPool2d(2, stride=__import__('os').system('touch {marker}'))",
    "maxpool:k=__import__('os').system('touch {marker}')",
    "maxpool:__import__('os').system('touch {marker}')",
    "conv:weight=__import__('os').system('touch {marker}')",
    "os.system('touch {marker}')",
    "eval(\"__import__('os').system('touch {marker}')\")",
    "exec(\"import os; os.system('touch {marker}')\")",
    "open('{marker}', 'w')",
    "nn.MaxPool2d(open('{marker}', 'w'))",
    "nn.MaxPool2d(2).__class__.__init__.__globals__['os'].system('touch {marker}')",
    "nn.MaxPool2d.__init__.__globals__['os'].system('touch {marker}')",
    "getattr(nn, 'MaxPool2d')(2)",
    "nn.MaxPool2d((lambda: __import__('os').system('touch {marker}'))())",
    "nn.MaxPool2d([__import__('os').system('touch {marker}') for _ in range(1)])",
    "nn.MaxPool2d(*[__import__('os').system('touch {marker}')])",
    "nn.MaxPool2d(**{{'kernel_size': __import__('os').system('touch {marker}')}})",
    "nn.MaxPool2d(int('2'))",
    "nn.MaxPool2d(len([1, 2]))",
    "nn.Sequential(nn.MaxPool2d(2))",
    "nn.MaxPool2d(kernel_size=f'{{__import__(\"os\").system(\"touch {marker}\")}}')",
    "nn.MaxPool2d(2 ** 1000000)",
    "nn.MaxPool2d(9 ** 9 ** 9)",
    "torch.load('{marker}')",
    "nn.MaxPool2d(2); __import__('os').system('touch {marker}')",
    "nn.MaxPool2d(2)\n__import__('os').system('touch {marker}')",
    "nn.MaxPool2d(2) if __import__('os').system('touch {marker}') else 0",
    "nn.MaxPool2d(nn.MaxPool2d(2))",
    "maxpool:k=2,s=2,__import__('os').system('touch {marker}')=1",
    "avgpool:divisor_override=__import__('os').system('touch {marker}')",
]


@pytest.mark.parametrize("spec", SPEC_PAYLOADS)
def test_hostile_specs_are_refused_never_run(invoke, spec, marker, tmp_path):
    text = spec.format(marker=marker)
    line = _one_error_line(invoke("shape", "1x1x8x8", "-S", text), exit_code=2)
    assert line.startswith("poolcli: error: ")
    out = tmp_path / "out.png"
    _one_error_line(invoke("run", str(SAMPLES / "odd.png"), "-S", text, "-o", str(out)), exit_code=2)
    assert not out.exists()


@pytest.mark.parametrize("spec", SPEC_PAYLOADS)
def test_parse_stage_raises_only_spec_errors(spec, marker):
    from poolcli.errors import SpecError, UsageError
    from poolcli.core.spec import parse_stage

    with pytest.raises((SpecError, UsageError)):
        parse_stage(spec.format(marker=marker))


@pytest.mark.parametrize("kind", ["toml", "json"])
def test_hostile_pipeline_files_are_refused(invoke, kind, tmp_path, marker):
    call = f"__import__('os').system('touch {marker}')"
    tables = [{"op": call}, {"op": "maxpool", "kernel_size": call}, {"op": "maxpool", call: 2},
              {"op": "conv", "weight_file": str(tmp_path / "payload.npy")}]
    np.save(tmp_path / "payload.npy", np.array([Payload(marker)], dtype=object), allow_pickle=True)
    for index, table in enumerate(tables):
        path = tmp_path / f"p{index}.{kind}"
        if kind == "json":
            path.write_text(json.dumps({"stage": [table]}))
        else:
            path.write_text("[[stage]]\n" + "".join(f"{json.dumps(k)} = {json.dumps(v)}\n" for k, v in table.items()))
        line = _one_error_line(invoke("shape", "1x1x8x8", "--pipeline", str(path)), exit_code=2)
        assert line.startswith("poolcli: error: "), line


# ------------------------------------------------------------------------------ output paths


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _picture(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (200, 10, 10)).save(path)
    return path


def test_inputs_named_dot_dot_stay_inside_out(invoke, tmp_path, monkeypatch):
    work = tmp_path / "work"
    _picture(work / "x.png")
    _picture(work / "y.png")
    (work / "in").mkdir()
    monkeypatch.chdir(work / "in")
    before = _tree(tmp_path)
    result = invoke("pool", "../x.png", "../y.png", "../in/../x.png", "-k", "2", "-o", "out", "--json")
    created = _tree(tmp_path) - before
    assert all(name.startswith("work/in/out") for name in created), created
    outputs = [json.loads(line)["output"] for line in result.stdout.splitlines() if line.startswith("{")]
    for output in outputs:
        if output:
            assert os.path.realpath(output).startswith(str(work / "in" / "out") + os.sep), output


def test_absolute_paths_in_files_from_stay_inside_out(invoke, tmp_path):
    a = _picture(tmp_path / "a" / "deep" / "p.png")
    b = _picture(tmp_path / "b" / "q.png")
    listings = [[a, b], [tmp_path / "a" / ".." / "b" / "q.png", a], ["/etc/../" + str(b)[1:], "/" + str(a)],
                [b, "/../../../../" + str(a)[1:]]]
    for index, listed in enumerate(listings):
        out = tmp_path / f"out{index}"
        before = _tree(tmp_path)
        result = invoke("pool", "--files-from", "-", "-o", str(out), "-k", "2", "-q", "--json",
                        input="".join(f"{path}\n" for path in listed))
        assert result.exit_code == 0, result.stderr
        created = _tree(tmp_path) - before
        assert len([name for name in created if name.endswith(".png")]) == 2, created
        assert all(name == out.name or name.startswith(f"{out.name}/") for name in created), created
        for line in result.stdout.splitlines():
            output = json.loads(line)["output"]
            assert os.path.realpath(output).startswith(str(out) + os.sep), output


def test_symlinked_inputs_mirror_the_link_not_its_target(invoke, tmp_path):
    outside = _picture(tmp_path / "outside" / "secret.png")
    folder = tmp_path / "in"
    folder.mkdir()
    _picture(folder / "plain.png")
    os.symlink(outside, folder / "link.png")
    os.symlink(outside.parent, folder / "linked-folder")
    out = tmp_path / "out"
    before = _tree(tmp_path)
    result = invoke("pool", str(folder), "-r", "-o", str(out), "-k", "2", "-q")
    assert result.exit_code == 0, result.stderr
    created = _tree(tmp_path) - before
    assert created == {"out", "out/plain.png", "out/link.png", "out/linked-folder", "out/linked-folder/secret.png"}
    assert _tree(tmp_path / "outside") == {"secret.png"}


def test_a_symlink_inside_out_does_not_lead_outputs_outside(invoke, tmp_path):
    _picture(tmp_path / "in" / "sub" / "a.png")
    _picture(tmp_path / "in" / "top.png")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(elsewhere, out / "sub")
    result = invoke("pool", str(tmp_path / "in"), "-r", "-o", str(out), "-k", "2", "-q")
    assert list(elsewhere.iterdir()) == []
    assert result.exit_code == 1 and "sub/a.png" in result.stderr


def test_an_input_is_never_written_over(invoke, tmp_path):
    picture = _picture(tmp_path / "x.png")
    original = picture.read_bytes()
    line = _one_error_line(invoke("pool", str(picture), "-k", "2", "-o", str(picture)), exit_code=1)
    assert "would write over an input" in line
    os.symlink(picture, tmp_path / "alias.png")
    _one_error_line(invoke("pool", str(picture), "-k", "2", "-o", str(tmp_path / "alias.png")), exit_code=1)
    assert picture.read_bytes() == original


def test_ghostscript_never_runs_on_eps(invoke, tmp_path, marker, monkeypatch):
    """PostScript that would write the marker if Ghostscript ran it without -dSAFER."""
    monkeypatch.delenv("POOLCLI_ALLOW_GHOSTSCRIPT", raising=False)
    path = tmp_path / "evil.eps"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"
                     + f"({marker}) (w) file closefile\n".encode() + b"showpage\n%%EOF\n")
    line = _one_error_line(invoke("pool", str(path), "-k", "2", "-o", str(tmp_path / "o.png")), exit_code=1)
    assert "refused: decoding EPS runs Ghostscript" in line and "POOLCLI_ALLOW_GHOSTSCRIPT=1" in line
    if shutil.which("gs"):
        assert not marker.exists()
