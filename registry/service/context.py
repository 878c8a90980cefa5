"""The one object every shell builds: settings, catalog sessions and the artifact store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from registry.catalog.db import get_engine, read_connection, session_factory
from registry.catalog.prepared.core import CoreReads
from registry.catalog.prepared.statement import ReadConnection
from registry.service.access.identity import Access
from registry.settings import Settings, get_settings

if TYPE_CHECKING:  # the store is imported on first use: catalog reads never need it
    from registry.store import ArtifactStore

_SETTINGS = "pemreg_settings"
_ACTING_KEPT = 1024  # principals a registry keeps an acting copy of (acting_as)


@dataclass
class Registry:
    settings: Settings
    # Who acts; None is the operator (settings.principal, admin): the CLI on the server's machine, the
    # worker. Requests and runs act as their principal through `acting_as`.
    access: Access | None = None

    @classmethod
    def from_env(cls) -> Registry:
        return cls(get_settings())

    @cached_property
    def engine(self) -> Engine:
        """The pooled engine the sessions use too (get_engine keeps one per URL and limits)."""
        return get_engine(self.settings.resolved_database_url, self.settings.db_limits)

    @cached_property
    def read_engine(self) -> Engine:
        """The pool of catalog reads (registry.catalog.location.DbLimits: its own few sessions)."""
        return get_engine(self.settings.resolved_database_url, self.settings.db_limits, reads=True)

    def connect(self) -> AbstractContextManager[Connection]:
        """A Core connection for reads (registry.service.catalog.source.CatalogSource)."""
        return read_connection(self.read_engine)

    @contextmanager
    def reading(self) -> Iterator[ReadConnection]:
        """Named read statements on a Core connection of the read pool (registry.catalog.prepared)."""
        with read_connection(self.read_engine) as conn:
            yield CoreReads(conn)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        factory = session_factory(self.settings.resolved_database_url, self.settings.db_limits)
        # Each session carries the settings it was opened with: code handed only a session (the outbox,
        # deciding who may receive an event of the change being committed) reads them there.
        factory.configure(info={_SETTINGS: self.settings})
        return factory

    @cached_property
    def store(self) -> ArtifactStore:
        return open_store_for(self.settings, self.settings.resolved_artifact_store)

    @property
    def principal(self) -> str:
        return self.settings.principal

    @property
    def acting(self) -> Access:
        """The principal whose grants every check of this registry's calls uses."""
        return self.access or Access.operator(self.settings.principal)

    def acting_as(self, access: Access) -> Registry:
        """The same catalog engine and store client, acting as another principal (a key, an SSO user).
        Kept per access (its principal, role, groups and key row), since copying the settings cost the
        server ~2% of its CPU per request; a bounded number of them."""
        acting = self.__dict__.setdefault("_acting", {})
        other: Registry | None = acting.get(access)
        if other is None:
            other = Registry(self.settings.model_copy(update={"principal": access.principal}), access)
            other.__dict__["sessions"] = self.sessions  # share the cached engine and store client
            other.__dict__["engine"] = self.engine
            other.__dict__["read_engine"] = self.read_engine
            other.__dict__["store"] = self.store
            if len(acting) >= _ACTING_KEPT:
                acting.clear()
            acting[access] = other
        return other


def settings_of(session: Session) -> Settings:
    """The settings of the Registry that opened `session` (the environment's for any other session)."""
    found = session.info.get(_SETTINGS)
    return found if isinstance(found, Settings) else get_settings()


def open_store_for(settings: Settings, url: str) -> ArtifactStore:
    """Any store URL (the registry's own, or an s3:// source folder) with the configured credentials."""
    from registry.store import open_store

    return open_store(
        url,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key,
    )
