"""The PEM types this registry knows, as names and facts light code needs (no torch).

A type is declared once here; its reader/writer (`PemKind`, registry/pem/<type>.py) and its composer
(registry/compose/<type>.py) register under the same name. The spec, the method table, the web page's
filter and the serving refs read these declarations instead of spelling a type's name, so a new type
(DoRA, LoHa) is this declaration plus its kind and its composer (tests/test_pem_types.py holds every
other file to that).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PemType:
    name: str  # ours, stored in the catalog: 'lora'
    peft_type: str  # PEFT's adapter_config.json value: 'LORA'
    label: str  # for people: 'LoRA', '(IA)3'
    # vLLM and LoRAX load adapters of this type (both serve LoRA only): `pemreg adapters pull` and
    # the serving refs refuse the others
    servable: bool


_TYPES: dict[str, PemType] = {}


class DuplicatePemType(ValueError):
    pass


def register_type(pem_type: PemType) -> PemType:
    """Add a type; a name or PEFT type already declared is refused."""
    for known in _TYPES.values():
        if pem_type.name == known.name or pem_type.peft_type == known.peft_type:
            raise DuplicatePemType(f"PEM type {pem_type.name!r} ({pem_type.peft_type}) is already declared")
    _TYPES[pem_type.name] = pem_type
    return pem_type


def pem_types() -> tuple[PemType, ...]:
    return tuple(_TYPES.values())


def type_names() -> tuple[str, ...]:
    return tuple(_TYPES)


def servable_names() -> tuple[str, ...]:
    return tuple(t.name for t in _TYPES.values() if t.servable)


LORA = register_type(PemType("lora", "LORA", "LoRA", servable=True))
IA3 = register_type(PemType("ia3", "IA3", "(IA)3", servable=False))
