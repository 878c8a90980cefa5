"""schemathesis `--checks all` (every phase: examples, coverage, fuzzing, stateful) against `pemreg`'s
app served on loopback over PostgreSQL + SeaweedFS, a bounded number of examples per operation.

Every check runs on every operation (with a 10 s response-time limit), except:
- `positive_data_acceptance` where "schema-valid" cannot mean "acceptable": an upload's file contents (a
  PEFT config and safetensors bytes, and their digest) and a composition spec's semantics (expression
  grammar, references that must resolve) and whether a base model's source is one the operator allows
  (`PEMREG_SOURCE_ROOTS`), and whether a webhook's namespace exists and its URL's host is one the
  operator allows (`PEMREG_WEBHOOK_ALLOWED_HOSTS`), are not expressible in JSON Schema; the server
  refuses those with 422 naming the field, as it should;
- `POST /v1/compositions` is left out: it hands runs to Prefect (a server start on first use), which is
  not bounded the way this suite must be; `POST /v1/compositions:validate` checks the same specs."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from schemathesis.checks import CHECKS as CHECK_REGISTRY
from schemathesis.checks import load_all_checks

from registry import service
from registry.service import Registry
from registry.service.admin.keys import create_key
from tests.pg_service import truncate_all
from tests.reliability.live_server import serve
from tests.s3_service import S3Service

pytestmark = [pytest.mark.postgres, pytest.mark.s3]

MAX_EXAMPLES = 4  # per operation and phase: ~1,000 requests, 30-60 s on 2 shared cores
load_all_checks()
CHECKS = CHECK_REGISTRY.get_all_names()  # what `--checks all` selects
CONFIG = (
    "\n".join(f"checks.{name}.enabled = true" for name in CHECKS)
    + """
checks.max_response_time = 10.0

[[operations]]
include-name = "POST /v1/compositions"
enabled = false

[[operations]]
include-name = "POST /v1/adapters"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-name = "POST /v1/compositions:validate"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-name = "POST /v1/base-models"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-name = "POST /v1/webhooks"
checks.positive_data_acceptance.enabled = false
"""
)


def test_checks_all_clean(
    pg_url: str, s3_service: S3Service, tmp_path: Path, adapter_dirs: dict[str, Path]
) -> None:
    settings = s3_service.settings(
        home=tmp_path / "home",
        database_url=pg_url,
        store_url=f"s3://{s3_service.bucket}/{uuid.uuid4().hex}",
        principal="fuzz",
    )
    reg = Registry(settings)
    reg.store.ensure_ready()
    service.register_adapter(reg, adapter_dirs["lora"], "acme/math")
    key = create_key(reg, "fuzz-admin", "admin")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    st = Path(sys.executable).with_name("st")
    try:
        with serve(settings) as url:
            done = subprocess.run(
                [
                    str(st),
                    "--config-file",
                    str(config),
                    "run",
                    f"{url}/openapi.json",
                    "--header",
                    f"Authorization: Bearer {key}",
                    "--max-examples",
                    str(MAX_EXAMPLES),
                    "--workers",
                    "1",
                    "--generation-deterministic",
                    "--request-timeout",
                    "30",
                ],
                capture_output=True,
                text=True,
                timeout=240,
            )
    finally:
        truncate_all(pg_url)
    (tmp_path / "schemathesis.out").write_text(done.stdout + done.stderr)
    summary = re.search(r"(\d+) generated", done.stdout)
    print(f"schemathesis: {summary.group(0) if summary else '?'}; exit {done.returncode}")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert summary and int(summary.group(1)) > 0
