"""Serving references and the serving folder layout: what vLLM and LoRAX need to load a version from
another machine, and how `pemreg adapters pull` lays a version out for them.

Pure (pydantic and the standard library): the server builds references with it, the client and the
CLI (local or remote) lay folders out with it.

Layout under a folder DIR (what vLLM's filesystem LoRA resolver and LoRAX's `local` source read):

    DIR/<ns>/<name>@<sha256[:8]>/        the version's files; adapter_config.json's
        adapter_config.json               base_model_name_or_path = the registered base's source
        adapter_model.safetensors         (what vLLM serves the base as, so its resolver accepts it)
        ...                               the other files as downloaded (sha256-checked)
        .pemreg.json                      name, version, sha256, the config's original base path
    DIR/<ns>/<name>@<alias> -> <name>@<sha256[:8]>     a link per alias (or number) pulled; moved
                                                        atomically when the alias moves

A vLLM request for model `acme/math@prod` (with VLLM_LORA_RESOLVER_CACHE_DIR=DIR) then loads the
folder the alias points at; `acme/math@1a2b3c4d` names those bytes for good.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pydantic import BaseModel as Model

from .errors import Conflict, InvalidInput
from .pem.types import servable_names
from .views import VersionView

DEFAULT_DIR = "/srv/loras"
CONFIG = "adapter_config.json"
RECORD = ".pemreg.json"


class ServingFile(Model):
    file: str
    sha256: str
    size: int
    url: str | None = None  # presigned S3 URL, or the server's (authenticated) download route


class PullRef(Model):
    command: str  # the pemreg command that lays the version out under the folder
    folder: str  # relative to that folder: `<ns>/<name>@<sha8>`
    path: str  # where it lands


class VllmRef(Model):
    lora_name: str  # `ns/name@sha8`: unique per digest, readable in request logs
    lora_int_id: int  # LoRARequest(lora_name, lora_int_id, lora_path) for the offline engine
    lora_path: str  # the pulled folder on the serving host
    load_request: dict[str, str]  # body for vLLM's POST /v1/load_lora_adapter
    cli_arg: str  # for `vllm serve --enable-lora --lora-modules ...`
    resolver_env: dict[str, str]  # vLLM's filesystem resolver over the pull folder


class LoraxRef(Model):
    adapter_id: str
    adapter_source: str  # `s3` (LoRAX reads the registry's bucket itself) or `local` (the pulled folder)
    s3_endpoint_url: str | None = None  # non-AWS S3 (MinIO, SeaweedFS): set AWS_ENDPOINT_URL on LoRAX


class ServingRefs(Model):
    name: str
    version: int
    sha256: str
    pem_type: str
    base_model: str
    base_model_source: str | None = None  # what the pulled config names as its base
    supported: bool
    reason: str | None = None
    files: list[ServingFile] = []
    expires_in: int | None = None  # seconds the presigned URLs stay valid
    pull: PullRef | None = None
    vllm: VllmRef | None = None
    lorax: LoraxRef | None = None


def lora_name(name: str, sha256: str) -> str:
    return f"{name}@{sha256[:8]}"


def artifact_location(artifact_uri: str) -> tuple[str, str]:
    """(`s3` | `local`, URI or path) of a version's folder."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file":
        return "local", unquote(parsed.path)
    return ("s3", artifact_uri) if parsed.scheme == "s3" else ("local", artifact_uri)


