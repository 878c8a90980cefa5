"""What a Core catalog read needs: who acts, and a connection. `Registry` is one (the server, the CLI's
writes); `LocalCatalog` is the CLI's read-only one, built without pydantic-settings or the ORM."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

from registry.catalog.location import CatalogLocation, sqlite_file
from registry.catalog.prepared.statement import ReadConnection
from registry.errors import NotFound
from registry.service.access.identity import Access

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine


class CatalogSource(Protocol):
    @property
    def acting(self) -> Access: ...

    def connect(self) -> AbstractContextManager[Connection]: ...

    def reading(self) -> AbstractContextManager[ReadConnection]: ...


@dataclass
class LocalCatalog:
    """This machine's catalog as its operator reads it (an admin, as with the full Registry): the same
    database URL, limits and pool of reads (registry.catalog.db.get_engine) the Registry's reads use."""

    location: CatalogLocation

    @classmethod
    def from_env(cls) -> LocalCatalog:
        return cls(CatalogLocation.from_env())

    @property
    def acting(self) -> Access:
        return Access.operator(self.location.principal)

    @cached_property
    def engine(self) -> Engine:
        from registry.catalog.db import get_engine

        return get_engine(self.location.database_url, self.location.limits, reads=True)

    def connect(self) -> AbstractContextManager[Connection]:
        from registry.catalog.db import read_connection

        return read_connection(self.engine)

    @contextmanager
    def reading(self) -> Iterator[ReadConnection]:
        """The embedded catalog's reads on sqlite3 alone, their SQL compiled once and kept in
        PEMREG_HOME/cache/sql (registry.catalog.prepared); any other database through SQLAlchemy."""
        path = sqlite_file(self.location.database_url)
        if path is None:
            from registry.catalog.prepared.core import CoreReads

            with self.connect() as conn:
                yield CoreReads(conn)
            return
        from registry.catalog.prepared.cache import ReadCache
        from registry.catalog.prepared.sqlite_reads import sqlite_reads

        if not os.path.exists(path):  # sqlite3 would create an empty file: say what is missing instead
            raise NotFound(f"no catalog at {path}: `pemreg init` creates it")
        cache = ReadCache(self.location.home / "cache" / "sql")
        with sqlite_reads(path, self.location.limits.sqlite_busy, cache) as reads:
            yield reads
