"""Fuzz tests (hypothesis): the spec grammar, pipeline files and array inputs only ever fail as
poolcli's own errors, never with a traceback.

The default run draws a few dozen examples per property; ``make fuzz`` sets
POOLCLI_FUZZ_EXAMPLES to thousands and also runs the long corpus (POOLCLI_FUZZ_CORPUS: flipped
and truncated variants by the thousand through one batch).
"""

from __future__ import annotations

import io
import json
import random
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poolcli.errors import PoolcliError, SpecError, UsageError
from poolcli.errors import InputError
from poolcli.io.reading import load_image
from poolcli.core.plan import Pipeline
from poolcli.core.spec import parse_pipeline_text, parse_stage
from poolcli.core.ops import known_ops

EXAMPLES = int(os.environ.get("POOLCLI_FUZZ_EXAMPLES", "40"))
fuzz_settings = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 100,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

TORCH_NAMES = ["MaxPool2d", "AvgPool2d", "LPPool2d", "AdaptiveMaxPool2d", "AdaptiveAvgPool2d", "FractionalMaxPool2d",
               "MaxUnpool2d", "Conv2d", "ReLU", "Sigmoid", "Tanh", "LeakyReLU", "Flatten", "Linear", "ZeroPad2d",
               "ReflectionPad2d", "ReplicationPad2d", "Sequential", "Module", "system"]
PARAMETERS = ["k", "s", "p", "d", "ceil", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "count_include_pad",
              "divisor_override", "norm_type", "output_size", "output_ratio", "filter", "weight", "weight_file", "bias",
              "channels", "mode", "value", "negative_slope", "out_features", "seed", "return_indices", "__class__", "x"]

numbers = st.one_of(
    st.integers(-3, 12).map(str), st.integers().map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "-0", "1e309", "nan", "inf", "-inf", "1_000", "0x10", "2**64", "9" * 400, ".5", "5.", "1e-400"]),
)
atoms = st.one_of(
    numbers, st.sampled_from(["true", "false", "True", "None", "same", "sobel-x", "gaussian", "zeros", "reflect", "depthwise",
                              "sum", "'x'", '"x"', "[]", "()", "{}", "...", "__import__('os')", "os.system", "lambda: 1"]),
    st.text(alphabet="0123456789x,;()[]{}=:-+*/. 'a_\"\\\n\t", max_size=12),
)


@st.composite
def values(draw, depth: int = 0):
    """A parameter value as text: atoms, HxW pairs, brackets, matrices, with moderate nesting."""
    kind = draw(st.integers(0, 5 if depth < 4 else 1))
    if kind <= 1:
        return draw(atoms)
    if kind == 2:
        return f"{draw(numbers)}x{draw(numbers)}"
    if kind == 3:
        items = draw(st.lists(values(depth + 1), max_size=4))
        left, right = draw(st.sampled_from([("(", ")"), ("[", "]"), ("(", ""), ("", "]"), ("{", "}")]))
        return left + ", ".join(items) + right
    if kind == 4:
        rows = draw(st.lists(st.lists(numbers, min_size=1, max_size=3), min_size=1, max_size=3))
        return "; ".join(" ".join(row) for row in rows)
    return draw(atoms) + draw(st.sampled_from(["+", "-", "*", "/", "//", "**", "%", "@", " if 1 else "])) + draw(atoms)


@st.composite
def compact_specs(draw):
    op = draw(st.one_of(st.sampled_from(known_ops()), st.sampled_from(["", "nn", "max pool", "maxpool2d", "MAXPOOL", "x"]),
                        st.text(max_size=6)))
    tokens = []
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            tokens.append(f"{draw(st.sampled_from(PARAMETERS))}={draw(values())}")
        else:
            tokens.append(draw(values()))
    separator = draw(st.sampled_from([":", ":", "", "::", " : "]))
    return op + (separator + ",".join(tokens) if tokens or draw(st.booleans()) else "")


