"""Compiled reads on Python's sqlite3 alone: the CLI's local reads of the embedded catalog."""

from __future__ import annotations

import sqlite3
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from registry.catalog.records import record_class

from .cache import ReadCache
from .compiled import DECODERS, ENCODERS, CompiledRead, NotCompilable, compile_read
from .statement import ReadStatement


class SqliteReads:
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, cache: ReadCache) -> None:
        self.conn = conn
        self.cache = cache

    def compiled(self, statement: ReadStatement, shape: Hashable, values: Mapping[str, Any]) -> CompiledRead:
        key = statement.key(shape)
        found = self.cache.get(key)
        if found is None:
            try:
                found = compile_read(statement, shape, self.dialect)
            except NotCompilable:  # its SQL or its values' conversion depends on them: compiled for them
                return compile_read(statement, shape, self.dialect, values)
            self.cache.put(key, found)
        return found

    def rows(
        self, statement: ReadStatement, shape: Hashable = None, values: Mapping[str, Any] | None = None
    ) -> list[Any]:
        given = values or {}
        read = self.compiled(statement, shape, given)
        params = []
        for name in read.params:  # the statement's own values, else the read's, converted as its type does
            if name in read.literals:
                params.append(read.literals[name])
            else:
                kind = read.encoders.get(name)
                params.append(ENCODERS[kind](given[name]) if kind else given[name])
        fetched = self.conn.execute(read.sql, params).fetchall()
        decoders = [(i, DECODERS[kind]) for i, kind in enumerate(read.decoders) if kind]
        if decoders:
            decoded = []
            for row in fetched:
                values_ = list(row)
                for i, decode in decoders:
                    values_[i] = decode(values_[i])
                decoded.append(values_)
            fetched = decoded
        make = record_class(read.columns)._make
        return [make(row) for row in fetched]


@contextmanager
def sqlite_reads(path: str, busy_seconds: float, cache: ReadCache) -> Iterator[SqliteReads]:
    """One read transaction (one WAL snapshot for all of a read's statements), never holding the write
    lock (BEGIN DEFERRED, where SQLAlchemy's writes begin IMMEDIATE)."""
    conn = sqlite3.connect(path, timeout=busy_seconds, isolation_level=None)
    try:
        conn.execute("BEGIN")
        yield SqliteReads(conn, cache)
    finally:
        conn.close()  # rolls the read transaction back
