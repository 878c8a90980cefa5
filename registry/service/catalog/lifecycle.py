"""Version lifecycle and catalog edits: deprecate / archive / restore / delete a version, delete an alias,
edit tags and description, list keys. Every change is one transaction with its audit event.

States (`models.VERSION_STATUSES`):
- active: the default.
- deprecated: still resolved everywhere (also by `latest`); `input_warnings` names it when a composition
  uses it as an input.
- archived: skipped by `latest` and by default listings; a number, alias or digest still names it.
- deleted (a maintainer of its namespace, or an admin; `@N` named, or every version explicitly): only
  when no live version descends from it. The row stays (soft delete), so lineage edges and audit events
  keep its digest; its aliases go; `deleted_before` hands its objects to gc once the grace period has
  passed. Until gc removed them, `undelete_version` brings it back; bytes of a deleted version are
  registered again under the same adapter only with `allow_deleted` (the same version comes back).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, aliased

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.errors import Conflict, InvalidInput, NotFound
from registry.refs import Ref, parse_ref, validate_alias, validate_name
from registry.service.access.identity import Access
from registry.service.access.policy import readable, require, require_alias
from registry.service.admin.key_reads import list_keys  # noqa: F401 - where callers found it
from registry.service.catalog import audit
from registry.service.catalog.resolve import aliases_of, get_adapter_row, resolve_version
from registry.service.context import Registry
from registry.service.events import outbox
from registry.service.registration.register import check_lengths
from registry.store import adapter_prefix
from registry.views import AdapterView, VersionView

Transition = Literal["deprecate", "archive", "restore"]
TARGET = {"deprecate": "deprecated", "archive": "archived", "restore": "active"}


def _ref(ref: Ref | str) -> Ref:
    return parse_ref(ref) if isinstance(ref, str) else ref


def _require(session: Session, reg: Registry, full_name: str, needs: str, action: str, subject: str) -> None:
    namespace = full_name.split("/", 1)[0]
    require(
        session,
        reg.acting,
        namespace,
        needs,
        action=action,
        subject=subject,
        missing=f"adapter {full_name} not found",
    )


def _stamp(row: m.AdapterVersion, status: str, actor: str) -> None:
    row.status = status
    row.status_changed_by = actor
    row.status_changed_at = m.utcnow()


def set_status(reg: Registry, ref: Ref | str, transition: Transition) -> VersionView:
    """deprecate | archive | restore (back to active). Setting the status a version already has is a
    no-op without an audit event, as for aliases."""
    if transition not in TARGET:
        raise InvalidInput(f"transition: must be one of {', '.join(TARGET)}", field="transition")
    ref = _ref(ref)
    with transaction(reg.sessions) as session:
        _require(session, reg, ref.full_name, "writer", f"version_{transition}", str(ref))
        row = resolve_version(session, ref, access=reg.acting)
        target = TARGET[transition]
        if row.status != target:
            previous = row.status
            _stamp(row, target, reg.principal)
            audit.record(
                session,
                reg.principal,
                f"version_{transition}",
                f"{row.adapter.full_name}@{row.version}",
                sha256=row.sha256,
                from_status=previous,
                to_status=target,
            )
            outbox.version_status_changed(session, row, previous, reg.principal)
            session.flush()
        return VersionView.of(row, aliases_of(session, row))


def live_descendants(session: Session, row: m.AdapterVersion, access: Access) -> list[str]:
    """`name@version` of the versions composed directly from `row` that are not deleted; one in a
    namespace `access` cannot see is named by its digest only (it still blocks the delete)."""
    child = aliased(m.AdapterVersion)
    rows = session.execute(
        select(m.Adapter.namespace, m.Adapter.name, child.version, child.sha256)
        .add_columns(readable(access, m.Adapter.namespace).label("visible"))
        .select_from(m.LineageEdge)
        .join(child, child.id == m.LineageEdge.child_version_id)
        .join(m.Adapter, m.Adapter.id == child.adapter_id)
        .where(m.LineageEdge.parent_version_id == row.id, child.status != "deleted")
    ).all()
    seen = [f"{ns}/{name}@{version}" for ns, name, version, _, visible in sorted(rows) if visible]
    return seen + sorted(f"sha256:{sha}" for *_, sha, visible in rows if not visible)


def _delete_row(session: Session, reg: Registry, row: m.AdapterVersion, keep: set[str] | None = None) -> None:
    """Mark one version deleted; refused while live versions (other than those in `keep`, deleted in
    the same transaction) descend from it."""
    label = f"{row.adapter.full_name}@{row.version}"
    children = [c for c in live_descendants(session, row, reg.acting) if keep is None or c not in keep]
    if children:
        raise Conflict(
            f"{label}: cannot delete, versions descend from it: {', '.join(children)} "
            "(delete or archive those first)"
        )
    for alias in aliases_of(session, row):
        session.execute(delete(m.Alias).where(m.Alias.adapter_id == row.adapter_id, m.Alias.alias == alias))
        audit.record(
            session,
            reg.principal,
            "alias_delete",
            f"{row.adapter.full_name}@{alias}",
            version=row.version,
        )
        outbox.alias_deleted(session, row.adapter, alias, row.version, reg.principal)
    previous = row.status
    _stamp(row, "deleted", reg.principal)
    row.deleted_at = row.status_changed_at
    audit.record(session, reg.principal, "version_delete", label, sha256=row.sha256, from_status=previous)
    outbox.version_deleted(session, row, previous, reg.principal)


def delete_version(reg: Registry, ref: Ref | str) -> VersionView:
    """A maintainer of the namespace (or an admin): mark a version deleted. `ref` must name a version
    (`@N`, `@alias`, `@sha256:`): a bare name is refused rather than read as `latest`. Refused
    (Conflict, naming them) while live versions descend from it. Its aliases are removed (each an audit
    event); its objects stay until `pemreg gc`, and until then `undelete_version` brings it back."""
    ref = _ref(ref)
    if ref.selector is None:
        raise InvalidInput(
            f"{ref.full_name} names no version; write {ref.full_name}@N (or delete every version "
            "explicitly: --all-versions / DELETE /v1/adapters/{ns}/{name}?all_versions=true)",
            field="ref",
        )
    with transaction(reg.sessions) as session:
        _require(session, reg, ref.full_name, "maintainer", "version_delete", str(ref))
        row = resolve_version(session, ref, access=reg.acting)
        _delete_row(session, reg, row)
        session.flush()
        return VersionView.of(row, [])


def delete_all_versions(reg: Registry, full_name: str) -> list[VersionView]:
    """A maintainer of the namespace (or an admin): every version of an adapter that is not deleted yet,
    in one transaction; refused when a version of another adapter descends from one of them."""
    namespace, name = validate_name(full_name)
    with transaction(reg.sessions) as session:
        _require(session, reg, full_name, "maintainer", "version_delete", full_name)
        adapter = get_adapter_row(session, namespace, name, reg.acting)
        rows = session.scalars(
            select(m.AdapterVersion)
            .where(m.AdapterVersion.adapter_id == adapter.id, m.AdapterVersion.status != "deleted")
            .order_by(m.AdapterVersion.version.desc())
        ).all()
        if not rows:
            raise NotFound(f"{full_name}: no version left to delete")
        keep = {f"{full_name}@{r.version}" for r in rows}
        for row in rows:
            _delete_row(session, reg, row, keep)
        session.flush()
        return [VersionView.of(r, []) for r in reversed(rows)]


def _files_present(reg: Registry, row: m.AdapterVersion) -> bool:
    prefix = adapter_prefix(row.adapter.namespace, row.adapter.name, row.sha256)
    return all(reg.store.exists(f"{prefix}/{filename}") for filename in row.files)


def undelete_version(reg: Registry, ref: Ref | str) -> VersionView:
    """A maintainer of the namespace (or an admin): bring a deleted version back with the status it had
    before, while `pemreg gc` has not removed its files (after that, registering the folder again with
    --allow-deleted does it). Its aliases are not restored (they may point elsewhere now)."""
    ref = _ref(ref)  # by number or digest: a deleted version's aliases are gone
    with reg.sessions() as session:
        _require(session, reg, ref.full_name, "maintainer", "version_undelete", str(ref))
        row = resolve_version(session, ref, access=reg.acting, include_deleted=True)
        label = f"{row.adapter.full_name}@{row.version}"
        if row.status != "deleted":
            raise Conflict(f"{label} is not deleted (it is {row.status})")
        present = _files_present(reg, row)
    if not present:
        raise Conflict(
            f"{label}: its files were removed by gc; register the folder again with --allow-deleted"
        )
    with transaction(reg.sessions) as session:
        row = resolve_version(session, ref, access=reg.acting, include_deleted=True)
        if row.status != "deleted":
            raise Conflict(f"{label} is not deleted (it is {row.status})")
        event = session.scalar(
            select(m.AuditEvent)
            .where(m.AuditEvent.subject == label, m.AuditEvent.action == "version_delete")
            .order_by(m.AuditEvent.id.desc())
            .limit(1)
        )
        before = (event.details or {}).get("from_status") if event is not None else None
        status = before if before in ("active", "deprecated", "archived") else "active"
        _stamp(row, status, reg.principal)
        row.deleted_at = None
        audit.record(session, reg.principal, "version_undelete", label, sha256=row.sha256, to_status=status)
        outbox.version_status_changed(session, row, "deleted", reg.principal)
        session.flush()
        view = VersionView.of(row, [])
    # gc re-checks the catalog right before removing a folder; should it have raced this commit, the
    # version is deleted again rather than left active without its files.
    with transaction(reg.sessions) as session:
        row = resolve_version(session, ref, access=reg.acting, include_deleted=True)
        if not _files_present(reg, row):
            _stamp(row, "deleted", reg.principal)
            row.deleted_at = row.status_changed_at
            raise Conflict(
                f"{label}: gc removed its files meanwhile; register the folder again with --allow-deleted"
            )
    return view


def delete_alias(reg: Registry, full_name: str, alias: str) -> int:
    """Remove `full_name@alias`; returns the version it pointed at."""
    namespace, name = validate_name(full_name)
    validate_alias(alias)
    with transaction(reg.sessions) as session:
        require_alias(session, reg.acting, full_name, alias, "alias_delete")
        adapter = get_adapter_row(session, namespace, name, reg.acting)
        row = session.get(m.Alias, (adapter.id, alias), with_for_update=True)
        if row is None:
            raise NotFound(f"{full_name}: no alias {alias!r}")
        version = session.get_one(m.AdapterVersion, row.version_id).version
        session.delete(row)
        audit.record(session, reg.principal, "alias_delete", f"{full_name}@{alias}", version=version)
        outbox.alias_deleted(session, adapter, alias, version, reg.principal)
        return version


def update_adapter(
    reg: Registry,
    full_name: str,
    *,
    tags: dict[str, str | None] | None = None,
    description: str | None = None,
) -> AdapterView:
    """Merge-patch: each tag given is set, a tag given as None is removed; a description given replaces
    the old one ("" clears it). Versions stay immutable: these are properties of the adapter."""
    from registry.service.catalog.queries import show_adapter

    namespace, name = validate_name(full_name)
    tags = tags or {}
    check_lengths(None, {k: v or "" for k, v in tags.items()}, None)
    if any(not k.strip() for k in tags):
        raise InvalidInput("tags: keys must not be empty", field="tags")
    with transaction(reg.sessions) as session:
        _require(session, reg, full_name, "writer", "adapter_update", full_name)
        adapter = get_adapter_row(session, namespace, name, reg.acting)
        current = {t.key: t.value for t in adapter.tags}
        changed: dict[str, object] = {}
        for key, value in tags.items():
            if value is None and key in current:
                session.execute(
                    delete(m.AdapterTag).where(m.AdapterTag.adapter_id == adapter.id, m.AdapterTag.key == key)
                )
                changed[f"tag:{key}"] = None
            elif value is not None and current.get(key) != value:
                session.merge(m.AdapterTag(adapter_id=adapter.id, key=key, value=value))
                changed[f"tag:{key}"] = value
        if description is not None and (adapter.description or "") != description:
            adapter.description = description or None
            changed["description"] = description
        if changed:
            adapter.updated_at = m.utcnow()
            audit.record(session, reg.principal, "adapter_update", full_name, **changed)
    return show_adapter(reg, full_name)


def input_warnings(reg: Registry, inputs: Iterable[tuple[str, int]]) -> list[str]:
    """For resolved composition inputs (name, version): one warning per deprecated (or archived) input.

    The composition path calls this for its dry run and its runs; a warning never blocks a run."""
    pairs = list(inputs)
    if not pairs:
        return []
    warnings = []
    with reg.sessions() as session:
        for name, version in pairs:
            namespace, short = validate_name(name)
            row = session.scalar(
                select(m.AdapterVersion)
                .join(m.Adapter, m.Adapter.id == m.AdapterVersion.adapter_id)
                .where(
                    m.Adapter.namespace == namespace,
                    m.Adapter.name == short,
                    m.AdapterVersion.version == version,
                )
            )
            if row is not None and row.status in ("deprecated", "archived"):
                since = f" since {row.status_changed_at:%Y-%m-%d}" if row.status_changed_at else ""
                warnings.append(f"input {name}@{version} is {row.status}{since}")
    return warnings


def deleted_before(session: Session, cutoff: datetime) -> list[tuple[str, str, str]]:
    """(namespace, name, sha256) of versions deleted before `cutoff`: their objects under
    adapters/<ns>/<name>/<sha256>/ are unreferenced for `pemreg gc` (a deleted version's digest cannot
    be registered again under the same adapter, so no live version shares that prefix)."""
    rows = session.execute(
        select(m.Adapter.namespace, m.Adapter.name, m.AdapterVersion.sha256)
        .join(m.Adapter, m.Adapter.id == m.AdapterVersion.adapter_id)
        .where(m.AdapterVersion.status == "deleted", m.AdapterVersion.deleted_at < cutoff)
    ).all()
    return [(ns, name, sha) for ns, name, sha in rows]
