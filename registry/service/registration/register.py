"""Register an adapter version: validate, upload first, then one catalog transaction.

Ordering is the safety argument: a crash after the upload leaves only content-addressed objects no
row points at (harmless, identical bytes are reused by a retry); a crash before the commit leaves no
row; a row is only ever committed after every file it names is in the store.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from registry.base_evidence import BaseEvidence, evidence_for
from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.catalog.upsert import insert_ignore
from registry.errors import Conflict, InvalidInput
from registry.hashing import sha256_bytes
from registry.model_card import CARD_FILE, GENERATED_CARD_FILE, render_model_card
from registry.paths import user_path
from registry.provenance import build_provenance, dumps
from registry.refs import TAG_KEY_MAX, TAG_VALUE_MAX, validate_name
from registry.scratch import scratch_dir
from registry.service.access.namespaces import ensure_namespace
from registry.service.access.policy import may_write_somewhere, require_global
from registry.service.catalog import audit
from registry.service.catalog.artifact_index import index_files
from registry.service.catalog.resolve import aliases_of
from registry.service.context import Registry, open_store_for
from registry.service.events import outbox
from registry.service.registration.base_identity import BasePlan, check_base_label, plan_base
from registry.service.registration.base_models import DEFAULT_REVISION
from registry.service.registration.base_shapes import check_module_shapes, recorded_module_dims
from registry.sources import local_folder
from registry.store import ArtifactStore, adapter_prefix
from registry.views import TrainingRecord, VersionView

if TYPE_CHECKING:  # torch-heavy; imported when a registration actually runs
    from registry.ingest import IngestedAdapter

ProgressFactory = Callable[[str, int], Callable[[int], None]]
MAX_DESCRIPTION = 16384  # characters; at most 64 KiB of UTF-8, the upload form's per-field limit
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def parse_tags(items: list[str] | None, field: str = "tag") -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if CONTROL_RE.search(item):
            raise InvalidInput(f"{field}: {item[:80]!r}: control characters are not allowed", field=field)
        if not sep or not key.strip() or len(key) > TAG_KEY_MAX:
            raise InvalidInput(f"{field}: {item[:80]!r} is not key=value", field=field)
        tags[key.strip()] = value.strip()
    return tags


def check_lengths(
    task: str | None, tags: dict[str, str], base_model: str | None, description: str | None = None
) -> None:
    """The catalog columns' limits, checked up front so a long value is an error naming its field."""
    if description and len(description) > MAX_DESCRIPTION:
        raise InvalidInput(f"description: at most {MAX_DESCRIPTION} characters", field="description")
    if task and len(task) > 128:
        raise InvalidInput("task: at most 128 characters", field="task")
    for key, value in tags.items():
        if not key.strip() or "=" in key:
            raise InvalidInput(f"tags: {key[:40]!r} is not a tag key", field="tags")
        if len(key) > TAG_KEY_MAX or len(value) > TAG_VALUE_MAX:
            raise InvalidInput(
                f"tags: {key[:40]!r}: keys up to {TAG_KEY_MAX}, values up to {TAG_VALUE_MAX} characters",
                field="tags",
            )
        if CONTROL_RE.search(key) or CONTROL_RE.search(value):
            raise InvalidInput(f"tags: {key[:40]!r}: control characters are not allowed", field="tags")
    if task and CONTROL_RE.search(task):
        raise InvalidInput("task: control characters are not allowed", field="task")
    if base_model is not None:
        check_base_label(base_model)


def _fetch_source(reg: Registry, source: str, workdir: Path) -> Path:
    """A local folder (path or file:// URI) as is; an s3:// folder downloaded to `workdir` first."""
    if not source.startswith("s3://"):
        return local_folder(source) or user_path(source)
    store = open_store_for(reg.settings, source.rstrip("/"))
    dest = workdir / "source"
    dest.mkdir()
    keys = store.list_keys("")
    if not keys:
        raise InvalidInput(f"source: nothing found under {source}", field="source")
    for key in keys:
        if "/" not in key:  # the adapter folder's own files, not nested checkpoints
            store.get_file(key, dest / key)
    return dest


