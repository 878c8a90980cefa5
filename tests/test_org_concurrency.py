"""A crash or a concurrent grant change never leaves a principal more access than granted.

A write decides on the namespace row it holds (FOR SHARE on PostgreSQL; SQLite's write lock) until it
commits, and a grant change takes that row FOR UPDATE: so a revocation waits for a write decided under
the old grant, and a write waits for a revocation in progress and is then decided under the new state.
A process killed in the middle of a grant change leaves the grant as it was (one transaction), and no
audit event claims otherwise. Nothing caches a grant: a revocation holds from the next request on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.catalog.migrate import upgrade
from registry.service import Registry
from registry.service.access import namespaces
from registry.service.access.identity import Access
from registry.service.access.namespaces import create_namespace, ensure_namespace, revoke_grant, set_grant
from registry.service.access.policy import Refused
from registry.settings import Settings
from tests.pg_service import truncate_all

WRITER = Access("key:w", "reader")
HOLD = 1.0  # seconds a transaction holds its lock while the other side must wait


@pytest.fixture(params=["sqlite", "postgres"])
def team(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path / 'reg.db'}"
        upgrade(url)
    reg = Registry(Settings(home=tmp_path, database_url=url, principal="operator"))
    create_namespace(reg, "team", visibility="internal")
    set_grant(reg, "team", "key:w", "writer")
    yield reg
    if request.param == "postgres":
        truncate_all(url)


def _decide_write(reg: Registry) -> str:
    writer = reg.acting_as(WRITER)
    with transaction(writer.sessions) as session:
        return str(ensure_namespace(writer, session, "team", action="register", subject="team/x").role)


def test_a_revocation_waits_for_the_write_decided_before_it(team: Registry) -> None:
    writer = team.acting_as(WRITER)
    revoked_at: list[float] = []
    thread = threading.Thread(
        target=lambda: (revoke_grant(team, "team", "key:w"), revoked_at.append(time.monotonic()))
    )
    with transaction(writer.sessions) as session:
        assert ensure_namespace(writer, session, "team", action="register", subject="team/x").role == "writer"
        thread.start()
        time.sleep(HOLD)
        assert not revoked_at, "the revocation did not wait for the write in progress"
        committed = time.monotonic()
    thread.join(timeout=60)
    assert revoked_at and revoked_at[0] >= committed
    # The next request is decided under the revocation (no grant left: internal, unowned, global
    # reader: read only).
    with pytest.raises(Refused, match="key:w is reader in namespace team"):
        _decide_write(team)


def test_a_write_waits_for_a_revocation_in_progress(team: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    paused, go = threading.Event(), threading.Event()

    def pause(name: str) -> None:  # the failpoint inside revoke_grant, after the delete, before commit
        paused.set()
        go.wait(30)

    monkeypatch.setattr(namespaces, "failpoint", pause)
    revoker = threading.Thread(target=revoke_grant, args=(team, "team", "key:w"))
    revoker.start()
    assert paused.wait(30)
    outcome: list[BaseException | str] = []

    def write() -> None:
        try:
            outcome.append(_decide_write(team))
        except BaseException as exc:  # noqa: BLE001 - the outcome is what is checked
            outcome.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(HOLD)
    assert not outcome, "the write was decided while the revocation was in progress"
    go.set()
    revoker.join(timeout=60)
    writer.join(timeout=60)
    assert len(outcome) == 1 and isinstance(outcome[0], Refused), outcome


@pytest.mark.postgres
def test_a_grant_change_killed_midway_changes_nothing(pg_url: str, tmp_path: Path) -> None:
    reg = Registry(Settings(home=tmp_path, database_url=pg_url, principal="operator"))
    create_namespace(reg, "crash", visibility="private")
    set_grant(reg, "crash", "key:w", "writer")
    script = (
        "from registry.service import Registry; from registry.settings import Settings;"
        "from registry.service.access.namespaces import revoke_grant;"
        f"revoke_grant(Registry(Settings(database_url={pg_url!r}, principal='maintainer')), 'crash', 'key:w')"
    )
    env = {**os.environ, "PEMREG_FAILPOINTS": "grant_change", "PEMREG_FAILPOINT_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "grant_change").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "never reached the failpoint"
            time.sleep(0.05)
        # Killed with the grant deleted but not committed, holding the namespace row FOR UPDATE.
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with reg.sessions() as session:
        grants = session.execute(
            select(m.NamespaceGrant.subject, m.NamespaceGrant.role).where(
                m.NamespaceGrant.namespace == "crash"
            )
        ).all()
        actions = set(session.scalars(select(m.AuditEvent.action).where(m.AuditEvent.namespace == "crash")))
    assert [tuple(g) for g in grants] == [("key:w", "writer")]
    assert "grant_revoke" not in actions
    writer = reg.acting_as(WRITER)
    with transaction(writer.sessions) as session:  # the lock went with the process
        assert (
            ensure_namespace(writer, session, "crash", action="register", subject="crash/x").role == "writer"
        )
    truncate_all(pg_url)
