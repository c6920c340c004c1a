"""Stage specs: compact, torch-call, TOML and JSON spellings give equal stages; errors name the
stage, the token and what was expected; nothing is ever executed (DESIGN.md §2 "Stage specs")."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from poolcli.errors import SpecError
from poolcli.core.spec import parse_pipeline_text, parse_stage, stage_from_table
from poolcli.io.specs import parse_pipeline_file
from poolcli.core.ops import known_ops

FUZZ = settings(max_examples=300, deadline=None)

# (compact, torch-call or None, TOML/JSON table)
SPELLINGS = [
    ("maxpool:k=2x3,s=2x3,p=0x1", "nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))",
     {"op": "maxpool", "kernel_size": [2, 3], "stride": [2, 3], "padding": [0, 1]}),
    ("maxpool:(2,3),s=(2,3),p=(0,1)", "torch.nn.MaxPool2d(kernel_size=(2, 3), stride=(2, 3), padding=(0, 1))",
     {"op": "maxpool", "k": "2x3", "s": "(2,3)", "p": [0, 1]}),
    ("maxpool:3,s=2,p=1,d=2,ceil=true", "nn.MaxPool2d(3, 2, 1, 2, ceil_mode=True)",
     {"op": "maxpool", "k": 3, "s": 2, "p": 1, "d": 2, "ceil": True}),
    ("maxpool:2", "nn.MaxPool2d(2, return_indices=True)", {"op": "maxpool", "kernel_size": 2}),
    ("maxpool:k=2,s=2", "MaxPool2d(2, stride=2)", {"op": "maxpool", "kernel_size": 2, "stride": 2}),
    ("avgpool:3,p=1,count_include_pad=false", "nn.AvgPool2d(3, padding=1, count_include_pad=False)",
     {"op": "avgpool", "kernel_size": 3, "padding": 1, "count_include_pad": False}),
    ("avgpool:2,divisor_override=3", "AvgPool2d(2, divisor_override=3)",
     {"op": "avgpool", "kernel_size": 2, "divisor_override": 3}),
    ("avgpool:2,s=1,p=1,ceil=True", "nn.AvgPool2d(2, 1, 1, True)",
     {"op": "avgpool", "kernel_size": 2, "stride": 1, "padding": 1, "ceil_mode": True}),
    ("minpool:(2,3),s=1", None, {"op": "minpool", "kernel_size": "2x3", "stride": 1}),
    ("lppool:2,k=3,s=2", "nn.LPPool2d(2, 3, stride=2)",
     {"op": "lppool", "norm_type": 2, "kernel_size": 3, "stride": 2}),
    ("lppool:1.5,3,ceil=true", "nn.LPPool2d(1.5, 3, ceil_mode=True)",
     {"op": "lppool", "norm_type": 1.5, "kernel_size": 3, "ceil_mode": True}),
    ("medianpool:3,d=2", None, {"op": "medianpool", "kernel_size": 3, "dilation": 2}),
    ("adaptivemaxpool:7x5", "nn.AdaptiveMaxPool2d((7, 5))", {"op": "adaptivemaxpool", "output_size": [7, 5]}),
    ("adaptivemaxpool:3", "nn.AdaptiveMaxPool2d(3, return_indices=True)",
     {"op": "adaptivemaxpool", "output_size": 3}),
    ("adaptiveavgpool:7x7", "nn.AdaptiveAvgPool2d(7)", {"op": "adaptiveavgpool", "output_size": "7x7"}),
    ("adaptiveavgpool:(None,7)", "nn.AdaptiveAvgPool2d((None, 7))", {"op": "adaptiveavgpool", "output_size": "(None, 7)"}),
    ("globalmaxpool", None, {"op": "globalmaxpool"}),
    ("globalavgpool", None, {"op": "globalavgpool"}),
    ("fractionalmaxpool:3,output_ratio=0.5", "nn.FractionalMaxPool2d(3, output_ratio=0.5)",
     {"op": "fractionalmaxpool", "kernel_size": 3, "output_ratio": 0.5}),
    ("fractionalmaxpool:k=2,output_size=5x6", "nn.FractionalMaxPool2d(2, output_size=(5, 6))",
     {"op": "fractionalmaxpool", "kernel_size": 2, "output_size": [5, 6]}),
    ("maxunpool:2", "nn.MaxUnpool2d(2)", {"op": "maxunpool", "kernel_size": 2}),
    ("maxunpool:(2,2),s=(2,2)", "nn.MaxUnpool2d((2, 2), stride=(2, 2))",
     {"op": "maxunpool", "kernel_size": [2, 2], "stride": [2, 2]}),
    ("maxunpool", None, {"op": "maxunpool"}),
    ("pad:(1,1,2,0)", "nn.ZeroPad2d((1, 1, 2, 0))", {"op": "pad", "padding": [1, 1, 2, 0]}),
    ("pad:2,mode=reflect", "nn.ReflectionPad2d(2)", {"op": "pad", "padding": 2, "mode": "reflect"}),
    ("pad:1,mode=replicate", "nn.ReplicationPad2d(1)", {"op": "pad", "padding": 1, "mode": "replicate"}),
    ("pad:1,value=0.5", "nn.ConstantPad2d(1, 0.5)", {"op": "pad", "padding": 1, "value": 0.5}),
    ("pad:2x1", None, {"op": "pad", "padding": [2, 1]}),
    ("conv:weight=0 1; 2 3", None, {"op": "conv", "weight": [[0, 1], [2, 3]]}),
    ("conv:weight=[[0,1],[2,3]]", None, {"op": "conv", "weight": "0 1; 2 3"}),
    ("conv:sobel-x", None, {"op": "conv", "filter": "sobel-x"}),
    ("conv:filter=sobel-x,p=1", None, {"op": "conv", "filter": "sobel-x", "padding": 1}),
    ("conv:filter=gaussian,k=5,sigma=2", None, {"op": "conv", "filter": "gaussian", "kernel_size": 5, "sigma": 2}),
    ("conv:edge,p=same,padding_mode=reflect,channels=sum", None,
     {"op": "conv", "filter": "edge", "padding": "same", "padding_mode": "reflect", "channels": "sum"}),
    ("conv:in_channels=1,out_channels=6,k=5,p=2,bias=true", "nn.Conv2d(1, 6, kernel_size=5, padding=2)",
     {"op": "conv", "in_channels": 1, "out_channels": 6, "kernel_size": 5, "padding": 2, "bias": True}),
    ("conv:in_channels=6,out_channels=16,k=5,bias=false", "nn.Conv2d(6, 16, 5, bias=False)",
     {"op": "conv", "in_channels": 6, "out_channels": 16, "kernel_size": 5, "bias": False}),
    ("convtranspose:weight=0 1; 2 3", None, {"op": "convtranspose", "weight": [[0, 1], [2, 3]]}),
    ("convtranspose:filter=box,k=2,s=2", None, {"op": "convtranspose", "filter": "box", "kernel_size": 2, "stride": 2}),
    ("convtranspose:in_channels=16,out_channels=8,k=3,s=2,p=1,output_padding=1,bias=true",
     "nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1)",
     {"op": "convtranspose", "in_channels": 16, "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1,
      "output_padding": 1, "bias": True}),
    ("convtranspose:in_channels=4,out_channels=4,k=2,s=2,groups=2,bias=false",
     "nn.ConvTranspose2d(4, 4, 2, 2, 0, 0, 2, False)",
     {"op": "convtranspose", "in_channels": 4, "out_channels": 4, "kernel_size": 2, "stride": 2, "groups": 2, "bias": False}),
    ("upsample:2", "nn.Upsample(scale_factor=2)", {"op": "upsample", "scale_factor": 2}),
    ("upsample:2", "nn.UpsamplingNearest2d(scale_factor=2)", {"op": "upsample", "scale_factor": 2.0, "mode": "nearest"}),
    ("upsample:2x1.5,bicubic", "nn.Upsample(scale_factor=(2, 1.5), mode='bicubic')",
     {"op": "upsample", "scale_factor": [2, 1.5], "mode": "bicubic"}),
    ("upsample:size=56x56,mode=bilinear,align_corners=true", "nn.UpsamplingBilinear2d(size=56)",
     {"op": "upsample", "size": 56, "mode": "bilinear", "align_corners": True}),
    ("relu", "nn.ReLU()", {"op": "relu"}),
    ("relu", "nn.ReLU(inplace=True)", {"op": "relu"}),
    ("sigmoid", "nn.Sigmoid()", {"op": "sigmoid"}),
    ("tanh", "nn.Tanh()", {"op": "tanh"}),
    ("leakyrelu:0.2", "nn.LeakyReLU(0.2)", {"op": "leakyrelu", "negative_slope": 0.2}),
    ("leakyrelu", "nn.LeakyReLU()", {"op": "leakyrelu"}),
    ("grayscale", None, {"op": "grayscale"}),
    ("flatten", "nn.Flatten()", {"op": "flatten"}),
    ("linear:120,in_features=400", "nn.Linear(400, 120)", {"op": "linear", "in_features": 400, "out_features": 120}),
    ("linear:10,bias=false", None, {"op": "linear", "out_features": 10, "bias": False}),
    ("linear:120,in_features=400", "nn.Linear(in_features=16*5*5, out_features=120),  # b*400 => b*120",
     {"op": "linear", "in_features": 400, "out_features": 120}),
]


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(toml_value(v) for v in value) + "]"


def toml_text(tables) -> str:
    return "\n".join(
        "[[stage]]\n" + "".join(f"{key} = {toml_value(value)}\n" for key, value in table.items())
        for table in tables
    )


def test_every_op_has_a_spelling_row():
    assert {row[2]["op"] for row in SPELLINGS} == set(known_ops())


@pytest.mark.parametrize("compact, call, table", SPELLINGS, ids=[row[0] for row in SPELLINGS])
def test_spellings_parse_to_equal_stages(compact, call, table, tmp_path):
    stage = parse_stage(compact)
    assert stage.op == table["op"]
    if call is not None:
        assert parse_stage(call) == stage
    assert stage_from_table(dict(table)) == stage
    assert parse_pipeline_text(toml_text([table]), "toml") == [stage]
    assert parse_pipeline_text(json.dumps({"stage": [table]}), "json") == [stage]
    (tmp_path / "p.toml").write_text(toml_text([table]), encoding="utf-8")
    (tmp_path / "p.json").write_text(json.dumps({"stage": [table]}), encoding="utf-8")
    assert parse_pipeline_file(tmp_path / "p.toml") == [stage]
    assert parse_pipeline_file(str(tmp_path / "p.json")) == [stage]
    # the label is itself a compact spec for the same stage
    assert parse_stage(stage.label()) == stage


def test_parsed_values():
    s = parse_stage("maxpool:k=2x3,s=2x3,p=0x1")
    assert (s.kernel_size, s.stride, s.padding, s.dilation, s.ceil_mode) == ((2, 3), (2, 3), (0, 1), (1, 1), False)
    assert parse_stage("maxpool:3").stride == (3, 3)
    a = parse_stage("avgpool:3,p=1,count_include_pad=false")
    assert (a.kernel_size, a.padding, a.count_include_pad) == ((3, 3), (1, 1), False)
    assert parse_stage("leakyrelu:0.2").negative_slope == 0.2
    assert parse_stage("conv:sobel-x").filter == "sobel-x"
    assert parse_stage("adaptiveavgpool:7x7").output_size == (7, 7)
    assert parse_stage("conv:weight=0 1; 2 3").kernel == ((0.0, 1.0), (2.0, 3.0))
    assert parse_stage("conv:weight=[[0, 1], [2, 3]]").kernel == ((0.0, 1.0), (2.0, 3.0))
    c = parse_stage("nn.Conv2d(1, 6, kernel_size=5, padding=2)")
    assert (c.in_channels, c.out_channels, c.kernel_size, c.padding, c.bias) == (1, 6, (5, 5), (2, 2), True)
    assert parse_stage("nn.MaxUnpool2d(2)").kernel_size == (2, 2)
    assert parse_stage("nn.ZeroPad2d((1,1,2,0))").padding == (1, 1, 2, 0)
    r = parse_stage("nn.ReflectionPad2d(2)")
    assert (r.padding, r.mode) == ((2, 2, 2, 2), "reflect")
    assert parse_stage("nn.LeakyReLU(0.2)").negative_slope == 0.2
    lin = parse_stage("nn.Linear(400, 120)")
    assert (lin.in_features, lin.out_features, lin.bias) == (400, 120, True)
    assert parse_stage("nn.MaxPool2d(2, return_indices=True)") == parse_stage("maxpool:2")
    assert parse_stage("  MAXPOOL : k = 2 , s = 1 ") == parse_stage("maxpool:k=2,s=1")


@pytest.mark.parametrize("text, value", [("true", True), ("false", False), ("True", True), ("FALSE", False)])
def test_booleans(text, value):
    assert parse_stage(f"maxpool:2,ceil={text}").ceil_mode is value
    assert parse_stage(f"avgpool:2,count_include_pad={text}").count_include_pad is value


def test_toml_and_json_pipeline_files(tmp_path):
    toml = tmp_path / "lenet.toml"
    toml.write_text(
        '[[stage]]\nop = "conv"\nin_channels = 1\nout_channels = 6\nkernel_size = 5\npadding = 2\nbias = true\n'
        '[[stage]]\nop = "sigmoid"\n'
        '[[stage]]\nop = "avgpool"\nkernel_size = 2\nstride = 2\n'
        '[[stage]]\nop = "conv"\nweight = [[0, 1], [2, 3]]\n',
        encoding="utf-8",
    )
    stages = parse_pipeline_file(toml)
    assert [s.op for s in stages] == ["conv", "sigmoid", "avgpool", "conv"]
    assert stages[0] == parse_stage("nn.Conv2d(1, 6, kernel_size=5, padding=2)")
    assert stages[3].kernel == ((0.0, 1.0), (2.0, 3.0))
    data = {"stage": [{"op": "maxpool", "kernel_size": 2}, {"op": "maxunpool"}]}
    js = tmp_path / "ed.json"
    js.write_text(json.dumps(data), encoding="utf-8")
    assert parse_pipeline_file(js) == [parse_stage("maxpool:2"), parse_stage("maxunpool")]
    other = tmp_path / "pipeline.txt"  # JSON recognised by its content
    other.write_text(json.dumps(data), encoding="utf-8")
    assert parse_pipeline_file(other) == parse_pipeline_file(js)


# --------------------------------------------------------------------------- errors


def spec_error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_stage(text)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_op_names_the_stage_and_lists_the_known_ones():
    message = spec_error("maxpoo:k=2")
    assert "'maxpoo" in message and "maxpool" in message and "medianpool" in message
    assert "known ops" in message


def test_unknown_torch_layer_lists_the_known_ones():
    message = spec_error("nn.MaxPool3d(2)")
    assert "MaxPool3d" in message and "nn.MaxPool2d" in message


def test_unknown_parameter():
    message = spec_error("maxpool:k=2,foo=3")
    assert "maxpool:k=2,foo=3" in message and "'foo'" in message and "kernel_size" in message
    message = spec_error("nn.MaxPool2d(2, strid=2)")
    assert "strid" in message and "stride" in message


def test_bad_values_say_what_was_expected():
    message = spec_error("maxpool:k=two")
    assert "maxpool:k=two" in message and "kernel_size=two" in message and "expected" in message
    assert "2x3" in message
    message = spec_error("maxpool:2,ceil=maybe")
    assert "ceil_mode=maybe" in message and "true or false" in message
    message = spec_error("maxpool:k=0")
    assert "kernel_size=0" in message and "≥ 1" in message
    message = spec_error("conv:filter=sobel-z")
    assert "sobel-z" in message and "sobel-x" in message
    message = spec_error("conv:weight=0 1; 2")
    assert "weight" in message and "equal length" in message
    message = spec_error("pad:1,mode=mirror")
    assert "mirror" in message and "reflect" in message
    message = spec_error("maxpool:2,padding=2")
    assert "padding=2" in message and "kernel_size // 2" in message


def test_missing_kernel_size():
    message = spec_error("maxpool:s=2")
    assert "maxpool:s=2" in message and "missing kernel_size" in message and "kernel_size=" in message
    assert "missing" in spec_error("nn.MaxPool2d()")
    assert "missing norm_type" in spec_error("lppool:k=2")


def test_too_many_values_and_duplicates():
    message = spec_error("maxpool:2,2,0,1,false,true,9")
    assert "'9'" in message or "9" in message
    assert "given twice" in spec_error("maxpool:2,k=3")
    assert "given twice" in spec_error("nn.MaxPool2d(2, kernel_size=3)")
    assert "positional" in spec_error("nn.ReLU(1, 2)")


@pytest.mark.parametrize("text", ["maxpool:k=(2,3", "maxpool:k=2,3)", "maxpool:k=[2,3", "nn.MaxPool2d((2, 3)"])
def test_unbalanced_brackets(text):
    message = spec_error(text)
    assert text in message
    assert "unbalanced" in message or "not a valid call" in message


def test_empty_values():
    assert "empty" in spec_error("")
    assert "empty" in spec_error("maxpool:2,,s=1")
    assert "empty" in spec_error("maxpool:2,")


@pytest.mark.parametrize(
    "text",
    [
        "nn.MaxPool2d(__import__('os').system('touch MARKER'))",
        "__import__('os').system('touch MARKER')",
        "os.system('touch MARKER')",
        "nn.MaxPool2d(*args)",
        "nn.MaxPool2d(**{})",
        "nn.MaxPool2d(**{'kernel_size': 2})",
        "lambda: __import__('os').system('touch MARKER')",
        "nn.MaxPool2d(lambda: 2)",
        "nn.MaxPool2d(open('MARKER', 'w'))",
        "nn.MaxPool2d(2).__class__('touch MARKER')",
        "getattr(nn, 'MaxPool2d')(2)",
        "nn.MaxPool2d(k := 2)",
        "nn.MaxPool2d([x for x in (2,)])",
        "maxpool:k=__import__('os').system('touch MARKER')",
        "conv:weight=[__import__('os').system('touch MARKER')]",
        "nn.MaxPool2d(2 if True else 3)",
        "nn.MaxPool2d(f'{2}')",
    ],
)
def test_non_literal_torch_args_are_never_executed(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as info:
        parse_stage(text)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "MARKER").exists()
    assert os.listdir(tmp_path) == []


def test_non_literal_message_names_the_argument():
    message = spec_error("nn.MaxPool2d(__import__('os').system('touch MARKER'))")
    assert "not a literal" in message and "__import__" in message
    message = spec_error("os.system('x')")
    assert "os.system" in message and "nn." in message
    assert "**" in spec_error("nn.MaxPool2d(**{})")


def test_table_errors_name_the_stage():
    with pytest.raises(SpecError, match=r"stage 0.*missing op"):
        parse_pipeline_text('[[stage]]\nkernel_size = 2\n', "toml", "p.toml")
    with pytest.raises(SpecError) as info:
        parse_pipeline_text('[[stage]]\nop = "maxpool"\nkernel_size = 2\n[[stage]]\nop = "maxpol"\n', "toml", "p.toml")
    assert "p.toml" in str(info.value) and "stage 1" in str(info.value) and "maxpol" in str(info.value)
    assert "known ops" in str(info.value)
    with pytest.raises(SpecError) as info:
        parse_pipeline_text('{"stage": [{"op": "maxpool", "kernel_size": "two"}]}', "json", "p.json")
    assert "p.json" in str(info.value) and "kernel_size=two" in str(info.value)
    with pytest.raises(SpecError, match="not valid TOML"):
        parse_pipeline_text("[[stage]\nop=", "toml", "p.toml")
    with pytest.raises(SpecError, match="not valid JSON"):
        parse_pipeline_text("{", "json", "p.json")
    with pytest.raises(SpecError, match="no stages"):
        parse_pipeline_text("{}", "json", "p.json")
    with pytest.raises(SpecError, match="no stages"):
        parse_pipeline_text("[1, 2]", "json", "p.json")
    with pytest.raises(SpecError, match="expected a table"):
        parse_pipeline_text('{"stage": [1]}', "json", "p.json")


def test_missing_pipeline_file(tmp_path):
    with pytest.raises(SpecError) as info:
        parse_pipeline_file(tmp_path / "nope.toml")
    assert "nope.toml" in str(info.value)
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(SpecError, match="bin.toml"):
        parse_pipeline_file(tmp_path / "bin.toml")


# --------------------------------------------------------------------------- fuzz

ALPHABET = st.sampled_from(list("():,=x[]{};'\"\\*.- _0123456789abcdefklnpsuvwyzMNP\x00\t\n") + [
    "nn.", "maxpool", "conv", "weight", "None", "True", "1e309", "9" * 5000, "lambda", "**", "(" * 120,
    "[" * 120, "{[1]: 2}", "{[]}", "[[[]]]", "x=", "k=", "output_size", "-", "nan", "inf",
])


@FUZZ
@given(st.sampled_from(known_ops() + ["nn.MaxPool2d(", "nn.Conv2d(", "AvgPool2d(", "nn.Linear("]),
       st.lists(ALPHABET, max_size=12).map("".join))
def test_fuzz_structured_text_only_raises_spec_errors(head, tail):
    text = head + (":" if not head.endswith("(") else "") + tail
    try:
        parse_stage(text)
    except SpecError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)


@FUZZ
@given(st.sampled_from(known_ops()), st.dictionaries(
    st.sampled_from(["kernel_size", "k", "stride", "padding", "dilation", "ceil_mode", "output_size",
                     "weight", "filter", "norm_type", "mode", "value", "bias", "channels", "in_channels",
                     "out_features", "output_ratio", "negative_slope", "divisor_override", "sigma"]),
    json_values, max_size=4))
def test_fuzz_tables_only_raise_spec_errors(op, params):
    try:
        stage_from_table({"op": op, **params})
    except SpecError:
        pass


@pytest.mark.parametrize("text", ["nn.MaxPool2d(1x)", "conv:weight=[1if 1 else 2]", "maxpool:k=[1x]", "nn.MaxPool2d(2 is 2)"])
def test_errors_print_nothing_else(text):
    """A SyntaxWarning from ast would print a second stderr line next to the one-line error."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SpecError):
            parse_stage(text)
    assert [str(w.message) for w in caught] == []


