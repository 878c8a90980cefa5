"""A PEM type is declared once (registry/pem/types.py) and served by its kind and its composer; nothing
else in the product spells a type's name, so adding one (DoRA, LoHa) touches only those three places."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from registry.compose.base import COMPOSERS, Composer, get_composer, register_composer
from registry.pem.base import KINDS, PemKind, get_kind, register_kind
from registry.pem.types import DuplicatePemType, PemType, pem_types, register_type, type_names

REPO = Path(__file__).resolve().parent.parent
# Where a type's name may be written: its declaration, its reader/writer and its composer. The demos
# (registry/demo/) train adapters of a chosen type with peft, as a user of the product would: their
# scenario tables name types as data, they do not dispatch the product on one.
ALLOWED = ("registry/pem/", "registry/compose/lora.py", "registry/compose/ia3.py", "registry/demo/")


def _type_literals(path: Path, names: set[str], root: Path = REPO) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(root)}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
    ]


def test_no_type_name_outside_its_declaration_kind_and_composer() -> None:
    names = set(type_names()) | {t.peft_type for t in pem_types()}
    found = [
        hit
        for folder in ("registry", "flows", "api")
        for path in sorted((REPO / folder).rglob("*.py"))
        if not str(path.relative_to(REPO)).startswith(ALLOWED)
        for hit in _type_literals(path, names)
    ]
    assert found == [], "a PEM type's name outside registry/pem/ and the composers:\n" + "\n".join(found)


def test_the_scan_sees_a_type_literal(tmp_path: Path) -> None:
    # the check above can fail: a file that branches on a type is caught
    source = tmp_path / "branch.py"
    source.write_text('def f(a):\n    return a.pem_type == "ia3"\n')
    assert _type_literals(source, {"ia3"}, root=tmp_path) == ["branch.py:2: 'ia3'"]


def test_every_declared_type_has_a_kind_and_a_composer() -> None:
    for declared in pem_types():
        kind = get_kind(declared.name)
        assert kind.declared is declared and kind.peft_type == declared.peft_type
        assert get_composer(declared.name).pem_type == declared.name
    assert set(KINDS) == set(type_names()) == set(COMPOSERS)


def test_a_second_declaration_kind_or_composer_for_a_type_is_refused() -> None:
    lora = next(t for t in pem_types() if t.servable)
    with pytest.raises(DuplicatePemType, match="already declared"):
        register_type(PemType(lora.name, "OTHER", "x", servable=False))
    with pytest.raises(DuplicatePemType, match="already declared"):
        register_type(PemType("other", lora.peft_type, "x", servable=False))
    assert "other" not in type_names()

    class Again(PemKind):
        declared = lora

    with pytest.raises(ValueError, match="already has a PemKind"):
        register_kind(Again())

    class AgainComposer(Composer):
        pem_type = lora.name

    with pytest.raises(ValueError, match="already has a composer"):
        register_composer(AgainComposer())
    assert type(get_kind(lora.name)) is not Again and type(get_composer(lora.name)) is not AgainComposer