def _put_generated(store: ArtifactStore, key: str, data: bytes) -> dict[str, Any]:
    """Model card / provenance: written once per digest; a later registration keeps the first."""
    if not store.exists(key):
        try:
            store.put_bytes(key, data)
            return {"sha256": sha256_bytes(data), "size": len(data)}
        except Conflict:  # a parallel registration of the same bytes wrote it first
            pass
    stored = b"".join(store.open_stream(key))
    return {"sha256": sha256_bytes(stored), "size": len(stored)}


def upload_version_files(
    reg: Registry,
    full_name: str,
    ingested: IngestedAdapter,
    *,
    base_model: str,
    task: str | None,
    tags: dict[str, str],
    description: str | None,
    provenance_extra: dict[str, Any] | None = None,
    card_extra: dict[str, Any] | None = None,
    trigger: str = "cli",
    progress: ProgressFactory | None = None,
    training: TrainingRecord | None = None,
) -> tuple[str, dict[str, Any]]:
    """Upload the adapter files, model card and provenance. Returns (artifact_uri, files)."""
    namespace, name = full_name.split("/", 1)
    prefix = adapter_prefix(namespace, name, ingested.sha256)
    files: dict[str, Any] = {}
    for filename, entry in ingested.files.items():
        if filename == CARD_FILE:  # the user's card: like generated files, the first one per digest stays
            files[filename] = _put_generated(reg.store, f"{prefix}/{filename}", entry.path.read_bytes())
            continue
        callback = progress(filename, entry.size) if progress else None
        reg.store.put_file(f"{prefix}/{filename}", entry.path, sha256=entry.sha256, progress=callback)
        files[filename] = {"sha256": entry.sha256, "size": entry.size}
    card_file = GENERATED_CARD_FILE if CARD_FILE in files else CARD_FILE
    card = render_model_card(
        full_name=full_name,
        version=None,
        sha256=ingested.sha256,
        base_model=base_model,
        pem_type=ingested.adapter.pem_type,
        task=task,
        tags=tags,
        description=description,
        **(card_extra or {}),
    )
    files[card_file] = _put_generated(reg.store, f"{prefix}/{card_file}", card.encode())
    provenance = build_provenance(
        subject=dict(files),
        kind="composition" if provenance_extra else "upload",
        principal=reg.principal,
        trigger=trigger,
        extra={
            "name": full_name,
            "base_model": base_model,
            "metadata": ingested.metadata,
            **({"training": training.model_dump()} if training and not training.empty else {}),
            **(provenance_extra or {}),
        },
    )
    files["provenance.json"] = _put_generated(reg.store, f"{prefix}/provenance.json", dumps(provenance))
    return f"{reg.store.url.rstrip('/')}/{prefix}", files


def _lock_adapter(
    session: Session,
    namespace: str,
    name: str,
    pem_type: str,
    base: m.BaseModel,
    task: str | None,
    description: str | None,
    principal: str,
) -> m.Adapter:
    insert_ignore(
        session,
        m.Adapter,
        {
            "namespace": namespace,
            "name": name,
            "pem_type": pem_type,
            "task": task,
            "description": description,
            "base_model_id": base.id,
            "created_by": principal,
            "created_at": m.utcnow(),
            "updated_at": m.utcnow(),
        },
        conflict=["namespace", "name"],
    )
    # Row lock: concurrent registrations of one name take version numbers one after another.
    adapter = session.scalars(
        select(m.Adapter)
        .where(m.Adapter.namespace == namespace, m.Adapter.name == name)
        .with_for_update(of=m.Adapter)
        .execution_options(populate_existing=True)
    ).one()
    _check_owner(adapter, pem_type, base.name, base.revision)
    return adapter


