"""Read statements run through SQLAlchemy: the server's reads, and writers' reads in their session."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from registry.catalog.records import records

from .statement import ReadStatement

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session


@lru_cache(maxsize=1024)
def built(statement: ReadStatement, shape: Hashable) -> Any:
    """Each statement built once per shape: building and hashing a Core statement (SQLAlchemy's cache
    key) costs more server CPU than many reads spend in the database."""
    return statement.build(shape)


class CoreReads:
    """A Core connection or an ORM session (a write reading inside its own transaction)."""

    def __init__(self, db: Connection | Session) -> None:
        self.db = db

    @property
    def dialect(self) -> str:
        # A Session has get_bind; isinstance would import the ORM, which a Core read never needs.
        return self.db.get_bind().dialect.name if hasattr(self.db, "get_bind") else self.db.dialect.name

    def rows(
        self, statement: ReadStatement, shape: Hashable = None, values: Mapping[str, Any] | None = None
    ) -> list[Any]:
        return records(self.db.execute(built(statement, shape), dict(values or {})))
