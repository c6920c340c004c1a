"""Stage specs and pipeline files → stage objects, parsed and never executed.

Two spellings give the same stage (DESIGN.md §2)::

    >>> parse_stage("maxpool:k=2x3,s=2x3,p=0x1") == parse_stage("nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))")
    True

Compact specs are ``op:value,name=value,...`` (a bare value is the op's first parameter;
aliases k, s, p, d, ceil). Torch calls are read with ``ast``: only a call of a known
``nn.*`` class with literal arguments is accepted. Pipeline files are TOML or JSON with a
``stage`` list of tables, each with ``op`` and its parameters.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from .errors import SpecError
from .stages import STAGE_CLASSES, Stage, known_ops, stage_class

ALIASES = {"k": "kernel_size", "s": "stride", "p": "padding", "d": "dilation", "ceil": "ceil_mode"}


def _torch_table() -> dict[str, type[Stage]]:
    return {name: cls for cls in STAGE_CLASSES for name in cls.torch_names}


def parse_stage(text: str) -> Stage:
    """One stage from a compact spec (``avgpool:3,p=1``) or a torch call (``nn.AvgPool2d(3)``)."""
    spec = text.strip()
    if not spec:
        raise SpecError("empty stage spec", "for example -S maxpool:k=2,s=2")
    head = spec.split(":", 1)[0].split("(", 1)[0].strip()
    if "(" in spec and ":" not in head and (head.startswith("nn.") or head in _torch_table() or "." in head):
        return _parse_torch_call(spec)
    return _parse_compact(spec)


def _parse_compact(spec: str) -> Stage:
    op, _, rest = spec.partition(":")
    op = op.strip().lower()
    if not op.isidentifier():
        raise SpecError(f"stage {spec!r}: {op!r} is not an op name", f"known ops: {', '.join(known_ops())}")
    cls = stage_class(op)
    positional_names = cls.compact_args if cls.compact_args is not None else cls.args
    values: dict[str, Any] = {}
    position = 0
    for token in _split_top_level(rest) if rest.strip() else []:
        name, eq, value = token.partition("=")
        if eq and _looks_like_name(name):
            key = ALIASES.get(name.strip(), name.strip())
        else:
            if position >= len(positional_names):
                raise SpecError(
                    f"stage {spec!r}: unexpected value {token.strip()!r}",
                    f"{op} takes {len(positional_names)} bare value(s); name the parameter, like k=2",
                )
            key, value = positional_names[position], token
            position += 1
        if key in values:
            raise SpecError(f"stage {spec!r}: {key} given twice", "give each parameter once")
        values[key] = value.strip()
    return _create(cls, values, spec)


def _looks_like_name(name: str) -> bool:
    return name.strip().isidentifier()


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets or parentheses: ``k=(2,3),s=1``."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    if depth != 0:
        raise SpecError(f"unbalanced brackets in {text!r}", "close every ( and [")
    if any(not p.strip() for p in parts):
        raise SpecError(f"empty value in {text!r}", "remove the doubled or trailing comma")
    return parts


def _parse_torch_call(spec: str) -> Stage:
    try:
        tree = ast.parse(spec, mode="eval")
    except SyntaxError as exc:
        raise SpecError(f"stage {spec!r} is not a valid call: {exc.msg}", "write it like nn.MaxPool2d(2, stride=2)") from None
    call = tree.body
    if not isinstance(call, ast.Call):
        raise SpecError(f"stage {spec!r} is not a call", "write it like nn.MaxPool2d(2, stride=2)")
    name = _call_name(call.func, spec)
    table = _torch_table()
    cls = table.get(name)
    if cls is None:
        raise SpecError(
            f"stage {spec!r}: unknown torch layer {name!r}",
            f"known: {', '.join('nn.' + n for n in table)}",
        )
    values: dict[str, Any] = dict(cls.torch_presets.get(name, {}))
    if len(call.args) > len(cls.args):
        raise SpecError(f"stage {spec!r}: nn.{name} takes at most {len(cls.args)} positional arguments", "")
    for arg_name, node in zip(cls.args, call.args):
        values[arg_name] = _literal(node, spec)
    for keyword in call.keywords:
        if keyword.arg is None:
            raise SpecError(f"stage {spec!r}: **kwargs are not accepted", "write the arguments out")
        if keyword.arg in values and keyword.arg not in cls.torch_presets.get(name, {}):
            raise SpecError(f"stage {spec!r}: {keyword.arg} given twice", "")
        values[keyword.arg] = _literal(keyword.value, spec)
    return _create(cls, values, spec)


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
    raise SpecError(f"stage {spec!r}: only nn.Layer(...) calls are accepted", "for example nn.MaxPool2d(2)")


def _literal(node: ast.expr, spec: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        text = ast.unparse(node)
        raise SpecError(
            f"stage {spec!r}: argument {text!r} is not a literal", "use numbers, tuples, strings, True/False/None"
        ) from None


def _create(cls: type[Stage], values: dict[str, Any], spec: str) -> Stage:
    try:
        return cls.create(values)
    except SpecError as exc:
        if exc.what.startswith("stage "):
            raise
        raise SpecError(f"stage {spec!r}: {exc.what}", exc.hint) from None


def stage_from_table(table: dict[str, Any], where: str = "stage") -> Stage:
    """One stage from a TOML/JSON table: ``{"op": "maxpool", "kernel_size": 2}``."""
    if not isinstance(table, dict):
        raise SpecError(f"{where}: expected a table with op = ...", 'for example {"op": "maxpool", "kernel_size": 2}')
    values = dict(table)
    op = values.pop("op", None)
    if not isinstance(op, str):
        raise SpecError(f"{where}: missing op", f"known ops: {', '.join(known_ops())}")
    values = {ALIASES.get(k, k): v for k, v in values.items()}
    cls = stage_class(op.lower())
    try:
        return cls.create(values)
    except SpecError as exc:
        raise SpecError(f"{where} ({op}): {exc.what}", exc.hint) from None


def parse_pipeline_text(text: str, kind: str, source: str = "pipeline") -> list[Stage]:
    """Stages from TOML (``[[stage]]`` tables) or JSON (``{"stage": [...]}``) text."""
    try:
        if kind == "json":
            data = json.loads(text)
        else:
            import tomllib

            data = tomllib.loads(text)
    except (ValueError, json.JSONDecodeError) as exc:
        raise SpecError(f"{source}: not valid {kind.upper()}: {exc}", "see examples/ for pipeline files") from None
    stages = data.get("stage") if isinstance(data, dict) else None
    if not isinstance(stages, list) or not stages:
        raise SpecError(
            f"{source}: no stages", 'expected [[stage]] tables (TOML) or {"stage": [...]} (JSON)'
        )
    return [stage_from_table(t, f"{source}: stage {i}") for i, t in enumerate(stages)]


def parse_pipeline_file(path: str | Path) -> list[Stage]:
    """Stages from a ``.toml`` or ``.json`` pipeline file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"pipeline file {path}: {exc.strerror if isinstance(exc, OSError) else exc}", "") from None
    kind = "json" if path.suffix.lower() == ".json" or text.lstrip().startswith("{") else "toml"
    return parse_pipeline_text(text, kind, str(path))