def _check_owner(adapter: m.Adapter, pem_type: str, base_name: str, base_revision: str | None) -> None:
    if adapter.pem_type != pem_type:
        raise Conflict(f"{adapter.full_name} holds {adapter.pem_type} adapters; this one is {pem_type}")
    owner = adapter.base_model
    if owner.name != base_name or (base_revision and owner.revision != base_revision):
        raise Conflict(
            f"{adapter.full_name} belongs to base model {owner.name}@{owner.revision}; "
            f"this adapter is for {base_name}{'@' + base_revision if base_revision else ''}"
        )


def _base_row(session: Session, plan: BasePlan, principal: str) -> m.BaseModel:
    """The planned base; auto-registered (with an audit event saying so) when the plan says so."""
    if not plan.auto:
        return session.get_one(m.BaseModel, plan.base_id)
    # ON CONFLICT: parallel first registrations for one new base must not collide.
    insert_ignore(
        session,
        m.BaseModel,
        {
            "name": plan.name,
            "revision": plan.revision,
            "source": plan.source,
            "created_by": principal,
            "created_at": m.utcnow(),
        },
        conflict=["name", "revision"],
    )
    base = session.scalars(
        select(m.BaseModel).where(m.BaseModel.name == plan.name, m.BaseModel.revision == plan.revision)
    ).one()
    audit.record(
        session, principal, "register_base_model", f"base:{plan.label}"[:256], source=plan.source, auto=True
    )
    return base


def refuse_deleted(existing: m.AdapterVersion, allow_deleted: bool = False) -> bool:
    """Bytes of a deleted version are not brought back silently (their objects may be collected):
    refused unless `allow_deleted`; returns whether `existing` is a deleted version to bring back."""
    if existing.status != "deleted":
        return False
    if not allow_deleted:
        raise Conflict(
            f"{existing.adapter.full_name}@{existing.version} had these bytes and was deleted; "
            f"`pemreg adapters undelete {existing.adapter.full_name}@{existing.version}` brings it back "
            "(until gc), or register them again with --allow-deleted"
        )
    return True


def _revive(session: Session, reg: Registry, row: m.AdapterVersion, files: dict[str, Any]) -> None:
    """--allow-deleted: the deleted version these bytes were becomes active again (same number). The
    files are the ones just uploaded: gc may have removed the old card and provenance, and the new
    ones differ (a new timestamp), so the row and the digest index follow them."""
    if files != row.files:
        session.execute(delete(m.ArtifactFile).where(m.ArtifactFile.version_id == row.id))
        row.files = files
        index_files(session, row)
    row.status = "active"
    row.status_changed_by = reg.principal
    row.status_changed_at = m.utcnow()
    row.deleted_at = None
    audit.record(
        session,
        reg.principal,
        "version_undelete",
        f"{row.adapter.full_name}@{row.version}",
        sha256=row.sha256,
        via="register --allow-deleted",
    )
    outbox.version_status_changed(session, row, "deleted", reg.principal)


def _add_training(session: Session, version: m.AdapterVersion, training: TrainingRecord | None) -> None:
    if training is None:
        return
    for key, number in training.metrics.items():
        version.training.append(m.TrainingValue(kind="metric", name=key, value=repr(number), number=number))
    for key, value in training.params.items():
        version.training.append(m.TrainingValue(kind="param", name=key, value=value))
    for uri in training.datasets:
        version.training.append(m.TrainingValue(kind="dataset", name="", value=uri))