def test_torch_calls_copied_from_a_tutorial():
    assert parse_stage("nn.Linear(16 * 5 * 5, 120)") == parse_stage("nn.Linear(400, 120)")
    assert parse_stage("nn.Sigmoid(),") == parse_stage("sigmoid")
    assert parse_stage("nn.AvgPool2d(kernel_size=2, stride=2), #b*6*28*28 =>b*6*14*14") == parse_stage("avgpool:2")
    assert "kernel_size=3.0" in spec_error("nn.MaxPool2d(6 / 2)")  # true division gives a float
    assert parse_stage("nn.MaxPool2d((4 // 2, 3), stride=-(-2))") == parse_stage("maxpool:2x3,s=2")
    assert "not a literal" in spec_error("nn.Linear(2 ** 100, 1)")
    assert "not a literal" in spec_error("nn.Linear(10000000000000 * 2, 1)")
    assert "not a literal" in spec_error("nn.Linear(1 // 0, 1)")
    assert "not a literal" in spec_error("nn.Linear(n * 2, 1)")
    assert "not a call" in spec_error("nn.Sigmoid(), nn.ReLU()")


def test_torch_pad_classes_take_only_their_own_arguments():
    assert "at most 1 positional" in spec_error("nn.ZeroPad2d(1, 0.5)")
    assert parse_stage("nn.ConstantPad2d(1, 0.5)").value == 0.5
    assert "compact specs" in spec_error("maxpool(2)")


