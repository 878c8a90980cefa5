"""The seam between catalog commands and where the catalog is: `LocalBackend` calls registry.service
(this machine's database and store), `RemoteBackend` calls a server through registry.client. Both
return the same view types, so each command prints the same output and exits the same way in either
mode. Each backend imports its side lazily: a remote command never loads SQLAlchemy."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import remote

if TYPE_CHECKING:
    from registry.client import Client
    from registry.client.models import Composition
    from registry.service import Registry
    from registry.views import (
        AdapterView,
        ArtifactMatch,
        AuditEventView,
        BaseModelView,
        KeyView,
        LineageGraph,
        Page,
        VersionView,
    )

Progress = Callable[[str, int], Callable[[int], None]]


class Backend(Protocol):
    """What catalog commands need; both modes implement all of it."""

    def register(
        self,
        source: str,
        name: str,
        *,
        base_model: str | None,
        task: str | None,
        tags: dict[str, str],
        description: str | None,
        progress: Progress,
        notify: Callable[[str], None] | None = None,
    ) -> tuple[VersionView, bool]: ...
    def list_adapters(self, **filters: Any) -> Page[AdapterView]: ...
    def show_adapter(self, name: str, include_archived: bool = False) -> AdapterView: ...
    def get_version(self, ref: str) -> VersionView: ...
    def download(
        self, ref: str, dest: Path, *, force: bool, progress: Progress
    ) -> tuple[VersionView, list[Path]]: ...
    def set_alias(self, ref: str, alias: str) -> VersionView: ...
    def delete_alias(self, name: str, alias: str) -> int: ...
    def set_status(self, ref: str, transition: str) -> VersionView: ...
    def delete_version(self, ref: str) -> VersionView: ...
    def update_adapter(
        self, name: str, *, tags: dict[str, str | None] | None, description: str | None
    ) -> AdapterView: ...
    def lineage(self, ref: str, *, direction: str, depth: int) -> LineageGraph: ...
    def find_by_digest(self, digest: str) -> list[ArtifactMatch]: ...
    def list_events(self, *, subject: str | None, actor: str | None, limit: int) -> list[AuditEventView]: ...
    def list_base_models(self) -> list[BaseModelView]: ...
    def add_base_model(
        self, name: str, *, source: str, revision: str, sha256: str | None
    ) -> tuple[BaseModelView, bool]: ...
    def create_key(self, name: str, role: str) -> str: ...
    def revoke_key(self, name: str) -> None: ...
    def list_keys(self) -> list[KeyView]: ...


class LocalBackend:
    """This machine's catalog database and artifact store (PEMREG_DATABASE_URL, PEMREG_ARTIFACT_STORE)."""

    def __init__(self, reg: Registry) -> None:
        self.reg = reg

    def register(
        self, source: str, name: str, *, progress: Progress, **fields: Any
    ) -> tuple[VersionView, bool]:
        from registry.service.registration.register import register_adapter

        return register_adapter(self.reg, source, name, progress=progress, **fields)

    def list_adapters(self, **filters: Any) -> Page[AdapterView]:
        from registry.service.catalog.queries import list_adapters

        return list_adapters(self.reg, **filters)

    def show_adapter(self, name: str, include_archived: bool = False) -> AdapterView:
        from registry.service.catalog.queries import show_adapter

        return show_adapter(self.reg, name, include_archived=include_archived)

    def get_version(self, ref: str) -> VersionView:
        from registry.service.catalog.queries import get_version

        return get_version(self.reg, ref)

    def download(
        self, ref: str, dest: Path, *, force: bool, progress: Progress
    ) -> tuple[VersionView, list[Path]]:
        from registry.client.transfer import check_target
        from registry.service.catalog.downloads import download_version

        check_target(dest, force)
        return download_version(self.reg, ref, dest, progress=progress)

    def set_alias(self, ref: str, alias: str) -> VersionView:
        from registry.service.catalog.aliases import set_alias

        return set_alias(self.reg, ref, alias)

    def delete_alias(self, name: str, alias: str) -> int:
        from registry.service.catalog.lifecycle import delete_alias

        return delete_alias(self.reg, name, alias)

    def set_status(self, ref: str, transition: str) -> VersionView:
        from registry.service.catalog.lifecycle import set_status

        return set_status(self.reg, ref, transition)  # type: ignore[arg-type]

    def delete_version(self, ref: str) -> VersionView:
        from registry.service.catalog.lifecycle import delete_version

        return delete_version(self.reg, ref)

    def update_adapter(
        self, name: str, *, tags: dict[str, str | None] | None, description: str | None
    ) -> AdapterView:
        from registry.service.catalog.lifecycle import update_adapter

        return update_adapter(self.reg, name, tags=tags, description=description)

    def lineage(self, ref: str, *, direction: str, depth: int) -> LineageGraph:
        from registry.service.catalog.lineage import lineage

        return lineage(self.reg, ref, direction=direction, depth=depth)

    def find_by_digest(self, digest: str) -> list[ArtifactMatch]:
        from registry.service.catalog.digests import find_by_digest

        return find_by_digest(self.reg, digest)

    def list_events(self, *, subject: str | None, actor: str | None, limit: int) -> list[AuditEventView]:
        from registry.service.catalog.audit import list_events

        return list_events(self.reg, subject=subject, actor=actor, limit=limit)

    def list_base_models(self) -> list[BaseModelView]:
        from registry.service.registration.base_models import list_base_models

        return list_base_models(self.reg)

    def add_base_model(
        self, name: str, *, source: str, revision: str, sha256: str | None
    ) -> tuple[BaseModelView, bool]:
        from registry.service.registration.base_models import add_base_model

        return add_base_model(self.reg, name, source=source, revision=revision, sha256=sha256)

    def create_key(self, name: str, role: str) -> str:
        from registry.service.admin.keys import create_key

        return create_key(self.reg, name, role)

    def revoke_key(self, name: str) -> None:
        from registry.service.admin.keys import revoke_key

        revoke_key(self.reg, name)

    def list_keys(self) -> list[KeyView]:
        from registry.service.catalog.lifecycle import list_keys

        return list_keys(self.reg)


