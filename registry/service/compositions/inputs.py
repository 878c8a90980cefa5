"""Resolve a spec's inputs to exact versions and digests, and fetch them into a local, digest-keyed cache."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from registry import __version__
from registry.errors import IncompatibleAdapters, InvalidInput
from registry.hashing import sha256_unchanged
from registry.paths import user_path
from registry.refs import parse_ref
from registry.service.catalog.resolve import resolve_version
from registry.service.context import Registry, open_store_for
from registry.sources import local_folder
from registry.spec import CompositionSpec
from registry.store import adapter_prefix

# Part of the cache key: a new engine version recomputes instead of reusing older results.
ENGINE_VERSION = f"pemreg-engine/{__version__}"


@dataclass(frozen=True)
class ResolvedInput:
    ref: str  # as written in the spec (selector included): what recomposition re-resolves
    name: str
    version: int
    sha256: str
    weight: float
    pem_type: str
    base_model: str  # name@revision
    files: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def follows_moving_pointer(self) -> bool:
        """Referenced by `latest` or an alias (not a number or digest): recompose when it moves."""
        ref = parse_ref(self.ref)
        return ref.version is None and ref.sha256_prefix is None


def resolve_inputs(reg: Registry, spec: CompositionSpec) -> list[ResolvedInput]:
    resolved: list[ResolvedInput] = []
    with reg.sessions() as session:
        for ref, weight in spec.weighted_refs():
            row = resolve_version(session, parse_ref(str(ref), field="expression"), access=reg.acting)
            base = row.adapter.base_model
            resolved.append(
                ResolvedInput(
                    ref=str(ref),
                    name=row.adapter.full_name,
                    version=row.version,
                    sha256=row.sha256,
                    weight=weight,
                    pem_type=row.adapter.pem_type,
                    base_model=f"{base.name}@{base.revision}",
                    files=row.files,
                )
            )
    _check_catalog_compatibility(spec, resolved)
    return resolved


def spec_inputs(spec: CompositionSpec) -> list[str]:
    """`ns/name` of every input the spec names (weight 0 included: the spec still names it)."""
    if spec.expression is not None:
        from registry.spec.expression import reduce_expression

        return sorted({ref.full_name for ref in reduce_expression(spec.expression)})
    return sorted({item.ref().full_name for item in spec.inputs or []})


def spec_namespaces(spec: CompositionSpec) -> set[str]:
    return {name.split("/", 1)[0] for name in spec_inputs(spec)}


def _check_catalog_compatibility(spec: CompositionSpec, inputs: list[ResolvedInput]) -> None:
    """What the catalog already knows, before any download: one PEM type, one base model."""
    types = {i.pem_type for i in inputs}
    if len(types) > 1:
        detail = ", ".join(f"{i.label} is {i.pem_type}" for i in inputs)
        raise IncompatibleAdapters(f"inputs mix PEM types ({detail})")
    bases = {i.base_model for i in inputs}
    if len(bases) > 1:
        detail = ", ".join(f"{i.label} on {i.base_model}" for i in inputs)
        raise IncompatibleAdapters(f"inputs belong to different base models ({detail})")
    if spec.base_model:
        want = spec.base_model if "@" in spec.base_model else None
        name = spec.base_model.partition("@")[0]
        actual = next(iter(bases))
        if actual.partition("@")[0] != name or (want and actual != want):
            raise InvalidInput(
                f"base_model: spec says {spec.base_model} but the inputs are on {actual}", field="base_model"
            )


def composition_key(spec: CompositionSpec, inputs: list[ResolvedInput]) -> str:
    """sha256 over canonical spec + input digests + engine version (and a plugin method's distribution
    and version: upgrading the plugin recomputes): same key, same result."""
    from registry.compose.methods import get_method

    payload: dict[str, Any] = {
        "spec": spec.canonical(),
        "inputs": sorted([i.name, i.sha256, i.weight] for i in inputs),
        "engine": ENGINE_VERSION,
    }
    method = get_method(spec.method)
    if method is not None and method.provider != "pemreg":  # built-in methods keep their older keys
        payload["method_provider"] = method.provider
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def cache_dir(reg: Registry, *parts: str) -> Path:
    path = reg.settings.home.joinpath("cache", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _publish(tmp: Path, dest: Path, complete: Callable[[Path], bool]) -> None:
    """Move a fully downloaded folder into place. Readers see a complete folder or none: a complete
    one is never removed under them. Another process or thread that published the same content first
    wins (the rename finds the folder there); a broken folder is moved aside first, then replaced."""
    if dest.exists() and not complete(dest):
        aside = dest.with_name(f".broken-{dest.name}-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(FileNotFoundError):
            dest.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)
    try:
        tmp.rename(dest)
    except OSError:
        if not complete(dest):  # not a lost race with an equal copy: a real failure
            raise


def fetch_input(reg: Registry, item: ResolvedInput) -> Path:
    """The input's PEFT folder, downloaded once per content (sha256-verified) and reused afterwards.

    A version's digest is its weights'; two versions may share weights under different configs (another
    base, lora_alpha, target_modules), so the cache folder is keyed, and checked, by both files."""
    config_sha256 = item.files["adapter_config.json"]["sha256"]
    dest = cache_dir(reg, "adapters") / f"{item.sha256}-{config_sha256[:16]}"

    def complete(folder: Path) -> bool:
        weights, config = folder / "adapter_model.safetensors", folder / "adapter_config.json"
        return (
            config.is_file()
            and weights.is_file()
            and sha256_unchanged(weights) == item.sha256
            and hashlib.sha256(config.read_bytes()).hexdigest() == config_sha256
        )

    if complete(dest):
        return dest
    namespace, name = item.name.split("/", 1)
    prefix = adapter_prefix(namespace, name, item.sha256)
    tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=dest.parent))
    try:
        for filename in ("adapter_config.json", "adapter_model.safetensors"):
            entry = item.files[filename]
            reg.store.get_file(f"{prefix}/{filename}", tmp / filename, sha256=entry["sha256"])
        _publish(tmp, dest, complete)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def fetch_base_model(reg: Registry, source: str, key: str) -> Path | str:
    """A local folder as is, an s3:// folder downloaded once; a hub id is returned for transformers."""
    if source.startswith("s3://"):
        dest = cache_dir(reg, "base") / key.replace("/", "--")
        complete: Callable[[Path], bool] = lambda folder: (folder / "config.json").is_file()  # noqa: E731
        if not complete(dest):
            store = open_store_for(reg.settings, source.rstrip("/"))
            tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=dest.parent))
            try:
                for k in store.list_keys(""):
                    (tmp / k).parent.mkdir(parents=True, exist_ok=True)
                    store.get_file(k, tmp / k)
                _publish(tmp, dest, complete)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return dest
    path = local_folder(source) or user_path(source)
    return path if path.is_dir() else source


def base_model_folder(reg: Registry, inputs: list[ResolvedInput]) -> str:
    """The inputs' base model as a local folder (or hub id), for evaluation and merging."""
    from registry.service.registration.base_models import require_base_model

    with reg.sessions() as session:
        base = require_base_model(session, inputs[0].base_model)
        source, key = base.source, f"{base.name}@{base.revision}"
    return str(fetch_base_model(reg, source, key))
