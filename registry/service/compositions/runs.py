"""The one owner of a composition run's lifecycle.

create (inputs resolved, row `pending`, audited) -> start (a cache hit is answered here, from the
catalog, before any flow; otherwise a runner registered by the shell submits it) -> running (with a
heartbeat) -> succeeded / failed / rejected. A run acts as the principal who stored its spec, and
`authority.authorize` decides at submission and again when the run moves to running whether that
principal may still run it (a refused start ends the run `failed`, saying why). Every status change
goes through `transition`, which enforces the table in `run_status.py`. A run whose process died is
found by `reconcile` (stale heartbeat, its Prefect flow run crashed, cancelled or missing) and ends
`failed`, or is retried where its spec asks for `retries`. A process never ends a run it holds itself
(`register_owner`): a live run stays live through a database stall however old its last beat.

Runners (Prefect deployment, the bounded executor, in-process flow run) live in `flows/`: the shells
register them by name at start-up, so nothing under `registry/` imports the orchestration layer. This
module imports neither torch nor Prefect: a cache hit costs a few catalog queries.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import func, select, update

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.errors import NotFound, PermissionDenied, RegistryError
from registry.service.access.identity import Access
from registry.service.access.policy import Refusal
from registry.service.access.principals import acting_for as acting_as_stored
from registry.service.catalog import audit
from registry.service.catalog.lifecycle import input_warnings
from registry.service.compositions import authority
from registry.service.compositions.cycles import check_no_cycle
from registry.service.compositions.inputs import ResolvedInput, composition_key, spec_namespaces
from registry.service.compositions.reads import CompositionView, find_cached, get, view_of
from registry.service.compositions.status import (
    ACTIVE,
    TERMINAL,
    IllegalTransition,
    RunStatus,
    check_transition,
)
from registry.service.compositions.stored import StoredSpec, stored_spec_of
from registry.service.context import Registry
from registry.service.events import outbox
from registry.spec import CompositionSpec
from registry.spec.loader import describe

log = logging.getLogger("pemreg.runs")
POLL_SECONDS = 0.25


class Runner(Protocol):
    """Submits a `pending` run to something that will execute the compose flow for it. A runner may
    also have `admit()`, which raises (e.g. Busy) when it would refuse a run now: called before the
    run's row is created."""

    def submit(self, reg: Registry, run: CompositionView, spec: CompositionSpec) -> CompositionView: ...


@dataclass(frozen=True)
class FlowRunState:
    type: str  # Prefect's state type: SCHEDULED, PENDING, RUNNING, CRASHED, ...
    since: datetime | None  # when the flow run entered it


class FlowRunProbe(Protocol):
    """What reconcile asks the orchestrator about a run's flow run (registered by the shells)."""

    def state(self, flow_run_id: str) -> FlowRunState | None:
        """The flow run's current state, or None when the flow run does not exist."""

    def crash(self, flow_run_id: str, message: str) -> None:
        """Mark the flow run crashed (it will not report back itself)."""


class RunOwner(Protocol):
    """Something in this process executing runs (the executor, the warm worker): reconcile here never
    ends a run it holds, whatever its heartbeat says (a database stall delays beats, not the run)."""

    def holds(self, run: CompositionView) -> bool: ...


_runners: dict[str, Runner] = {}
_probe: FlowRunProbe | None = None
_owners: list[RunOwner] = []


def register_runner(name: str, runner: Runner) -> None:
    _runners[name] = runner


def register_probe(probe: FlowRunProbe | None) -> None:
    global _probe
    _probe = probe


def register_owner(owner: RunOwner) -> None:
    if not any(o is owner for o in _owners):
        _owners.append(owner)


def unregister_owner(owner: RunOwner) -> None:
    _owners[:] = [o for o in _owners if o is not owner]


def held_here(run: CompositionView) -> bool:
    """A run this process is executing (or has queued to execute): alive by definition."""
    return any(owner.holds(run) for owner in _owners)


