"""Composition spec (reference: docs/spec.md) and the expression language.

Public API:
    load_spec(source: str | os.PathLike) -> CompositionSpec  # YAML or JSON text, or a file path
        errors: InvalidInput("<field> (line N): <problem>", field="<field>")
    CompositionSpec (pydantic, frozen, extra fields forbidden)
        .weighted_refs() -> list[tuple[Ref, float]]; .canonical() -> dict; .canonical_json() -> str
    parse_expression(expr: str) -> list[tuple[Ref, float]]  # one weight per distinct ref
    Ref(namespace, name, version=None, alias=None, sha256_prefix=None)
        .full_name, .selector, str(ref), Ref.parse("ns/name@sel")
"""

from registry.refs import Ref
from registry.spec.expression import parse_expression, reduce_expression
from registry.spec.loader import load_spec
from registry.spec.model import (
    CompositionSpec,
    EvaluationSpec,
    GateSpec,
    InputSpec,
    OutputSpec,
    SearchSpec,
)

__all__ = [
    "CompositionSpec",
    "EvaluationSpec",
    "GateSpec",
    "InputSpec",
    "OutputSpec",
    "Ref",
    "SearchSpec",
    "load_spec",
    "parse_expression",
    "reduce_expression",
]