@st.composite
def torch_calls(draw):
    prefix = draw(st.sampled_from(["nn.", "", "torch.nn.", "torch.", "nn.nn.", "F."]))
    name = draw(st.sampled_from(TORCH_NAMES))
    args = draw(st.lists(values(), max_size=4))
    keywords = [f"{draw(st.sampled_from(PARAMETERS))}={draw(values())}" for _ in range(draw(st.integers(0, 3)))]
    tail = draw(st.sampled_from(["", "", ",", "  # comment", ".forward", "(2)", ")", ")("]))
    return f"{prefix}{name}({', '.join(args + keywords)}){tail}"


specs = st.one_of(compact_specs(), torch_calls(), st.text(max_size=60))


@fuzz_settings
@given(specs)
def test_parse_stage_only_raises_spec_errors(spec):
    try:
        stage = parse_stage(spec)
    except (SpecError, UsageError):
        return
    try:  # a stage that parsed plans on some input, or says why not, as poolcli's own error
        Pipeline([stage]).plan((1, 3, 17, 16))
    except PoolcliError:
        pass


# ------------------------------------------------------------------------------ pipeline files

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 40), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
              st.sampled_from(["2x3", "same", "sobel-x", "reflect", "sum", "0 1; 2 3", "", "nan"]), st.text(max_size=8)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)
tables = st.dictionaries(st.sampled_from(PARAMETERS + ["op"]), json_values, max_size=5).flatmap(
    lambda table: st.sampled_from(known_ops() + ["", "eval", "nn.MaxPool2d"]).map(lambda op: {"op": op, **table})
    | st.just(table)
)
documents = st.one_of(
    st.fixed_dictionaries({"stage": st.lists(tables, max_size=4)}),
    st.fixed_dictionaries({"stage": json_values}),
    json_values,
)


def _toml(document) -> str | None:
    """The document as TOML text ([[stage]] tables), or None where TOML cannot hold it (null, non-table root)."""
    def value(v):
        if v is None:
            raise ValueError
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v) if not isinstance(v, float) or math.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"

    try:
        if not isinstance(document, dict):
            return None
        stages = document.get("stage")
        if isinstance(stages, list) and all(isinstance(t, dict) for t in stages):
            return "".join("[[stage]]\n" + "".join(f"{json.dumps(k)} = {value(v)}\n" for k, v in t.items()) for t in stages)
        return "".join(f"{json.dumps(k)} = {value(v)}\n" for k, v in document.items())
    except ValueError:
        return None


def _only_spec_errors(text: str, kind: str) -> None:
    try:
        stages = parse_pipeline_text(text, kind, "fuzz")
    except (SpecError, UsageError):
        return
    try:
        Pipeline(stages).plan((1, 1, 20, 21))
    except PoolcliError:
        pass


@fuzz_settings
@given(documents)
def test_pipeline_files_only_raise_spec_errors(document):
    _only_spec_errors(json.dumps(document), "json")
    toml = _toml(document)
    if toml is not None:
        _only_spec_errors(toml, "toml")


@fuzz_settings
@given(st.text(max_size=200), st.sampled_from(["json", "toml"]))
def test_pipeline_text_that_is_not_even_a_document(text, kind):
    _only_spec_errors(text, kind)


@pytest.mark.parametrize("kind", ["json", "toml"])
def test_deeply_nested_pipeline_files_are_spec_errors(kind):
    depth = 100_000
    text = ('{"stage": ' + "[" * depth + "]" * depth + "}") if kind == "json" else ("stage = " + "[" * depth + "]" * depth)
    with pytest.raises(SpecError):
        parse_pipeline_text(text, kind, "deep")


# ------------------------------------------------------------------------------ arrays

dtypes = st.sampled_from(["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
                          "float16", "float32", "float64", ">f4", ">i2", "complex64", "U3", "S2", "V4"])
