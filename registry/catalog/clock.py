"""The catalog's timestamps: written in UTC, read back as UTC. No SQLAlchemy here: the views
(registry.views), which the remote CLI imports, normalise the timestamps they are built from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def utc(value: datetime) -> datetime: ...
@overload
def utc(value: None) -> None: ...
def utc(value: datetime | None) -> datetime | None:
    """SQLite keeps no time zone: a naive timestamp read back is UTC (every one is written by utcnow).
    The ORM says so on load (registry.catalog.sqlite_tz); Core reads and the views' constructors call
    this."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
