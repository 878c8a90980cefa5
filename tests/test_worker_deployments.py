"""`pemreg worker` deployments: compose, recompose-stale on its interval, one per stored scheduled spec
(cron); a stored spec this version refuses is skipped, never fatal; derived runs store nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import update

from flows.schedules import deployment_name, desired, fixed_deployments
from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.catalog.migrate import upgrade
from registry.service import Registry
from registry.service.compositions import runs
from registry.settings import Settings
from registry.spec import load_spec


def _reg(tmp_path: Path) -> Registry:
    reg = Registry(
        Settings(
            home=tmp_path,
            database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
            artifact_store=(tmp_path / "s").as_uri(),
            recompose_interval_seconds=120,
        )
    )
    upgrade(reg.settings.resolved_database_url)
    return reg


def test_scheduled_specs_become_cron_deployments(tmp_path: Path) -> None:
    reg = _reg(tmp_path)
    nightly = load_spec("name: acme/nightly\nexpression: 'acme/a'\nschedule: '0 3 * * *'\n")
    runs.create(reg, nightly, [], "cli")
    once = load_spec("name: acme/once\nexpression: 'acme/a'\n")
    runs.create(reg, once, [], "cli")
    fixed = {d.name: (flow.name, d) for flow, d in fixed_deployments(reg)}
    assert set(fixed) == {"compose", "recompose-stale"}
    assert fixed["recompose-stale"][1].schedules[0].schedule.interval.total_seconds() == 120
    wanted = desired(reg)
    assert set(wanted) == {deployment_name("acme/nightly")}
    scheduled = wanted[deployment_name("acme/nightly")]
    assert scheduled.flow_name == "compose"
    assert scheduled.schedules[0].schedule.cron == "0 3 * * *"
    assert scheduled.parameters == {"spec": nightly.canonical(), "trigger": "schedule"}


def test_a_newer_submission_without_schedule_removes_it_and_derived_runs_do_not_count(tmp_path: Path) -> None:
    reg = _reg(tmp_path)
    runs.create(reg, load_spec("name: acme/n\nexpression: 'acme/a'\nschedule: '0 3 * * *'\n"), [], "api")
    runs.create(reg, load_spec("name: acme/n\nexpression: 'acme/a'\n"), [], "schedule")  # derived
    assert set(desired(reg)) == {deployment_name("acme/n")}
    runs.create(reg, load_spec("name: acme/n\nexpression: 'acme/a'\n"), [], "cli")  # stored later
    assert desired(reg) == {}


def test_names_never_collide() -> None:
    assert deployment_name("a-b/c") != deployment_name("a/b-c")
    assert deployment_name("a/b").startswith("scheduled-a-b-")


def test_a_stored_bad_cron_is_skipped_and_the_rest_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A row stored by an older version that accepted `99 99 99 99 99` (written here directly, as the
    old version did) must not stop the worker: it is logged, with the field and Prefect's reason, and
    skipped."""
    reg = _reg(tmp_path)
    good = runs.create(
        reg, load_spec("name: acme/good\nexpression: 'acme/a'\nschedule: '*/5 * * * *'\n"), [], "cli"
    )
    bad = runs.create(
        reg, load_spec("name: acme/bad\nexpression: 'acme/a'\nschedule: '0 3 * * *'\n"), [], "cli"
    )
    with transaction(reg.sessions) as session:
        session.execute(
            update(m.Composition)
            .where(m.Composition.id == bad.id)
            .values(spec={**bad.spec, "schedule": "99 99 99 99 99"})
        )
    with caplog.at_level(logging.ERROR, logger="pemreg.worker"):
        assert set(desired(reg)) == {deployment_name(good.name)}
    assert "schedule: not a cron schedule Prefect accepts" in caplog.text, caplog.text
