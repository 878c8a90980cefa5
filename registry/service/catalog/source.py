"""What a Core catalog read needs: who acts, and a connection. `Registry` is one (the server, the CLI's
writes); `LocalCatalog` is the CLI's read-only one, built without pydantic-settings or the ORM."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

from registry.catalog.location import CatalogLocation
from registry.service.access.identity import Access

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine


class CatalogSource(Protocol):
    @property
    def acting(self) -> Access: ...

    def connect(self) -> AbstractContextManager[Connection]: ...


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
