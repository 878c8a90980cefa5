"""The run lifecycle without a flow: status machine, ids and prefixes, paging, cache hits, reconcile,
gc, and the checks POST /v1/compositions shares with :validate. Real catalog and store, both backends."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from registry import service
from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.errors import IncompatibleAdapters, InvalidInput, NotFound
from registry.service import Registry
from registry.service.admin import gc
from registry.service.catalog import lifecycle
from registry.service.compositions import reads as compositions
from registry.service.compositions import runs
from registry.service.compositions.dry_run import check_composable, dry_run
from registry.service.compositions.inputs import resolve_inputs
from registry.service.compositions.status import TRANSITIONS, IllegalTransition, RunStatus, check_transition
from registry.spec import load_spec
from tests.adapters_fixtures import copy_of
from tests.factories import make_lora, save_tiny_base

ROOT = Path(__file__).resolve().parent.parent


def test_registry_imports_neither_flows_nor_api() -> None:
    offenders = []
    for path in sorted((ROOT / "registry").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("flows", "api")
            ]
    assert offenders == []


def test_status_machine() -> None:
    assert {s.value for s in RunStatus} == {"pending", "running", "succeeded", "failed", "rejected"}
    for final in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.REJECTED):
        assert TRANSITIONS[final] == frozenset() and final.terminal
        for target in RunStatus:
            with pytest.raises(IllegalTransition):
                check_transition(final, target)
    assert check_transition("pending", "running") is RunStatus.RUNNING
    with pytest.raises(IllegalTransition):
        check_transition("pending", "rejected")  # a gate needs a run that ran
    with pytest.raises(ValueError):
        check_transition("running", "done")


@pytest.fixture
def loras(reg: Registry, tmp_path: Path) -> Registry:
    # The same folders for every test: made once per process, copied (tests/adapters_fixtures.py)
    service.add_base_model(reg, "tiny-llama", source=str(copy_of(save_tiny_base, tmp_path / "base")))
    service.register_adapter(reg, copy_of(make_lora, tmp_path / "a", seed=1), "t/a")
    service.register_adapter(reg, copy_of(make_lora, tmp_path / "b", seed=2), "t/b")
    service.register_adapter(reg, copy_of(make_lora, tmp_path / "r8", seed=3, r=8), "t/r8")
    return reg


def _pending(
    reg: Registry, text: str = "name: t/ab\nexpression: 't/a + t/b'\n"
) -> compositions.CompositionView:
    spec = load_spec(text)
    return runs.create(reg, spec, resolve_inputs(reg, spec), "cli")


def test_transitions_and_illegal_moves_leave_the_row(loras: Registry) -> None:
    run = _pending(loras)
    assert run.status is RunStatus.PENDING and run.attempt == 1
    running = runs.mark_running(loras, run.id, "flow-1")
    assert running.status is RunStatus.RUNNING and running.heartbeat_at and running.worker
    failed = runs.fail(loras, run.id, "boom")
    assert failed.status is RunStatus.FAILED and failed.finished_at and failed.error == "boom"
    with pytest.raises(IllegalTransition):
        runs.transition(loras, run.id, RunStatus.SUCCEEDED)
    assert compositions.get(loras, run.id).status is RunStatus.FAILED
    assert runs.heartbeat(loras, run.id) is False  # a finished run takes no beats
    with pytest.raises(IllegalTransition):
        runs.record(loras, run.id, status="running")


def test_ids_prefixes_and_paging(loras: Registry) -> None:
    made = [_pending(loras).id for _ in range(5)]
    for run_id in made:
        assert compositions.get(loras, run_id[:10]).id == run_id
        assert compositions.get(loras, run_id.upper()).id == run_id
    with pytest.raises(InvalidInput, match="ambiguous"):
        compositions.get(loras, _shared_prefix(loras, made))
    with pytest.raises(NotFound):
        compositions.get(loras, "ffffffff-ffff")
    with pytest.raises(NotFound):
        compositions.get(loras, "xyz")
    seen, token = [], None
    while True:
        page = compositions.list_compositions(loras, limit=2, page_token=token)
        seen += [c.id for c in page.items]
        token = page.next_page_token
        if token is None:
            break
    assert sorted(seen) == sorted(made) and len(seen) == 6
    with pytest.raises(InvalidInput, match="page_token"):
        compositions.list_compositions(loras, page_token="garbage!")
    with pytest.raises(InvalidInput, match="status"):
        compositions.list_compositions(loras, status="done")


def _shared_prefix(reg: Registry, made: list[str]) -> str:
    """A prefix two runs share: add a run whose id starts like the first one's (ids are random).
    The new id is appended to `made`."""
    new_id = made[0][:4] + ("0" if made[0][4] != "0" else "1") + made[0][5:]
    with transaction(reg.sessions) as session:
        row = session.get_one(m.Composition, made[1])
        session.add(m.Composition(**{**_columns(row), "id": new_id}))
    made.append(new_id)
    return made[0][:4]


def _columns(row: m.Composition) -> dict:
    return {c.key: getattr(row, c.key) for c in m.Composition.__table__.columns}


def test_reconcile_fails_a_lost_run_and_frees_its_cache_key(loras: Registry) -> None:
    run = _pending(loras)
    runs.mark_running(loras, run.id, None)
    assert runs.reconcile(loras) == []  # fresh heartbeat: not stale
    later = m.utcnow() + timedelta(seconds=loras.settings.run_stale_after_seconds + 1)
    [done] = runs.reconcile(loras, now=later)
    assert done.composition_id == run.id and done.action == "failed"
    view = compositions.get(loras, run.id)
    assert view.status is RunStatus.FAILED and (view.error or "").startswith(
        "worker lost: no heartbeat since "
    )
    assert runs.reconcile(loras, now=later) == []  # nothing left to do
    assert compositions.find_cached(loras, view.cache_key or "") is None  # a failed run never answers
    from registry.service.catalog.audit import list_events

    events = list_events(loras, subject="t/ab")
    assert "compose_failed" in {e.action for e in events}


def test_reconcile_retries_where_the_spec_asks(loras: Registry) -> None:
    run = _pending(loras, "name: t/ab\nexpression: 't/a + t/b'\nretries: 1\n")
    runs.mark_running(loras, run.id, None)
    restarted: list[str] = []
    later = m.utcnow() + timedelta(seconds=loras.settings.run_stale_after_seconds + 1)
    [done] = runs.reconcile(loras, now=later, restart=lambda reg, v, spec: restarted.append(v.id))
    assert done.action == "retried" and restarted == [run.id]
    view = compositions.get(loras, run.id)
    assert view.status is RunStatus.PENDING and view.attempt == 2 and "retrying" in (view.error or "")
    runs.mark_running(loras, run.id, None)  # the retry runs, and is lost again: no retries left
    later = m.utcnow() + timedelta(seconds=loras.settings.run_stale_after_seconds + 1)
    [again] = runs.reconcile(loras, now=later, restart=lambda reg, v, spec: restarted.append(v.id))
    assert again.action == "failed" and restarted == [run.id]


def test_a_retry_whose_stored_spec_breaks_todays_rules_fails_that_run_not_reconcile(loras: Registry) -> None:
    """Stored by a version that accepted output alias `1abc` (the spec's own pattern then): the retry
    cannot parse it today, so that run ends failed, and the other lost run is still reconciled."""
    legacy = _pending(loras, "name: t/ab\nexpression: 't/a + t/b'\nretries: 1\n")
    other = _pending(loras, "name: t/ba\nexpression: 't/b + t/a'\n")
    for run in (legacy, other):
        runs.mark_running(loras, run.id, None)
    with transaction(loras.sessions) as session:
        row = session.get_one(m.Composition, legacy.id)
        row.spec = {**row.spec, "output": {"kind": "adapter", "aliases": ["1abc"]}}
    later = m.utcnow() + timedelta(seconds=loras.settings.run_stale_after_seconds + 1)
    restarted: list[str] = []
    done = {
        d.composition_id: d
        for d in runs.reconcile(loras, now=later, restart=lambda r, v, s: restarted.append(v.id))
    }
    assert done[legacy.id].action == "failed" and done[other.id].action == "failed" and restarted == []
    view = compositions.get(loras, legacy.id)
    assert view.status is RunStatus.FAILED and "retry could not start" in (view.error or "")
    assert "aliases" in (view.error or "")


def test_a_retry_being_resubmitted_is_not_stale_for_another_reconciler(loras: Registry) -> None:
    """Two reconcilers (serve and workers) run side by side: while one resubmits a retried run, the
    other must not see the row, back to pending with no flow run yet, as lost."""
    run = _pending(loras, "name: t/ab\nexpression: 't/a + t/b'\nretries: 1\n")
    runs.mark_running(loras, run.id, None)
    long_ago = m.utcnow() - timedelta(seconds=loras.settings.run_stale_after_seconds + 60)
    with transaction(loras.sessions) as session:
        row = session.get_one(m.Composition, run.id)
        row.created_at, row.heartbeat_at = long_ago, long_ago
    seen_by_other: list[list[runs.Reconciled]] = []
    [done] = runs.reconcile(loras, restart=lambda reg, v, spec: seen_by_other.append(runs.reconcile(reg)))
    assert done.action == "retried" and seen_by_other == [[]]
    view = compositions.get(loras, run.id)
    assert view.status is RunStatus.PENDING and view.attempt == 2


def test_a_pending_run_never_started_is_reconciled_too(loras: Registry) -> None:
    run = _pending(loras)
    later = m.utcnow() + timedelta(seconds=loras.settings.run_stale_after_seconds + 1)
    [done] = runs.reconcile(loras, now=later)
    assert done.composition_id == run.id and "never started" in done.message


class _Probe:
    """A stand-in orchestrator: the flow run's state as the test sets it, and what reconcile crashed."""

    def __init__(self, state: runs.FlowRunState) -> None:
        self.current = state
        self.crashed: list[str] = []

    def state(self, flow_run_id: str) -> runs.FlowRunState | None:
        return self.current

    def crash(self, flow_run_id: str, message: str) -> None:
        self.crashed.append(flow_run_id)


def test_reconcile_waits_for_queued_runs_but_not_for_a_dead_claim(loras: Registry) -> None:
    """A pending run whose flow run waits for a worker (SCHEDULED) is left alone however long it waits,
    and so is one a worker has just taken (PENDING or RUNNING, not yet marked running on the row); one
    taken longer than stale-after ago by a worker that never started it is lost."""
    run = _pending(loras)
    runs.attach_flow_run(loras, run.id, "00000000-0000-4000-8000-00000000beef")
    stale_after = loras.settings.run_stale_after_seconds
    later = m.utcnow() + timedelta(seconds=stale_after + 1)
    probe = _Probe(runs.FlowRunState("SCHEDULED", m.utcnow()))
    before = runs._probe
    runs.register_probe(probe)
    try:
        assert runs.reconcile(loras, now=later) == []
        probe.current = runs.FlowRunState("PENDING", later - timedelta(seconds=1))  # just claimed
        assert runs.reconcile(loras, now=later) == []
        probe.current = runs.FlowRunState("RUNNING", later - timedelta(seconds=1))  # just started
        assert runs.reconcile(loras, now=later) == []
        probe.current = runs.FlowRunState("PENDING", later - timedelta(seconds=stale_after + 1))
        [done] = runs.reconcile(loras, now=later)
        assert done.action == "failed" and "is pending" in done.message
        assert probe.crashed == ["00000000-0000-4000-8000-00000000beef"]
        assert compositions.get(loras, run.id).status is RunStatus.FAILED
    finally:
        runs.register_probe(before)


def test_concurrent_fetches_of_one_input_share_one_complete_folder(loras: Registry) -> None:
    """Many runs starting at once fetch the same input (found by the scale-out stack: the losers'
    renames failed with ENOTEMPTY); a broken cached folder is replaced, never read."""
    from concurrent.futures import ThreadPoolExecutor

    from registry.hashing import sha256_file
    from registry.service.compositions.inputs import fetch_input

    [item, _] = resolve_inputs(loras, load_spec("name: t/ab\nexpression: 't/a + t/b'\n"))
    with ThreadPoolExecutor(max_workers=8) as pool:
        folders = list(pool.map(lambda _: fetch_input(loras, item), range(16)))
    assert len(set(folders)) == 1
    folder = folders[0]
    assert sha256_file(folder / "adapter_model.safetensors") == item.sha256
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp folder left
    (folder / "adapter_model.safetensors").write_bytes(b"truncated")
    assert fetch_input(loras, item) == folder
    assert sha256_file(folder / "adapter_model.safetensors") == item.sha256


def test_post_checks_match_validate(loras: Registry) -> None:
    """What :validate refuses, start() refuses before any row exists."""
    mixed_rank = load_spec("name: t/x\nexpression: 't/a + t/r8'\n")
    with pytest.raises(IncompatibleAdapters):
        dry_run(loras, mixed_rank)
    with pytest.raises(IncompatibleAdapters):
        runs.start(loras, mixed_rank, "api", runner="nonexistent")
    too_big = load_spec("name: t/x\nmethod: delta_svd\nrank: 100000\nexpression: 't/a + t/b'\n")
    with pytest.raises(
        InvalidInput, match=r"rank: 100000 exceeds min\(d, k\) = \d+ of module .+ of input t/a@1"
    ):
        check_composable(loras, too_big, resolve_inputs(loras, too_big))
    assert compositions.list_compositions(loras).items == []


def test_gc_lists_and_removes_only_old_unreferenced_folders(loras: Registry, tmp_path: Path) -> None:
    store = loras.store
    orphan, young = "adapters/t/ghost/" + "a" * 64, "adapters/t/ghost/" + "b" * 64
    for folder in (orphan, young):
        store.put_bytes(f"{folder}/adapter_config.json", b"{}")
        store.put_bytes(f"{folder}/adapter_model.safetensors", b"x" * 10)
    referenced = gc.referenced_folders(loras)
    assert len(referenced) == 3 and all(f.startswith("adapters/t/") for f in referenced)
    assert gc.find_orphans(loras, grace_seconds=3600) == []  # everything is younger than an hour
    # Time moves on for the first folder only: as if its run died an hour ago.
    later = m.utcnow() + timedelta(seconds=3600 + 5)
    found = gc.find_orphans(loras, grace_seconds=3600, now=later)
    assert {o.folder for o in found} == {orphan, young}
    [listed] = [o for o in gc.collect(loras, dry_run=True, grace_seconds=0) if o.folder == orphan]
    assert sorted(k.rsplit("/", 1)[1] for k in listed.keys) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert store.exists(f"{orphan}/adapter_config.json")  # a dry run removes nothing
    removed = gc.collect(loras, dry_run=False, grace_seconds=0)
    assert {o.folder for o in removed} == {orphan, young}
    assert not store.list_keys("adapters/t/ghost/")
    for folder in referenced:  # registered content untouched
        assert store.list_keys(folder + "/")
    assert gc.collect(loras, dry_run=True, grace_seconds=0) == []


def test_deprecated_input_warns_in_dry_run_and_on_the_run(loras: Registry) -> None:
    spec = load_spec("name: t/ab\nexpression: 't/a + t/b'\n")
    assert not any("deprecated" in w for w in dry_run(loras, spec).interference["warnings"])
    lifecycle.set_status(loras, "t/b@1", "deprecate")
    warnings = dry_run(loras, spec).interference["warnings"]
    assert [w for w in warnings if "deprecated" in w] == [warnings[0]]
    assert warnings[0].startswith("input t/b@1 is deprecated since ")
    # start() passes the same warnings to the run's compose_trigger event (the runner never starts).
    run = runs.create(loras, spec, resolve_inputs(loras, spec), "cli", [warnings[0]])
    [event] = [e for e in service.list_events(loras, subject="t/ab") if e.action == "compose_trigger"]
    assert event.details["composition_id"] == run.id and event.details["warnings"] == [warnings[0]]


def test_gc_collects_a_deleted_version_after_the_grace_period(loras: Registry) -> None:
    referenced = gc.referenced_folders(loras)
    [r8] = [f for f in referenced if "/r8/" in f]
    lifecycle.delete_version(loras, "t/r8@1")
    later = m.utcnow() + timedelta(hours=2)
    with transaction(loras.sessions) as session:  # deleted a minute before `later`
        row = session.scalars(select(m.AdapterVersion).where(m.AdapterVersion.artifact_uri.contains("/r8/")))
        row.one().deleted_at = later - timedelta(minutes=1)
    # Deleted within the grace period (an hour): still referenced, its objects stay.
    assert gc.collect(loras, dry_run=False, grace_seconds=3600, now=later) == []
    assert loras.store.list_keys(r8 + "/")
    # Deleted longer ago than the grace period: listed by a dry run, then removed; the rest untouched.
    much_later = later + timedelta(hours=2)
    assert [o.folder for o in gc.collect(loras, dry_run=True, grace_seconds=3600, now=much_later)] == [r8]
    assert loras.store.list_keys(r8 + "/")
    removed = gc.collect(loras, dry_run=False, grace_seconds=3600, now=much_later)
    assert [o.folder for o in removed] == [r8] and not loras.store.list_keys(r8 + "/")
    assert len(referenced) == 3 and all(loras.store.list_keys(f + "/") for f in referenced - {r8})


def test_cached_path_imports_neither_torch_nor_prefect(loras: Registry) -> None:
    """A cache hit is a few catalog queries: recorded as a run (row + audit), no flow, no heavy imports."""
    spec_text = "name: t/ab\nexpression: 't/a + t/b'\n"
    run = _pending(loras, spec_text)
    a = (service.show_adapter(loras, "t/a").versions or [])[0]  # stands in for a registered output
    with transaction(loras.sessions) as session:
        row = session.get_one(m.Composition, run.id)
        row.status = "succeeded"
        row.output_version_id = session.scalar(
            select(m.AdapterVersion.id).where(m.AdapterVersion.sha256 == a.sha256)
        )
    s = loras.settings
    code = textwrap.dedent(
        f"""
        import sys
        from registry.service import Registry
        from registry.service.compositions import runs
        from registry.settings import Settings
        from registry.spec import load_spec
        reg = Registry(Settings(home={str(s.home)!r}, database_url={s.resolved_database_url!r},
            artifact_store={s.resolved_artifact_store!r}, s3_endpoint_url={s.s3_endpoint_url!r},
            s3_region={s.s3_region!r}, s3_access_key_id={s.s3_access_key_id!r},
            s3_secret_access_key={s.s3_secret_access_key!r}, principal="cached"))
        view = runs.start(reg, load_spec({spec_text!r}), "cli", runner="none-registered")
        assert view.status == "succeeded" and view.cache_hit, view
        heavy = sorted(m for m in ("torch", "prefect", "transformers", "peft") if m in sys.modules)
        print(view.id, heavy)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    new_id, heavy = out.stdout.split(" ", 1)
    assert heavy.strip() == "[]"
    view = compositions.get(loras, new_id)
    assert (
        view.cache_hit and view.flow_run_id is None and view.id != run.id and view.cache_key == run.cache_key
    )
    from registry.service.catalog.audit import list_events

    actions = [e.action for e in list_events(loras, actor="cached")]
    assert sorted(actions) == ["compose_cache_hit", "compose_trigger"]
