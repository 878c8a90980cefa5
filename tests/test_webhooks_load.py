"""A bounded load test of the webhook pipeline on PostgreSQL (benchmarks/webhook_load.py with fewer
events; the benchmark runs 10,000): real catalog changes from several threads, one deliverer, a real
receiver on loopback. None lost, none sent twice, the outbox drains."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.webhook_load import run


@pytest.mark.postgres
def test_load_none_lost_and_the_outbox_drains(pg_url: str, tmp_path: Path) -> None:
    from tests.pg_service import truncate_all

    try:
        report = run(
            events=300, producers=3, deliverers=0, drain=300, database_url=pg_url, timeout=120, work=tmp_path
        )
    finally:
        truncate_all(pg_url)
    print("\n".join(report.lines()))
    assert report.lost == 0 and report.duplicates == 0 and report.pending_after == 0
    assert report.lag_ms["max"] < 120_000