def test_long_specs_are_shortened_in_messages():
    message = spec_error("maxpool:k=" + "9" * 500 + "x")
    assert len(message) < 400
    message = spec_error("nn.MaxPool2d(" + "-" * 100000 + "1)")
    assert len(message) < 400


# --------------------------------------------------------------------------- every torch spelling


def _sizes(low: int, high: int):
    """How a size can be written in a torch call: an int, a 1-tuple, a pair (tuple or list), and the
    spellings torch refuses or takes as "default" for some arguments (3-tuples, None, (), floats)."""
    one = st.integers(low, high)
    return st.one_of(
        one.map(repr), one.map(lambda v: f"({v},)"), st.tuples(one, one).map(repr), st.lists(one, min_size=2, max_size=2).map(repr),
        st.lists(one, min_size=1, max_size=1).map(repr), st.tuples(one, one, one).map(repr),
        st.sampled_from(["None", "()", "[]", "1.5", "(2.0, 2)", "'2'"]),
    )


_BOOLS = st.sampled_from(["True", "False", "0", "1", "None"])
_SIGNATURES = {  # torch's positional order, and how each argument may be spelt
    "MaxPool2d": [("kernel_size", _sizes(0, 4)), ("stride", _sizes(0, 3)), ("padding", _sizes(0, 2)),
                  ("dilation", _sizes(0, 2)), ("return_indices", _BOOLS), ("ceil_mode", _BOOLS)],
    "AvgPool2d": [("kernel_size", _sizes(0, 4)), ("stride", _sizes(0, 3)), ("padding", _sizes(0, 2)),
                  ("ceil_mode", _BOOLS), ("count_include_pad", _BOOLS),
                  ("divisor_override", st.sampled_from(["None", "0", "1", "3", "-2", "2.5"]))],
    "LPPool2d": [("norm_type", st.sampled_from(["1", "2", "2.5", "0", "-1", "float('inf')"])),
                 ("kernel_size", _sizes(1, 4)), ("stride", _sizes(0, 3)), ("ceil_mode", _BOOLS)],
    "AdaptiveMaxPool2d": [("output_size", st.one_of(_sizes(0, 5), st.sampled_from(["(None, 3)", "[2, None]", "(None, None)"]))),
                          ("return_indices", _BOOLS)],
    "AdaptiveAvgPool2d": [("output_size", st.one_of(_sizes(0, 5), st.sampled_from(["(None, 3)", "[2, None]", "(None, None)"])))],
    "Conv2d": [("in_channels", st.sampled_from(["3"])), ("out_channels", st.sampled_from(["1", "2", "3"])),
               ("kernel_size", _sizes(1, 4)), ("stride", _sizes(0, 3)),
               ("padding", st.one_of(_sizes(0, 2), st.sampled_from(["'same'", "'valid'", "'full'"]))),
               ("dilation", _sizes(0, 2)), ("groups", st.sampled_from(["1", "3", "2"])), ("bias", _BOOLS),
               ("padding_mode", st.sampled_from(["'zeros'", "'reflect'", "'replicate'", "'circular'", "'mirror'"]))],
    "ZeroPad2d": [("padding", st.one_of(_sizes(0, 3), st.tuples(*[st.integers(0, 3)] * 4).map(repr)))],
    "ConstantPad2d": [("padding", st.one_of(_sizes(0, 3), st.tuples(*[st.integers(0, 3)] * 4).map(repr))),
                      ("value", st.sampled_from(["0", "0.5", "1", "-1"]))],
    "ReflectionPad2d": [("padding", st.one_of(_sizes(0, 3), st.tuples(*[st.integers(0, 3)] * 4).map(repr)))],
    "ReplicationPad2d": [("padding", st.one_of(_sizes(0, 3), st.tuples(*[st.integers(0, 3)] * 4).map(repr)))],
    "LeakyReLU": [("negative_slope", st.sampled_from(["0.2", "0", "1e-2", "-0.5"])), ("inplace", _BOOLS)],
}


