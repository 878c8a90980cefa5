"""Request and response bodies the service views don't already cover."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from registry.service.views import VersionView

Role = Literal["reader", "writer", "admin"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class RegisterFromSource(Strict):
    source: str = Field(
        description="s3://bucket/prefix of a PEFT adapter folder", examples=["s3://b/adapters/x"]
    )
    name: str = Field(description="namespace/name", examples=["acme/math"])
    base_model: str | None = Field(default=None, max_length=241, description="NAME or NAME@REVISION")
    task: str | None = Field(default=None, max_length=128)
    tags: dict[str, str] | list[str] = Field(default_factory=dict, description="{k: v} or ['k=v', ...]")
    description: str | None = None


class Registered(VersionView):
    created: bool


class BaseModelIn(Strict):
    # 120 + 120: the audit subject `base:<name>@<revision>` must fit its 256-character column.
    name: str = Field(min_length=1, max_length=120)
    source: str = Field(min_length=1, description="local path, s3:// URI of a saved HF folder, or a hub id")
    revision: str = Field(default="main", min_length=1, max_length=120)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    architecture: str | None = Field(default=None, max_length=128)


class AliasIn(Strict):
    version: int = Field(ge=1, description="the version number the alias points at")


class AliasDeleted(BaseModel):
    name: str
    alias: str
    version: int = Field(description="the version the alias pointed at")


class AdapterPatch(Strict):
    tags: dict[str, str | None] | None = Field(
        default=None, description="tags to set; a null value removes that tag; others are kept"
    )
    description: str | None = Field(default=None, max_length=10_000, description='replaces it; "" clears')


class KeyIn(Strict):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    role: Role


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
