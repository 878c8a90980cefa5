"""/v1/audit (events) and /v1/artifacts/{sha256} (which registered object holds this file)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import Reader
from api.errors import ERROR_RESPONSES
from api.routes.reads import catalog_read
from registry import service
from registry.hashing import digest_of
from registry.refs import DIGEST_PREFIX_INPUT_SCHEMA_PATTERN
from registry.views import ArtifactMatch, AuditEventView

router = APIRouter(prefix="/v1", tags=["audit"], responses=ERROR_RESPONSES)


@router.get("/audit", response_model=list[AuditEventView])
@catalog_read
def audit_events(
    caller: Reader,
    subject: Annotated[str | None, Query(description="e.g. acme/math (also matches acme/math@N)")] = None,
    actor: Annotated[str | None, Query(description="API key name or user")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEventView]:
    """Newest first."""
    return service.list_events(caller.reg, subject=subject, actor=actor, limit=limit)


@router.get("/artifacts/{sha256}", response_model=list[ArtifactMatch])
def artifact(
    caller: Reader,
    sha256: Annotated[
        str,
        Path(
            description="a digest or a unique prefix of one (6-64 hex digits)",
            json_schema_extra={"pattern": DIGEST_PREFIX_INPUT_SCHEMA_PATTERN},
        ),
    ],
) -> list[ArtifactMatch]:
    """Every version or merged model with a file of this digest (6-64 hex digits: a unique prefix is
    enough, as in refs; `sha256:` optional), with its ancestry."""
    return service.find_by_digest(caller.reg, digest_of("sha256:" + sha256.removeprefix("sha256:")))
