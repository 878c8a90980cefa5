"""The seam between catalog commands and where the catalog is: `LocalBackend` calls registry.service
(this machine's database and store), `RemoteBackend` calls a server through registry.client. Both
return the same view types, so each command prints the same output and exits the same way in either
mode. Each backend imports its side lazily: a remote command never loads SQLAlchemy, and a local read
(list, show, lineage, keys list) goes through Core on `LocalCatalog`, never loading the ORM or
pydantic-settings (the full Registry is built on the first write)."""

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
    from registry.service.catalog.source import CatalogSource
    from registry.serving import ServingRefs
    from registry.views import (
        AdapterView,
        ArtifactMatch,
        AuditEventView,
        BaseMerged,
        BaseModelDetail,
        BaseModelView,
        GrantView,
        KeyView,
        LineageGraph,
        NamespaceView,
        Page,
        TrainingRecord,
        VersionView,
        WhoAmI,
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
        allow_deleted: bool = False,
        training: TrainingRecord | None = None,
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
    def delete_adapter(self, name: str) -> list[VersionView]: ...
    def undelete(self, ref: str) -> VersionView: ...
    def update_adapter(
        self, name: str, *, tags: dict[str, str | None] | None, description: str | None
    ) -> AdapterView: ...
    def lineage(self, ref: str, *, direction: str, depth: int) -> LineageGraph: ...
    def find_by_digest(self, digest: str) -> list[ArtifactMatch]: ...
    def list_events(self, *, subject: str | None, actor: str | None, limit: int) -> list[AuditEventView]: ...
    def list_base_models(self) -> list[BaseModelView]: ...
    def add_base_model(
        self, name: str, *, source: str, revision: str, sha256: str | None, folder: Path | None
    ) -> tuple[BaseModelView, bool]: ...
    def show_base_model(self, label: str) -> BaseModelDetail: ...
    def merge_base_models(self, label: str, into: str) -> BaseMerged: ...
    def create_key(self, name: str, role: str) -> str: ...
    def revoke_key(self, name: str) -> None: ...
    def list_keys(self) -> list[KeyView]: ...
    def pull(
        self, ref: str, dest: Path, *, link: str | None, progress: Progress
    ) -> tuple[ServingRefs, Path]: ...
    def whoami(self) -> WhoAmI: ...
    def list_namespaces(self) -> list[NamespaceView]: ...
    def get_namespace(self, namespace: str) -> NamespaceView: ...
    def create_namespace(
        self, namespace: str, *, visibility: str | None, protected_aliases: list[str], description: str | None
    ) -> NamespaceView: ...
    def update_namespace(
        self,
        namespace: str,
        *,
        visibility: str | None,
        protected_aliases: list[str] | None,
        description: str | None,
    ) -> NamespaceView: ...
    def list_grants(self, namespace: str) -> list[GrantView]: ...
    def grant(self, namespace: str, subject: str, role: str) -> GrantView: ...
    def revoke(self, namespace: str, subject: str) -> None: ...


class LocalBackend:
    """This machine's catalog database and artifact store (PEMREG_DATABASE_URL, PEMREG_ARTIFACT_STORE)."""

    def __init__(self, reg: Registry | None = None) -> None:
        self._reg = reg

    @cached_property
    def reg(self) -> Registry:
        from .deps import registry

        return self._reg or registry()

    @cached_property
    def reads(self) -> CatalogSource:
        """The Registry when one was given or built already, else the lean read-only catalog."""
        if self._reg is not None or "reg" in self.__dict__:
            return self.reg
        from registry.service.catalog.source import LocalCatalog

        return LocalCatalog.from_env()

    def register(
        self, source: str, name: str, *, progress: Progress, **fields: Any
    ) -> tuple[VersionView, bool]:
        from registry.service.registration.register import register_adapter

        return register_adapter(self.reg, source, name, progress=progress, **fields)

    def list_adapters(self, **filters: Any) -> Page[AdapterView]:
        from registry.service.catalog.queries import list_adapters

        return list_adapters(self.reads, **filters)

    def show_adapter(self, name: str, include_archived: bool = False) -> AdapterView:
        from registry.service.catalog.queries import show_adapter

        return show_adapter(self.reads, name, include_archived=include_archived)

    def get_version(self, ref: str) -> VersionView:
        from registry.service.catalog.queries import get_version

        return get_version(self.reads, ref)

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

    def delete_adapter(self, name: str) -> list[VersionView]:
        from registry.service.catalog.lifecycle import delete_all_versions

        return delete_all_versions(self.reg, name)

    def undelete(self, ref: str) -> VersionView:
        from registry.service.catalog.lifecycle import undelete_version

        return undelete_version(self.reg, ref)

    def update_adapter(
        self, name: str, *, tags: dict[str, str | None] | None, description: str | None
    ) -> AdapterView:
        from registry.service.catalog.lifecycle import update_adapter

        return update_adapter(self.reg, name, tags=tags, description=description)

    def lineage(self, ref: str, *, direction: str, depth: int) -> LineageGraph:
        from registry.service.catalog.lineage import lineage

        return lineage(self.reads, ref, direction=direction, depth=depth)

    def find_by_digest(self, digest: str) -> list[ArtifactMatch]:
        from registry.service.catalog.digests import find_by_digest

        return find_by_digest(self.reg, digest)

    def list_events(self, *, subject: str | None, actor: str | None, limit: int) -> list[AuditEventView]:
        from registry.service.catalog.audit_reads import list_events

        return list_events(self.reads, subject=subject, actor=actor, limit=limit)

    def list_base_models(self) -> list[BaseModelView]:
        from registry.service.registration.base_reads import list_base_models

        return list_base_models(self.reads)

    def add_base_model(
        self, name: str, *, source: str, revision: str, sha256: str | None, folder: Path | None
    ) -> tuple[BaseModelView, bool]:
        from registry.base_evidence import folder_evidence
        from registry.service.registration.base_models import add_base_model

        evidence = folder_evidence(folder) if folder is not None else None
        return add_base_model(
            self.reg, name, source=source, revision=revision, sha256=sha256, evidence=evidence
        )

    def show_base_model(self, label: str) -> BaseModelDetail:
        from registry.service.registration.base_reads import show_base_model

        return show_base_model(self.reads, label)

    def merge_base_models(self, label: str, into: str) -> BaseMerged:
        from registry.service.registration.base_merge import merge_base_models

        return merge_base_models(self.reg, label, into)

    def create_key(self, name: str, role: str) -> str:
        from registry.service.admin.keys import create_key

        return create_key(self.reg, name, role)

    def revoke_key(self, name: str) -> None:
        from registry.service.admin.keys import revoke_key

        revoke_key(self.reg, name)

    def list_keys(self) -> list[KeyView]:
        from registry.service.admin.key_reads import list_keys

        return list_keys(self.reads)

    def pull(self, ref: str, dest: Path, *, link: str | None, progress: Progress) -> tuple[ServingRefs, Path]:
        from registry.service.catalog.downloads import download_version
        from registry.service.catalog.serving import serving_refs
        from registry.serving import pull

        refs = serving_refs(self.reg, ref, pull_dir=str(dest.resolve()))

        def fetch(pinned: str, into: Path) -> None:
            download_version(self.reg, pinned, into, progress=progress)

        return refs, pull(refs, dest, fetch, link=link)

    def whoami(self) -> WhoAmI:
        from registry.service.access.namespace_reads import whoami

        return whoami(self.reads)

    def list_namespaces(self) -> list[NamespaceView]:
        from registry.service.access.namespace_reads import list_namespaces

        return list_namespaces(self.reads)

    def get_namespace(self, namespace: str) -> NamespaceView:
        from registry.service.access.namespace_reads import get_namespace

        return get_namespace(self.reads, namespace)

    def create_namespace(
        self, namespace: str, *, visibility: str | None, protected_aliases: list[str], description: str | None
    ) -> NamespaceView:
        from registry.service.access.namespaces import create_namespace

        return create_namespace(
            self.reg,
            namespace,
            visibility=visibility,
            protected_aliases=protected_aliases,
            description=description,
        )

    def update_namespace(
        self,
        namespace: str,
        *,
        visibility: str | None,
        protected_aliases: list[str] | None,
        description: str | None,
    ) -> NamespaceView:
        from registry.service.access.namespaces import update_namespace

        return update_namespace(
            self.reg,
            namespace,
            visibility=visibility,
            protected_aliases=protected_aliases,
            description=description,
        )

    def list_grants(self, namespace: str) -> list[GrantView]:
        from registry.service.access.namespace_reads import list_grants

        return list_grants(self.reads, namespace)

    def grant(self, namespace: str, subject: str, role: str) -> GrantView:
        from registry.service.access.namespaces import set_grant

        return set_grant(self.reg, namespace, subject, role)

    def revoke(self, namespace: str, subject: str) -> None:
        from registry.service.access.namespaces import revoke_grant

        revoke_grant(self.reg, namespace, subject)


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
        allow_deleted: bool = False,
        training: TrainingRecord | None = None,
    ) -> tuple[VersionView, bool]:
        # create_base: the CLI registers an unmatched plain hub id on the way (with a note), as in
        # local mode; the REST default is to refuse.
        fields: dict[str, Any] = {
            "base_model": base_model,
            "task": task,
            "description": description,
            "create_base": True,
            "allow_deleted": allow_deleted,
            "training": training,
        }
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

    def delete_adapter(self, name: str) -> list[VersionView]:
        return self.client.delete_adapter(name)

    def undelete(self, ref: str) -> VersionView:
        return self.client.undelete(ref)

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
        self, name: str, *, source: str, revision: str, sha256: str | None, folder: Path | None
    ) -> tuple[BaseModelView, bool]:
        """A folder source is sent as its absolute path (the server decides whether it may name it:
        PEMREG_SOURCE_ROOTS); `folder`'s identity is read here and sent, never read by the server."""
        from registry.base_evidence import local_folder

        here = local_folder(source)
        if here is not None:
            source = str(here)
        elif source.startswith((".", "/", "~")):
            from registry.errors import InvalidInput

            raise InvalidInput(f"source: {source} is no folder on this machine", field="source")
        return self.client.add_base_model(
            name, source=source, revision=revision, sha256=sha256, folder=folder
        )

    def show_base_model(self, label: str) -> BaseModelDetail:
        return self.reads.show_base_model(label)

    def merge_base_models(self, label: str, into: str) -> BaseMerged:
        return self.client.merge_base_models(label, into)

    def create_key(self, name: str, role: str) -> str:
        return self.client.create_key(name, role).key

    def revoke_key(self, name: str) -> None:
        self.client.revoke_key(name)

    def list_keys(self) -> list[KeyView]:
        return self.reads.list_keys()

    def pull(self, ref: str, dest: Path, *, link: str | None, progress: Progress) -> tuple[ServingRefs, Path]:
        from registry.serving import pull

        refs = self.client.serving(ref, pull_dir=str(dest.resolve()))

        def fetch(pinned: str, into: Path) -> None:
            self.client.download(pinned, into, force=True, progress=progress)

        return refs, pull(refs, dest, fetch, link=link)

    def whoami(self) -> WhoAmI:
        return self.reads.whoami()

    def list_namespaces(self) -> list[NamespaceView]:
        return self.reads.list_namespaces()

    def get_namespace(self, namespace: str) -> NamespaceView:
        return self.reads.get_namespace(namespace)

    def create_namespace(
        self, namespace: str, *, visibility: str | None, protected_aliases: list[str], description: str | None
    ) -> NamespaceView:
        return self.client.create_namespace(
            namespace, visibility=visibility, protected_aliases=protected_aliases, description=description
        )

    def update_namespace(
        self,
        namespace: str,
        *,
        visibility: str | None,
        protected_aliases: list[str] | None,
        description: str | None,
    ) -> NamespaceView:
        return self.client.update_namespace(
            namespace, visibility=visibility, protected_aliases=protected_aliases, description=description
        )

    def list_grants(self, namespace: str) -> list[GrantView]:
        return self.reads.list_grants(namespace)

    def grant(self, namespace: str, subject: str, role: str) -> GrantView:
        return self.client.grant(namespace, subject, role)

    def revoke(self, namespace: str, subject: str) -> None:
        self.client.revoke(namespace, subject)

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
    return LocalBackend()


def is_remote() -> bool:
    return remote.current() is not None
