"""One Prefect test harness per session (its server takes ~15-20 s to start on 2 cores)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@dataclass(frozen=True)
class PrefectStart:
    """The session's warm local Prefect server, its start under way in a background thread."""

    home: Path
    port: int  # the port it was asked for (held by another listener: it moves to a free one)
    started: Future[str]  # its API URL once it answers

    def url(self) -> str:
        """The server's API URL, waiting for its start if it is still under way (its error if it failed)."""
        return self.started.result()


@pytest.fixture(scope="session")
def prefect_starting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectStart]:
    """Starts the session's warm local Prefect server (flows/local_server.py) without waiting for it.
    A fixture that needs the server only after minutes of its own work (the real-model demo trains its
    adapters first) requests this one: the ~15-20 s start overlaps that work instead of preceding it.
    The others request `warm_home` / `prefect_harness`, which wait for it: one start per session either
    way. The port asked for is held by another listener for the whole session, so the server has to move
    to a free one (what a second home finds when the default port is taken)."""
    from flows import local_runner, local_server

    home = tmp_path_factory.mktemp("pemreg-home")
    with socket.socket() as taken, ThreadPoolExecutor(1, thread_name_prefix="prefect-start") as pool:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        start = PrefectStart(home, port, pool.submit(local_server.ensure_running, home, port))
        try:
            yield start
        finally:
            # A start still under way finishes first (whatever it raised was reported to its waiter),
            # so there is never a server left behind with nobody to stop it.
            start.started.exception()
            # The local runners the session's commands started in this home (a user's warm runner waits
            # out its 15 min idle exit; the session's ends with it), then the server they report to.
            local_runner.stop(home)
            local_server.stop(home)


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
        # Send the session's last logs and events while the server still runs (prefect_starting stops it).
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)


@pytest.fixture(scope="session")
def warm_home(prefect_starting: PrefectStart) -> tuple[Path, int]:
    """A PEMREG_HOME whose warm local Prefect server (flows/local_server.py) runs for the session, and
    the port it was asked for. That port is held by another listener for the whole session, so the
    server had to move to a free one (what a second home finds when the default port is taken): one
    Prefect server start serves both the session and that check."""
    url = prefect_starting.url()
    assert f":{prefect_starting.port}/" not in url, url
    return prefect_starting.home, prefect_starting.port
