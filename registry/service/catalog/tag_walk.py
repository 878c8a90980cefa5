"""Which tag of a filter a listing walks (PostgreSQL): the rarest, by how many adapters have each tag.

A tag filter's page walks one tag's entries in listing order (tables.tag_entries) and probes the other
tags' entries for each adapter it meets, stopping at the page's last match: it costs up to that tag's
entries, so it must be the rarest tag's (at 1M versions, `tier:gold` + `team:t7` walked by `team:t7`
takes ~1 ms; by `tier:gold`, 74 ms). A generic plan cannot pick by value, so the service does: each
tag's entries are counted up to WALK_MAX + 1 (an index-only scan) and the count is kept per process for
COUNT_SECONDS. A stale count can only make a filter slower for that long, never its answer different.

When every tag of the filter is on more than WALK_MAX adapters, the filter is not walked: the GIN index
on adapters.tag_set intersects the tags (migration 0014), which stays cheap when the tags rarely meet or
other filters keep few of them (a walk would visit most entries of its tag), and the planner, which
plans that statement for its values, reads a large intersection in listing order instead.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from sqlalchemy import Integer, String, bindparam, func, literal, select
from sqlalchemy.engine import Engine

from registry.catalog import tables as t

WALK_MAX = 5_000
COUNT_SECONDS = 60.0
_KEPT = 4_096  # counts kept per process (least recently used go first)

_te = t.tag_entries.c
_COUNT = select(func.count()).select_from(
    select(literal(1))
    .where(_te.key == bindparam("key", type_=String), _te.value == bindparam("value", type_=String))
    .limit(bindparam("cap", type_=Integer))
    .subquery()
)

_lock = threading.Lock()
# Keyed by the engine the count was read through (one per database URL and limits: db.get_engine).
_counts: OrderedDict[tuple[Engine, str, str], tuple[int, float]] = OrderedDict()


def _count(db: Any, key: str, value: str) -> int:
    """Adapters with the tag key=value, up to WALK_MAX + 1."""
    now = time.monotonic()
    kept_as = (db.engine, key, value)
    with _lock:
        kept = _counts.get(kept_as)
        if kept is not None and kept[1] > now:
            _counts.move_to_end(kept_as)
            return kept[0]
    found = int(db.execute(_COUNT, {"key": key, "value": value, "cap": WALK_MAX + 1}).scalar_one())
    with _lock:
        _counts[kept_as] = (found, now + COUNT_SECONDS)
        _counts.move_to_end(kept_as)
        while len(_counts) > _KEPT:
            _counts.popitem(last=False)
    return found


def walk_order(db: Any, tags: dict[str, str]) -> list[tuple[str, str]] | None:
    """The filter's tags, the one to walk first (the rarest); None when every tag is on more than
    WALK_MAX adapters. So a walk visits at most WALK_MAX entries, whatever the listing's other filters
    (a common tag with a rare status would walk most of its entries to fill a page)."""
    counted = sorted((_count(db, key, value), key, value) for key, value in tags.items())
    if counted[0][0] > WALK_MAX:
        return None
    return [(key, value) for _, key, value in counted]
