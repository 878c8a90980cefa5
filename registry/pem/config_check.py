"""Field-by-field type checks of adapter_config.json, before any tensor is read or byte stored.

A config is valid JSON written by anyone, so every field PEFT would read is checked for the type PEFT
expects; each refusal is one `AdapterFormatError` naming the field. Regex fields (`target_modules` as a
string, `rank_pattern`/`alpha_pattern` keys) must compile, since PEFT matches them with `re`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from registry.errors import AdapterFormatError

CONFIG = "adapter_config.json"
MAX_DEPTH = 16  # PEFT configs are at most 3 levels deep; anything deeper is not a PEFT config
MAX_NAME_CHARS = 256  # base_models.name column
MAX_REVISION_CHARS = 128  # base_models.revision column
MAX_PATTERN_CHARS = 1024
MAX_RANK = 65536
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _fail(field: str, message: str) -> AdapterFormatError:
    """`field` may carry a key (`rank_pattern['q_proj']`); the error's `field` is the config field."""
    return AdapterFormatError(f"{CONFIG}: {field}: {message}", field=field.split("[", 1)[0])


def depth_of(value: object) -> int:
    """Nesting depth without recursion (a hostile config must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                return depth
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _optional_bool(config: Mapping[str, Any], field: str) -> None:
    value = config.get(field)
    if value is not None and not isinstance(value, bool):
        raise _fail(field, f"must be true or false, got {value!r:.60}")


def _regex(field: str, pattern: str) -> None:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise _fail(field, f"regular expression longer than {MAX_PATTERN_CHARS} characters")
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise _fail(field, f"{pattern[:60]!r} is not a valid regular expression ({exc})") from None


def _module_list(config: Mapping[str, Any], field: str, *, required: bool) -> None:
    """PEFT's `Optional[Union[list[str], str]]`: a list of module names, or one regex string."""
    value = config.get(field)
    if value is None:
        if required:
            raise _fail(field, "missing (a list of module names or a regex string)")
        return
    if isinstance(value, str):
        if not value:
            raise _fail(field, "must not be empty")
        _regex(field, value)
        return
    if not isinstance(value, list) or not value and required:
        raise _fail(field, f"must be a list of module names or a regex string, got {value!r:.60}")
    for item in value:
        if not isinstance(item, str) or not item or _CONTROL.search(item):
            raise _fail(field, f"entries must be non-empty module names, got {item!r:.60}")


def _optional_names(config: Mapping[str, Any], field: str) -> None:
    value = config.get(field)
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(field, f"must be a list of module names, got {value!r:.60}")


def _text(config: Mapping[str, Any], field: str, limit: int) -> None:
    value = config.get(field)
    if value is None:
        return
    if not isinstance(value, str):
        raise _fail(field, f"must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise _fail(field, f"longer than {limit} characters")
    if _CONTROL.search(value):
        raise _fail(field, "contains control characters")


def _patterns(config: Mapping[str, Any], field: str, check_value: Any) -> None:
    value = config.get(field)
    if value is None:
        return
    if not isinstance(value, dict):
        raise _fail(field, f"must be an object {{module regex: value}}, got {value!r:.60}")
    for key, item in value.items():
        _regex(field, key)
        check_value(f"{field}[{key[:40]!r}]", item)


def check_rank(field: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_RANK:
        raise _fail(field, f"must be an integer from 1 to {MAX_RANK}, got {value!r:.60}")


def check_alpha(field: str, value: object) -> None:
    if not _is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
        raise _fail(field, f"must be a finite number, got {value!r:.60}")


def check_common(config: Mapping[str, Any]) -> None:
    """Fields every PEFT type shares."""
    if depth_of(config) > MAX_DEPTH:
        raise AdapterFormatError(f"{CONFIG}: nested deeper than {MAX_DEPTH} levels", field="config")
    _text(config, "base_model_name_or_path", MAX_NAME_CHARS)
    _text(config, "revision", MAX_REVISION_CHARS)
    _optional_names(config, "modules_to_save")
    _optional_bool(config, "inference_mode")


def check_lora(config: Mapping[str, Any]) -> None:
    check_common(config)
    _module_list(config, "target_modules", required=True)
    check_rank("r", config.get("r"))
    if "lora_alpha" in config:
        check_alpha("lora_alpha", config["lora_alpha"])
    for flag in ("use_rslora", "use_dora", "lora_bias", "fan_in_fan_out"):
        _optional_bool(config, flag)
    _patterns(config, "rank_pattern", check_rank)
    _patterns(config, "alpha_pattern", check_alpha)


def check_ia3(config: Mapping[str, Any]) -> None:
    check_common(config)
    _module_list(config, "target_modules", required=True)
    _module_list(config, "feedforward_modules", required=False)
    _optional_bool(config, "fan_in_fan_out")
