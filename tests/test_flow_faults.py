"""Injected faults: the composition ends `failed` with a readable message and nothing half-registered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from flows.compose import compose_flow
from registry import service
from registry.catalog import models as m
from registry.errors import NotFound
from registry.service import Registry
from registry.service.compositions import reads as compositions
from registry.settings import Settings
from registry.spec import load_spec
from registry.store.s3 import S3Store
from tests.factories import make_lora, save_tiny_base
from tests.flow_fixtures import World, settings_env
from tests.s3_service import start_seaweedfs, stop_seaweedfs

SPEC = "name: t/faulty\nexpression: '0.5 * t/a@1 + 0.5 * t/b'\n"


def _only_failed_run(reg: Registry) -> compositions.CompositionView:
    [run] = compositions.list_compositions(reg).items
    assert run.status == "failed" and run.output is None
    return run


def _nothing_registered(reg: Registry) -> None:
    with pytest.raises(NotFound):
        service.show_adapter(reg, "t/faulty")
    # No catalog row points at a missing object.
    for adapter in service.list_adapters(reg).items:
        for v in service.show_adapter(reg, adapter.name).versions or []:
            prefix = v.artifact_uri.split("/adapters/", 1)[1]
            for filename in v.files:
                assert reg.store.exists(f"adapters/{prefix}/{filename}")


def test_exception_inside_compose(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("injected failure inside compose")

    monkeypatch.setattr("flows.tasks.compose_files", boom)  # the engine the compose task calls
    with pytest.raises(RuntimeError):
        compose_flow(load_spec(SPEC).canonical())
    run = _only_failed_run(world.reg)
    assert run.error == "injected failure inside compose"
    _nothing_registered(world.reg)


def test_db_error_at_commit(world: World) -> None:
    def fail_registration_commit(session: Session) -> None:
        # The registration transaction is the one that marks the composition succeeded.
        if any(
            isinstance(o, m.Composition) and o.status == "succeeded" for o in session.identity_map.values()
        ):
            raise OperationalError("COMMIT", None, Exception("injected: database connection lost"))

    event.listen(Session, "before_commit", fail_registration_commit)
    try:
        with pytest.raises(OperationalError):
            compose_flow(load_spec(SPEC).canonical())
    finally:
        event.remove(Session, "before_commit", fail_registration_commit)
    run = _only_failed_run(world.reg)
    assert "database connection lost" in (run.error or "")
    _nothing_registered(world.reg)


@pytest.fixture
def own_s3(tmp_path: Path, prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """A SeaweedFS of this test's own, since the test stops it."""
    workdir = tmp_path / "weed"
    s3 = start_seaweedfs(workdir)
    try:
        reg = Registry(
            Settings(
                home=tmp_path / "home",
                database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                artifact_store="s3://faults/reg",
                s3_endpoint_url=s3.endpoint,
                s3_region=s3.region,
                s3_access_key_id=s3.access_key,
                s3_secret_access_key=s3.secret_key,
                principal="tester",
            )
        )
        from registry.catalog.migrate import upgrade

        upgrade(reg.settings.resolved_database_url)
        reg.store.ensure_ready()
        for key, value in settings_env(reg).items():
            monkeypatch.setenv(key, value)
        service.add_base_model(reg, "tiny-llama", source=str(save_tiny_base(tmp_path / "base")))
        service.register_adapter(reg, make_lora(tmp_path / "a", seed=1), "t/a")
        service.register_adapter(reg, make_lora(tmp_path / "b", seed=2), "t/b")
        yield reg
    finally:
        stop_seaweedfs(workdir)


def test_store_unreachable_mid_upload(
    own_s3: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = S3Store.put_file
    stopped: list[bool] = []

    def put_then_stop(self: S3Store, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        if not stopped:  # the first file lands, then the server goes away
            stop_seaweedfs(tmp_path / "weed")
            stopped.append(True)

    monkeypatch.setattr(S3Store, "put_file", put_then_stop)
    with pytest.raises(Exception):  # noqa: B017 - the flow re-raises the store's error
        compose_flow(load_spec(SPEC).canonical())
    assert stopped
    run = _only_failed_run(own_s3)
    assert "unreachable" in (run.error or "").lower() or "s3" in (run.error or "").lower(), run.error
    with pytest.raises(NotFound):
        service.show_adapter(own_s3, "t/faulty")