def commit_version(
    session: Session,
    reg: Registry,
    full_name: str,
    ingested: IngestedAdapter,
    *,
    artifact_uri: str,
    files: dict[str, Any],
    base_model: str | None,
    task: str | None,
    tags: dict[str, str],
    description: str | None,
    base_plan: BasePlan | None = None,
    allow_deleted: bool = False,
    training: TrainingRecord | None = None,
) -> tuple[m.AdapterVersion, bool]:
    """Inside the caller's transaction: the adapter row, the next version number, tags, audit.
    `base_plan` is what `plan_base` decided before the upload; without it, it is decided here."""
    namespace, name = full_name.split("/", 1)
    # First: the namespace row stays locked (shared) until this transaction commits the version.
    ensure_namespace(reg, session, namespace, action="register", subject=full_name)
    plan = base_plan or plan_base(
        session, base_model, ingested.adapter.base_model, default_revision=DEFAULT_REVISION
    )
    base = _base_row(session, plan, reg.principal)
    adapter = _lock_adapter(
        session, namespace, name, ingested.adapter.pem_type, base, task, description, reg.principal
    )
    existing = session.scalar(
        select(m.AdapterVersion).where(
            m.AdapterVersion.adapter_id == adapter.id, m.AdapterVersion.sha256 == ingested.sha256
        )
    )
    if existing is not None:
        if not refuse_deleted(existing, allow_deleted):
            return existing, False
        _revive(session, reg, existing, files)
        session.flush()
        return existing, True
    latest = session.scalar(
        select(func.max(m.AdapterVersion.version)).where(m.AdapterVersion.adapter_id == adapter.id)
    )
    meta = ingested.metadata
    version = m.AdapterVersion(
        adapter_id=adapter.id,
        version=(latest or 0) + 1,
        sha256=ingested.sha256,
        rank=meta.get("r"),
        alpha=meta.get("lora_alpha"),
        use_rslora=bool(meta.get("use_rslora")),
        target_modules=list(meta.get("target_modules") or []),
        dtype=meta["dtype"],
        size_bytes=ingested.size_bytes,
        num_parameters=int(meta.get("num_parameters") or 0),
        files=files,
        extra={"module_shapes": meta.get("module_shapes", {}), "config": ingested.adapter.config},
        artifact_uri=artifact_uri,
        created_by=reg.principal,
    )
    session.add(version)
    _add_training(session, version, training)
    index_files(session, version)
    for key, value in tags.items():
        session.merge(m.AdapterTag(adapter_id=adapter.id, key=key, value=value))
    if task and adapter.task != task:
        adapter.task = task
    if description and adapter.description != description:
        adapter.description = description
    adapter.updated_at = m.utcnow()
    session.flush()
    version.adapter = adapter
    audit.record(session, reg.principal, "register", f"{full_name}@{version.version}", sha256=ingested.sha256)
    outbox.version_created(session, version, reg.principal)
    return version, True


def _precheck(
    reg: Registry,
    full_name: str,
    ingested: IngestedAdapter,
    base_model: str | None,
    evidence: BaseEvidence | None,
    create_base: bool,
    allow_deleted: bool,
) -> tuple[BasePlan, VersionView | None, bool]:
    """Before uploading anything: which base the adapter binds to; the same digest already registered
    (return it); or the adapter exists with another PEM type / base model (refuse, so bad input stores
    nothing). The flag: these bytes are a deleted version that `allow_deleted` brings back."""
    namespace, name = full_name.split("/", 1)
    with reg.sessions() as session:
        plan = plan_base(
            session,
            base_model,
            ingested.adapter.base_model,
            evidence=evidence,
            create=create_base,
            default_revision=DEFAULT_REVISION,
        )
        adapter = session.scalar(
            select(m.Adapter).where(m.Adapter.namespace == namespace, m.Adapter.name == name)
        )
        if adapter is None:
            return plan, None, False
        _check_owner(adapter, ingested.adapter.pem_type, plan.name, plan.revision)
        existing = session.scalar(
            select(m.AdapterVersion).where(
                m.AdapterVersion.adapter_id == adapter.id, m.AdapterVersion.sha256 == ingested.sha256
            )
        )
        if existing is None:
            return plan, None, False
        if refuse_deleted(existing, allow_deleted):
            return plan, None, True  # deleted bytes coming back: upload again (gc may have taken them)
        return plan, VersionView.of(existing, aliases_of(session, existing)), False


def check_may_write_somewhere(reg: Registry) -> None:
    """Before an upload is read at all: a principal that may write nowhere is refused at once (403), so
    a reader cannot make the server spool gigabytes only to refuse them."""
    with reg.sessions() as session:
        if may_write_somewhere(session, reg.acting):
            return
    require_global(reg.acting, "writer", action="register", subject="adapters")


