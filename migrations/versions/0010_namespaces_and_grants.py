"""namespaces as objects, grants, SSO users; the namespace of audit events and compositions

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 09:00:00.000000

- `namespaces` (visibility internal | private, protected alias globs, description) and
  `namespace_grants` (namespace, subject, role reader | writer | maintainer).
- `sso_users`: an SSO principal's groups as last seen, for runs it stored that start later.
- `audit_events.namespace` and `compositions.namespace` (+ `composition_namespaces`, the inputs'):
  the columns the read policy filters on inside each listing's query.

An existing deployment keeps behaving as before: every namespace found in the catalog (adapters, runs,
audit events) becomes an `internal` namespace with no grants, which every signed-in principal reads
and where keys keep their global role. Principals become `key:<name>`: the runs and audit events a
key recorded under its bare name are renamed so (a run: exactly those 0008 tied to a key row; runs are
re-authorised as their principal when they start again; the audit trail stays searchable by one actor
name).

Plain ADD / DROP COLUMN, never SQLite's batch mode (a rebuild of `compositions` or `audit_events`
would cascade through their foreign keys, see 0005).
"""

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# registry.refs at the time of writing (a migration does not import the application).
NAME = r"[a-z0-9][a-z0-9._-]{0,63}/[a-z0-9][a-z0-9._-]{0,127}"
SUBJECT = re.compile(rf"^({NAME})(@.*)?$")
BATCH = 1000


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _namespace_of(action: str, subject: str) -> str | None:
    if action == "gc_delete" and subject.startswith("adapters/"):  # adapters/<ns>/<name>/<sha256>
        parts = subject.split("/")
        return parts[1] if len(parts) > 2 and parts[1] else None
    found = SUBJECT.match(subject)
    return found.group(1).split("/", 1)[0] if found else None


