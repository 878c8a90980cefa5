"""Target-module fields of the output config: the union of the inputs' targets.

The output must make PEFT create exactly the modules it has weights for (else PEFT warns about
missing keys), so: identical target settings are kept; plain name lists are unioned; anything else
(regex strings that differ, layer filters) falls back to the exact module paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FILTER_FIELDS = ("layers_to_transform", "layers_pattern", "exclude_modules")


def unify(configs: Sequence[Mapping[str, Any]], exact: Mapping[str, list[str]]) -> dict[str, Any]:
    """`exact` = {field: module paths that field must match}; returns the output config fields."""
    fields = list(exact)
    watched = fields + list(FILTER_FIELDS)
    first = {f: configs[0].get(f) for f in watched}
    if all({f: c.get(f) for f in watched} == first for c in configs):
        return {f: v for f, v in first.items() if f in configs[0]}
    no_filters = all(not c.get(f) for c in configs for f in FILTER_FIELDS)
    lists = all(isinstance(c.get(f), list | type(None)) for c in configs for f in fields)
    if no_filters and lists:
        out: dict[str, Any] = {f: sorted({t for c in configs for t in (c.get(f) or [])}) for f in fields}
    else:
        out = {f: sorted(exact[f]) for f in fields}
    # Only fields the config class knows (IA3Config has no layers_to_transform).
    out.update({f: None for f in FILTER_FIELDS if any(f in c for c in configs)})
    return out
