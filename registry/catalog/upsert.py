"""INSERT ... ON CONFLICT DO NOTHING on both PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

from sqlalchemy import literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(session: Session, model: type, values: dict[str, Any], conflict: list[str]) -> bool:
    """True when the row was inserted, False when a row with those keys already existed.

    Told by RETURNING, not by the rowcount: psycopg 3 under SQLAlchemy 2.0 reports -1 for this
    statement on PostgreSQL whether or not a row went in (so every conflict looked like an insert)."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    stmt = (
        module.insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=conflict)
        .returning(literal_column("1"))
    )
    return session.execute(stmt).first() is not None