def upgrade() -> None:
    op.create_table(
        "namespaces",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False, server_default="internal"),
        sa.Column("protected_aliases", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("visibility IN ('internal', 'private')", name=op.f("ck_namespaces_visibility")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_namespaces")),
    )
    op.create_table(
        "namespace_grants",
        sa.Column("namespace", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("granted_by", sa.String(128), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('reader', 'writer', 'maintainer')", name=op.f("ck_namespace_grants_role")
        ),
        sa.ForeignKeyConstraint(
            ["namespace"],
            ["namespaces.name"],
            name=op.f("fk_namespace_grants_namespace_namespaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("namespace", "subject", name=op.f("pk_namespace_grants")),
    )
    op.create_index(
        "ix_namespace_grants_subject_namespace", "namespace_grants", ["subject", "namespace"], unique=False
    )
    op.create_table(
        "sso_users",
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("principal", name=op.f("pk_sso_users")),
    )
    op.create_table(
        "composition_namespaces",
        sa.Column("composition_id", sa.String(36), nullable=False),
        sa.Column("namespace", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["composition_id"],
            ["compositions.id"],
            name=op.f("fk_composition_namespaces_composition_id_compositions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("composition_id", "namespace", name=op.f("pk_composition_namespaces")),
    )
    op.add_column("audit_events", sa.Column("namespace", sa.String(64), nullable=True))
    op.create_index("ix_audit_events_namespace_id", "audit_events", ["namespace", "id"], unique=False)
    op.add_column("compositions", sa.Column("namespace", sa.String(64), nullable=True))
    _backfill()


def _backfill() -> None:
    conn = op.get_bind()
    # Principals: a key's bare name becomes key:<name> (SSO users did not exist before). A run was
    # stored by a key exactly when 0008 found its key row; any other run's principal is the operator's
    # name, even one that a key also carries.
    conn.execute(
        sa.text(
            "UPDATE compositions SET principal = 'key:' || principal "
            "WHERE api_key_id IS NOT NULL AND length(principal) <= 124"
        )
    )
    conn.execute(
        sa.text(
            "UPDATE audit_events SET actor = 'key:' || actor "
            "WHERE actor IN (SELECT name FROM api_keys) AND length(actor) <= 124"
        )
    )
    _backfill_audit(conn)
    runs = conn.execute(sa.text("SELECT id, output_name, resolved_inputs FROM compositions")).all()
    names: set[str] = set()
    updates, inputs = [], []
    for run_id, output_name, resolved in runs:
        namespace = output_name.split("/", 1)[0] if "/" in output_name else None
        if namespace:
            updates.append({"id": run_id, "ns": namespace})
            names.add(namespace)
        items: Any = json.loads(resolved) if isinstance(resolved, str) else resolved
        for ns in sorted({str(i.get("name", "")).split("/", 1)[0] for i in items or []} - {""}):
            inputs.append({"id": run_id, "ns": ns})
            names.add(ns)
    for start in range(0, len(updates), BATCH):
        conn.execute(
            sa.text("UPDATE compositions SET namespace = :ns WHERE id = :id"), updates[start : start + BATCH]
        )
    for start in range(0, len(inputs), BATCH):
        conn.execute(
            sa.text("INSERT INTO composition_namespaces (composition_id, namespace) VALUES (:id, :ns)"),
            inputs[start : start + BATCH],
        )
    names |= set(conn.scalars(sa.text("SELECT DISTINCT namespace FROM adapters")))
    names |= {n for n in conn.scalars(sa.text("SELECT DISTINCT namespace FROM audit_events")) if n}
    table = sa.table(
        "namespaces",
        sa.column("name"),
        sa.column("visibility"),
        sa.column("protected_aliases", sa.JSON()),
        sa.column("created_by"),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    rows = [
        {
            "name": n,
            "visibility": "internal",
            "protected_aliases": [],
            "created_by": "migration",
            "created_at": now,
            "updated_at": now,
        }
        for n in sorted(names)
    ]
    for start in range(0, len(rows), BATCH):
        conn.execute(table.insert(), rows[start : start + BATCH])


def _backfill_audit(conn: sa.Connection) -> None:
    if _is_postgres():  # in the database: audit trails can be long
        conn.execute(
            sa.text(
                "UPDATE audit_events SET namespace = split_part(subject, '/', 1) "
                f"WHERE action <> 'gc_delete' AND subject ~ '^{NAME}(@.*)?$'"
            )
        )
        conn.execute(
            sa.text(
                "UPDATE audit_events SET namespace = split_part(subject, '/', 2) "
                "WHERE action = 'gc_delete' AND subject LIKE 'adapters/%/%'"
            )
        )
        return
    rows = conn.execute(sa.text("SELECT id, action, subject FROM audit_events")).all()
    found = [{"id": i, "ns": ns} for i, action, subject in rows if (ns := _namespace_of(action, subject))]
    for start in range(0, len(found), BATCH):
        conn.execute(
            sa.text("UPDATE audit_events SET namespace = :ns WHERE id = :id"), found[start : start + BATCH]
        )


def downgrade() -> None:
    op.drop_index("ix_audit_events_namespace_id", table_name="audit_events")
    if _is_postgres():
        op.drop_column("audit_events", "namespace")
        op.drop_column("compositions", "namespace")
    else:  # SQLite >= 3.35 drops a column in place (no table rebuild, no cascade)
        op.execute("ALTER TABLE audit_events DROP COLUMN namespace")
        op.execute("ALTER TABLE compositions DROP COLUMN namespace")
    op.drop_table("composition_namespaces")
    op.drop_table("sso_users")
    op.drop_index("ix_namespace_grants_subject_namespace", table_name="namespace_grants")
    op.drop_table("namespace_grants")
    op.drop_table("namespaces")
    conn = op.get_bind()
    conn.execute(
        sa.text(
            "UPDATE compositions SET principal = substr(principal, 5) "
            "WHERE principal LIKE 'key:%' AND api_key_id IS NOT NULL"
        )
    )
    conn.execute(
        sa.text(
            "UPDATE audit_events SET actor = substr(actor, 5) "
            "WHERE actor LIKE 'key:%' AND substr(actor, 5) IN (SELECT name FROM api_keys)"
        )
    )
