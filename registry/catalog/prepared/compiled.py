"""A read statement compiled to its SQL for one dialect, and its rows decoded as SQLAlchemy decodes them.

Compiling imports SQLAlchemy (the first run of a statement); running a compiled one needs only the driver
(registry.catalog.prepared.sqlite_reads). What SQLAlchemy does between the two, this does the same way:
- values the statement binds itself (`status IN ('active', 'deprecated')`, an OFFSET 0) are kept with
  the SQL, each list expanded into its placeholders, as SQLAlchemy expands them at execution;
- the values a read binds are passed by name, in the placeholders' order, each converted as its type's
  bind processor converts it (ENCODERS: a Float's value is made a float);
- each column is decoded by its type's result processor's rule (DECODERS).
A list bound at execution (its length changes the SQL), or a bound value whose type needs a conversion
not listed in ENCODERS, makes the statement `NotCompilable` ahead of its values: it is then compiled for
each call's values, with SQLAlchemy, and not kept. A column type not listed in DECODERS is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from .statement import ReadStatement


class NotCompilable(Exception):
    """The statement needs SQLAlchemy at execution (see the module's docstring)."""


def _datetime(value: Any) -> Any:
    # SQLite keeps DateTime as ISO text ("2026-12-08 00:31:45.123456"), naive, as SQLAlchemy writes it.
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _bool(value: Any) -> Any:
    return bool(value) if value is not None else None


def _float(value: Any) -> Any:
    return float(value) if value is not None else None


# A column's decoder by the kind of its type (SQLAlchemy's result processor does the same on SQLite).
DECODERS: dict[str, Callable[[Any], Any]] = {"datetime": _datetime, "json": _json, "bool": _bool}
# A bound value's encoder by the kind of its type (SQLAlchemy's bind processor does the same on SQLite).
ENCODERS: dict[str, Callable[[Any], Any]] = {"float": _float}


@dataclass(frozen=True)
class CompiledRead:
    sql: str
    params: tuple[str, ...]  # the bound values' names, in placeholder order
    literals: dict[str, Any]  # the values the statement binds itself, by name
    encoders: dict[str, str]  # a bound value's ENCODERS key, by name, where its type converts it
    columns: tuple[str, ...]
    decoders: tuple[str, ...]  # per column: "" (as the driver gives it) or a DECODERS key

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CompiledRead:
        return cls(
            sql=data["sql"],
            params=tuple(data["params"]),
            literals=dict(data["literals"]),
            encoders=dict(data["encoders"]),
            columns=tuple(data["columns"]),
            decoders=tuple(data["decoders"]),
        )


def _decoder(type_: Any, dialect: Any) -> str:
    from sqlalchemy import JSON, Boolean, DateTime

    impl = type_.dialect_impl(dialect)
    if impl.result_processor(dialect, None) is None:
        return ""
    for kind, base in (("datetime", DateTime), ("json", JSON), ("bool", Boolean)):
        if isinstance(impl, base):
            return kind
    raise NotCompilable(f"no decoder for a column of type {type_!r}")


def _encoder(type_: Any, dialect: Any) -> str:
    from sqlalchemy import Float

    impl = type_.dialect_impl(dialect)
    if impl.bind_processor(dialect) is None:
        return ""
    if isinstance(impl, Float) and not impl.asdecimal:
        return "float"
    raise NotCompilable(f"no encoder for a value of type {type_!r}")


def compile_read(
    statement: ReadStatement, shape: Hashable, dialect_name: str, values: Mapping[str, Any] | None = None
) -> CompiledRead:
    """`statement` for `shape`, as SQLAlchemy would send it to `dialect_name`'s driver (SQLite's qmark).
    With `values`, for those values only (every value then among `literals`, converted): what a
    statement that is NotCompilable without them is run with, never kept."""
    if dialect_name != "sqlite":
        raise NotCompilable(f"reads are compiled for SQLite only, not {dialect_name}")
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    stmt = statement.build(shape)
    compiled = stmt.compile(dialect=dialect)
    bound = {name: bind for bind, name in compiled.bind_names.items()}
    given = {name for name, bind in bound.items() if bind.required}
    if values is None:
        lists = sorted(name for name in given if bound[name].expanding)
        if lists:
            raise NotCompilable(f"{', '.join(lists)}: a list bound at execution changes the SQL")
        encoders = {name: _encoder(bound[name].type, dialect) for name in given}
        kept = given  # bound at each execution
    else:
        encoders, kept = {}, set()
    # Expands the lists into placeholders (the statement's own, and any given); without `values`, the
    # values given here only stand in.
    state = compiled.construct_expanded_state({name: (values or {}).get(name) for name in given})
    assert state.positiontup is not None  # qmark: SQLite's paramstyle is positional
    literals = {}
    for name in state.positiontup:
        if name not in kept:
            process = state.processors.get(name)
            value = state.parameters[name]
            literals[name] = process(value) if process else value
    columns = list(stmt.selected_columns)
    return CompiledRead(
        sql=state.statement,
        params=tuple(state.positiontup),
        literals=literals,
        encoders={name: kind for name, kind in encoders.items() if kind},
        columns=tuple(c.key for c in columns),
        decoders=tuple(_decoder(c.type, dialect) for c in columns),
    )