def get_runner(name: str) -> Runner:
    try:
        return _runners[name]
    except KeyError:
        known = ", ".join(sorted(_runners)) or "none"
        raise RuntimeError(f"no composition runner {name!r} registered (registered: {known})") from None


def worker_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _aware(stamp: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every stamp here is written in UTC.
    return stamp.replace(tzinfo=UTC) if stamp is not None and stamp.tzinfo is None else stamp


# ---- create / start ---------------------------------------------------------------------------------


def _add_run(
    session: Any,
    reg: Registry,
    spec: CompositionSpec,
    inputs: list[ResolvedInput],
    trigger: str,
    status: RunStatus,
    warnings: list[str] | None = None,
    **fields: Any,
) -> m.Composition:
    """A new run row and its `compose_trigger` audit event (with the input warnings, e.g. a deprecated
    input, when there are any), in the caller's transaction."""
    row = m.Composition(
        id=str(uuid.uuid4()),
        cache_key=composition_key(spec, inputs),
        output_name=spec.name,
        method=spec.method,
        spec=spec.canonical(),
        resolved_inputs=[i.to_dict() for i in inputs],
        status=status.value,
        trigger=trigger,
        principal=reg.principal,
        api_key_id=reg.acting.key_id,
        attempt=1,
        namespace=spec.name.split("/", 1)[0],
        **fields,
    )
    session.add(row)
    # Who may see the run: readers of its output's namespace and of each its spec names.
    for namespace in sorted(spec_namespaces(spec) | {i.name.split("/", 1)[0] for i in inputs}):
        session.add(m.CompositionNamespace(composition_id=row.id, namespace=namespace))
    audit.record(
        session,
        reg.principal,
        "compose_trigger",
        spec.name,
        composition_id=row.id,
        trigger=trigger,
        inputs=[i.label for i in inputs],
        **({"warnings": warnings} if warnings else {}),
    )
    return row


def create(
    reg: Registry,
    spec: CompositionSpec,
    inputs: list[ResolvedInput],
    trigger: str,
    warnings: list[str] | None = None,
) -> CompositionView:
    """A `pending` run with its inputs resolved, audited as a compose trigger."""
    with transaction(reg.sessions) as session:
        row = _add_run(session, reg, spec, inputs, trigger, RunStatus.PENDING, warnings)
        session.flush()
        return view_of(session, row)


def record_cache_hit(
    reg: Registry,
    spec: CompositionSpec,
    inputs: list[ResolvedInput],
    trigger: str,
    hit: CompositionView,
    warnings: list[str] | None = None,
    flow_run_id: str | None = None,
) -> CompositionView:
    """A new run answered from the catalog: `succeeded`, cache_hit, pointing at the earlier output
    (`flow_run_id`: the flow run that asked, a scheduled one). One transaction: the row, the trigger and
    the cache-hit audit events."""
    assert hit.output is not None
    now = m.utcnow()
    with transaction(reg.sessions) as session:
        version_id = session.scalar(select(m.Composition.output_version_id).where(m.Composition.id == hit.id))
        row = _add_run(
            session,
            reg,
            spec,
            inputs,
            trigger,
            RunStatus.SUCCEEDED,
            warnings,
            cache_hit=True,
            flow_run_id=flow_run_id,
            output_version_id=version_id,
            metrics=hit.metrics,
            interference=hit.interference,
            # the weights the output was made with: a cache hit of a search applies the earlier winner's
            search=hit.search.model_dump(mode="json") if hit.search else None,
            started_at=now,
            finished_at=now,
        )
        row.method = hit.method  # a search over methods: the winner's, as the first run recorded it
        audit.record(
            session,
            reg.principal,
            "compose_cache_hit",
            f"{hit.output.name}@{hit.output.version}",
            composition_id=row.id,
            cache_key=hit.cache_key,
            first_run=hit.id,
        )
        outbox.composition_ended(row)
        session.flush()
        return view_of(session, row)


def prepare(reg: Registry, spec: CompositionSpec) -> tuple[list[ResolvedInput], CompositionView | None]:
    """Admit the spec as `reg`'s principal (authority.admit: the principal, the policy, the sources; its
    inputs resolved) and look the cache key up: (inputs, the earlier run that answers it)."""
    inputs = authority.admit(reg, spec)
    return inputs, find_cached(reg, composition_key(spec, inputs))


def start(reg: Registry, spec: CompositionSpec, trigger: str, runner: str) -> CompositionView:
    """What the REST API, the CLI and the demo call (a submission: this stores the spec, and its
    `schedule` / `recompose` act as `reg.acting` later). Bad input raises before any row exists."""
    inputs, hit = prepare(reg, spec)
    check_no_cycle(reg, spec)
    # A deprecated input never blocks a run: logged here and kept on the run's compose_trigger event.
    warnings = input_warnings(reg, [(i.name, i.version) for i in inputs])
    for warning in warnings:
        log.warning("composition of %s: %s", spec.name, warning)
    if hit is not None:
        view = record_cache_hit(reg, spec, inputs, trigger, hit, warnings)
        log.info("composition %s: cache hit of run %s (cache key %s)", view.id, hit.id, hit.cache_key)
        return view
    from registry.service.compositions.dry_run import (
        check_composable,  # reads the adapters (torch): only when work is due
    )

    check_composable(reg, spec, inputs)
    submitter = get_runner(runner)
    admit = getattr(submitter, "admit", None)  # e.g. a full queue refuses before any row exists
    if admit is not None:
        admit()
    run = create(reg, spec, inputs, trigger, warnings)
    try:
        # The submitting process beats too: a slow submission is not mistaken for a lost run.
        with heartbeating(reg, run.id):
            return submitter.submit(reg, run, spec)
    except Exception as exc:
        fail_if_active(reg, run.id, f"could not start: {one_line(exc)}")
        raise


def owner_of(reg: Registry, spec: CompositionSpec) -> StoredSpec:
    """The stored spec a scheduled run acts for (its principal and key row): the newest submission of
    its output name. A schedule whose spec was replaced or removed since its deployment was built is
    refused: the worker is about to update that deployment."""
    stored = stored_spec_of(reg, spec.name)
    try:  # compared as this version reads both (a newer version may spell a stored spec differently)
        same = (
            stored is not None and CompositionSpec.model_validate(stored.spec).canonical() == spec.canonical()
        )
    except ValueError:
        same = False
    if stored is None or not same:
        raise IllegalTransition(f"{spec.name}: this schedule is no longer the stored spec; not run")
    return stored


def begin(
    reg: Registry,
    spec: CompositionSpec,
    trigger: str,
    principal: str | None = None,
    key_id: int | None = None,
    *,
    record_refusal: bool = True,
    flow_run_id: str | None = None,
) -> CompositionView:
    """A run without a row yet: a derived run (`schedule`, `recompose`) of a stored spec, acting as the
    principal who stored it (`principal`, with the key row `key_id` it used) with its access now; or,
    with no `principal`, a direct call of the compose flow as `reg`'s. A cache hit ends at once; a
    refusal (the key revoked, a grant lost, a source it may not read, an input gone) is kept as a
    `failed` run whose error says why (`record_refusal`), so a schedule that stopped says so where
    users look; else it raises."""
    # Who the row names (a refusal is recorded as the owner, its role aside: it may do nothing now).
    owner = reg.acting if principal is None else Access(principal, "reader", key_id=key_id)
    try:
        owned = reg if principal is None else acting_as_stored(reg, principal, key_id)
        inputs, hit = prepare(owned, spec)
    except RegistryError as exc:
        if not record_refusal:
            raise
        message = _refused_at_start(reg, owner, spec, trigger, exc)
        now = m.utcnow()
        with transaction(reg.sessions) as session:
            row = _add_run(
                session,
                reg.acting_as(owner),  # recorded as who stored it, whatever it may do now
                spec,
                [],
                trigger,
                RunStatus.FAILED,
                None,
                error=message,
                flow_run_id=flow_run_id,
                started_at=now,
                finished_at=now,
            )
            outbox.composition_ended(row)
            session.flush()
            return view_of(session, row)
    if hit is not None:
        return record_cache_hit(owned, spec, inputs, trigger, hit, flow_run_id=flow_run_id)
    return create(owned, spec, inputs, trigger)


def begin_again(reg: Registry, spec: CompositionSpec, trigger: str, run_id: str) -> CompositionView:
    """`begin`, acting as the principal (and key row) run `run_id` acted as: a recomposition of it."""
    with reg.sessions() as session:
        row = session.get_one(m.Composition, run_id)
        principal, key_id = row.principal, row.api_key_id
    return begin(reg, spec, trigger, principal, key_id)


def _refused_at_start(
    reg: Registry, owner: Access, spec: CompositionSpec, trigger: str, exc: Exception
) -> str:
    """The error of a run its principal may not start: logged, and audited as a refused write when the
    policy (or the principal's standing) said no."""
    message = f"refused at start: {one_line(exc)}"[:2000]
    log.warning("%s run of %s refused as %s: %s", trigger, spec.name, owner.principal, message)
    if isinstance(exc, (PermissionDenied, NotFound)):
        refused: Refusal | None = getattr(exc, "refusal", None)
        namespace = refused.namespace if refused else spec.name.split("/", 1)[0]
        needs, has = (refused.needs, refused.has) if refused else ("writer", None)
        audit.record_refusal(
            reg, Refusal(owner.principal, trigger, spec.name, namespace, needs, has, message)
        )
    return message


def acting_for(reg: Registry, run_id: str) -> Registry:
    """`reg` acting as the principal a run acts as (who stored its spec), with its access now
    (PrincipalGone when it has none)."""
    with reg.sessions() as session:
        row = session.get_one(m.Composition, run_id)
        principal, key_id = row.principal, row.api_key_id
    return acting_as_stored(reg, principal, key_id)


def wait(
    reg: Registry,
    run_id: str,
    on_change: Callable[[CompositionView], None] | None = None,
    timeout: float | None = None,
) -> CompositionView:
    """Poll the row until it is terminal (or `timeout` seconds pass)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    while True:
        view = get(reg, run_id)
        if on_change and view.status != last:
            on_change(view)
            last = view.status
        if view.status in TERMINAL or (deadline is not None and time.monotonic() > deadline):
            return view
        time.sleep(POLL_SECONDS)


# ---- transitions ------------------------------------------------------------------------------------


def one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError) and exc.errors():  # a stored spec today's rules refuse
        return describe(exc)[:2000]
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return (first or type(exc).__name__)[:2000]


def apply_transition(row: m.Composition, status: RunStatus, **fields: Any) -> None:
    """On a row locked by the caller's transaction: check the move, set the fields, stamp the times."""
    check_transition(row.status, status)
    row.status = status.value
    for key, value in fields.items():
        setattr(row, key, value)
    now = m.utcnow()
    if status is RunStatus.RUNNING:
        row.started_at = row.started_at or now
        row.heartbeat_at = now
    if status in TERMINAL:
        row.finished_at = now
        outbox.composition_ended(row)


def transition(reg: Registry, run_id: str, status: RunStatus, **fields: Any) -> CompositionView:
    with transaction(reg.sessions) as session:
        row = session.get(m.Composition, run_id, with_for_update=True)
        if row is None:
            raise NotFound(f"composition {run_id} not found")
        apply_transition(row, status, **fields)
        session.flush()
        return view_of(session, row)


class RunRefused(IllegalTransition):
    """The run may not start (authority.authorize said no when it was about to): it ended `failed`."""


def _refusal(reg: Registry, run_id: str) -> str | None:
    """Why the run's principal may no longer run it, or None: `authority.authorize` as that principal
    now, on the spec and inputs the run stored (what its submission was admitted with)."""
    with reg.sessions() as session:
        row = session.get_one(m.Composition, run_id)
        principal, key_id, raw, inputs = row.principal, row.api_key_id, row.spec, row.resolved_inputs
        trigger = row.trigger
    owner = Access(principal, "reader", key_id=key_id)
    try:
        spec = CompositionSpec.model_validate(raw)
    except ValueError as exc:  # stored by an older version that accepted it
        return f"refused at start: {one_line(exc)}"
    try:
        owned = acting_as_stored(reg, principal, key_id)
        authority.authorize(owned, spec, [ResolvedInput(**i) for i in inputs])
    except RegistryError as exc:
        return _refused_at_start(reg, owner, spec, trigger, exc)
    return None


def mark_running(reg: Registry, run_id: str, flow_run_id: str | None) -> CompositionView:
    """The flow took the run. A run already running (the flow restarted in place) keeps its state.
    Before it runs, the checks of its submission are made again as its principal (RunRefused)."""
    refused = _refusal(reg, run_id)
    if refused is not None:
        ended = fail_if_active(reg, run_id, refused)
        raise RunRefused(f"composition {run_id} is {ended.status.value}: {refused}")
    with transaction(reg.sessions) as session:
        row = session.get_one(m.Composition, run_id, with_for_update=True)
        fields: dict[str, Any] = {"worker": worker_label()}
        if flow_run_id:
            fields["flow_run_id"] = flow_run_id
        if row.status == RunStatus.RUNNING.value:
            for key, value in fields.items():
                setattr(row, key, value)
            row.heartbeat_at = m.utcnow()
        else:
            apply_transition(row, RunStatus.RUNNING, **fields)
        session.flush()
        return view_of(session, row)


def attach_flow_run(reg: Registry, run_id: str, flow_run_id: str) -> CompositionView:
    """A submitted run's flow run id, recorded while it waits for a worker."""
    with transaction(reg.sessions) as session:
        row = session.get_one(m.Composition, run_id, with_for_update=True)
        row.flow_run_id = row.flow_run_id or flow_run_id
        session.flush()
        return view_of(session, row)


def claim(reg: Registry, run_id: str) -> CompositionView:
    """Take a `pending` run for this process (its worker label, a fresh beat) before queueing it, so
    every reconciler sees who holds it. Raises IllegalTransition when the run is no longer pending."""
    with transaction(reg.sessions) as session:
        row = session.get(m.Composition, run_id, with_for_update=True)
        if row is None:
            raise NotFound(f"composition {run_id} not found")
        if row.status != RunStatus.PENDING.value:
            raise IllegalTransition(f"composition {run_id} is {row.status}, not pending")
        row.worker = worker_label()
        row.heartbeat_at = m.utcnow()
        session.flush()
        return view_of(session, row)


def beat_many(reg: Registry, run_ids: list[str]) -> int:
    """One heartbeat for many active runs (runs queued in an executor); how many rows it refreshed."""
    if not run_ids:
        return 0
    c = m.Composition
    with transaction(reg.sessions) as session:
        result = session.execute(
            update(c)
            .where(c.id.in_(run_ids), c.status.in_([s.value for s in ACTIVE]))
            .values(heartbeat_at=m.utcnow())
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)


def record(reg: Registry, run_id: str, **fields: Any) -> None:
    """Intermediate results of a running run (e.g. its interference report); never its status."""
    if "status" in fields:
        raise IllegalTransition("status changes go through transition()")
    with transaction(reg.sessions) as session:
        row = session.get_one(m.Composition, run_id, with_for_update=True)
        for key, value in fields.items():
            setattr(row, key, value)


def fail(reg: Registry, run_id: str, message: str) -> CompositionView:
    return transition(reg, run_id, RunStatus.FAILED, error=message[:2000])


def fail_if_active(reg: Registry, run_id: str, message: str) -> CompositionView:
    """`failed` unless the run already ended (e.g. reconcile got there first): then left as it is."""
    with transaction(reg.sessions) as session:
        row = session.get_one(m.Composition, run_id, with_for_update=True)
        if row.status in {s.value for s in ACTIVE}:
            apply_transition(row, RunStatus.FAILED, error=message[:2000])
        session.flush()
        return view_of(session, row)


def reject(reg: Registry, run_id: str, metrics: dict[str, float], failures: list[str]) -> CompositionView:
    return transition(
        reg, run_id, RunStatus.REJECTED, metrics=metrics, error="gate failed: " + "; ".join(failures)
    )


# ---- heartbeat --------------------------------------------------------------------------------------


def heartbeat(reg: Registry, run_id: str) -> bool:
    """Refresh the run's heartbeat; False once the run is no longer active (e.g. reconciled)."""
    with transaction(reg.sessions) as session:
        row = session.get(m.Composition, run_id, with_for_update=True)
        if row is None or row.status not in {s.value for s in ACTIVE}:
            return False
        row.heartbeat_at = m.utcnow()
        return True


@contextmanager
def heartbeating(reg: Registry, run_id: str, interval: float | None = None) -> Iterator[None]:
    """A daemon thread beating every `interval` s (settings.heartbeat_seconds) while the block runs.
    A beat that fails (database briefly away) is logged and retried at the next tick."""
    every = interval or reg.settings.heartbeat_seconds
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                if not heartbeat(reg, run_id):
                    return
            except Exception as exc:  # noqa: BLE001 - a missed beat is not the run's failure
                log.warning("heartbeat of %s failed: %s", run_id, one_line(exc))

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 5)


