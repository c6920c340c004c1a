"""Stage specs and pipeline files → stage objects, parsed and never executed.

Two spellings give the same stage (DESIGN.md §2)::

    >>> parse_stage("maxpool:k=2x3,s=2x3,p=0x1") == parse_stage("nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))")
    True

Compact specs are ``op:value,name=value,...`` (a bare value is the op's first parameter;
aliases k, s, p, d, ceil). Torch calls are read with ``ast``: only a call of a known
``nn.*`` class with literal arguments is accepted (numbers may be combined with + − * / //, as
in d2l's ``nn.Linear(16 * 5 * 5, 120)``, and a line copied out of ``nn.Sequential`` may keep its
trailing comma and comment). Pipeline files are TOML or JSON with a
``stage`` list of tables, each with ``op`` and its parameters.
"""

from __future__ import annotations

import ast
import json
import operator
import warnings
from typing import Any

from ..errors import SpecError
from .ops import Stage, known_ops, op_class, torch_classes
from .values import Quoted

ALIASES = {"k": "kernel_size", "s": "stride", "p": "padding", "d": "dilation", "ceil": "ceil_mode"}


def parse_stage(text: str) -> Stage:
    """One stage from a compact spec (``avgpool:3,p=1``) or a torch call (``nn.AvgPool2d(3)``)."""
    spec = text.strip()
    if not spec:
        raise SpecError("empty stage spec", "for example -S maxpool:k=2,s=2")
    # A call: a "(" before any ":" (``nn.MaxPool2d(2)``, ``AvgPool2d(2)``); compact specs put their
    # brackets after the op's colon (``maxpool:(2,3)``).
    if "(" in spec.split(":", 1)[0]:
        return _parse_torch_call(spec)
    return _parse_compact(spec)


def _q(spec: str) -> str:
    """A spec quoted for a message, shortened so that a runaway one stays a readable line."""
    return repr(spec) if len(spec) <= 80 else repr(spec[:60]) + "…"


def _parse_compact(spec: str) -> Stage:
    op, _, rest = spec.partition(":")
    op = op.strip().lower()
    if not op.isidentifier():
        raise SpecError(f"stage {_q(spec)}: {_q(op)} is not an op name", f"known ops: {', '.join(known_ops())}")
    cls = _stage_class(op, f"stage {_q(spec)}")
    positional_names = cls.compact_args if cls.compact_args is not None else cls.args
    values: dict[str, Any] = {}
    position = 0
    for token in _split_top_level(rest, spec) if rest.strip() else []:
        name, eq, value = token.partition("=")
        if eq and _looks_like_name(name):
            key = ALIASES.get(name.strip(), name.strip())
        else:
            if position >= len(positional_names):
                raise SpecError(
                    f"stage {_q(spec)}: unexpected value {_q(token.strip())}",
                    f"{op} takes {len(positional_names)} bare value(s); name the parameter, like k=2",
                )
            key, value = positional_names[position], token
            position += 1
        if key in values:
            raise SpecError(f"stage {_q(spec)}: {key} given twice", "give each parameter once")
        values[key] = value.strip()
    return _create(cls, values, spec)


def _looks_like_name(name: str) -> bool:
    return name.strip().isidentifier()


def _split_top_level(text: str, spec: str | None = None) -> list[str]:
    """Split on commas that are not inside brackets or parentheses: ``k=(2,3),s=1``."""
    where = f"stage {_q(spec if spec is not None else text)}"
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                raise SpecError(f"{where}: unbalanced brackets, {char!r} closes nothing", "remove it, or open it with ( or [")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    if depth != 0:
        raise SpecError(f"{where}: unbalanced brackets in {_q(text.strip())}", "close every ( and [")
    if any(not p.strip() for p in parts):
        raise SpecError(f"{where}: empty value in {_q(text.strip())}", "remove the doubled or trailing comma")
    return parts


def _stage_class(op: str, where: str) -> type[Stage]:
    try:
        return op_class(op)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc.what}", exc.hint) from None


def _parse_torch_call(spec: str) -> Stage:
    example = "write it like nn.MaxPool2d(2, stride=2)"
    try:
        with warnings.catch_warnings():  # a SyntaxWarning would print a second line on stderr
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(spec, mode="eval")
    except SyntaxError as exc:
        raise SpecError(f"stage {_q(spec)} is not a valid call: {exc.msg}", example) from None
    except (ValueError, MemoryError, RecursionError):
        raise SpecError(f"stage {_q(spec)} is not a valid call", example) from None
    call = tree.body
    if isinstance(call, ast.Tuple) and len(call.elts) == 1:
        call = call.elts[0]  # a line copied out of nn.Sequential(...), trailing comma and all
    if not isinstance(call, ast.Call):
        raise SpecError(f"stage {_q(spec)} is not a call", example)
    name = _call_name(call.func, spec)
    table = torch_classes()
    cls = table.get(name)
    if cls is None:
        compact = f"; compact specs are op:values, like {name.lower()}:2" if name.lower() in known_ops() else ""
        raise SpecError(
            f"stage {_q(spec)}: unknown torch layer {name!r}",
            f"known: {', '.join('nn.' + n for n in table)}{compact}",
        )
    positional = cls.torch_args.get(name, cls.args)
    values: dict[str, Any] = dict(cls.torch_presets.get(name, {}))
    if len(call.args) > len(positional):
        raise SpecError(
            f"stage {_q(spec)}: nn.{name} takes at most {len(positional)} positional argument(s), "
            f"got {len(call.args)}",
            f"nn.{name}({', '.join(positional)})",
        )
    for arg_name, node in zip(positional, call.args):
        values[arg_name] = _literal(node, spec)
    for keyword in call.keywords:
        if keyword.arg is None:
            raise SpecError(f"stage {_q(spec)}: **kwargs are not accepted", "write the arguments out")
        if keyword.arg in values and keyword.arg not in cls.torch_presets.get(name, {}):
            raise SpecError(
                f"stage {_q(spec)}: {keyword.arg} given twice", "give it either by position or by name"
            )
        values[keyword.arg] = _literal(keyword.value, spec)
    return _create(cls, values, spec, torch_name=name)


