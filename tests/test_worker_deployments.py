"""`pemreg worker` deployments: compose, recompose-stale on its interval, one per scheduled spec (cron)."""

from __future__ import annotations

from pathlib import Path

from flows.worker import deployments
from registry.catalog.migrate import upgrade
from registry.service import Registry
from registry.service.compositions import runs
from registry.settings import Settings
from registry.spec import load_spec


def test_scheduled_specs_become_cron_deployments(tmp_path: Path) -> None:
    reg = Registry(
        Settings(
            home=tmp_path,
            database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
            artifact_store=(tmp_path / "s").as_uri(),
            recompose_interval_seconds=120,
        )
    )
    upgrade(reg.settings.resolved_database_url)
    nightly = load_spec("name: acme/nightly\nexpression: 'acme/a'\nschedule: '0 3 * * *'\n")
    runs.create(reg, nightly, [], "cli")
    once = load_spec("name: acme/once\nexpression: 'acme/a'\n")
    runs.create(reg, once, [], "cli")
    by_name = {d.name: (flow.name, d) for flow, d in deployments(reg)}
    assert set(by_name) == {"compose", "recompose-stale", "scheduled-acme-nightly"}
    flow_name, scheduled = by_name["scheduled-acme-nightly"]
    assert flow_name == "compose"
    assert scheduled.schedules[0].schedule.cron == "0 3 * * *"
    assert scheduled.parameters == {"spec": nightly.canonical(), "trigger": "schedule"}
    _, stale = by_name["recompose-stale"]
    assert stale.schedules[0].schedule.interval.total_seconds() == 120
