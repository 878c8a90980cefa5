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

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.catalog.upsert import insert_ignore
from registry.errors import Conflict, InvalidInput, StoreError
from registry.hashing import sha256_bytes
from registry.model_card import CARD_FILE, GENERATED_CARD_FILE, render_model_card
from registry.paths import user_path
from registry.provenance import build_provenance, dumps
from registry.refs import validate_name
from registry.scratch import scratch_dir
from registry.service.catalog import audit
from registry.service.catalog.artifact_index import index_files
from registry.service.catalog.resolve import aliases_of
from registry.service.context import Registry, open_store_for
from registry.service.registration.base_identity import BasePlan, check_base_label, local_dir, plan_base
from registry.service.registration.base_models import DEFAULT_REVISION
from registry.service.registration.base_shapes import base_module_dims, check_module_shapes
from registry.sources import local_folder
from registry.store import ArtifactStore, adapter_prefix
from registry.views import VersionView

if TYPE_CHECKING:  # torch-heavy; imported when a registration actually runs
    from registry.ingest import IngestedAdapter

ProgressFactory = Callable[[str, int], Callable[[int], None]]
TAG_KEY_MAX = 128
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
        if len(key) > 128 or len(value) > 512:
            raise InvalidInput(
                f"tags: {key[:40]!r}: keys up to 128, values up to 512 characters", field="tags"
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


def refuse_deleted(existing: m.AdapterVersion) -> None:
    """Bytes of a deleted version are not brought back silently (their objects may be collected)."""
    if existing.status == "deleted":
        raise Conflict(
            f"{existing.adapter.full_name}@{existing.version} had these bytes and was deleted; "
            "register them under another name"
        )


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
) -> tuple[m.AdapterVersion, bool]:
    """Inside the caller's transaction: the adapter row, the next version number, tags, audit.
    `base_plan` is what `plan_base` decided before the upload; without it, it is decided here."""
    namespace, name = full_name.split("/", 1)
    plan = base_plan or plan_base(
        session,
        base_model,
        ingested.adapter.base_model,
        local=False,
        default_revision=DEFAULT_REVISION,
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
        refuse_deleted(existing)
        return existing, False
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
    return version, True


def _precheck(
    reg: Registry, full_name: str, ingested: IngestedAdapter, base_model: str | None, local: bool
) -> tuple[BasePlan, VersionView | None]:
    """Before uploading anything: which base the adapter binds to; the same digest already registered
    (return it); or the adapter exists with another PEM type / base model (refuse, so bad input stores
    nothing)."""
    namespace, name = full_name.split("/", 1)
    with reg.sessions() as session:
        plan = plan_base(
            session, base_model, ingested.adapter.base_model, local=local, default_revision=DEFAULT_REVISION
        )
        adapter = session.scalar(
            select(m.Adapter).where(m.Adapter.namespace == namespace, m.Adapter.name == name)
        )
        if adapter is None:
            return plan, None
        _check_owner(adapter, ingested.adapter.pem_type, plan.name, plan.revision)
        existing = session.scalar(
            select(m.AdapterVersion).where(
                m.AdapterVersion.adapter_id == adapter.id, m.AdapterVersion.sha256 == ingested.sha256
            )
        )
        if existing is None:
            return plan, None
        refuse_deleted(existing)
        return plan, VersionView.of(existing, aliases_of(session, existing))


def _check_base_shapes(reg: Registry, plan: BasePlan, ingested: IngestedAdapter, workdir: Path) -> None:
    """Every door (CLI and REST): the adapter's module shapes against its registered base's config.json
    (a local folder, or the one file fetched from an s3:// source). A base to be auto-registered is a
    hub id and is not contacted; a config that cannot be read skips the check (base_shapes.py)."""
    if plan.auto:
        return
    folder = local_dir(plan.source)
    if folder is None and plan.source.startswith("s3://"):
        folder = workdir / "base-config"
        folder.mkdir(exist_ok=True)
        try:
            open_store_for(reg.settings, plan.source.rstrip("/")).get_file(
                "config.json", folder / "config.json"
            )
        except (StoreError, ValueError):
            return
    dims = base_module_dims(folder) if folder is not None else None
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
    known_digests: dict[str, str] | None = None,
) -> tuple[VersionView, bool]:
    """Returns (version, created). Registering bytes that already exist returns that version.
    `trigger` (cli, api, ...) is recorded in the provenance; only non-API callers (the local user) may
    have local paths resolved. `notify` hears about a base model auto-registered on the way (nothing
    registered matched the config's base). `known_digests`: sha256 per file name, computed while the
    files were written (an upload), so they are not read again."""
    from registry.ingest import ingest_folder  # torch import (~2 s) only for commands that read adapters

    validate_name(name)
    tags = tags or {}
    check_lengths(task, tags, base_model, description)
    local = trigger != "api"
    with scratch_dir("ingest") as tmp:
        folder = _fetch_source(reg, str(source), Path(tmp))
        ingested = ingest_folder(folder, Path(tmp), known_digests)
        plan, existing = _precheck(reg, name, ingested, base_model, local)
        if existing is not None:
            return existing, False
        _check_base_shapes(reg, plan, ingested, Path(tmp))
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
            )
            view = VersionView.of(row, aliases_of(session, row))
        if plan.auto and notify is not None:
            notify(f"base model {plan.label} was not registered; registered it (source {plan.source})")
        return view, created