def _call_name(func: ast.expr, spec: str) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id in ("nn", "torch")
    ):
        return func.attr
    if (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Attribute)
        and isinstance(func.value.value, ast.Name)
        and (func.value.value.id, func.value.attr) == ("torch", "nn")
    ):
        return func.attr
    raise SpecError(f"stage {_q(spec)}: only nn.Layer(...) calls are accepted", "for example nn.MaxPool2d(2)")


_ARITHMETIC = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv, ast.Div: operator.truediv,
}


def _arithmetic(node: ast.expr) -> Any:
    """Numbers combined with + − * / // (``nn.Linear(16 * 5 * 5, 120)``, as LeNet is written),
    and tuples of them: computed from the syntax tree, never by eval; no powers, no names."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _arithmetic(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _arithmetic(node.left), _arithmetic(node.right)
        if max(abs(left), abs(right)) > 10**12:
            raise ValueError("numbers too large")
        try:
            return _ARITHMETIC[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ValueError("division by zero") from None
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_arithmetic(item) for item in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    raise ValueError("not a number")


_SPECIAL_FLOATS = ("inf", "-inf", "+inf", "infinity", "-infinity", "nan")


def _literal(node: ast.expr, spec: str) -> Any:
    """An argument's value: a Python literal (a string one stays text, ``Quoted``), arithmetic on
    numbers, or ``float('inf')`` (how LPPool2d's max is written)."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float"
            and len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str) and node.args[0].value.strip().lower() in _SPECIAL_FLOATS):
        return float(node.args[0].value)
    try:
        value = ast.literal_eval(node)
        return Quoted(value) if isinstance(value, str) else value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return _arithmetic(node)
    except (ValueError, TypeError, RecursionError, OverflowError):
        try:
            text = _q(ast.unparse(node))
        except (ValueError, RecursionError):
            text = "an argument"
        raise SpecError(
            f"stage {_q(spec)}: argument {text} is not a literal", "use numbers (16 * 5 * 5 is fine), tuples, strings, True/False/None"
        ) from None


def _create(cls: type[Stage], values: dict[str, Any], spec: str, torch_name: str | None = None) -> Stage:
    try:
        return cls.create(values, torch_name=torch_name)
    except SpecError as exc:
        if exc.what.startswith("stage "):
            raise
        raise SpecError(f"stage {_q(spec)}: {exc.what}", exc.hint) from None


def stage_from_table(table: dict[str, Any], where: str = "stage") -> Stage:
    """One stage from a TOML/JSON table: ``{"op": "maxpool", "kernel_size": 2}``."""
    if not isinstance(table, dict):
        raise SpecError(f"{where}: expected a table with op = ...", 'for example {"op": "maxpool", "kernel_size": 2}')
    values = dict(table)
    op = values.pop("op", None)
    if not isinstance(op, str):
        raise SpecError(f"{where}: missing op", f"known ops: {', '.join(known_ops())}")
    cls = _stage_class(op.strip().lower(), where)
    named: dict[str, Any] = {}
    for key, value in values.items():
        name = ALIASES.get(key, key)
        if name in named:
            raise SpecError(f"{where} ({op}): {name} given twice ({key!r} is an alias)", "give each parameter once")
        named[name] = value
    values = named
    try:
        return cls.create(values)
    except SpecError as exc:
        raise SpecError(f"{where} ({op}): {exc.what}", exc.hint) from None


def parse_pipeline_text(text: str, kind: str, source: str = "pipeline") -> list[Stage]:
    """Stages from TOML (``[[stage]]`` tables) or JSON (``{"stage": [...]}``) text; ``source``
    names it in messages. ``poolcli.io.specs`` reads pipeline files, and the weight files they name."""
    try:
        if kind == "json":
            data = json.loads(text)
        else:
            import tomllib

            data = tomllib.loads(text)
    except (ValueError, json.JSONDecodeError) as exc:
        raise SpecError(f"{source}: not valid {kind.upper()}: {exc}", "see examples/ for pipeline files") from None
    except (RecursionError, MemoryError):
        raise SpecError(f"{source}: not valid {kind.upper()}: nested too deeply", "see examples/ for pipeline files") from None
    stages = data.get("stage") if isinstance(data, dict) else None
    if not isinstance(stages, list) or not stages:
        raise SpecError(
            f"{source}: no stages", 'expected [[stage]] tables (TOML) or {"stage": [...]} (JSON)'
        )
    return [stage_from_table(t, f"{source}: stage {i}") for i, t in enumerate(stages)]

