"""Runs that start later (a schedule firing, a recomposition, a queued run a worker picks up) act as the
principal that stored their spec, with that principal's grants when they start: a revoked key's
schedule stops, and its run says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.compose import act_as_owner, begin_run
from registry import service
from registry.errors import NotFound
from registry.service import Registry
from registry.service.access.identity import Access
from registry.service.access.namespaces import create_namespace, revoke_grant, set_grant
from registry.service.access.principals import PrincipalGone, remember, stored_access
from registry.service.admin.keys import create_key, revoke_key
from registry.service.compositions import runs
from registry.service.compositions.reads import get
from registry.service.compositions.status import RunStatus
from registry.spec import load_spec

SPEC = "name: team/out\nexpression: 'team/a + team/b'\nschedule: '0 * * * *'\n"


@pytest.fixture
def stored(reg: Registry, adapter_dirs: dict[str, Path]) -> Registry:
    """team/out's schedule stored by key:w, a writer of `team` by its grant only (global reader)."""
    create_key(reg, "w", "reader")
    create_namespace(reg, "team", visibility="private")
    set_grant(reg, "team", "key:w", "writer")
    service.register_adapter(reg, adapter_dirs["lora"], "team/a")
    service.register_adapter(reg, adapter_dirs["lora2"], "team/b")
    writer = reg.acting_as(Access("key:w", "reader"))
    spec = load_spec(SPEC)
    inputs, _ = runs.prepare(writer, spec)
    runs.create(writer, spec, inputs, "api")
    return reg


def test_a_schedule_runs_as_who_stored_it(stored: Registry) -> None:
    run = begin_run(stored, load_spec(SPEC), None, "schedule")  # the worker: an operator registry
    assert (run.status, run.principal, run.trigger) == (RunStatus.PENDING, "key:w", "schedule")


def test_a_lost_grant_stops_the_schedule_and_says_why(stored: Registry) -> None:
    revoke_grant(stored, "team", "key:w")
    run = begin_run(stored, load_spec(SPEC), None, "schedule")
    assert run.status is RunStatus.FAILED and run.principal == "key:w"
    # team is private and no longer grants key:w anything: its inputs are as good as missing to it.
    assert run.error == "refused at start: adapter team/a not found"
    event = next(e for e in service.list_events(stored, actor="key:w") if e.action == "refused")
    assert (event.action, event.details["attempted"], event.namespace) == ("refused", "schedule", "team")
    assert run.inputs == [] and "team/a" in str(run.spec)  # its spec still names team's adapters ...
    with pytest.raises(NotFound):
        get(stored.acting_as(Access("key:other", "writer")), run.id)  # ... so only team sees the run


def test_a_revoked_key_stops_its_schedule(stored: Registry) -> None:
    revoke_key(stored, "w")
    run = begin_run(stored, load_spec(SPEC), None, "schedule")
    assert run.status is RunStatus.FAILED
    assert run.error == "refused at start: key:w was revoked; what it stored no longer runs"


def test_a_recomposition_runs_as_the_principal_of_the_run_it_redoes(stored: Registry) -> None:
    create_key(stored, "m", "reader")
    set_grant(stored, "team", "key:m", "maintainer")
    run = begin_run(stored, load_spec(SPEC), None, "recompose", principal="key:m")
    assert (run.status, run.principal) == (RunStatus.PENDING, "key:m")
    set_grant(stored, "team", "key:m", "reader")
    refused = begin_run(stored, load_spec(SPEC), None, "recompose", principal="key:m")
    assert refused.status is RunStatus.FAILED
    assert "key:m is reader in namespace team (via key:m); compose of team/out needs writer" in (
        refused.error or ""
    )


def test_a_queued_run_is_checked_again_when_a_worker_starts_it(stored: Registry) -> None:
    writer = stored.acting_as(Access("key:w", "reader"))
    spec = load_spec(SPEC)
    inputs, _ = runs.prepare(writer, spec)
    queued = runs.create(writer, spec, inputs, "api")
    acting = act_as_owner(stored, spec, queued)  # the worker's registry becomes the submitter's
    assert acting.acting == Access("key:w", "reader")
    revoke_grant(stored, "team", "key:w")
    with pytest.raises(NotFound, match="adapter team/a not found"):  # private, no longer granted
        act_as_owner(stored, spec, queued)


def test_sso_users_runs_use_their_groups_as_last_seen(stored: Registry) -> None:
    sso = Registry(
        stored.settings.model_copy(update={"oidc_issuer": "https://idp.example", "oidc_admin_groups": "ops"})
    )
    sso.__dict__["sessions"] = stored.sessions
    with pytest.raises(PrincipalGone, match="never signed in"):
        stored_access(sso, "user:ada")
    remember(sso, Access("user:ada", "reader", ("ml", "ops")))
    assert stored_access(sso, "user:ada") == Access("user:ada", "admin", ("ml", "ops"))
    remember(sso, Access("user:ada", "reader", ("ml",)))  # left the admin group at the issuer
    assert stored_access(sso, "user:ada") == Access("user:ada", "reader", ("ml",))
    with pytest.raises(PrincipalGone, match="not configured"):
        stored_access(stored, "user:ada")  # SSO turned off: its runs stop
