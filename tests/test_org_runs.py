"""Runs that start later (a schedule firing, a recomposition, a queued run a worker picks up) act as the
principal that stored their spec, with that principal's grants when they start: a revoked key's
schedule stops, and its run says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.compose import begin_run
from registry import service
from registry.errors import NotFound
from registry.service import Registry
from registry.service.access.identity import Access
from registry.service.access.namespaces import create_namespace, revoke_grant, set_grant
from registry.service.access.principals import PrincipalGone, remember, stored_access
from registry.service.admin.keys import authenticate, create_key, revoke_key
from registry.service.compositions import runs
from registry.service.compositions.reads import get
from registry.service.compositions.status import RunStatus
from registry.spec import load_spec

SPEC = "name: team/out\nexpression: 'team/a + team/b'\nschedule: '0 * * * *'\n"


@pytest.fixture
def stored(reg: Registry, adapter_dirs: dict[str, Path]) -> Registry:
    """team/out's schedule stored by key:w, a writer of `team` by its grant only (global reader)."""
    key = authenticate(reg, create_key(reg, "w", "reader"))
    create_namespace(reg, "team", visibility="private")
    set_grant(reg, "team", "key:w", "writer")
    service.register_adapter(reg, adapter_dirs["lora"], "team/a")
    service.register_adapter(reg, adapter_dirs["lora2"], "team/b")
    writer = reg.acting_as(key)
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
    run = runs.begin(stored, load_spec(SPEC), "recompose", "key:m")
    assert (run.status, run.principal) == (RunStatus.PENDING, "key:m")
    set_grant(stored, "team", "key:m", "reader")
    refused = runs.begin_again(stored, load_spec(SPEC), "recompose", run.id)
    assert refused.status is RunStatus.FAILED
    assert "key:m is reader in namespace team (via key:m); compose of team/out needs writer" in (
        refused.error or ""
    )


def _queue(reg: Registry, key: Access) -> str:
    """A run key `key` submitted, waiting for a worker."""
    spec = load_spec(SPEC)
    inputs, _ = runs.prepare(reg.acting_as(key), spec)
    return runs.create(reg.acting_as(key), spec, inputs, "api").id


def test_a_queued_run_is_checked_again_when_a_worker_starts_it(stored: Registry) -> None:
    key = authenticate(stored, create_key(stored, "w2", "reader"))
    set_grant(stored, "team", "key:w2", "writer")
    queued = _queue(stored, key)
    acting = runs.acting_for(stored, queued)  # the worker's registry becomes the submitter's
    assert acting.acting == key
    ran = runs.mark_running(stored, _queue(stored, key), None)  # admitted again as key:w2
    assert ran.status is RunStatus.RUNNING
    revoke_grant(stored, "team", "key:w2")
    with pytest.raises(runs.RunRefused):
        runs.mark_running(stored, queued, None)
    ended = get(stored, queued)
    assert ended.status is RunStatus.FAILED
    assert ended.error == "refused at start: adapter team/a not found"  # private, no longer granted


def test_a_key_reusing_a_revoked_name_holds_its_grants_not_the_old_keys_runs(stored: Registry) -> None:
    """The name is the principal: grants name `key:w`, so a new key named w holds them. The key is
    a credential: what the revoked key stored (its schedule, its queued run) stays stopped."""
    old = runs.acting_for(stored, runs.owner_of(stored, load_spec(SPEC)).run_id).acting
    queued = _queue(stored, old)
    revoke_key(stored, "w")
    new = authenticate(stored, create_key(stored, "w", "reader"))
    assert (new.principal, new.role) == ("key:w", "reader") and new.key_id != old.key_id

    gone = "refused at start: key:w was revoked; what it stored no longer runs"
    with pytest.raises(runs.RunRefused):
        runs.mark_running(stored, queued, None)
    assert get(stored, queued).error == gone
    spec = load_spec(SPEC)
    refused = begin_run(stored, spec, None, "schedule")  # the schedule the old key stored
    assert (refused.status, refused.error) == (RunStatus.FAILED, gone)

    inputs, _ = runs.prepare(stored.acting_as(new), spec)  # team's grant to key:w admits the new key
    runs.create(stored.acting_as(new), spec, inputs, "api")  # ... which stores the spec again
    resumed = begin_run(stored, spec, None, "schedule")
    assert (resumed.status, resumed.principal) == (RunStatus.PENDING, "key:w")
    assert runs.acting_for(stored, resumed.id).acting == new


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
