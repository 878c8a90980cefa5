"""One Prefect test harness per session (its server takes ~15-20 s to start on 2 cores)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@pytest.fixture(scope="session")
def prefect_harness(warm_home: tuple[Path, int]) -> Iterator[None]:
    """Flows run in the test process report to the session's warm local Prefect server (warm_home), as
    Prefect's test harness would to an ephemeral one: one Prefect server start per session, not two."""
    import prefect.context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows import local_server

    url = local_server.ensure_running(*warm_home)  # running: its URL
    with (
        temporary_settings(updates={PREFECT_API_URL: url}),
        # Threads started later (Prefect's log and event workers) see it too, as with the harness.
        prefect.context._temporary_global_settings_context(prefect.context.get_settings_context()),
    ):
        yield
        # Send the session's last logs and events while the server still runs (warm_home stops it).
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)


@pytest.fixture(scope="session")
def warm_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """A PEMREG_HOME whose warm local Prefect server (flows/local_server.py) runs for the session, and
    the port it was asked for. That port is held by another listener for the whole session, so the
    server had to move to a free one (what a second home finds when the default port is taken): one
    Prefect server start serves both the session and that check."""
    from flows import local_server

    home = tmp_path_factory.mktemp("pemreg-home")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        url = local_server.ensure_running(home, port)
        assert f":{port}/" not in url, url
        yield home, port
        local_server.stop(home)
