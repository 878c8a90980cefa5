"""SQLite keeps no time zone: `DateTime(timezone=True)` columns come back naive there, so the API would
print `2026-01-01T00:00:00` where OpenAPI promises an RFC 3339 date-time with an offset. Every catalog
timestamp is written in UTC (models.utcnow), so a naive value read back is UTC: say so on load."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import event


def _utc_on_load(target: Any, _context: Any) -> None:
    state = target.__dict__
    for attr in target.__mapper__.column_attrs:
        value = state.get(attr.key)
        if isinstance(value, datetime) and value.tzinfo is None:
            state[attr.key] = value.replace(tzinfo=UTC)  # in __dict__: not a change to flush


@cache
def install() -> None:
    from .models import Base

    event.listen(Base, "load", _utc_on_load, propagate=True)
    event.listen(
        Base, "refresh", lambda target, context, _attrs: _utc_on_load(target, context), propagate=True
    )