def refs_for(
    version: VersionView,
    *,
    base_source: str | None = None,
    files: list[ServingFile] | None = None,
    expires_in: int | None = None,
    s3_endpoint_url: str | None = None,
    pull_dir: str = DEFAULT_DIR,
) -> ServingRefs:
    common: dict[str, Any] = {
        "name": version.name,
        "version": version.version,
        "sha256": version.sha256,
        "pem_type": version.pem_type,
        "base_model": version.base_model,
        "base_model_source": base_source,
        "files": files or [],
        "expires_in": expires_in,
    }
    if version.pem_type not in servable_names():  # vLLM and LoRAX serve LoRA only
        reason = f"vLLM and LoRAX serve LoRA adapters only; this is {version.pem_type}"
        return ServingRefs(supported=False, reason=reason, **common)
    name = lora_name(version.name, version.sha256)
    root = pull_dir.rstrip("/") or "/"
    path = f"{root.rstrip('/')}/{name}"
    pull = PullRef(
        command=f"pemreg adapters pull {version.name}@{version.version} {root}", folder=name, path=path
    )
    vllm = VllmRef(
        lora_name=name,
        # 28 bits of the digest: stable across servers and restarts, positive as vLLM requires.
        lora_int_id=int(version.sha256[:7], 16) + 1,
        lora_path=path,
        load_request={"lora_name": name, "lora_path": path},
        cli_arg=f"{name}={path}",
        resolver_env={
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
            "VLLM_PLUGINS": "lora_filesystem_resolver",
            "VLLM_LORA_RESOLVER_CACHE_DIR": root,
        },
    )
    source, location = artifact_location(version.artifact_uri)
    if source == "s3":
        lorax = LoraxRef(adapter_id=location, adapter_source="s3", s3_endpoint_url=s3_endpoint_url)
    else:
        lorax = LoraxRef(adapter_id=path, adapter_source="local")
    return ServingRefs(supported=True, pull=pull, vllm=vllm, lorax=lorax, **common)


# ---- pull: the layout on a serving host ---------------------------------------------------------

Download = Callable[[str, Path], object]  # (pinned ref `ns/name@N`, empty folder): files, sha256-checked


def _pinned_config(folder: Path, refs: ServingRefs) -> str | None:
    """Point adapter_config.json at the registered base's source; returns the original value."""
    path = folder / CONFIG
    config = json.loads(path.read_text())
    original = config.get("base_model_name_or_path")
    if refs.base_model_source:
        config["base_model_name_or_path"] = refs.base_model_source
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return original


def _link(parent: Path, link_name: str, target: str) -> Path:
    """`parent/link_name` -> `target`, replaced atomically (a reader sees the old or the new folder)."""
    link = parent / link_name
    if link.exists() and not link.is_symlink():
        raise Conflict(f"{link} exists and is not a link pemreg made; move it away first")
    tmp = parent / f".{link_name}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    return link


def pull(refs: ServingRefs, dest: Path, download: Download, *, link: str | None = None) -> Path:
    """Lay out the version `refs` names under `dest` (downloading only when its folder is not there
    yet) and, with `link`, point `<name>@<link>` at it. Returns the version's folder."""
    if not refs.supported or refs.pull is None:
        raise InvalidInput(f"{refs.name}@{refs.version}: {refs.reason}", field="ref")
    namespace, short = refs.name.split("/", 1)
    parent = dest.expanduser() / namespace
    parent.mkdir(parents=True, exist_ok=True)
    folder = parent / f"{short}@{refs.sha256[:8]}"
    if not _complete(folder, refs.sha256):
        work = Path(tempfile.mkdtemp(prefix=f".{short}@", dir=parent))
        try:
            download(f"{refs.name}@{refs.version}", work)
            original = _pinned_config(work, refs)
            record = {
                "name": refs.name,
                "version": refs.version,
                "sha256": refs.sha256,
                "base_model": refs.base_model,
                "base_model_source": refs.base_model_source,
                "original_base_model_name_or_path": original,
            }
            (work / RECORD).write_text(json.dumps(record, indent=2) + "\n")
            work.chmod(0o755)
            if folder.exists():  # an older, incomplete pull: replaced
                shutil.rmtree(folder)
            try:
                os.rename(work, folder)
            except OSError:
                if not _complete(folder, refs.sha256):  # not a parallel pull of the same bytes
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if link and f"{short}@{link}" != folder.name:
        _link(parent, f"{short}@{link}", folder.name)
    return folder


def _complete(folder: Path, sha256: str) -> bool:
    try:
        return bool(json.loads((folder / RECORD).read_text()).get("sha256") == sha256)
    except (OSError, ValueError):
        return False


def unlink(dest: Path, name: str, link: str) -> bool:
    """Remove the link `<name>@<link>` (an alias was deleted); the version's folder stays."""
    namespace, short = name.split("/", 1)
    path = dest.expanduser() / namespace / f"{short}@{link}"
    if path.is_symlink():
        path.unlink()
        return True
    return False