def check_may_register(reg: Registry, full_name: str) -> None:
    """May the caller register versions under `full_name` (its namespace writable, or creatable)? The
    commit decides again on the locked namespace row; this answers early, before any bytes move."""
    namespace, _ = validate_name(full_name)
    with reg.sessions() as session:
        ensure_namespace(reg, session, namespace, action="register", subject=full_name, create=False)


def _check_base_shapes(reg: Registry, plan: BasePlan, ingested: IngestedAdapter) -> None:
    """Against the config the catalog recorded for the base (the same check in every mode)."""
    if plan.base_id is None:
        return
    with reg.sessions() as session:
        config = session.get_one(m.BaseModel, plan.base_id).config
    dims = recorded_module_dims(config)
    if dims:
        shapes = ingested.metadata.get("module_shapes") or {}
        check_module_shapes(ingested.adapter.pem_type, shapes, dims, plan.label)


def register_adapter(
    reg: Registry,
    source: str | Path,
    name: str,
    *,
    base_model: str | None = None,
    task: str | None = None,
    tags: dict[str, str] | None = None,
    description: str | None = None,
    progress: ProgressFactory | None = None,
    trigger: str = "cli",
    notify: Callable[[str], None] | None = None,
    evidence: BaseEvidence | None = None,
    create_base: bool | None = None,
    allow_deleted: bool = False,
    training: TrainingRecord | None = None,
    known_digests: dict[str, str] | None = None,
) -> tuple[VersionView, bool]:
    """Returns (version, created). Registering bytes that already exist returns that version.
    `trigger` (cli, api, ...) is recorded in the provenance. `evidence`: what the caller found in the
    folder the adapter config's base path names on its disk (registry.base_evidence); a non-API caller
    is this machine's user, so it is computed here when not given. `create_base`: an unmatched plain
    hub id may be registered as a new base (default: for non-API callers only). `allow_deleted`:
    bytes of a deleted version of this adapter bring that version back. `notify` hears what happened
    on the way (a base registered, a deleted version brought back). `known_digests`: sha256 per file
    name, computed while the files were written (an upload), so they are not read again."""
    from registry.ingest import ingest_folder  # torch import (~2 s) only for commands that read adapters

    validate_name(name)
    tags = tags or {}
    check_lengths(task, tags, base_model, description)
    check_may_register(reg, name)  # before any source is read: 403 (or 404) costs nothing
    local = trigger != "api"
    create = local if create_base is None else create_base
    with scratch_dir("ingest") as tmp:
        folder = _fetch_source(reg, str(source), Path(tmp))
        ingested = ingest_folder(folder, Path(tmp), known_digests)
        if evidence is None and local and not str(source).startswith("s3://"):
            evidence = evidence_for(ingested.adapter.base_model, weights=base_model is None)
        plan, existing, reviving = _precheck(reg, name, ingested, base_model, evidence, create, allow_deleted)
        if existing is not None:
            return existing, False
        _check_base_shapes(reg, plan, ingested)
        artifact_uri, files = upload_version_files(
            reg,
            name,
            ingested,
            base_model=plan.name,
            task=task,
            tags=tags,
            description=description,
            progress=progress,
            trigger=trigger,
            training=training,
        )
        with transaction(reg.sessions) as session:
            row, created = commit_version(
                session,
                reg,
                name,
                ingested,
                artifact_uri=artifact_uri,
                files=files,
                base_model=base_model,
                task=task,
                tags=tags,
                description=description,
                base_plan=plan,
                allow_deleted=allow_deleted,
                training=training,
            )
            view = VersionView.of(row, aliases_of(session, row))
        if plan.auto and notify is not None:
            notify(f"base model {plan.label} was not registered; registered it (source {plan.source})")
        if reviving and created and notify is not None:
            notify(
                f"{name}@{view.version} had these bytes and was deleted; registered them again "
                "(--allow-deleted): the version is active again"
            )
        return view, created