# ---- reconcile --------------------------------------------------------------------------------------

# Prefect state types of a flow run that will never report back to us.
_DEAD_FLOW_STATES = {"CRASHED", "CANCELLED", "CANCELLING", "FAILED", "COMPLETED"}
# Still queued for a worker: a pending row waiting on these is not lost.
_QUEUED_FLOW_STATES = {"SCHEDULED", "PAUSED"}
# Taken by a worker, which marks the row running (and starts beating) within seconds of entering
# them. A row still pending while its flow run has been in one of these for longer than the
# stale-after window was taken by a worker that died before it started.
_TAKEN_FLOW_STATES = {"PENDING", "RUNNING"}


def _still_coming(flow: FlowRunState, now: datetime, stale_after: float) -> bool:
    """A pending row whose flow run is queued, or was taken so recently that the worker has not yet
    marked the row running: not lost, however old the row's own last sign of life (its submission)."""
    if flow.type in _QUEUED_FLOW_STATES:
        return True
    since = _aware(flow.since)
    return (
        flow.type in _TAKEN_FLOW_STATES and since is not None and (now - since).total_seconds() < stale_after
    )


@dataclass(frozen=True)
class Reconciled:
    composition_id: str
    action: str  # "failed" | "retried"
    message: str


def find_silent_runs(reg: Registry, *, now: datetime | None = None) -> list[CompositionView]:
    """Pending/running runs with no heartbeat (or creation, before the first beat) for stale-after s."""
    cutoff = (now or m.utcnow()) - timedelta(seconds=reg.settings.run_stale_after_seconds)
    c = m.Composition
    last_sign = func.coalesce(c.heartbeat_at, c.created_at)
    query = (
        select(c).where(c.status.in_([s.value for s in ACTIVE]), last_sign < cutoff).order_by(c.created_at)
    )
    with reg.sessions() as session:
        return [view_of(session, row) for row in session.scalars(query)]


