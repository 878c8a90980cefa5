"""A read statement by name, and what runs one. Imports no SQLAlchemy (the CLI's local reads)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any, Protocol


@dataclass(frozen=True)
class ReadStatement:
    """`builder` is `module:function`, a function of one hashable shape (which filters a read has, the
    kind of reader: what changes the SQL, never a value) returning a Core statement whose values are all
    bound by name at execution. The builder is imported only when a statement is built."""

    builder: str

    def build(self, shape: Hashable) -> Any:
        module, _, name = self.builder.partition(":")
        return getattr(import_module(module), name)(shape)

    def key(self, shape: Hashable) -> str:
        """The statement's name for one shape (a cache key): shapes are tuples, None or frozen
        dataclasses of plain values, whose repr is stable."""
        return f"{self.builder}|{shape!r}"


class ReadConnection(Protocol):
    """One catalog connection a read runs its statements on (`with source.reading() as db`)."""

    @property
    def dialect(self) -> str: ...  # "sqlite" | "postgresql"

    def rows(
        self, statement: ReadStatement, shape: Hashable = None, values: Mapping[str, Any] | None = None
    ) -> list[Any]:
        """Every row, each a named tuple of the statement's column names (registry.catalog.records)."""
        ...