shapes = st.lists(st.integers(0, 7), min_size=0, max_size=5).map(tuple)


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(dtypes))
    shape = draw(shapes)
    count = math.prod(shape)
    raw = draw(st.binary(min_size=count * dtype.itemsize, max_size=count * dtype.itemsize))
    array = np.frombuffer(raw, dtype=dtype).reshape(shape).copy() if dtype.itemsize else np.zeros(shape, dtype)
    if dtype.kind == "f" and array.size and draw(st.booleans()):
        flat = array.reshape(-1)
        for index in draw(st.lists(st.integers(0, array.size - 1), max_size=4)):
            flat[index] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0]))
    fortran = draw(st.booleans())
    return np.asfortranarray(array) if fortran else array


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@fuzz_settings
@given(arrays(), st.integers(0, 200))
def test_npy_arrays_load_or_raise_input_errors(array, cut):
    data = _npy_bytes(array)
    for blob in (data, data[: len(data) - cut] if cut else data):
        try:
            loaded = load_image(blob, name="fuzz.npy")
        except InputError:
            continue
        assert loaded.array.ndim == 4 and loaded.array.dtype == np.float32
        assert loaded.array.size == array.size and blob == data
        assert np.array_equal(loaded.array.reshape(-1), array.astype(np.float32).reshape(-1), equal_nan=True)


@fuzz_settings
@given(arrays())
def test_npy_arrays_through_pool(invoke, tmp_path_factory, array):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "a.npy"
    path.write_bytes(_npy_bytes(array))
    result = invoke("pool", str(path), "-k", "2", "-o", str(folder / "out.npy"), "-q")
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1, 2)
    if result.exit_code == 0:
        written = np.load(folder / "out.npy", allow_pickle=False)
        assert written.ndim == 4 and written.dtype == np.float32
    else:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and re.match(r"^poolcli: error: ", lines[0]), lines
        assert not (folder / "out.npy").exists()


SIGNATURES = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"II*\x00", b"MM\x00*", b"BM", b"RIFF\x00\x00\x00\x00WEBP",
              b"\x93NUMPY\x01\x00", b"PK\x03\x04", b"%!PS-Adobe-3.0 EPSF-3.0\n", b"P6\n", b"\x00\x00\x01\x00", b"qoif", b""]


@fuzz_settings
@given(st.sampled_from(SIGNATURES), st.binary(max_size=300))
def test_random_bytes_behind_a_signature_are_input_errors(signature, body):
    try:
        load_image(signature + body, name="fuzz.bin")
    except InputError:
        pass


# ------------------------------------------------------------------------------ the long corpus


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.skipif(not os.environ.get("POOLCLI_FUZZ_CORPUS"), reason="the long corpus runs with make fuzz")
def test_long_corpus_as_one_batch(invoke, tmp_path):
    """Thousands of flipped and truncated files (make_corpus --mutations N, same stems in several
    formats, 1-pixel and just-large-enough pictures among them) through one listed batch: no
    traceback, every error line names its file, and what is ok alone is ok in the batch."""
    from corpus import make_corpus

    mutations = int(os.environ["POOLCLI_FUZZ_CORPUS"])
    root, entries = make_corpus.ensure(make_corpus.GENERATED / "long", mutations)
    assert len(entries) >= 1000
    chosen = [e for e in entries if e.in_batch and "nan" not in e.name and "huge" not in e.name]
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{root / e.name}\n" for e in chosen))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "poolcli", "pool", "--files-from", str(listing), "-o", str(out),
                           "-k", "2", "--json", "--format", "png", "-q"], capture_output=True, text=True, timeout=3500)
    assert "Traceback" not in proc.stderr and proc.returncode == 1
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == len(chosen)
    by_input = {os.path.relpath(r["input"], root): r for r in records}
    for entry in chosen:
        status = by_input[entry.name]["status"]
        assert status == entry.expect or entry.expect == "either" or entry.name.startswith("lies/"), (entry, status)
    failed = {r["input"] for r in records if r["status"] == "error"}
    lines = proc.stderr.splitlines()
    assert len(lines) == len(failed)
    assert all(line.startswith("poolcli: error: ") and line.split(": ")[2] in failed for line in lines)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    either = [e for e in chosen if e.expect == "either"]
    for entry in random.Random(0).sample(either, min(200, len(either))):
        alone = invoke("pool", str(root / entry.name), "-k", "2", "-o", str(tmp_path / "alone.png"), "-q")
        assert by_input[entry.name]["status"] == ("ok" if alone.exit_code == 0 else "error"), entry.name
