"""The one object every shell builds: settings, catalog sessions and the artifact store."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy.orm import Session, sessionmaker

from registry.catalog.db import DbTimeouts, session_factory
from registry.settings import Settings, get_settings
from registry.store import ArtifactStore, open_store


@dataclass(frozen=True)
class Principal:
    """Who a Registry acts as. `kind` decides what they may read (registry/sources.py) and what a run
    they stored must still be allowed when it starts (compositions/authority.py): `local` is the user
    on this machine (CLI, worker); `key` an API key, identified by its row (`key_id`) so that a new key
    reusing a revoked key's name never inherits what the old one stored."""

    name: str
    kind: str = "local"
    key_id: int | None = None


@dataclass
class Registry:
    settings: Settings
    identity: Principal | None = None  # None: the local user named settings.principal

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
        return self.actor.name

    @property
    def actor(self) -> Principal:
        return self.identity or Principal(self.settings.principal)

    def acting_as(self, who: Principal) -> Registry:
        """The same catalog engine and store client, acting as another principal (e.g. an API key):
        audit events and created_by record its name; what it may read follows its kind."""
        other = Registry(self.settings.model_copy(update={"principal": who.name}), identity=who)
        other.__dict__["sessions"] = self.sessions  # share the cached engine and store client
        other.__dict__["store"] = self.store
        return other


def open_store_for(settings: Settings, url: str) -> ArtifactStore:
    """Any store URL (the registry's own, or an s3:// source folder) with the configured credentials."""
    return open_store(
        url,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key,
    )
