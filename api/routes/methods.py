"""/v1/methods: the method table (reader): every composition method, its PEM types and parameters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import Reader
from api.errors import ERROR_RESPONSES
from registry.compose.methods import all_methods

router = APIRouter(prefix="/v1/methods", tags=["methods"], responses=ERROR_RESPONSES)


@router.get("")
def list_methods(caller: Reader) -> list[dict[str, Any]]:
    """Every method of the table (registry/compose/methods.py): name, PEM types, parameters (type,
    default, range or choices), how it reads its inputs (factor space or dense), its LoRA output-rank
    rule and its provider."""
    return [m.to_dict() for m in all_methods()]