@st.composite
def torch_spellings(draw):
    """A call of a torch layer, its arguments positional up to a point and keywords after it."""
    name = draw(st.sampled_from(sorted(_SIGNATURES)))
    signature = _SIGNATURES[name]
    given_count = draw(st.integers(1 if name not in ("LeakyReLU",) else 0, len(signature)))
    chosen = [(arg, draw(spelling)) for arg, spelling in signature[:given_count]]
    positional = draw(st.integers(0, len(chosen)))
    skipped = [(arg, value) for arg, value in chosen[positional:] if draw(st.booleans())]
    keywords = [pair for pair in chosen[positional:] if pair not in skipped or pair[0] == signature[0][0]]
    args = [value for _, value in chosen[:positional]] + [f"{arg}={value}" for arg, value in keywords]
    return name, f"nn.{name}({', '.join(args)})"


def _torch_shape(call: str):
    """The output shape torch gives on a 1×3×9×9 input, or None where torch refuses the call."""
    import warnings

    import torch
    import torch.nn as nn

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = eval(call, {"nn": nn})  # the test's own generated text, never a user's
            out = module(torch.rand(1, 3, 9, 9))
    except Exception:  # noqa: BLE001 — any refusal by torch, at construction or in forward
        return None
    out = out[0] if isinstance(out, tuple) else out
    shape = tuple(out.shape)
    return shape if min(shape) >= 1 else None


def _our_shape(call: str):
    from poolcli.core.plan import Pipeline
    from poolcli.errors import PlanError

    try:
        return Pipeline([parse_stage(call)]).plan((1, 3, 9, 9)).output_shape
    except (SpecError, PlanError):
        return None


@settings(max_examples=int(os.environ.get("POOLCLI_FUZZ_EXAMPLES", 400)), deadline=None)
@given(torch_spellings())
@example(("Conv2d", "nn.Conv2d(in_channels=3, out_channels=1, kernel_size=1, padding=(0,), padding_mode='reflect')"))
def test_torch_calls_are_accepted_exactly_as_torch_accepts_them(spelling):
    """Every spelling torch takes for these layers, poolcli takes with the same output shape; what
    torch refuses, poolcli refuses (DESIGN.md §8: positional or keyword, int, 1-tuple, pair, list,
    ``stride=()`` or ``None`` for the default)."""
    _, call = spelling
    assert _our_shape(call) == _torch_shape(call), call