def _lost_message(run: CompositionView, flow_state: str | None, probed: bool) -> str:
    beat = _aware(run.heartbeat_at)
    if beat is not None:
        message = f"worker lost: no heartbeat since {beat.isoformat(timespec='seconds')}"
    else:
        created = _aware(run.created_at)
        assert created is not None
        message = f"worker lost: never started (submitted {created.isoformat(timespec='seconds')})"
    if run.worker:
        message += f" from {run.worker}"
    if probed and run.flow_run_id:
        message += f"; Prefect flow run {run.flow_run_id} " + (
            f"is {flow_state.lower()}" if flow_state else "is missing"
        )
    return message


def reconcile(
    reg: Registry,
    *,
    now: datetime | None = None,
    restart: Callable[[Registry, CompositionView, CompositionSpec], Any] | None = None,
) -> list[Reconciled]:
    """End every stale pending/running run: `failed` with what happened, or back to `pending` and
    resubmitted (attempt + 1) when its spec asks for `retries` and `restart` is given.

    A pending run whose Prefect flow run is still queued for a worker is left alone, and so is every
    run this process holds (`held_here`). The check is repeated on the locked row, so two reconcilers
    (serve and a worker) never both act on one run."""
    stale = [run for run in find_silent_runs(reg, now=now) if not held_here(run)]
    if not stale:
        return []
    probe = _probe if _probe is not None and getattr(_probe, "available", lambda: True)() else None
    done: list[Reconciled] = []
    for run in stale:
        flow: FlowRunState | None = None
        probed = False
        if probe is not None and run.flow_run_id:
            try:
                flow = probe.state(run.flow_run_id)
                probed = True
            except Exception as exc:  # noqa: BLE001 - Prefect unreachable: the heartbeat decides
                log.warning("reconcile: cannot read flow run %s: %s", run.flow_run_id, one_line(exc))
            stale_after = reg.settings.run_stale_after_seconds
            if (
                flow is not None
                and run.status is RunStatus.PENDING
                and _still_coming(flow, now or m.utcnow(), stale_after)
            ):
                continue  # queued, or just taken by a worker: not lost
        flow_state = flow.type if flow is not None else None
        message = _lost_message(run, flow_state, probed)
        retries = int(run.spec.get("retries") or 0)
        retry = restart is not None and run.attempt <= retries
        with transaction(reg.sessions) as session:
            row = session.get_one(m.Composition, run.id, with_for_update=True)
            if row.status not in {s.value for s in ACTIVE} or _aware(row.heartbeat_at) != _aware(
                run.heartbeat_at
            ):
                continue  # it moved on (or beat) since we looked
            if retry and row.status == RunStatus.RUNNING.value:
                apply_transition(
                    row,
                    RunStatus.PENDING,
                    attempt=row.attempt + 1,
                    error=f"{message}; retrying (attempt {row.attempt + 1})",
                    # The resubmission is the retry's sign of life: with no beat, its old created_at
                    # would make it stale at once for any other reconciler while it is resubmitted.
                    heartbeat_at=m.utcnow(),
                    worker=None,
                    flow_run_id=None,
                )
                action = "retried"
            else:
                apply_transition(row, RunStatus.FAILED, error=message)
                action = "failed"
            audit.record(
                session,
                "reconcile",
                f"compose_{action}",
                row.output_name,
                composition_id=row.id,
                reason=message,
            )
        if probe is not None and probed and run.flow_run_id and flow_state not in _DEAD_FLOW_STATES | {None}:
            try:
                probe.crash(run.flow_run_id, message)
            except Exception as exc:  # noqa: BLE001 - the row is what users read; the UI can lag
                log.warning("reconcile: cannot mark flow run %s crashed: %s", run.flow_run_id, one_line(exc))
        if action == "retried" and restart is not None:
            try:  # a spec stored by an older version may fail today's rules: that run ends, not the loop
                spec = CompositionSpec.model_validate(run.spec)
                with heartbeating(reg, run.id):
                    restart(reg, get(reg, run.id), spec)
            except Exception as exc:  # noqa: BLE001 - could not resubmit: the run ends failed
                fail(reg, run.id, f"{message}; retry could not start: {one_line(exc)}")
                action = "failed"
        log.warning("composition %s %s: %s", run.id, action, message)
        done.append(Reconciled(run.id, action, message))
    return done
