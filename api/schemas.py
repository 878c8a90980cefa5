"""Request and response bodies the service views don't already cover."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from registry.refs import (
    ADAPTER_NAME_PATTERN,
    ALIAS_GLOB_SCHEMA_PATTERN,
    NAMESPACE_SCHEMA_PATTERN,
    SHA256_SCHEMA_PATTERN,
    TAG_SCHEMA_PATTERN,
)
from registry.service.registration.register import MAX_DESCRIPTION
from registry.training import DATASET_PATTERN, MAX_ENTRIES, METRIC_PATTERN, PARAM_PATTERN
from registry.views import VersionView

Role = Literal["reader", "writer", "admin"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


# No control characters (a trailing newline made a second `rel/abc`); lengths are the catalog's.
PLAIN = r"^[^\x00-\x1f\x7f]*$"
BASE_NAME_PATTERN = r"^[^\x00-\x1f\x7f@\s]{1,256}$"
REVISION_PATTERN = r"^[^\x00-\x1f\x7f@\s]{1,128}$"
BASE_LABEL_PATTERN = r"^[^\x00-\x1f\x7f@\s]{1,256}(@[^\x00-\x1f\x7f@\s]{1,128})?$"
# A tag as the form and the CLI send it: key=value, key 1-128 characters, value up to 512.
TAG_PATTERN = TAG_SCHEMA_PATTERN
TagKey = Annotated[str, StringConstraints(pattern=r"^[^=\s\x00-\x1f\x7f][^=\x00-\x1f\x7f]{0,127}$")]
TagValue = Annotated[str, StringConstraints(max_length=512, pattern=PLAIN)]
TagItem = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]
SOURCE_PATTERN = r"^\S[^\x00-\x1f\x7f]*$"


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema with its `$defs` inlined: an OpenAPI document has no `#/$defs` for
    `$ref`s to point at once the schema is embedded in a request or response body."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any, depth: int = 0) -> Any:
        if depth > 32:
            return {}
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**resolve(defs[ref.removeprefix("#/$defs/")], depth + 1), **rest}
            return {k: resolve(v, depth + 1) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v, depth + 1) for v in node]
        return node

    return resolve(schema)


class RegisterFromSource(Strict):
    source: str = Field(
        description=(
            "a PEFT adapter folder the server may read: s3://bucket/prefix or a local folder (path or file://"
            " URI) in the registry's store or under PEMREG_SOURCE_ROOTS"
        ),
        examples=["s3://b/adapters/x"],
        pattern=r"^(s3://[a-z0-9][a-z0-9.-]{1,62}(/[^\x00-\x1f\x7f]*)?|(file://)?/[^\x00-\x1f\x7f]*)$",
        max_length=1024,
    )
    name: str = Field(description="namespace/name", examples=["acme/math"], pattern=ADAPTER_NAME_PATTERN)
    base_model: str | None = Field(
        default=None, max_length=385, pattern=BASE_LABEL_PATTERN, description="NAME or NAME@REVISION"
    )
    task: str | None = Field(default=None, max_length=128, pattern=PLAIN)
    tags: dict[TagKey, TagValue] | list[TagItem] = Field(
        default_factory=dict, description="{k: v} or ['k=v', ...]"
    )
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    create_base: bool = Field(default=False, description="register an unmatched hub id as a new base model")
    allow_deleted: bool = Field(default=False, description="bytes of a deleted version bring it back")
    metrics: list[Annotated[str, StringConstraints(pattern=METRIC_PATTERN)]] = Field(
        default_factory=list, max_length=MAX_ENTRIES, description="name=number"
    )
    params: list[Annotated[str, StringConstraints(pattern=PARAM_PATTERN)]] = Field(
        default_factory=list, max_length=MAX_ENTRIES, description="name=value"
    )
    datasets: list[Annotated[str, StringConstraints(pattern=DATASET_PATTERN)]] = Field(
        default_factory=list, max_length=MAX_ENTRIES, description="dataset URIs"
    )


class Registered(VersionView):
    created: bool
    notes: list[str] = Field(
        default_factory=list, description="e.g. that the base model was registered on the way (no match)"
    )


class BaseModelIn(Strict):
    name: str = Field(min_length=1, max_length=256, pattern=BASE_NAME_PATTERN)
    source: str = Field(
        min_length=1,
        max_length=4096,
        pattern=SOURCE_PATTERN,
        description=(
            "a saved HF model folder the server may read (s3:// URI or local path in the registry's store"
            " or under PEMREG_SOURCE_ROOTS), or a hub id where PEMREG_ALLOW_HUB_SOURCES=true"
        ),
    )
    revision: str = Field(default="main", min_length=1, max_length=128, pattern=REVISION_PATTERN)
    sha256: str | None = Field(
        default=None, pattern=SHA256_SCHEMA_PATTERN, description="sha256 of the base's model.safetensors"
    )
    architecture: str | None = Field(default=None, max_length=128, pattern=PLAIN)
    config: dict[str, Any] | None = Field(
        default=None,
        description="the base's config.json (from a local copy): adapters whose config names a folder "
        "holding this base are matched by its fingerprint",
    )


class BaseMergeIn(Strict):
    base: str = Field(
        max_length=385, pattern=BASE_LABEL_PATTERN, description="NAME[@REVISION] of the base to remove"
    )
    into: str = Field(
        max_length=385, pattern=BASE_LABEL_PATTERN, description="NAME[@REVISION] its adapters move to"
    )


class AliasIn(Strict):
    version: int = Field(ge=1, le=2**31 - 1, description="the version number the alias points at")


class AliasDeleted(BaseModel):
    name: str
    alias: str
    version: int = Field(description="the version the alias pointed at")


class AdapterPatch(Strict):
    tags: dict[TagKey, TagValue | None] | None = Field(
        default=None, description="tags to set; a null value removes that tag; others are kept"
    )
    description: str | None = Field(
        default=None, max_length=MAX_DESCRIPTION, description='replaces it; "" clears'
    )


class KeyIn(Strict):
    # 100: its principal `key:<name>` fits the catalog's 128-character actor columns.
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    role: Role


NamespaceRole = Literal["reader", "writer", "maintainer"]
Visibility = Literal["internal", "private"]
AliasGlob = Annotated[str, StringConstraints(pattern=ALIAS_GLOB_SCHEMA_PATTERN)]


class NamespaceIn(Strict):
    name: str = Field(pattern=NAMESPACE_SCHEMA_PATTERN, description="the `ns` of `ns/name`")
    visibility: Visibility | None = Field(default=None, description="default: PEMREG_DEFAULT_VISIBILITY")
    protected_aliases: list[AliasGlob] = Field(
        default=[], max_length=32, description="alias globs only maintainers move, e.g. prod, release-*"
    )
    description: str | None = Field(default=None, max_length=4096)


class NamespacePatch(Strict):
    visibility: Visibility | None = None
    protected_aliases: list[AliasGlob] | None = Field(
        default=None, max_length=32, description="replaces them"
    )
    description: str | None = Field(default=None, max_length=4096, description='replaces it; "" clears')


class GrantIn(Strict):
    role: NamespaceRole


class KeyCreated(BaseModel):
    name: str
    role: Role
    key: str = Field(description="the secret; shown once, only its hash is stored")


class DownloadFile(BaseModel):
    file: str
    sha256: str
    size: int
    url: str = Field(description="presigned S3 URL, or this API's streaming URL (file store)")


class DownloadManifest(BaseModel):
    name: str
    version: int
    sha256: str
    expires_in: int | None = Field(description="seconds the presigned URLs stay valid; None for API URLs")
    files: list[DownloadFile]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}
