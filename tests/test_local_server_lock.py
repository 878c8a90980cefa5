"""The warm local Prefect server (flows/local_server.py) has one starter at a time: two commands that
need it at the same moment in a fresh home get the same server, and nothing exits at start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from flows import local_server
from tests.live_server import clean_env, free_port

STARTER = (
    "import sys; from pathlib import Path; from flows import local_server; "
    "print(local_server.ensure_running(Path(sys.argv[1]), int(sys.argv[2])))"
)


def test_two_starters_at_once_share_one_server(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    env = clean_env(PREFECT_SERVER_ANALYTICS_ENABLED="false")
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, str(home), str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        results = [p.communicate(timeout=240) for p in starters]
        for p, (_out, err) in zip(starters, results, strict=True):
            assert p.returncode == 0, err[-2000:]
        urls = {out.strip().splitlines()[-1] for out, _ in results}
        assert urls == {f"http://127.0.0.1:{port}/api"}
        state = json.loads((home / "prefect" / "server.json").read_text())
        assert state["url"] in urls and local_server.status(home) == state
        log = (home / "prefect" / "server.log").read_text()
        assert log.count("prefect config set PREFECT_API_URL") == 1, log[-3000:]  # one banner: one start
    finally:
        for p in starters:
            if p.poll() is None:
                p.kill()
        local_server.stop(home)
