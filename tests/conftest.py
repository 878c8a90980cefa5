"""Session-wide test setup: offline hub, the services (PostgreSQL, SeaweedFS), registries per backend."""

from __future__ import annotations

import os

# No hub at run time: transformers/peft must never try the network for config lookups.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from registry.catalog.migrate import upgrade  # noqa: E402
from registry.service import Registry  # noqa: E402
from registry.settings import Settings  # noqa: E402
from tests.pg_service import fresh_pg_url, pg_url, truncate_all  # noqa: E402,F401
from tests.s3_service import s3_service, s3_store_url  # noqa: E402,F401


@pytest.fixture(params=["sqlite+file", "postgres+s3"])
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """A registry on each backend pair users run: the embedded default and PostgreSQL + S3."""
    if request.param == "sqlite+file":
        settings = Settings(
            home=tmp_path / "home",
            database_url=f"sqlite:///{tmp_path / 'reg.db'}",
            artifact_store=(tmp_path / "artifacts").as_uri(),
            principal="tester",
        )
        upgrade(settings.resolved_database_url)
    else:
        url = request.getfixturevalue("pg_url")
        s3 = request.getfixturevalue("s3_service")
        settings = s3.settings(
            home=tmp_path / "home",
            database_url=url,
            store_url=request.getfixturevalue("s3_store_url"),
            principal="tester",
        )
    registry = Registry(settings)
    registry.store.ensure_ready()
    yield registry
    if request.param == "postgres+s3":
        truncate_all(settings.resolved_database_url)


@pytest.fixture(autouse=True)
def _no_local_runner_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """`pemreg compose` starts a warm local runner per environment (flows/local_runner.py): those of a
    test's own homes (under its tmp_path) stop with the test, not 15 idle minutes later. Those of the
    session's shared home (warm_home) stop when the session does (prefect_starting)."""
    tmp = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if tmp is None:
        return
    homes = set()
    for pattern in ("runner/*/state.json", "*/runner/*/state.json", "*/*/runner/*/state.json"):
        homes.update(p.parent.parent.parent for p in tmp.glob(pattern))
    if homes:
        from flows import local_runner

        for home in homes:
            local_runner.stop(home)


from tests.adapters_fixtures import adapter_dirs  # noqa: E402,F401
from tests.flow_fixtures import world  # noqa: E402,F401
from tests.live_server import live_server  # noqa: E402,F401
from tests.oidc_service import oidc  # noqa: E402,F401
from tests.prefect_service import prefect_harness, prefect_starting, warm_home  # noqa: E402,F401
from tests.webhook_receiver import receiver  # noqa: E402,F401

# The order xdist hands files to its two workers (`make test`: `-n 2 --dist loadfile
# --no-loadscope-reorder`): one file each, then the next file whenever a worker has two tests or fewer
# left (xdist's loadscope scheduler). Longest first, so that the last files either worker takes are
# short and both finish close together; the files not listed follow in collection order (a file that
# grows past ~40 s here belongs in the list). The real-model file holds one worker for about a third of
# the run; the others share the other worker, then both: the suite takes about half the files' total.
# Seconds: `make test` on the shared 2-core machine at load average 5-8 (its tests' durations summed per
# file), 2026-12-07, unless a file says otherwise. The CLI files left the list when their commands moved
# in process (tests/cli_inproc.py: test_cli.py 87 s -> 10 s, test_cli_polish.py 40 -> 7,
# test_cli_remote.py 39 -> 12, test_cli_lifecycle.py 29 -> 1, serially at load ~3). Later, one file per
# process, old and new code at load 3-5, run at once (test_readme_tour_modes.py and test_deployment.py:
# one after the other): test_run_crash.py 231 s -> 183 and 157 -> 128
# (reconcile and gc in process; compose stays a process: it starts the local runner);
# test_readme_tour_modes.py 93 -> 56 (the tour in process but local mode's two compositions);
# test_deployment.py 58 -> 45 (gc in process); fixtures' synthetic folders made once per process and
# copied (tests/adapters_fixtures.py:copy_of): test_flow_compose.py 103 -> 94, test_api_compositions.py
# 60 -> 57, test_run_lifecycle.py 60 -> 52 (test_run_crash.py's figures include it). The figures below
# are the old ones scaled by those ratios. test_demo_real.py: 342 s serially at load ~2 (its fixture
# 248 s, 23 of them the first model conversion; the recomputation 80 s), 330-380 s in clean-clone runs;
# then (its Prefect server started in the background, the demo on one thread under OMP_NUM_THREADS=1,
# bf16 generation without a weight cast per token, the recomputation merging each variant once) 231 s
# in a full run at load 2-3 (fixture 134 s, recomputation 86 s; the suite 606 s), 194 s alone at load 1.
SCHEDULE = (
    "test_demo_real.py",  # ~230 (was 342-380)
    "test_run_crash.py",  # ~210 (was 260)
    "test_demo.py",  # 185 (214 serially at load ~4, profiled)
    "test_scale_out.py",  # 140
    "test_scheduling.py",  # 103 (reliability/)
    "test_api_compositions.py",  # ~93 (was 98)
    "test_flow_compose.py",  # ~90 (was 99)
    "test_deployment.py",  # ~67 (was 86)
    "test_readme_tour_modes.py",  # ~66 (was 110)
    "test_api_adapters.py",  # 63
    "test_run_executor.py",  # 58 (reliability/)
    "test_api_schemathesis.py",  # 49
    "test_run_lifecycle.py",  # ~48 (was 54)
    "test_search_methods.py",  # 46
    "test_flow_faults.py",  # 42
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SCHEDULE)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
