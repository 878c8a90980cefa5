"""Property-based conformance: schemathesis generates requests from the OpenAPI spec (valid and
invalid ones, with an admin key) against the app on PostgreSQL + SeaweedFS; no answer may be a 5xx,
and every answer must match its documented status, content type and schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import ASGIApp, Receive, Scope, Send

from api.app import create_app
from registry import service
from registry.service import Registry
from registry.service.admin.keys import create_key
from registry.settings import Settings
from tests.pg_service import truncate_all
from tests.s3_service import S3Service

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
MAX_EXAMPLES = 15  # per operation and generation mode: 27 operations x 2 modes, about a minute


@pytest.fixture(scope="module")
def fuzz_target(
    pg_url: str,
    s3_service: S3Service,
    tmp_path_factory: pytest.TempPathFactory,
    adapter_dirs: dict[str, Path],
) -> Iterator[dict[str, Any]]:
    settings_ = s3_service.settings(
        home=tmp_path_factory.mktemp("home"),
        database_url=pg_url,
        store_url=f"s3://{s3_service.bucket}/{uuid.uuid4().hex}",
        principal="fuzz",
    )
    reg = Registry(settings_)
    reg.store.ensure_ready()
    service.register_adapter(reg, adapter_dirs["lora"], "acme/math")
    key = create_key(reg, "fuzz-admin", "admin")
    TARGET.app = create_app(settings_)
    yield {"key": key}
    TARGET.app = None
    truncate_all(pg_url)


class _Target:
    """The ASGI app schemathesis calls. The spec is read at import (it does not depend on settings);
    the app answering the generated requests is the fixture's, on the real services."""

    app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "fuzz_target fixture not active"
        await self.app(scope, receive, send)


TARGET = _Target()
SPEC = create_app(Settings(home=Path("/nonexistent"))).openapi()
schema = schemathesis.openapi.from_dict(SPEC)
schema.app = TARGET  # calls go in-process to the ASGI app (as from_asgi would set it)


# One test per operation, parametrized here rather than by schemathesis' lazy pytest plugin, whose
# generated tests pytest-xdist does not run (it reported one empty test per module).
OPERATIONS = [result.ok() for result in schema.get_all_operations()]
# Negative cases need an input to make invalid (/healthz and /readyz take none).
CASES = [
    (op, mode)
    for op in OPERATIONS
    for mode in schemathesis.GenerationMode
    if mode is schemathesis.GenerationMode.POSITIVE or list(op.iter_parameters()) or len(op.body)
]


@pytest.mark.postgres
@pytest.mark.s3
@pytest.mark.parametrize(("operation", "mode"), CASES, ids=[f"{op.label}-{m.value}" for op, m in CASES])
def test_openapi_conformance(
    operation: Any, mode: schemathesis.GenerationMode, fuzz_target: dict[str, Any]
) -> None:
    headers = {"Authorization": f"Bearer {fuzz_target['key']}"}

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    def conforms(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS, allow_redirects=False)

    conforms()
