"""POST /v1/adapters: register by multipart upload (streamed) or by an s3:// source URI (JSON).

201 for a new version, 200 when these bytes are already a version of that adapter (idempotent).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.deps import Caller, SignedIn
from api.errors import ERROR_RESPONSES, ErrorBody, UnsupportedMediaType
from api.middleware import BODY_LIMIT
from api.schemas import BASE_LABEL_PATTERN, PLAIN, TAG_PATTERN, Registered, RegisterFromSource, inline_schema
from registry import service
from registry.refs import ADAPTER_NAME_PATTERN, DIGEST_INPUT_SCHEMA_PATTERN, SHA256_SCHEMA_PATTERN
from registry.scratch import scratch_dir
from registry.service.registration.register import (
    MAX_DESCRIPTION,
    check_may_register,
    check_may_write_somewhere,
)
from registry.service.registration.uploads import (
    FILE_FIELDS,
    MultipartReceiver,
    UploadTooLarge,
    check_source,
    register_upload,
)
from registry.training import (
    DATASET_PATTERN,
    MAX_ENTRIES,
    METRIC_PATTERN,
    PARAM_PATTERN,
    parse_training,
)
from registry.views import VersionView

router = APIRouter(prefix="/v1/adapters", tags=["adapters"], responses=ERROR_RESPONSES)
MAX_JSON_BYTES = BODY_LIMIT  # the JSON form's bound (the middleware refuses larger bodies first)

_text = {"type": "string"}
_binary = {"type": "string", "format": "binary"}
REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["name", *FILE_FIELDS],
                "properties": {
                    "name": {**_text, "description": "namespace/name", "pattern": ADAPTER_NAME_PATTERN},
                    "config": {**_binary, "description": "adapter_config.json"},
                    "weights": {**_binary, "description": "adapter_model.safetensors"},
                    "readme": {
                        **_binary,
                        "description": "README.md, the user's model card: stored byte-identical; the "
                        "registry's card is then MODEL_CARD.md",
                    },
                    "base_model": {
                        **_text,
                        "description": "NAME or NAME@REVISION",
                        "pattern": BASE_LABEL_PATTERN,
                    },
                    "task": {**_text, "maxLength": 128, "pattern": PLAIN},
                    "description": {**_text, "maxLength": MAX_DESCRIPTION},
                    "tags": {
                        "type": "array",
                        "items": {**_text, "description": "key=value", "pattern": TAG_PATTERN},
                    },
                    "sha256": {
                        **_text,
                        "description": "expected sha256 of the weights (checked)",
                        "pattern": DIGEST_INPUT_SCHEMA_PATTERN,
                    },
                    "base_config_sha256": {
                        **_text,
                        "description": "fingerprint of config.json in the folder the adapter config's "
                        "base_model_name_or_path names on the client (registry.base_evidence)",
                        "pattern": SHA256_SCHEMA_PATTERN,
                    },
                    "base_weights_sha256": {
                        **_text,
                        "description": "sha256 of model.safetensors in that folder",
                        "pattern": SHA256_SCHEMA_PATTERN,
                    },
                    "base_architecture": {
                        **_text,
                        "pattern": "^[^\\x00-\\x1f\\x7f]{1,128}$",
                        "description": "`architectures[0]` of that folder's config.json (for near matches)",
                    },
                    "create_base": {
                        **_text,
                        "enum": ["true", "false"],
                        "description": "register an unmatched hub id as a new base model (default false)",
                    },
                    "allow_deleted": {
                        **_text,
                        "enum": ["true", "false"],
                        "description": "bytes of a deleted version of this adapter bring it back",
                    },
                    "metrics": {
                        "type": "array",
                        "maxItems": MAX_ENTRIES,
                        "items": {**_text, "description": "name=number", "pattern": METRIC_PATTERN},
                    },
                    "params": {
                        "type": "array",
                        "maxItems": MAX_ENTRIES,
                        "items": {**_text, "description": "name=value", "pattern": PARAM_PATTERN},
                    },
                    "datasets": {
                        "type": "array",
                        "maxItems": MAX_ENTRIES,
                        "items": {**_text, "description": "dataset URI", "pattern": DATASET_PATTERN},
                    },
                },
            },
            "encoding": {
                "tags": {"style": "form", "explode": True},
                "metrics": {"style": "form", "explode": True},
                "params": {"style": "form", "explode": True},
                "datasets": {"style": "form", "explode": True},
            },
        },
        "application/json": {"schema": inline_schema(RegisterFromSource)},
    },
}


async def _read_limited(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise UploadTooLarge(f"body: JSON larger than {limit} bytes", field="body")
    return bytes(body)


async def _from_multipart(caller: Caller, request: Request, notes: list[str]) -> tuple[VersionView, bool]:
    limit = caller.reg.settings.max_upload_bytes
    with scratch_dir("upload") as tmp:
        receiver = MultipartReceiver(request.headers["content-type"], Path(tmp), limit)
        try:
            # Parsing and writing run on the event loop: per chunk (~64 KB) that is a disk write and a
            # hash update, cheaper than a thread hop each.
            async for chunk in request.stream():
                receiver.feed(chunk)
            form = receiver.finish()
        finally:
            receiver.close()
        return await run_in_threadpool(register_upload, caller.reg, form, notes.append)


async def _from_json(caller: Caller, request: Request, notes: list[str]) -> tuple[VersionView, bool]:
    raw = await _read_limited(request, MAX_JSON_BYTES)
    try:
        body = RegisterFromSource.model_validate_json(raw)
    except ValidationError as exc:
        found = exc.errors(include_url=False, include_context=False)
        errors = [{**e, "loc": ("body", *e["loc"])} for e in found]
        raise RequestValidationError(errors) from None
    tags = body.tags if isinstance(body.tags, dict) else service.parse_tags(body.tags, field="tags")

    def work() -> tuple[VersionView, bool]:
        check_may_register(caller.reg, body.name)  # before the server reads any source
        check_source(caller.reg, body.source)
        return service.register_adapter(
            caller.reg,
            body.source,
            body.name,
            base_model=body.base_model,
            task=body.task,
            tags=tags,
            description=body.description,
            trigger="api",
            notify=notes.append,
            create_base=body.create_base,
            allow_deleted=body.allow_deleted,
            training=parse_training(body.metrics, body.params, body.datasets),
        )

    return await run_in_threadpool(work)


@router.post(
    "",
    status_code=201,
    response_model=Registered,
    openapi_extra={"requestBody": REQUEST_BODY},
    responses={
        200: {"model": Registered, "description": "already registered (same digest)"},
        415: {"model": ErrorBody, "description": "neither multipart/form-data nor JSON"},
    },
)
async def register_adapter(caller: SignedIn, request: Request, response: Response) -> Registered:
    """Multipart fields `config`, `weights`, optional `readme` (files), `name`, `base_model`, `task`,
    `tags` (k=v, repeatable), `description`, optional `sha256` of the weights, the base evidence
    (`base_config_sha256`, `base_weights_sha256`), `create_base`, `allow_deleted`, and the training
    record (`metrics` name=number, `params` name=value, `datasets` URI; each repeatable); or JSON
    `{"source": "s3://...", "name": ...}`. No base model is registered unless `create_base` says so."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > caller.reg.settings.max_upload_bytes + 2 * 1024 * 1024:
        raise UploadTooLarge(
            f"body: {length} bytes exceed the upload limit of {caller.reg.settings.max_upload_bytes}",
            field="body",
        )
    await run_in_threadpool(check_may_write_somewhere, caller.reg)
    ctype = request.headers.get("content-type", "").lower()
    notes: list[str] = []
    if ctype.startswith("multipart/form-data"):
        version, created = await _from_multipart(caller, request, notes)
    elif ctype.startswith("application/json"):
        version, created = await _from_json(caller, request, notes)
    else:
        raise UnsupportedMediaType(
            "content-type: send multipart/form-data (files) or application/json (source)"
        )
    response.status_code = 201 if created else 200
    return Registered(**version.model_dump(), created=created, notes=notes)
