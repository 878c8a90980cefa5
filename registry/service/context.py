"""The one object every shell builds: settings, catalog sessions and the artifact store."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from registry.catalog.db import DbTimeouts, session_factory
from registry.settings import Settings, get_settings

if TYPE_CHECKING:  # the store is imported on first use: catalog reads never need it
    from registry.store import ArtifactStore


@dataclass
class Registry:
    settings: Settings

    @classmethod
    def from_env(cls) -> Registry:
        return cls(get_settings())

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        s = self.settings
        timeouts = DbTimeouts(
            connect=s.db_connect_timeout_seconds,
            statement=s.db_statement_timeout_seconds,
            pool=s.db_pool_timeout_seconds,
            sqlite_busy=s.db_sqlite_busy_timeout_seconds,
        )
        return session_factory(s.resolved_database_url, timeouts)

    @cached_property
    def store(self) -> ArtifactStore:
        return open_store_for(self.settings, self.settings.resolved_artifact_store)

    @property
    def principal(self) -> str:
        return self.settings.principal

    def acting_as(self, principal: str) -> Registry:
        """The same catalog engine and store client, recording another principal (e.g. an API key)."""
        other = Registry(self.settings.model_copy(update={"principal": principal}))
        other.__dict__["sessions"] = self.sessions  # share the cached engine and store client
        other.__dict__["store"] = self.store
        return other


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
