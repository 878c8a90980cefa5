"""Parallel writers registering one name on PostgreSQL get gap-free, unique version numbers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from registry import service
from registry.service import Registry
from registry.settings import Settings
from tests.factories import make_lora
from tests.pg_service import truncate_all

WRITERS = 8


@pytest.mark.postgres
def test_parallel_registration_is_gap_free(pg_url: str, tmp_path: Path) -> None:
    reg = Registry(
        Settings(
            home=tmp_path,
            database_url=pg_url,
            artifact_store=(tmp_path / "store").as_uri(),
            principal="tester",
        )
    )
    folders = [make_lora(tmp_path / f"a{i}", seed=500 + i) for i in range(WRITERS)]
    # The same bytes twice more: idempotency must hold under the race too.
    jobs = folders + folders[:2]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(lambda f: service.register_adapter(reg, f, "race/same-name"), jobs))
    created = [v for v, was_new in results if was_new]
    assert sorted(v.version for v in created) == list(range(1, WRITERS + 1))
    by_digest = {v.sha256: v.version for v, _ in results}
    assert len(by_digest) == WRITERS  # a repeated digest resolved to the same version
    shown = service.show_adapter(reg, "race/same-name")
    assert [v.version for v in shown.versions or []] == list(range(1, WRITERS + 1))
    truncate_all(pg_url)
