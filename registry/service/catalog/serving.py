"""Serving references for one version: what to hand vLLM or LoRAX to load exactly these bytes.

Every reference is pinned by digest (the content-addressed folder, `name@sha8`), so it keeps naming
the same weights after an alias such as `prod` moves on.
"""

from __future__ import annotations

import functools
from urllib.parse import unquote, urlparse

from pydantic import BaseModel as Model

from registry.refs import Ref
from registry.service.catalog.queries import get_version
from registry.service.context import Registry
from registry.views import VersionView

SUPPORTED = ("lora",)  # vLLM and LoRAX serve LoRA adapters only ((IA)3 is not supported by either)


class VllmRef(Model):
    lora_name: str  # `ns/name@sha8`: unique per digest, readable in request logs
    lora_int_id: int  # LoRARequest(lora_name, lora_int_id, lora_path) for the offline engine
    lora_path: str  # a local folder, or an s3:// folder to sync next to the server first
    load_request: dict[str, str]  # body for vLLM's POST /v1/load_lora_adapter
    cli_arg: str  # for `vllm serve --enable-lora --lora-modules ...`


class LoraxRef(Model):
    adapter_id: str
    adapter_source: str  # `s3` for an S3 store, `local` for a file store
    s3_endpoint_url: str | None = None  # non-AWS S3 (MinIO, SeaweedFS): set AWS_ENDPOINT_URL on LoRAX


class ServingRefs(Model):
    name: str
    version: int
    sha256: str
    pem_type: str
    base_model: str
    supported: bool
    reason: str | None = None
    vllm: VllmRef | None = None
    lorax: LoraxRef | None = None


def artifact_location(artifact_uri: str) -> tuple[str, str]:
    """(`s3` | `local`, URI or path) of a version's folder."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file":
        return "local", unquote(parsed.path)
    return ("s3", artifact_uri) if parsed.scheme == "s3" else ("local", artifact_uri)


def refs_for(version: VersionView, s3_endpoint_url: str | None = None) -> ServingRefs:
    refs = functools.partial(
        ServingRefs,
        name=version.name,
        version=version.version,
        sha256=version.sha256,
        pem_type=version.pem_type,
        base_model=version.base_model,
    )
    if version.pem_type not in SUPPORTED:
        return refs(
            supported=False,
            reason=f"vLLM and LoRAX serve LoRA adapters only; this is {version.pem_type}",
        )
    source, location = artifact_location(version.artifact_uri)
    lora_name = f"{version.name}@{version.sha256[:8]}"
    vllm = VllmRef(
        lora_name=lora_name,
        # 28 bits of the digest: stable across servers and restarts, positive as vLLM requires.
        lora_int_id=int(version.sha256[:7], 16) + 1,
        lora_path=location,
        load_request={"lora_name": lora_name, "lora_path": location},
        cli_arg=f"{lora_name}={location}",
    )
    lorax = LoraxRef(
        adapter_id=location,
        adapter_source=source,
        s3_endpoint_url=s3_endpoint_url if source == "s3" else None,
    )
    return refs(supported=True, vllm=vllm, lorax=lorax)


def serving_refs(reg: Registry, ref: Ref | str) -> ServingRefs:
    return refs_for(get_version(reg, ref), reg.settings.s3_endpoint_url)
