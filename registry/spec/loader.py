"""Load a spec from YAML or JSON text (or a file) with errors that name the field and its line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from registry.errors import InvalidInput
from registry.spec.model import CompositionSpec, SpecFieldError


def load_spec(source: str | os.PathLike[str]) -> CompositionSpec:
    """`source` is spec text, or a path to a .yaml/.yml/.json file. Text starting with `{` is JSON;
    both formats get line numbers in errors (from the YAML node tree, JSON being YAML-compatible)."""
    text = _read(source)
    if text.lstrip().startswith(("{", "[")):
        data, node = _parse_json(text)
    else:
        data, node = _parse_yaml(text)
    if not isinstance(data, dict):
        raise InvalidInput("spec: expected a mapping of fields at the top level", field="spec")
    try:
        return CompositionSpec.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc, node) from None


def _parse_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    try:
        return yaml.safe_load(text), yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInput(f"spec: not valid YAML{where}: {problem}", field="spec") from None


def _parse_json(text: str) -> tuple[Any, yaml.Node | None]:
    """JSON values with JSON's own rules (YAML 1.1 would read 1e-3 as a string); the YAML node tree
    is only used for line numbers (tabs are plain whitespace in JSON, not in YAML indentation)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"spec: not valid JSON at line {exc.lineno}: {exc.msg}", field="spec") from None
    try:
        node = yaml.compose(text.replace("\t", " "), Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        node = None
    return data, node


def _read(source: str | os.PathLike[str]) -> str:
    if isinstance(source, os.PathLike):
        return Path(source).read_text(encoding="utf-8")
    if "\n" not in source and source.strip().endswith((".yaml", ".yml", ".json")):
        path = Path(source.strip())
        if not path.is_file():
            raise InvalidInput(f"spec file {source} not found", field="spec")
        return path.read_text(encoding="utf-8")
    return source


def _located(exc: ValidationError) -> tuple[tuple[Any, ...], str, Any]:
    """The first error's path (a cross-field check's own field included), message and cause."""
    err = exc.errors()[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    cause = (err.get("ctx") or {}).get("error")
    message = str(cause) if cause is not None else err["msg"]
    if isinstance(cause, SpecFieldError):
        loc = loc + cause.loc
    message = message.removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    return loc, message, cause


def describe(exc: ValidationError) -> str:
    """`field: problem` of a spec that fails validation without its text (a stored spec re-read by a
    run, a retry, a schedule): the same words a submission gets, without a line number."""
    loc, message, _ = _located(exc)
    return f"{_dotted(loc) or 'spec'}: {message}"


def _first_error(exc: ValidationError, node: yaml.Node | None) -> InvalidInput:
    loc, message, cause = _located(exc)
    field = _dotted(loc) or "spec"
    at = cause.at if isinstance(cause, SpecFieldError) else ()
    line = _line(node, loc) if not at or _line(node, loc) != _line(node, loc[:-1]) else _line(node, at)
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    return InvalidInput(f"{field} (line {line}): {message}{suffix}", field=field)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """Line of the deepest node on `loc` (the parent's line when a field is missing)."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    # a scalar value's line; for an unknown key, the key's own line
                    node, line = value, key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
