"""The rule of a base model's name, on rows already read: no SQLAlchemy here (the CLI's local reads)."""

from __future__ import annotations

from typing import Any

from registry.errors import InvalidInput


def one_named(rows: list[Any], name: str) -> Any:
    """The one base of `rows` (the bases called `name`, at the revision asked if any), None when there is
    none; refused when the name has several and no revision was asked."""
    if len(rows) > 1:
        revisions = ", ".join(r.revision for r in rows)
        raise InvalidInput(
            f"base_model: {name!r} has several revisions ({revisions}); name one as NAME@REVISION",
            field="base_model",
        )
    return rows[0] if rows else None
