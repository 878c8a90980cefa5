"""docker-compose.yml and the Dockerfile can't run here (no Docker engine): check them by parsing.

Every service command must be a real `pemreg`/`prefect` command, and every PEMREG_/PREFECT_ variable a
setting that exists, so the stack has no dead settings.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import prefect.settings
import pytest
import yaml
from typer.main import get_command

from api.cli.main import app
from registry.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _pemreg_commands(command: list[str] | str) -> list[list[str]]:
    text = command if isinstance(command, str) else " ".join(command)
    return [shlex.split(part)[1:] for part in re.split(r"&&|;", text) if shlex.split(part)[:1] == ["pemreg"]]


def _cli_resolves(args: list[str]) -> None:
    group = get_command(app)
    ctx = group.make_context("pemreg", list(args), resilient_parsing=True)
    name, cmd, rest = group.resolve_command(ctx, list(args))
    assert cmd is not None, args
    sub = cmd.make_context(name, list(rest), parent=ctx)  # raises on unknown options
    assert sub is not None


def test_every_service_has_ordering_and_health() -> None:
    assert {"postgres", "minio", "prefect-server", "api", "worker", "worker-gpu"} <= set(SERVICES)
    for name in ("postgres", "minio", "prefect-server", "api"):
        assert "healthcheck" in SERVICES[name], name
    assert SERVICES["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert SERVICES["worker"]["depends_on"]["api"]["condition"] == "service_healthy"
    gpu = SERVICES["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]


@pytest.mark.parametrize("service", ["api", "worker", "worker-gpu"])
def test_pemreg_commands_exist(service: str) -> None:
    spec = SERVICES[service]
    command = spec["command"]
    if spec.get("entrypoint") in (None, ["pemreg"]):  # the image's entrypoint is pemreg
        commands = [command if isinstance(command, list) else shlex.split(command)]
    else:
        commands = _pemreg_commands(command)
    assert commands, service
    for args in commands:
        _cli_resolves(args)


def test_prefect_server_command() -> None:
    spec = SERVICES["prefect-server"]
    assert spec["entrypoint"] == ["prefect"] and spec["command"][:2] == ["server", "start"]


def test_no_dead_settings() -> None:
    fields = {f"PEMREG_{name.upper()}" for name in Settings.model_fields}
    for name, spec in SERVICES.items():
        for var in spec.get("environment") or {}:
            if var.startswith("PEMREG_"):
                assert var in fields, f"{name}: {var} is not a setting of registry/settings.py"
            elif var.startswith("PREFECT_"):
                assert hasattr(prefect.settings, var), f"{name}: {var} is not a Prefect setting"


def test_dockerfile_installs_torch_first_and_the_project() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.index("torch==2.13.0") < text.index("pip install .")
    assert 'ENTRYPOINT ["pemreg"]' in text
