"""Decoding-time compositions (`output: {kind: ensemble}`): the artifact is a recipe, not weights.

The recipe (recipe.json) names the base model and each input version by digest with its weight, and
the formula logits = base + sum_i w_i (logits_i - base). It is stored content-addressed beside its
model card and provenance under `ensembles/<namespace>/<name>/<sha256 of recipe.json>/`, then the
composition record is marked succeeded in one transaction (upload first, then commit). Lineage: the
recipe lists every parent version with digest and weight, and the composition record keeps the
resolved inputs; no adapter version is created (there are no weights), so no lineage edge either.
The pointer to the recipe lives in the composition's report (`interference["ensemble"]`).
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.errors import IntegrityError, InvalidInput
from registry.evaluation.decoding import FORMULA
from registry.hashing import sha256_bytes
from registry.provenance import build_provenance, dumps
from registry.service.catalog import audit
from registry.service.catalog.queries import get_version
from registry.service.compositions.inputs import ResolvedInput
from registry.service.compositions.reads import CompositionView, get, view_of
from registry.service.compositions.runs import apply_transition
from registry.service.compositions.status import RunStatus
from registry.service.context import Registry
from registry.serving import refs_for
from registry.spec import CompositionSpec

SCHEMA = "pemreg.ensemble/v1"


def build_recipe(spec: CompositionSpec, inputs: list[ResolvedInput]) -> dict[str, Any]:
    """Deterministic (no timestamps): the same inputs and weights give the same recipe digest."""
    return {
        "schema": SCHEMA,
        "name": spec.name,
        "base_model": inputs[0].base_model,
        "pem_type": inputs[0].pem_type,
        "formula": FORMULA,
        "inputs": [
            {"name": i.name, "version": i.version, "sha256": i.sha256, "weight": i.weight} for i in inputs
        ],
    }


def recipe_bytes(recipe: dict[str, Any]) -> bytes:
    return (json.dumps(recipe, sort_keys=True, indent=2) + "\n").encode()


def render_card(recipe: dict[str, Any], description: str | None, metrics: dict[str, float]) -> str:
    front = {
        "base_model": recipe["base_model"].partition("@")[0],
        "tags": ["pem-registry", "ensemble", "decoding-time-composition", recipe["pem_type"]],
    }
    lines = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "", f"# {recipe['name']}", ""]
    if description:
        lines += [description, ""]
    lines += [
        "A decoding-time composition: no weights are merged. At every decoding step run the base model",
        "and each input adapter on the same prefix and combine their next-token logits:",
        "",
        f"    {recipe['formula']}",
        "",
        "## Inputs (lineage)",
        "",
        "| input | version | weight | sha256 |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {i['name']} | {i['version']} | {i['weight']:+g} | `{i['sha256'][:12]}` |"
        for i in recipe["inputs"]
    ]
    if metrics:
        lines += ["", "## Evaluations (decoding-time)", "", "| name | value |", "|---|---|"]
        lines += [f"| {k} | {v:.6g} |" for k, v in sorted(metrics.items())]
    lines += ["", "Serving: see `ensemble_serving` (one forward pass per input and one for the base).", ""]
    return "\n".join(lines)


def _put(reg: Registry, key: str, data: bytes) -> dict[str, Any]:
    if not reg.store.exists(key):  # content-addressed: an identical recipe was stored already
        reg.store.put_bytes(key, data)
    return {"sha256": sha256_bytes(data), "size": len(data)}


def register_ensemble(
    reg: Registry,
    composition: CompositionView,
    spec: CompositionSpec,
    inputs: list[ResolvedInput],
    *,
    metrics: dict[str, float],
    provenance: dict[str, Any],
) -> CompositionView:
    """Upload recipe.json, README.md and provenance.json, then mark the composition succeeded."""
    recipe = build_recipe(spec, inputs)
    data = recipe_bytes(recipe)
    digest = sha256_bytes(data)
    namespace, name = spec.name.split("/", 1)
    prefix = f"ensembles/{namespace}/{name}/{digest}"
    files = {"recipe.json": _put(reg, f"{prefix}/recipe.json", data)}
    card = render_card(recipe, spec.description, metrics).encode()
    files["README.md"] = _put(reg, f"{prefix}/README.md", card)
    doc = build_provenance(
        subject=dict(files),
        kind="composition",
        principal=reg.principal,
        trigger=composition.trigger,
        extra={"name": spec.name, "base_model": recipe["base_model"], "recipe": recipe, **provenance},
    )
    # Provenance carries the run (times, flow run id): one per recipe digest, the first run's is kept.
    files["provenance.json"] = _put(reg, f"{prefix}/provenance.json", dumps(doc))
    pointer = {
        "uri": f"{reg.store.url.rstrip('/')}/{prefix}",
        "key": prefix,
        "sha256": digest,
        "files": files,
    }
    with transaction(reg.sessions) as session:
        row = session.get_one(m.Composition, composition.id, with_for_update=True)
        interference = {**(row.interference or {}), "ensemble": pointer}
        apply_transition(row, RunStatus.SUCCEEDED, metrics=metrics, interference=interference)
        audit.record(
            session,
            reg.principal,
            "compose_register",
            f"{spec.name}@ensemble:{digest[:12]}",
            composition_id=composition.id,
            sha256=digest,
            uri=pointer["uri"],
        )
        session.flush()
        return view_of(session, row)


def ensemble_serving(reg: Registry, recipe: dict[str, Any]) -> dict[str, Any]:
    """What a server must do to run the recipe, with a digest-pinned reference for each adapter."""
    adapters = []
    for item in recipe["inputs"]:
        version = get_version(reg, f"{item['name']}@sha256:{item['sha256']}")
        refs = refs_for(version, s3_endpoint_url=reg.settings.s3_endpoint_url)
        adapters.append({**item, "serving": refs.model_dump(mode="json", exclude_none=True)})
    return {
        "kind": "ensemble",
        "base_model": recipe["base_model"],
        "formula": recipe["formula"],
        "adapters": adapters,
        "steps": [
            f"load the base model {recipe['base_model']} once",
            "load every adapter below by its digest-pinned reference (each as its own adapter, never merged)",
            "for each decoding step, run the same prefix through the base with no adapter and through each "
            "adapter (vLLM/LoRAX: one request per adapter name, or a batch over adapter names)",
            "combine the next-token logits as (1 - sum_i w_i) * base + sum_i w_i * logits_i, then sample",
            "cost: 1 + n forward passes per token; the weights are in `adapters[i].weight`",
        ],
    }


def recipe_of(reg: Registry, composition_id: str) -> dict[str, Any]:
    """The stored recipe of a succeeded ensemble composition, checked against its recorded digest."""
    pointer = get(reg, composition_id).interference.get("ensemble")
    if not pointer:
        raise InvalidInput(
            f"composition {composition_id} did not register an ensemble recipe", field="composition"
        )
    data = b"".join(reg.store.open_stream(f"{pointer['key']}/recipe.json"))
    if sha256_bytes(data) != pointer["sha256"]:
        raise IntegrityError(
            f"recipe of composition {composition_id} does not match sha256:{pointer['sha256']}"
        )
    recipe: dict[str, Any] = json.loads(data)
    return recipe


def composition_serving(reg: Registry, composition_id: str) -> dict[str, Any]:
    """Serving reference of an ensemble composition (for a REST/CLI `serving` view)."""
    return ensemble_serving(reg, recipe_of(reg, composition_id))