class RemoteBackend:
    """A PEM Registry server's REST API (`pemreg login URL`, or PEMREG_URL + PEMREG_API_KEY). Reads go
    through registry.client's ReadClient (the standard library's http.client: a read command never
    imports httpx); uploads, downloads and every change through the full Client, built on first use."""

    def __init__(self, url: str, api_key: str | None) -> None:
        from registry.client.reads import ReadClient

        self.url, self.api_key = url, api_key
        self.reads = ReadClient(url, api_key)

    @cached_property
    def client(self) -> Client:
        from registry.client.client import Client

        return Client(self.url, self.api_key)

    def register(
        self,
        source: str,
        name: str,
        *,
        base_model: str | None,
        task: str | None,
        tags: dict[str, str],
        description: str | None,
        progress: Progress,
        notify: Callable[[str], None] | None = None,
    ) -> tuple[VersionView, bool]:
        fields: dict[str, Any] = {"base_model": base_model, "task": task, "description": description}
        if source.startswith("s3://"):  # read by the server, with its credentials
            done = self.client.register_from_source(source, name, tags=tags, **fields)
        else:
            from registry.paths import user_path

            done = self.client.register(user_path(source), name, tags=tags, progress=progress, **fields)
        for note in getattr(done, "notes", None) or []:  # e.g. a base model the server registered
            if notify is not None:
                notify(note)
        return done, done.created

    def list_adapters(self, **filters: Any) -> Page[AdapterView]:
        return self.reads.list_adapters(**filters)

    def show_adapter(self, name: str, include_archived: bool = False) -> AdapterView:
        return self.reads.show(name, include_archived=include_archived)

    def get_version(self, ref: str) -> VersionView:
        return self.reads.get_version(ref)

    def download(
        self, ref: str, dest: Path, *, force: bool, progress: Progress
    ) -> tuple[VersionView, list[Path]]:
        return self.client.download(ref, dest, force=force, progress=progress)

    def set_alias(self, ref: str, alias: str) -> VersionView:
        return self.client.set_alias(ref, alias)

    def delete_alias(self, name: str, alias: str) -> int:
        return self.client.delete_alias(name, alias).version

    def set_status(self, ref: str, transition: str) -> VersionView:
        action = {
            "deprecate": self.client.deprecate,
            "archive": self.client.archive,
            "restore": self.client.restore,
        }
        return action[transition](ref)

    def delete_version(self, ref: str) -> VersionView:
        return self.client.delete_version(ref)

    def update_adapter(
        self, name: str, *, tags: dict[str, str | None] | None, description: str | None
    ) -> AdapterView:
        return self.client.update_adapter(name, tags=tags, description=description)

    def lineage(self, ref: str, *, direction: str, depth: int) -> LineageGraph:
        return self.reads.lineage(ref, direction=direction, depth=depth)

    def find_by_digest(self, digest: str) -> list[ArtifactMatch]:
        return self.reads.artifact(digest)

    def list_events(self, *, subject: str | None, actor: str | None, limit: int) -> list[AuditEventView]:
        return self.reads.audit(subject=subject, actor=actor, limit=limit)

    def list_base_models(self) -> list[BaseModelView]:
        return self.reads.list_base_models()

    def add_base_model(
        self, name: str, *, source: str, revision: str, sha256: str | None
    ) -> tuple[BaseModelView, bool]:
        if source.startswith((".", "/", "~")) or Path(source).expanduser().exists():
            from registry.errors import InvalidInput

            raise InvalidInput(
                f"source: {source} is a folder on this machine, which the server cannot read; "
                "upload it to s3:// (or give a hub id) and register that",
                field="source",
            )
        return self.client.add_base_model(name, source=source, revision=revision, sha256=sha256)

    def create_key(self, name: str, role: str) -> str:
        return self.client.create_key(name, role).key

    def revoke_key(self, name: str) -> None:
        self.client.revoke_key(name)

    def list_keys(self) -> list[KeyView]:
        return self.reads.list_keys()

    # Compositions run on the server: submit, validate (dry run), poll. api/cli/remote_compose.py uses
    # these in remote mode; the local compose command keeps its Prefect paths.
    def validate(self, spec_file: Path) -> dict[str, Any]:
        return self.client.validate(spec_file)

    def compose(self, spec_file: Path) -> Composition:
        return self.client.compose(spec_file)

    def get_composition(self, composition_id: str) -> Composition:
        return self.reads.get_composition(composition_id)

    def list_compositions(self, *, status: str | None, limit: int) -> list[Composition]:
        return self.reads.list_compositions(status=status, limit=limit)

    def wait(self, composition_id: str, on_update: Callable[[Composition], None]) -> Composition:
        return self.reads.wait(composition_id, on_update=on_update)


@lru_cache(maxsize=1)
def backend() -> LocalBackend | RemoteBackend:
    """Remote when PEMREG_URL is set or `pemreg login` saved a server; else local."""
    server = remote.current()
    if server is not None:
        return RemoteBackend(server.url, server.api_key or None)
    from .deps import registry

    return LocalBackend(registry())


def is_remote() -> bool:
    return remote.current() is not None
